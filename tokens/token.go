// Package tokens fetches, caches and renews the short-lived credentials that
// authsidecar puts on outbound requests.
//
// It is built like golang.org/x/oauth2: a [Source] fetches one token from a
// provider, and a [Cache] wraps a Source, keeps the current token, renews it in
// the background before it expires and hands it to any number of callers.
package tokens

import (
	"context"
	"log/slog"
	"time"
)

// Token is one credential issued by a provider. A Token is never modified
// after it is returned, so callers may compare tokens by pointer.
type Token struct {
	// Value is the credential itself, as the provider issued it.
	Value string
	// Expiry is when the provider stops accepting Value. Sources always set it.
	Expiry time.Time
	// Label is a second value issued with some tokens (Axepta's AuthLabel);
	// empty for most sources. It is as secret as Value.
	Label string
	// Extra holds provider details that go with the token, for the hand-off
	// endpoint (Axepta's Code and Description); nil for most sources.
	Extra map[string]string
}

// String hides the token's value, so that a token printed by mistake does not
// leak into logs.
func (t *Token) String() string { return "[token redacted]" }

// GoString hides the token's value from %#v too.
func (t *Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer: only the expiry is ever logged.
func (t *Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Time("expiry", t.Expiry))
}

// Source fetches a new token each time Token is called. Implementations must
// be safe for concurrent use and must honour ctx's deadline.
type Source interface {
	Token(ctx context.Context) (*Token, error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(ctx context.Context) (*Token, error)

// Token calls f.
func (f SourceFunc) Token(ctx context.Context) (*Token, error) { return f(ctx) }

// KeyedSource fetches a new token for one key (a customer, a tenant) each
// time Token is called. Implementations must be safe for concurrent use and
// must honour ctx's deadline. A KeyedCache wraps one.
type KeyedSource interface {
	Token(ctx context.Context, key string) (*Token, error)
}

// KeyedSourceFunc adapts a function to a KeyedSource.
type KeyedSourceFunc func(ctx context.Context, key string) (*Token, error)

// Token calls f.
func (f KeyedSourceFunc) Token(ctx context.Context, key string) (*Token, error) { return f(ctx, key) }

// Rejecter is implemented by Sources that share their tokens beyond this
// process: a Cache tells them when the upstream rejected a token they gave,
// so that the token is not handed out again. Its methods must not block.
type Rejecter interface {
	Rejected(tok *Token)
	// Shared reports whether tok came from beyond this process: another
	// process fetched it. Dropping such a token costs the provider at most
	// the one fetch the fleet shares, so a Cache lets one such drop per
	// ForcedRefreshInterval through its rate limit: a token revoked together
	// with the one it replaced is not kept for the whole interval.
	Shared(tok *Token) bool
}
