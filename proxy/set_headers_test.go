package proxy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// SetHeaders replace the app's values of the same names, whatever their
// case, with every injector; the injector's own header is not theirs to set.
func TestSetHeaders(t *testing.T) {
	set := http.Header{"x-merchantid": {"stock"}, "X-Routing-Id": {"r-1", "r-2"}}
	for _, tc := range []struct {
		name     string
		inj      func(t *testing.T) (proxy.Injector, proxy.TokenSource)
		wantAuth string // the Authorization upstream; "" for the app's
	}{
		{"none", func(*testing.T) (proxy.Injector, proxy.TokenSource) { return proxy.None(), nil }, ""},
		{"bearer", func(t *testing.T) (proxy.Injector, proxy.TokenSource) {
			return proxy.Bearer(), startCache(t, &tokenSource{}, tokens.CacheOptions{})
		}, "Bearer tok-1"},
		{"header", func(t *testing.T) (proxy.Injector, proxy.TokenSource) {
			return proxy.Header("X-Api-Token", ""), startCache(t, &tokenSource{}, tokens.CacheOptions{})
		}, ""},
		{"json-body", func(t *testing.T) (proxy.Injector, proxy.TokenSource) {
			return proxy.JSONBody("payload.clientAuthToken", ""), startCache(t, &tokenSource{}, tokens.CacheOptions{})
		}, ""},
		{"basic", func(t *testing.T) (proxy.Injector, proxy.TokenSource) {
			return proxy.Basic(constantAuth(t, "key", "")), nil
		}, basicOf("key", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			inj, ts := tc.inj(t)
			srv := startProxy(t, proxy.Config{
				Upstream:      up.base(t, ""),
				Injector:      inj,
				Tokens:        ts,
				SetHeaders:    set,
				MaxReplayBody: 1 << 20,
			})
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/orders", bytes.NewReader([]byte(`{"payload":{}}`)))
			req.Header["x-merchantid"] = []string{"app-merchant"} // as sent, not canonicalized
			req.Header["X-MERCHANTID"] = []string{"other"}
			req.Header["x-routing-id"] = []string{"app-route"}
			req.Header["Authorization"] = []string{"Bearer app"}
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d %s, want 200", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			h := got[0].Header
			if v := h["X-Merchantid"]; !slices.Equal(v, []string{"stock"}) {
				t.Errorf("upstream X-Merchantid = %q, want [stock]", v)
			}
			if v := h["X-Routing-Id"]; !slices.Equal(v, []string{"r-1", "r-2"}) {
				t.Errorf("upstream X-Routing-Id = %q, want [r-1 r-2]", v)
			}
			want := tc.wantAuth
			if want == "" {
				want = "Bearer app"
			}
			if v := h["Authorization"]; !slices.Equal(v, []string{want}) {
				t.Errorf("upstream Authorization = %q, want [%q]", v, want)
			}
		})
	}
}

// A replay, after the upstream rejected the first token, carries the
// SetHeaders too, and the injector's header set last wins over theirs.
func TestSetHeadersOnReplay(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if got.Header.Get("Authorization") == "Bearer tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"status": "ok"})
	})
	srv := startProxy(t, proxy.Config{
		Upstream:   up.base(t, ""),
		Tokens:     startCache(t, &tokenSource{}, tokens.CacheOptions{}),
		SetHeaders: http.Header{"X-Merchantid": {"stock"}, "Authorization": {"Basic not-this"}},
	})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/orders/o-1", nil)
	req.Header.Set("X-Merchantid", "app")
	if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d %s, want 200 after a replay", resp.StatusCode, body)
	}
	got := up.requests()
	if len(got) != 2 {
		t.Fatalf("upstream got %d requests, want the rejected one and its replay", len(got))
	}
	for i, r := range got {
		if v := r.Header["X-Merchantid"]; !slices.Equal(v, []string{"stock"}) {
			t.Errorf("request %d: X-Merchantid = %q, want [stock]", i+1, v)
		}
		if want := []string{"Bearer tok-" + string(rune('1'+i))}; !slices.Equal(r.Header["Authorization"], want) {
			t.Errorf("request %d: Authorization = %q, want %q", i+1, r.Header["Authorization"], want)
		}
	}
}

// Config.SetHeaders is read once, by New: changing the map afterwards
// changes nothing, and requests never share a slice the app could grow.
func TestSetHeadersCopied(t *testing.T) {
	up := newUpstream(t, nil)
	set := http.Header{"X-Merchantid": {"stock"}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), SetHeaders: set})
	set["X-Merchantid"][0] = "changed"
	set.Set("X-Other", "added")
	get(t, srv, "/v1/a")
	h := up.requests()[0].Header
	if v := h["X-Merchantid"]; !slices.Equal(v, []string{"stock"}) || h.Get("X-Other") != "" {
		t.Errorf("upstream X-Merchantid = %q, X-Other = %q; want [stock] and none", v, h.Get("X-Other"))
	}
}
