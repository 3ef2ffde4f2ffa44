package proxy_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

func TestHeaderInjectorSetsOneValue(t *testing.T) {
	tok := &tokens.Token{Value: "tok-abc", Expiry: time.Now().Add(time.Hour)}
	tests := []struct {
		name   string
		inj    proxy.Injector
		app    http.Header // what the app sent
		want   http.Header // the headers after Inject
		absent []string    // headers that must not be set
	}{
		{
			name: "bearer replaces the app's Authorization",
			inj:  proxy.Bearer(),
			app:  http.Header{"Authorization": {"Basic YXBwOnB3", "Bearer app-own"}, "Accept": {"*/*"}},
			want: http.Header{"Authorization": {"Bearer tok-abc"}, "Accept": {"*/*"}},
		},
		{
			name: "bearer on a request without Authorization",
			inj:  proxy.Bearer(),
			app:  http.Header{},
			want: http.Header{"Authorization": {"Bearer tok-abc"}},
		},
		{
			name: "custom header without prefix replaces every app value",
			inj:  proxy.Header("X-Api-Token", ""),
			app:  http.Header{"X-Api-Token": {"app-1", "app-2"}, "Authorization": {"Basic YXBwOnB3"}},
			want: http.Header{"X-Api-Token": {"tok-abc"}, "Authorization": {"Basic YXBwOnB3"}},
		},
		{
			name: "lower-case name is canonicalized, so the app's value is replaced, not duplicated",
			inj:  proxy.Header("x-api-token", "Token "),
			app:  http.Header{"X-Api-Token": {"app-1"}},
			want: http.Header{"X-Api-Token": {"Token tok-abc"}},
		},
		{
			name:   "custom header leaves Authorization alone",
			inj:    proxy.Header("X-Api-Token", ""),
			app:    http.Header{},
			want:   http.Header{"X-Api-Token": {"tok-abc"}},
			absent: []string{"Authorization"},
		},
		{
			name: "header named Authorization with a custom prefix",
			inj:  proxy.Header("authorization", "Token token="),
			app:  http.Header{"Authorization": {"Bearer app-own"}},
			want: http.Header{"Authorization": {"Token token=tok-abc"}},
		},
		{
			name:   "none adds nothing and keeps the app's headers",
			inj:    proxy.None(),
			app:    http.Header{"Authorization": {"Bearer app-own"}},
			want:   http.Header{"Authorization": {"Bearer app-own"}},
			absent: []string{"X-Api-Token"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.inj.Body(); got != proxy.BodyUntouched {
				t.Errorf("Body() = %v, want BodyUntouched (%v)", got, proxy.BodyUntouched)
			}
			h := tc.app.Clone()
			body, err := tc.inj.Inject(h, tok, []byte(`{"a":1}`))
			if err != nil || body != nil {
				t.Fatalf("Inject() = %q, %v; want nil, nil", body, err)
			}
			for k, want := range tc.want {
				if got := h[k]; !slices.Equal(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if len(h) != len(tc.want) {
				t.Errorf("headers = %v, want exactly %v", h, tc.want)
			}
			for _, k := range tc.absent {
				if v, ok := h[k]; ok {
					t.Errorf("header %s = %q, want it absent", k, v)
				}
			}
		})
	}
}

func TestHeaderInjectorWithoutTokenAddsNothing(t *testing.T) {
	for _, inj := range []proxy.Injector{proxy.Bearer(), proxy.Header("X-Api-Token", ""), proxy.None()} {
		h := http.Header{"X-Api-Token": {"app"}}
		if _, err := inj.Inject(h, nil, nil); err != nil {
			t.Errorf("%T.Inject(nil token) error = %v, want none", inj, err)
		}
		if want := (http.Header{"X-Api-Token": {"app"}}); fmt.Sprint(h) != fmt.Sprint(want) {
			t.Errorf("%T.Inject(nil token) headers = %v, want %v", inj, h, want)
		}
	}
}

// TestHeaderInjectorFollowsTokenChanges checks that the value built once per
// token is rebuilt when the token changes, from any goroutine.
func TestHeaderInjectorFollowsTokenChanges(t *testing.T) {
	inj := proxy.Header("X-Api-Token", "T ")
	toks := []*tokens.Token{
		{Value: "tok-1", Expiry: time.Now().Add(time.Hour)},
		{Value: "tok-2", Expiry: time.Now().Add(time.Hour)},
		{Value: "tok-1", Expiry: time.Now().Add(2 * time.Hour)}, // same value, new token
	}
	for i, tok := range []*tokens.Token{toks[0], toks[1], toks[1], toks[0], toks[2]} {
		h := http.Header{}
		inj.Inject(h, tok, nil)
		if got, want := h["X-Api-Token"], []string{"T " + tok.Value}; !slices.Equal(got, want) {
			t.Errorf("injection %d: X-Api-Token = %q, want %q", i+1, got, want)
		}
	}

	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				tok := toks[(g+i)%len(toks)]
				h := http.Header{}
				inj.Inject(h, tok, nil)
				if got := h.Get("X-Api-Token"); got != "T "+tok.Value {
					t.Errorf("concurrent injection: X-Api-Token = %q, want %q", got, "T "+tok.Value)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestHeaderModeThroughProxy sends requests with the app's own values of the
// injected header through the proxy, including a replay after a 401: the
// upstream sees exactly one value, the current token's.
func TestHeaderModeThroughProxy(t *testing.T) {
	tests := []struct {
		name      string
		inj       proxy.Injector
		header    string // the injected header
		prefix    string
		appValues []string // the app's own values of header
		keepAuth  bool     // the app's Authorization must reach the upstream
	}{
		{name: "bearer", inj: proxy.Bearer(), header: "Authorization", prefix: "Bearer ", appValues: []string{"Bearer app-own"}},
		{name: "nil injector means bearer", inj: nil, header: "Authorization", prefix: "Bearer ", appValues: []string{"Basic YXBwOnB3"}},
		{name: "X-Api-Token without prefix", inj: proxy.Header("X-Api-Token", ""), header: "X-Api-Token", appValues: []string{"app-1", "app-2"}, keepAuth: true},
		{name: "lower-case X-Api-Token with prefix", inj: proxy.Header("x-api-token", "Token "), header: "X-Api-Token", prefix: "Token ", appValues: []string{"app-1"}, keepAuth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				if slices.Contains(r.Header.Values(tc.header), tc.prefix+"tok-1") {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, "accepted")
			})
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: cache, Injector: tc.inj, MaxReplayBody: 1 << 10})

			req := bodyRequest(t, http.MethodPost, srv.URL+"/pay", []byte(`{"amount":1}`), false)
			for _, v := range tc.appValues {
				req.Header.Add(tc.header, v)
			}
			if tc.keepAuth {
				req.Header.Set("Authorization", "Basic YXBwOnB3")
			}
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || string(body) != "accepted" {
				t.Fatalf("response = %d %q, want 200 %q", resp.StatusCode, body, "accepted")
			}
			got := up.requests()
			if len(got) != 2 {
				t.Fatalf("upstream got %d requests, want 2 (the 401 and its replay)", len(got))
			}
			for i, r := range got {
				want := []string{fmt.Sprintf("%stok-%d", tc.prefix, i+1)}
				if v := r.Header.Values(tc.header); !slices.Equal(v, want) {
					t.Errorf("request %d: %s = %q, want %q", i+1, tc.header, v, want)
				}
				if tc.keepAuth {
					if v := r.Header.Values("Authorization"); !slices.Equal(v, []string{"Basic YXBwOnB3"}) {
						t.Errorf("request %d: Authorization = %q, want the app's %q", i+1, v, "Basic YXBwOnB3")
					}
				}
				if string(r.Body) != `{"amount":1}` {
					t.Errorf("request %d: body = %q, want the app's %q", i+1, r.Body, `{"amount":1}`)
				}
			}
		})
	}
}

func TestNoneInjectorPassesRequestsAsSent(t *testing.T) {
	up := newUpstream(t, nil)
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: cache, Injector: proxy.None(), MaxReplayBody: 1 << 10})

	req := bodyRequest(t, http.MethodPost, srv.URL+"/pay", []byte(`not json`), false)
	req.Header.Set("Authorization", "Bearer app-own")
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
	}
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(got))
	}
	if v := got[0].Header.Values("Authorization"); !slices.Equal(v, []string{"Bearer app-own"}) {
		t.Errorf("Authorization = %q, want the app's %q", v, "Bearer app-own")
	}
	if string(got[0].Body) != "not json" {
		t.Errorf("body = %q, want %q", got[0].Body, "not json")
	}
}
