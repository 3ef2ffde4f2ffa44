package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// A new token source is one sourceKind and one entry in sourceKinds: its
// checks run, its token goes out as INJECT says, the hand-off endpoint and
// the shared cache know it, and messages list it.
func TestAFictitiousSourceNeedsOneTableEntry(t *testing.T) {
	fictitious := sourceKind{
		name: "fictitious",
		check: func(c *Config, p *problems) {
			if c.MerchantID == "" {
				p.add("MERCHANT_ID", "required with %sTOKEN_SOURCE=fictitious", envPrefix)
			}
		},
		build: func(c Config, b *builder) (tokens.Source, error) {
			return tokens.SourceFunc(func(context.Context) (*tokens.Token, error) {
				return &tokens.Token{Value: "fict-" + c.MerchantID, Expiry: time.Now().Add(time.Hour)}, nil
			}), nil
		},
		identity: func(c Config) ([]string, error) { return []string{c.MerchantID}, nil },
	}
	defer func(kinds []sourceKind) { sourceKinds = kinds }(sourceKinds)
	sourceKinds = append(slices.Clip(sourceKinds), fictitious)

	_, err := loadConfig(minimal("fictitious", nil))
	if err == nil || !strings.Contains(err.Error(), envPrefix+"MERCHANT_ID: required with "+envPrefix+"TOKEN_SOURCE=fictitious") {
		t.Errorf("loadConfig() without MERCHANT_ID: error = %v, want the kind's own check", err)
	}
	_, err = loadConfig(minimal("unheard-of", nil))
	if err == nil || !strings.Contains(err.Error(), "file, none or fictitious") {
		t.Errorf("loadConfig(unknown source): error = %v, want the kinds listed with fictitious", err)
	}
	f := writeSharedFiles(t)
	_, err = loadConfig(minimal("none", map[string]string{"SHARED_CACHE": "redis://127.0.0.1:1", "SHARED_CACHE_KEY_FILE": f.keyB64}))
	if err == nil || !strings.Contains(err.Error(), "json, oauth2, jwt-bearer, token-exchange or fictitious") {
		t.Errorf("loadConfig(none with SHARED_CACHE): error = %v, want the shareable kinds listed with fictitious", err)
	}

	auth := make(chan string, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { auth <- r.Header.Get("Authorization") }))
	defer upstream.Close()
	c, err := loadConfig(minimal("fictitious", map[string]string{"MERCHANT_ID": "m-1", "UPSTREAM_URL": upstream.URL, "HANDOFF_PATH": "/token"}))
	if err != nil {
		t.Fatalf("loadConfig() error = %v", err)
	}
	s := built(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.cache.Run(ctx)
	srv := httptest.NewServer(proxy.New(s.proxy))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-auth; got != "Bearer fict-m-1" {
		t.Errorf("upstream got Authorization %q, want %q", got, "Bearer fict-m-1")
	}
	if id, err := c.sharedIdentity(fictitious); err != nil || !slices.Contains(id, "m-1") {
		t.Errorf("sharedIdentity() = %q, %v; want the kind's identity", id, err)
	}
}
