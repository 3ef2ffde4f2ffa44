package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// checkSharedCache checks SHARED_CACHE and the files that go with it.
func (c *Config) checkSharedCache(p *problems, source sourceKind, sourceOK bool) {
	if c.SharedCache == "" {
		for name, v := range map[string]string{
			"SHARED_CACHE_KEY_FILE": c.SharedCacheKeyFile, "SHARED_CACHE_PASSWORD_FILE": c.SharedCachePasswordFile,
			"SHARED_CACHE_CA_FILE": c.SharedCacheCAFile,
		} {
			if v != "" {
				p.add(name, "set without %sSHARED_CACHE: the shared cache is off", envPrefix)
			}
		}
		return
	}
	if sourceOK && source.identity == nil {
		p.add("SHARED_CACHE", "needs a token fetched from a provider (%sTOKEN_SOURCE %s), got %q", envPrefix,
			sourceNames(func(k sourceKind) bool { return k.identity != nil }), c.TokenSource)
	}
	c.sharedClientConfig(p)
	if c.SharedCacheKeyFile == "" {
		p.add("SHARED_CACHE_KEY_FILE", "required with %sSHARED_CACHE: tokens are stored encrypted under this key (openssl rand -base64 32)", envPrefix)
	} else if _, err := shared.LoadKey(c.SharedCacheKeyFile); err != nil {
		p.add("SHARED_CACHE_KEY_FILE", "%s", strings.TrimPrefix(err.Error(), "shared: "))
	}
	if f := c.SharedCachePasswordFile; f != "" {
		if b, err := tokens.ReadFile(f); err != nil {
			p.add("SHARED_CACHE_PASSWORD_FILE", "%v", err)
		} else if strings.TrimSpace(string(b)) == "" {
			p.add("SHARED_CACHE_PASSWORD_FILE", "%s is empty", f)
		}
	}
}

// sharedClientConfig is how to reach the shared cache: its URL, the
// password file and the extra CA.
func (c Config) sharedClientConfig(p *problems) shared.ClientConfig {
	cc := shared.ClientConfig{URL: c.SharedCache}
	opts, err := shared.ParseURL(c.SharedCache)
	if err != nil {
		p.add("SHARED_CACHE", "%s", strings.TrimPrefix(err.Error(), "shared: "))
	}
	if c.SharedCachePasswordFile != "" {
		cc.Password = tokens.File(c.SharedCachePasswordFile)
	}
	if f := c.SharedCacheCAFile; f != "" {
		if opts != nil && opts.TLSConfig == nil {
			p.add("SHARED_CACHE_CA_FILE", "only used with a rediss:// URL")
		}
		cc.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: caPool("SHARED_CACHE_CA_FILE", f, p)}
	}
	return cc
}

// sharedIdentity is the identity of the configured source's tokens for the
// shared cache's entry name: what makes two sidecars' tokens interchangeable.
func (c Config) sharedIdentity(kind sourceKind) ([]string, error) {
	own, err := kind.identity(c)
	return append([]string{"authsidecar/1", c.TokenSource, c.TokenURL}, own...), err
}

// withSharedCache wraps src so that the fleet shares its tokens through
// SHARED_CACHE. The returned func closes the connection.
func withSharedCache(src tokens.Source, kind sourceKind, cfg Config, log *slog.Logger, m *metrics.Metrics) (tokens.Source, func(), error) {
	var p problems
	cc := cfg.sharedClientConfig(&p)
	key, err := shared.LoadKey(cfg.SharedCacheKeyFile)
	if err != nil {
		p.add("SHARED_CACHE_KEY_FILE", "%s", strings.TrimPrefix(err.Error(), "shared: "))
	}
	if err := p.err(); err != nil {
		return nil, nil, err
	}
	client, err := shared.NewClient(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("%sSHARED_CACHE: %w", envPrefix, err)
	}
	identity, err := cfg.sharedIdentity(kind)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	s, err := shared.New(src, shared.Config{
		Client:   client,
		Key:      key,
		Identity: identity,
		RenewAt:  cfg.RenewAt,
		LockTTL:  cfg.TokenTimeout + 2*time.Second, // a fetch, and the store after it
		Logger:   log,
		Observer: m,
	})
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return s, func() { client.Close() }, nil
}

// redisLogger sends go-redis' own messages (failed dials and the like) to
// the sidecar's log at debug level: the shared cache logs what matters.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, args ...any) {
	l.log.DebugContext(ctx, "redis: "+fmt.Sprintf(format, args...))
}
