package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// rejectTok1 is an upstream that has revoked tok-1 and accepts any other token.
func rejectTok1(w http.ResponseWriter, r *http.Request, got received) {
	if r.Header.Get("Authorization") == "Bearer tok-1" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "token revoked")
		return
	}
	io.WriteString(w, "accepted")
}

// alwaysReject is an upstream that rejects every token.
func alwaysReject(w http.ResponseWriter, r *http.Request, got received) {
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, "token revoked")
}

// bodyRequest makes a request with body; chunked sends it with unknown length.
func bodyRequest(t *testing.T, method, url string, body []byte, chunked bool) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = nil
		req.ContentLength = -1
	}
	return req
}

func authOf(got []received) []string {
	var auth []string
	for _, r := range got {
		auth = append(auth, r.Header.Get("Authorization"))
	}
	return auth
}

func TestReplaysRejectedRequestWithNewToken(t *testing.T) {
	const limit = 4 << 10
	tests := []struct {
		name    string
		method  string
		body    []byte
		chunked bool
	}{
		{name: "GET without body", method: http.MethodGet},
		{name: "POST with length", method: http.MethodPost, body: []byte(`{"amount":100}`)},
		{name: "POST chunked", method: http.MethodPost, body: []byte(`{"amount":100}`), chunked: true},
		{name: "POST empty chunked", method: http.MethodPost, body: []byte{}, chunked: true},
		{name: "PUT of exactly the limit", method: http.MethodPut, body: bytes.Repeat([]byte("a"), limit)},
		{name: "PUT chunked of exactly the limit", method: http.MethodPut, body: bytes.Repeat([]byte("b"), limit), chunked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m := newMetrics()
			up := newUpstream(t, rejectTok1)
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{Observer: m})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, MaxReplayBody: limit, Metrics: m})

			resp, body := do(t, srv.Client(), bodyRequest(t, tc.method, srv.URL+"/pay", tc.body, tc.chunked))
			if resp.StatusCode != http.StatusOK || string(body) != "accepted" {
				t.Errorf("response = %d %q, want 200 %q", resp.StatusCode, body, "accepted")
			}
			got := up.requests()
			if want := []string{"Bearer tok-1", "Bearer tok-2"}; !slices.Equal(authOf(got), want) {
				t.Fatalf("upstream Authorization per request = %q, want %q", authOf(got), want)
			}
			for i, r := range got {
				if r.Method != tc.method || r.RequestURI != "/base/pay" {
					t.Errorf("request %d = %s %s, want %s /base/pay", i+1, r.Method, r.RequestURI, tc.method)
				}
				if r.Len != int64(len(tc.body)) || !bytes.Equal(r.Body, tc.body) {
					t.Errorf("request %d body = %d bytes %.40q, want %d bytes %.40q", i+1, r.Len, r.Body, len(tc.body), tc.body)
				}
				if n := len(r.Header.Values("Authorization")); n != 1 {
					t.Errorf("request %d has %d Authorization values, want 1", i+1, n)
				}
			}
			if n := src.fetches(); n != 2 {
				t.Errorf("token fetches = %d, want 2", n)
			}
			if v := toFloat64(t, m.Replays.WithLabelValues("success")); v != 1 {
				t.Errorf("authsidecar_replays_total{result=success} = %v, want 1", v)
			}
			if v := toFloat64(t, m.ForcedRefreshes); v != 1 {
				t.Errorf("authsidecar_token_forced_refreshes_total = %v, want 1", v)
			}
		})
	}
}

func TestRefreshOnStatuses(t *testing.T) {
	tests := []struct {
		name       string
		refreshOn  []int
		status     int // what the upstream answers to tok-1
		wantStatus int
		wantAuth   []string
	}{
		{name: "default refreshes on 401", refreshOn: nil, status: 401, wantStatus: 200, wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}},
		{name: "default passes 403 on", refreshOn: nil, status: 403, wantStatus: 403, wantAuth: []string{"Bearer tok-1"}},
		{name: "403 only refreshes on 403", refreshOn: []int{403}, status: 403, wantStatus: 200, wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}},
		{name: "403 only passes 401 on", refreshOn: []int{403}, status: 401, wantStatus: 401, wantAuth: []string{"Bearer tok-1"}},
		{name: "401 and 403 refresh on 403", refreshOn: []int{401, 403}, status: 403, wantStatus: 200, wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}},
		{name: "out-of-range codes ignored", refreshOn: []int{-1, 401, 1000}, status: 401, wantStatus: 200, wantAuth: []string{"Bearer tok-1", "Bearer tok-2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				if r.Header.Get("Authorization") == "Bearer tok-1" {
					w.WriteHeader(tc.status)
					io.WriteString(w, "rejected")
					return
				}
				io.WriteString(w, "accepted")
			})
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, RefreshOn: tc.refreshOn})
			resp, _ := get(t, srv, "/x")
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := authOf(up.requests()); !slices.Equal(got, tc.wantAuth) {
				t.Errorf("upstream Authorization per request = %q, want %q", got, tc.wantAuth)
			}
			if n, want := src.fetches(), len(tc.wantAuth); n != want {
				t.Errorf("token fetches = %d, want %d", n, want)
			}
		})
	}
}

func TestBodyOverLimitIsStreamedAndRejectionPassedOn(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		size    int
		chunked bool
	}{
		{name: "known length over the limit", limit: 1 << 10, size: 256 << 10},
		{name: "chunked over the limit", limit: 1 << 10, size: 256 << 10, chunked: true},
		{name: "one byte over the limit", limit: 1 << 10, size: 1<<10 + 1},
		{name: "chunked one byte over the limit", limit: 1 << 10, size: 1<<10 + 1, chunked: true},
		{name: "zero limit with a body", limit: 0, size: 1},
		{name: "zero limit with a chunked body", limit: 0, size: 1, chunked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m := newMetrics()
			up := newUpstream(t, alwaysReject)
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, MaxReplayBody: tc.limit, Metrics: m})
			body := make([]byte, tc.size)
			for i := range body {
				body[i] = byte(i*7 + i/251)
			}
			resp, got := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/upload", body, tc.chunked))
			if resp.StatusCode != http.StatusUnauthorized || string(got) != "token revoked" {
				t.Errorf("response = %d %q, want the upstream's 401 %q", resp.StatusCode, got, "token revoked")
			}
			reqs := up.requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream received %d requests, want 1 (no replay)", len(reqs))
			}
			if reqs[0].Len != int64(len(body)) || !bytes.Equal(reqs[0].Body, body) {
				t.Errorf("upstream body = %d bytes, want the %d bytes sent, intact", reqs[0].Len, len(body))
			}
			if v := toFloat64(t, m.Replays.WithLabelValues("too_large")); v != 1 {
				t.Errorf("authsidecar_replays_total{result=too_large} = %v, want 1", v)
			}
			if v := toFloat64(t, m.Replays.WithLabelValues("success")); v != 0 {
				t.Errorf("authsidecar_replays_total{result=success} = %v, want 0", v)
			}
		})
	}
}

// A rejected upload too large to replay cannot be saved, but the upstream
// has still said the token is dead: the next request must not carry it.
func TestRejectedLargeUploadStillRefreshesToken(t *testing.T) {
	up := newUpstream(t, rejectTok1)
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, MaxReplayBody: 1 << 10})
	body := bytes.Repeat([]byte("x"), 64<<10)
	wantStatus := []int{http.StatusUnauthorized, http.StatusOK, http.StatusOK}
	for i, want := range wantStatus {
		resp, got := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/upload", body, false))
		if resp.StatusCode != want {
			t.Errorf("upload %d: status = %d %q, want %d", i+1, resp.StatusCode, got, want)
		}
	}
	if want := []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-2"}; !slices.Equal(authOf(up.requests()), want) {
		t.Errorf("upstream Authorization per upload = %q, want %q", authOf(up.requests()), want)
	}
}

func TestConcurrentRejectionsRefreshOnce(t *testing.T) {
	const n = 32
	var (
		mu      sync.Mutex
		arrived int
		allIn   = make(chan struct{})
	)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			io.WriteString(w, "accepted")
			return
		}
		// Hold every request with tok-1 until all n have arrived, so that
		// all of them meet the revoked token.
		mu.Lock()
		arrived++
		if arrived == n {
			close(allIn)
		}
		mu.Unlock()
		select {
		case <-allIn:
		case <-time.After(10 * time.Second):
			http.Error(w, "not all requests arrived", http.StatusInternalServerError)
			return
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	_, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})

	for i, s := range getConcurrently(t, srv, "/x", n) {
		if s != http.StatusOK {
			t.Errorf("request %d: status = %d, want 200", i, s)
		}
	}
	if got := src.fetches(); got != 2 {
		t.Errorf("token fetches = %d, want 2 (the first token and one refresh)", got)
	}
	if v := toFloat64(t, m.ForcedRefreshes); v != 1 {
		t.Errorf("authsidecar_token_forced_refreshes_total = %v, want 1", v)
	}
	count := map[string]int{}
	for _, a := range authOf(up.requests()) {
		count[a]++
	}
	if count["Bearer tok-1"] != n || count["Bearer tok-2"] != n || len(count) != 2 {
		t.Errorf("upstream Authorization counts = %v, want %d of tok-1 and %d of tok-2", count, n, n)
	}
	if v := toFloat64(t, m.Replays.WithLabelValues("success")); v != n {
		t.Errorf("authsidecar_replays_total{result=success} = %v, want %d", v, n)
	}
}

// A rejection of a token that has already been replaced must not drop the
// new token: the request is replayed with the new one, and nothing is fetched.
func TestStaleRejectionKeepsNewToken(t *testing.T) {
	var (
		mu      sync.Mutex
		arrived int
		bothIn  = make(chan struct{})
		aDone   = make(chan struct{})
	)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			io.WriteString(w, "accepted")
			return
		}
		mu.Lock()
		arrived++
		if arrived == 2 {
			close(bothIn)
		}
		mu.Unlock()
		wait := bothIn
		if r.URL.Path == "/base/b" {
			wait = aDone // b's rejection comes after a was replayed
		}
		select {
		case <-wait:
		case <-time.After(10 * time.Second):
			http.Error(w, "timed out", http.StatusInternalServerError)
			return
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	_, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})

	bStatus := make(chan int, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/b")
		if err != nil {
			t.Errorf("GET /b: %v", err)
			bStatus <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		bStatus <- resp.StatusCode
	}()
	resp, _ := get(t, srv, "/a")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /a: status = %d, want 200", resp.StatusCode)
	}
	close(aDone)
	if s := <-bStatus; s != http.StatusOK {
		t.Errorf("GET /b: status = %d, want 200", s)
	}
	if got := src.fetches(); got != 2 {
		t.Errorf("token fetches = %d, want 2", got)
	}
	if v := toFloat64(t, m.ForcedRefreshes); v != 1 {
		t.Errorf("authsidecar_token_forced_refreshes_total = %v, want 1", v)
	}
	var bAuth []string
	for _, r := range up.requests() {
		if r.RequestURI == "/base/b" {
			bAuth = append(bAuth, r.Header.Get("Authorization"))
		}
	}
	if want := []string{"Bearer tok-1", "Bearer tok-2"}; !slices.Equal(bAuth, want) {
		t.Errorf("upstream Authorization for /b = %q, want %q", bAuth, want)
	}
}

func TestAlwaysRejectingUpstreamCausesNoTokenStorm(t *testing.T) {
	const n = 50
	_, m := newMetrics()
	up := newUpstream(t, alwaysReject)
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{ForcedRefreshInterval: time.Minute, Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})
	for i := range n {
		resp, body := get(t, srv, "/x")
		if resp.StatusCode != http.StatusUnauthorized || string(body) != "token revoked" {
			t.Fatalf("request %d: response = %d %q, want the upstream's 401 %q", i+1, resp.StatusCode, body, "token revoked")
		}
	}
	if got := src.fetches(); got != 2 {
		t.Errorf("token fetches = %d after %d rejected requests, want 2 (the first token and one forced refresh)", got, n)
	}
	if got := len(up.requests()); got != n+1 {
		t.Errorf("upstream received %d requests, want %d (one replay only)", got, n+1)
	}
	for result, want := range map[string]float64{"rejected": 1, "rate_limited": n - 1, "success": 0} {
		if v := toFloat64(t, m.Replays.WithLabelValues(result)); v != want {
			t.Errorf("authsidecar_replays_total{result=%s} = %v, want %v", result, v, want)
		}
	}
}

func TestReplayWithoutNewTokenPassesRejectionOn(t *testing.T) {
	_, m := newMetrics()
	up := newUpstream(t, rejectTok1)
	src := &tokenSource{failFrom: 2} // the provider goes down after the first token
	cache := startCache(t, src, tokens.CacheOptions{MaxWait: 100 * time.Millisecond})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})
	start := time.Now()
	resp, body := get(t, srv, "/x")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("request took %v, want it bounded by MaxWait", d)
	}
	if resp.StatusCode != http.StatusUnauthorized || string(body) != "token revoked" {
		t.Errorf("response = %d %q, want the upstream's 401 %q", resp.StatusCode, body, "token revoked")
	}
	if got := authOf(up.requests()); !slices.Equal(got, []string{"Bearer tok-1"}) {
		t.Errorf("upstream Authorization per request = %q, want only tok-1", got)
	}
	if v := toFloat64(t, m.Replays.WithLabelValues("error")); v != 1 {
		t.Errorf("authsidecar_replays_total{result=error} = %v, want 1", v)
	}
}

// The rejected first response is drained and closed before the replay, so
// its connection goes back to the pool instead of being held or dropped.
func TestReplayReusesUpstreamConnection(t *testing.T) {
	const n = 20
	var (
		mu    sync.Mutex
		conns int
		seen  = map[string]bool{}
	)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.URL.Query().Get("id")
		mu.Lock()
		first := !seen[id]
		seen[id] = true
		mu.Unlock()
		if first { // every request's first attempt is rejected
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, strings.Repeat("token revoked. ", 100))
			return
		}
		io.WriteString(w, "accepted")
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	base, err := url.Parse(up.URL + "/base")
	if err != nil {
		t.Fatal(err)
	}
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{ForcedRefreshInterval: time.Nanosecond})
	srv := startProxy(t, proxy.Config{Upstream: base, Tokens: cache})
	for i := range n {
		resp, body := get(t, srv, fmt.Sprintf("/x?id=%d", i))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status = %d %.40q, want 200 after a replay", i, resp.StatusCode, body)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Two connections are enough; a connection may be dialled while another
	// is on its way back to the pool, hence the margin. Holding the rejected
	// responses would take one connection per request.
	if conns > 5 {
		t.Errorf("upstream connections = %d for %d replayed requests, want at most 5 (connections reused)", conns, n)
	}
}

// A replay whose new token is rejected too (revoked together with the old
// one) drops that token at once: the next request goes out with a third
// token, first time, instead of finding out again.
func TestReplayRejectedDropsTheNewToken(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		switch r.Header.Get("Authorization") {
		case "Bearer tok-1", "Bearer tok-2":
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, "token revoked")
		default:
			io.WriteString(w, "accepted")
		}
	})
	src := &tokenSource{}
	srv := startProxy(t, proxy.Config{
		Upstream:      up.base(t, ""),
		Tokens:        startCache(t, src, tokens.CacheOptions{ForcedRefreshInterval: time.Nanosecond}),
		MaxReplayBody: 1 << 20,
	})
	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodGet, srv.URL+"/x", nil, false))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("first request = %d %s, want the replay's 401", resp.StatusCode, body)
	}
	before := len(up.requests())
	resp, body = do(t, srv.Client(), bodyRequest(t, http.MethodGet, srv.URL+"/x", nil, false))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second request = %d %s, want 200", resp.StatusCode, body)
	}
	if got := authOf(up.requests()[before:]); !slices.Equal(got, []string{"Bearer tok-3"}) {
		t.Errorf("second request reached the upstream with %v, want once with tok-3", got)
	}
}
