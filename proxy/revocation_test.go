package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// A provider that allows one active token per client revokes the sidecar's
// token each time another client logs in. The proxy tells the cache which
// tokens the upstream accepted, so that each revocation of a token that had
// worked is refreshed at once, however close together they come: every
// request of two waves of 32, each meeting a just-revoked token, succeeds.
func TestRevocationsCloseTogetherAreEachRefreshed(t *testing.T) {
	const n = 32
	var (
		mu      sync.Mutex
		revoked = map[string]bool{}
	)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		mu.Lock()
		bad := revoked[r.Header.Get("Authorization")]
		mu.Unlock()
		if bad {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"detail":"Token has expired"}`)
			return
		}
		io.WriteString(w, "accepted")
	})
	_, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})

	for wave, tok := range []string{"tok-1", "tok-2"} {
		if resp, body := get(t, srv, "/warm"); resp.StatusCode != http.StatusOK {
			t.Fatalf("wave %d: request before the revocation = %d %q, want 200", wave+1, resp.StatusCode, body)
		}
		mu.Lock()
		revoked["Bearer "+tok] = true
		mu.Unlock()
		for i, s := range getConcurrently(t, srv, "/x", n) {
			if s != http.StatusOK {
				t.Errorf("wave %d (%s revoked), request %d: status = %d, want 200", wave+1, tok, i, s)
			}
		}
	}
	if got := src.fetches(); got != 3 {
		t.Errorf("token fetches = %d, want 3 (the first token and one refresh per revocation)", got)
	}
}

// An upstream that answers 401 on one route whatever the token (a
// permission it calls a rejection) while accepting the token elsewhere must
// not make every request to that route cost a token fetch: the replay with
// a new token is rejected too, so refreshing does not help, and further
// forced refreshes wait.
func TestRouteRejectingEveryTokenCausesNoStorm(t *testing.T) {
	const n = 20
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if r.URL.Path == "/base/forbidden" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"detail":"Invalid token"}`)
			return
		}
		io.WriteString(w, "accepted")
	})
	_, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})
	for i := range n {
		if resp, body := get(t, srv, "/ok"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d to /ok = %d %q, want 200", i, resp.StatusCode, body)
		}
		if resp, _ := get(t, srv, "/forbidden"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("request %d to /forbidden = %d, want the upstream's 401", i, resp.StatusCode)
		}
	}
	if got := src.fetches(); got > 3 {
		t.Errorf("token fetches = %d for %d rejected requests to one route, want at most 3", got, n)
	}
}

// Rejections of requests that cannot be replayed (bodies over
// MAX_REPLAY_BODY) give no sign whether refreshing helped; interleaved with
// answers that accept the token, they must not cost a fetch each.
func TestUnreplayableRejectionsCauseNoStorm(t *testing.T) {
	const n = 20
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if r.URL.Path == "/base/upload" {
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "accepted")
	})
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, MaxReplayBody: 16})
	big := strings.Repeat("x", 1024)
	for i := range n {
		if resp, body := get(t, srv, "/ok"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d to /ok = %d %q, want 200", i, resp.StatusCode, body)
		}
		resp, err := srv.Client().Post(srv.URL+"/upload", "text/plain", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("upload %d = %d, want the upstream's 401", i, resp.StatusCode)
		}
	}
	if got := src.fetches(); got > 5 {
		t.Errorf("token fetches = %d for %d rejected uploads, want at most 5 (three at once, then spaced)", got, n)
	}
}

// getConcurrently sends n GETs of path at once and returns their statuses (0
// for a request that failed, which is reported).
func getConcurrently(t *testing.T, srv *httptest.Server, path string, n int) []int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	return statuses
}
