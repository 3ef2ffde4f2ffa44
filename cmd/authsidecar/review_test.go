package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// The target of a token endpoint's redirect must not receive the
// credentials: the redirect is a refusal.
func TestTokenClientDoesNotFollowRedirects(t *testing.T) {
	var mu sync.Mutex
	var stolen string
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		stolen = string(b)
		mu.Unlock()
		io.WriteString(w, `{"access_token":"x","expires_in":3600}`)
	}))
	defer evil.Close()
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer provider.Close()
	src := tokens.NewJSONSource(tokens.JSONConfig{URL: provider.URL, ClientID: tokens.Literal("id"),
		ClientSecret: tokens.Literal("TOPSECRET"), Client: tokenClient(proxy.NewTransport(nil), 5*time.Second)})
	_, err := src.Token(context.Background())
	var re *tokens.RetrieveError
	if !errors.As(err, &re) || re.Status != http.StatusTemporaryRedirect {
		t.Errorf("Token() error = %v, want a RetrieveError with status 307", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(stolen, "TOPSECRET") {
		t.Errorf("redirect target received %s", stolen)
	}
}

func TestLoadConfigReviewProblems(t *testing.T) {
	base := map[string]string{
		"AUTHSIDECAR_UPSTREAM_URL": "https://api.example", "AUTHSIDECAR_TOKEN_SOURCE": "oauth2",
		"AUTHSIDECAR_TOKEN_URL": "https://auth.example/token", "AUTHSIDECAR_CLIENT_ID": "id", "AUTHSIDECAR_CLIENT_SECRET": "s",
	}
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"scope in both SCOPES and TOKEN_PARAMS", map[string]string{"AUTHSIDECAR_SCOPES": "checkout", "AUTHSIDECAR_TOKEN_PARAMS": "scope=other"}, "AUTHSIDECAR_TOKEN_PARAMS:"},
		{"grant_type in TOKEN_PARAMS", map[string]string{"AUTHSIDECAR_TOKEN_PARAMS": "grant_type=password"}, "AUTHSIDECAR_TOKEN_PARAMS:"},
		{"empty segment in JSON_TOKEN_FIELD", map[string]string{"AUTHSIDECAR_TOKEN_SOURCE": "json", "AUTHSIDECAR_JSON_TOKEN_FIELD": "data..token"}, "AUTHSIDECAR_JSON_TOKEN_FIELD:"},
		{"same listen and admin address", map[string]string{"AUTHSIDECAR_LISTEN_ADDR": "127.0.0.1:9000", "AUTHSIDECAR_ADMIN_ADDR": "127.0.0.1:9000"}, "AUTHSIDECAR_ADMIN_ADDR:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.set {
				env[k] = v
			}
			_, err := loadConfig(env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig() error = %v, want one naming %s", err, tc.want)
			}
		})
	}
	if _, err := loadConfig(map[string]string{"AUTHSIDECAR_UPSTREAM_URL": "https://api.example", "AUTHSIDECAR_TOKEN_SOURCE": "oauth2",
		"AUTHSIDECAR_TOKEN_URL": "https://auth.example/token", "AUTHSIDECAR_CLIENT_ID": "id", "AUTHSIDECAR_CLIENT_SECRET": "s",
		"AUTHSIDECAR_TOKEN_PARAMS": "scope=checkout,audience=api"}); err != nil {
		t.Errorf("loadConfig(TOKEN_PARAMS=scope=… without SCOPES) error = %v, want nil", err)
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out, errOut strings.Builder
	if code := mainExit([]string{"-h"}, nil, &out, &errOut); code != 0 {
		t.Errorf("mainExit(-h) = %d, want 0", code)
	}
}

// A configured file that never ends must not hang the start-up.
func TestLoadConfigRefusesEndlessFiles(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"AUTHSIDECAR_UPSTREAM_URL": "https://api.example", "AUTHSIDECAR_TOKEN_SOURCE": "none",
		"AUTHSIDECAR_UPSTREAM_CA_FILE": "/dev/zero",
	})
	if err == nil || !strings.Contains(err.Error(), "AUTHSIDECAR_UPSTREAM_CA_FILE:") {
		t.Errorf("loadConfig(UPSTREAM_CA_FILE=/dev/zero) error = %v, want one naming AUTHSIDECAR_UPSTREAM_CA_FILE", err)
	}
}

// UPSTREAM_TIMEOUT bounds the upstream's response headers, not the token
// endpoint's: a token endpoint slower than it but within TOKEN_TIMEOUT works.
func TestTokenClientIgnoresUpstreamTimeout(t *testing.T) {
	// The provider's slowness is what is tested, not a wait: it answers
	// 300ms late, or not at all if the client gave up first.
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"access_token":"slow-but-fine","expires_in":3600}`)
	}))
	defer provider.Close()
	upstream := proxy.NewTransport(nil)
	upstream.ResponseHeaderTimeout = 100 * time.Millisecond // as run sets UPSTREAM_TIMEOUT
	src := tokens.NewJSONSource(tokens.JSONConfig{URL: provider.URL, ClientID: tokens.Literal("id"),
		ClientSecret: tokens.Literal("s"), Client: tokenClient(upstream, 5*time.Second)})
	if tok, err := src.Token(context.Background()); err != nil || tok.Value != "slow-but-fine" {
		t.Errorf("Token() = %v, %v; want the token answered after 300ms (UPSTREAM_TIMEOUT 100ms, TOKEN_TIMEOUT 5s)", tok, err)
	}
}
