package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// validateSharedCache checks SHARED_CACHE and the files that go with it.
func (c *Config) validateSharedCache(p *problems) {
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
	switch c.TokenSource {
	case "json", "oauth2", "registered":
	default:
		p.add("SHARED_CACHE", "needs a token fetched from a provider (%sTOKEN_SOURCE json, oauth2 or registered), got %q", envPrefix, c.TokenSource)
	}
	opts, err := shared.ParseURL(c.SharedCache)
	if err != nil {
		p.add("SHARED_CACHE", "%s", strings.TrimPrefix(err.Error(), "shared: "))
	}
	if c.SharedCacheKeyFile == "" {
		p.add("SHARED_CACHE_KEY_FILE", "required with %sSHARED_CACHE: tokens are stored encrypted under this key (openssl rand -base64 32)", envPrefix)
	} else if c.sharedKey, err = shared.LoadKey(c.SharedCacheKeyFile); err != nil {
		p.add("SHARED_CACHE_KEY_FILE", "%s", strings.TrimPrefix(err.Error(), "shared: "))
	}
	if f := c.SharedCachePasswordFile; f != "" {
		if b, err := tokens.ReadFile(f); err != nil {
			p.add("SHARED_CACHE_PASSWORD_FILE", "%v", err)
		} else if strings.TrimSpace(string(b)) == "" {
			p.add("SHARED_CACHE_PASSWORD_FILE", "%s is empty", f)
		}
	}
	if f := c.SharedCacheCAFile; f != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := tokens.ReadFile(f)
		switch {
		case err != nil:
			p.add("SHARED_CACHE_CA_FILE", "%v", err)
		case !pool.AppendCertsFromPEM(pem):
			p.add("SHARED_CACHE_CA_FILE", "no PEM certificate in %s", f)
		case opts != nil && opts.TLSConfig == nil:
			p.add("SHARED_CACHE_CA_FILE", "only used with a rediss:// URL")
		}
		c.sharedTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
}

// sharedIdentity is what makes two sidecars' tokens interchangeable, for the
// shared cache's entry name: the provider, the client, and whatever changes
// the token asked for or read. Never a secret.
func (c *Config) sharedIdentity(clientID string) []string {
	id := []string{"authsidecar/1", c.TokenSource, c.TokenURL}
	switch c.TokenSource {
	case "json":
		id = append(id, clientID, c.JSONTokenField, c.JSONExpiresInField, c.JSONExpiresAtField)
	case "oauth2":
		scopes := slices.Sorted(slices.Values(c.scopes))
		id = append(id, clientID, strings.Join(slices.Compact(scopes), " "), c.params.Encode())
	case "registered":
		id = append(id, c.MerchantID, c.TokenTTL.String())
	}
	return id
}

// withSharedCache wraps src so that the fleet shares its tokens through
// SHARED_CACHE. The returned func closes the connection.
func withSharedCache(src tokens.Source, cfg Config, log *slog.Logger, m *metrics.Metrics) (tokens.Source, func(), error) {
	var password tokens.Secret
	if cfg.SharedCachePasswordFile != "" {
		password = tokens.File(cfg.SharedCachePasswordFile)
	}
	client, err := shared.NewClient(shared.ClientConfig{URL: cfg.SharedCache, Password: password, TLS: cfg.sharedTLS})
	if err != nil {
		return nil, nil, fmt.Errorf("%sSHARED_CACHE: %w", envPrefix, err)
	}
	redis.SetLogger(redisLogger{log})
	clientID, err := secret(cfg.ClientID, cfg.ClientIDFile).Read()
	if err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("%sCLIENT_ID_FILE: %w", envPrefix, err)
	}
	s, err := shared.New(src, shared.Config{
		Client:   client,
		Key:      cfg.sharedKey,
		Identity: cfg.sharedIdentity(clientID),
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
