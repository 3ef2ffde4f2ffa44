package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
)

// The settings FuzzLoadConfig leaves out: header names, local paths, scopes,
// the connection cap, the SDK tokens' lifetime (SDK_AUTH_TTL). Whatever the values,
// loadConfig lists problems that each name a variable, or accepts values
// the sidecar can use.
func FuzzLoadConfigNamesAndPaths(f *testing.F) {
	f.Add("X-Authsidecar-Request", "/auth", "checkout,payments", "1024", "1h")
	f.Add("Connection", "/a/..;/b", ",,", "0", "25h")
	f.Add("X Bad", "auth", " ", "-5", "-1s")
	f.Add("", "/a\\..\\b", "a b", "1e3", "0")
	f.Fuzz(func(t *testing.T, requireHeader, handoffPath, scopes, maxConns, ttl string) {
		env := minimal("oauth2", map[string]string{
			"REQUIRE_HEADER":  requireHeader,
			"HANDOFF_PATH":    handoffPath,
			"SCOPES":          scopes,
			"MAX_CONNECTIONS": maxConns,
			"SDK_AUTH_TTL":    ttl,
		})
		c, err := loadConfig(env)
		if err != nil {
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("loadConfig() error %q is not a list of problems", err)
			}
			checkEveryLineNamesAVariable(t, err)
			return
		}
		if h := c.RequireHeader; h != "" {
			if !validHeaderName(h) || credentialHeaders[http.CanonicalHeaderKey(h)] {
				t.Errorf("REQUIRE_HEADER %q accepted", h)
			}
		}
		if p := c.HandoffPath; p != "" && proxy.CheckEndpointPath(p) != nil {
			t.Errorf("HANDOFF_PATH %q accepted", p)
		}
		for _, s := range c.scopes() {
			if s == "" || strings.ContainsAny(s, " \t\n") {
				t.Errorf("SCOPES %q accepted with scope %q", scopes, s)
			}
		}
		if c.MaxConnections < 1 {
			t.Errorf("MAX_CONNECTIONS %q accepted as %d", maxConns, c.MaxConnections)
		}
	})
}
