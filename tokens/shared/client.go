package shared

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/authsidecar/authsidecar/tokens"
)

// ClientConfig says how to reach Redis.
type ClientConfig struct {
	// URL is redis://[user@]host[:port][/db] or rediss://… for TLS. It may
	// not hold a password: that goes in Password.
	URL string
	// Password is read at each new connection, so a rotated Secret file is
	// picked up without a restart. The zero Secret means no password.
	Password tokens.Secret
	// TLS, if not nil, is used for rediss:// instead of the system's roots.
	TLS *tls.Config
	// Timeout bounds dialling and each read or write. Zero means 500ms.
	Timeout time.Duration
}

// ParseURL checks a shared cache URL and returns go-redis' options for it.
func ParseURL(raw string) (*redis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("shared: not a URL") // url's error would repeat the URL
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("shared: must be a redis:// or rediss:// URL, got scheme %q", u.Scheme)
	}
	if _, set := u.User.Password(); set {
		return nil, errors.New("shared: the URL holds a password: put it in a file named by AUTHSIDECAR_SHARED_CACHE_PASSWORD_FILE instead")
	}
	if u.Hostname() == "" {
		return nil, errors.New("shared: the URL names no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		// go-redis reads options from the query (skip_verify=true among them);
		// the sidecar sets its own, and TLS is verified.
		return nil, errors.New("shared: the URL may not have a query (?…) or fragment: options are the sidecar's")
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("shared: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	return opts, nil
}

// NewClient returns a Redis client for a shared cache: short timeouts, since
// a slow Redis is worth less than a local fetch, and a small pool, since only
// renewals use it. It connects lazily, and reconnects by itself.
func NewClient(c ClientConfig) (*redis.Client, error) {
	opts, err := ParseURL(c.URL)
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.PoolSize, opts.MinIdleConns = 4, 0
	opts.MaxRetries = 1 // one retry, for a pooled connection Redis closed
	// Two dials per attempt. After PoolSize failed attempts go-redis stops
	// dialling, fails at once and probes every second: a Redis that is down
	// costs nothing, and one that is back is found within a second.
	opts.DialerRetries, opts.DialerRetryTimeout = 2, 50*time.Millisecond
	opts.ContextTimeoutEnabled = true // the caller's deadline counts too
	opts.DisableIdentity = true       // no CLIENT SETINFO: managed Redis often refuses it
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opts.TLSConfig != nil && c.TLS != nil {
		t := c.TLS.Clone()
		t.ServerName = opts.TLSConfig.ServerName
		opts.TLSConfig = t
	}
	user := opts.Username
	if c.Password != (tokens.Secret{}) {
		opts.CredentialsProviderContext = func(context.Context) (string, string, error) {
			p, err := c.Password.Read()
			return user, p, err
		}
	}
	return redis.NewClient(opts), nil
}
