package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"testing"

	"github.com/authsidecar/authsidecar/tokens"
)

// built builds the sidecar of an accepted configuration, for tests that look
// at what build made of it.
func built(t *testing.T, c Config) *sidecar {
	t.Helper()
	s, err := build(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("build() error = %v, want none for a configuration loadConfig accepted", err)
	}
	t.Cleanup(s.close)
	return s
}

// level is LOG_LEVEL, parsed.
func level(c Config) slog.Level {
	l, _ := c.logLevel()
	return l
}

// newSource builds the configured kind's source with client as its token
// client; nil for a kind that fetches no token.
func newSource(c Config, client *http.Client, log *slog.Logger) tokens.Source {
	kind, _ := lookupSource(c.TokenSource)
	if kind.build == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := kind.build(c, &builder{log: log, tokenClient: client})
	if err != nil {
		panic(fmt.Sprintf("build %s source: %v", c.TokenSource, err))
	}
	return src
}

// assertion is the client assertion build gives the oauth2 source; nil
// without private-key-jwt.
func assertion(c Config) *tokens.ClientAssertion {
	if c.OAuth2AuthStyle != "private-key-jwt" {
		return nil
	}
	var p problems
	return c.clientAssertion(nil, &p)
}

// upstreamTLS is the TLS configuration build gives the upstream's transport.
func upstreamTLS(t *testing.T, c Config) *tls.Config {
	t.Helper()
	var p problems
	cfg := c.upstreamTLS(&p)
	if err := p.err(); err != nil {
		t.Fatalf("upstreamTLS() error = %v", err)
	}
	return cfg
}
