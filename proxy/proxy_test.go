package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// received is one request as the fake upstream saw it.
type received struct {
	Method     string
	Host       string
	RequestURI string
	Header     http.Header
	Body       []byte // the first keepBody bytes
	Len        int64  // the body's full length
	Sum        [sha256.Size]byte
}

// keepBody is how much of each body the fake upstream keeps for comparison.
const keepBody = 8 << 20

// upstream is a fake of the real API. It reads every request in full,
// records it, and answers with respond (200 "ok" if nil).
type upstream struct {
	*httptest.Server
	respond func(w http.ResponseWriter, r *http.Request, got received)

	mu  sync.Mutex
	got []received
}

func newUpstream(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, got received)) *upstream {
	t.Helper()
	u := &upstream{respond: respond}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	keep := &cappedBuffer{max: keepBody}
	n, err := io.Copy(io.MultiWriter(h, keep), r.Body)
	got := received{
		Method:     r.Method,
		Host:       r.Host,
		RequestURI: r.RequestURI,
		Header:     r.Header.Clone(),
		Body:       keep.b,
		Len:        n,
	}
	h.Sum(got.Sum[:0])
	u.mu.Lock()
	u.got = append(u.got, got)
	u.mu.Unlock()
	if err != nil {
		http.Error(w, "upstream: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if u.respond == nil {
		io.WriteString(w, "ok")
		return
	}
	u.respond(w, r, got)
}

// requests returns what the upstream received so far.
func (u *upstream) requests() []received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.got)
}

// base is the upstream's URL with path p appended, as a proxy Upstream.
func (u *upstream) base(t *testing.T, p string) *url.URL {
	t.Helper()
	b, err := url.Parse(u.URL + p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	b   []byte
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// tokenSource is a fake provider: fetch n issues "tok-n", valid for an hour,
// or fails with err when err is set. It counts its fetches.
type tokenSource struct {
	mu     sync.Mutex
	issued []*tokens.Token
	fails  int   // fetches that failed
	err    error // if set, fetches fail
	hang   bool  // if set, fetches wait until their context is done
	// failFrom, if positive, makes fetch number failFrom and later fail.
	failFrom int
}

func (s *tokenSource) fetch(ctx context.Context) (*tokens.Token, error) {
	if s.hang {
		<-ctx.Done()
		s.mu.Lock()
		s.fails++
		s.mu.Unlock()
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.issued) + s.fails + 1
	if s.err != nil || (s.failFrom > 0 && n >= s.failFrom) {
		s.fails++
		return nil, fmt.Errorf("provider down (fetch %d)", n)
	}
	tok := &tokens.Token{Value: fmt.Sprintf("tok-%d", n), Expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	s.issued = append(s.issued, tok)
	return tok, nil
}

// fetches is how many fetches were made, successful or not.
func (s *tokenSource) fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.issued) + s.fails
}

// last is the latest token issued.
func (s *tokenSource) last() *tokens.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.issued) == 0 {
		return nil
	}
	return s.issued[len(s.issued)-1]
}

// startCache runs a real *tokens.Cache over src until the test ends, and
// waits for its first token unless src always fails or hangs.
func startCache(t *testing.T, src *tokenSource, o tokens.CacheOptions) *tokens.Cache {
	t.Helper()
	c := tokens.NewCache(tokens.SourceFunc(src.fetch), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if src.err == nil && !src.hang {
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		if _, err := c.Token(wctx); err != nil {
			t.Fatalf("Token() error = %v, want the first token", err)
		}
	}
	return c
}

// newMetrics returns metrics on a fresh registry.
func newMetrics() (*prometheus.Registry, *metrics.Metrics) {
	reg := prometheus.NewRegistry()
	return reg, metrics.New(reg)
}

// startProxy serves proxy.New(c) until the test ends. Unless c.Transport is
// set, it gets its own NewTransport, whose idle connections are closed at the
// end.
func startProxy(t *testing.T, c proxy.Config) *httptest.Server {
	t.Helper()
	if c.Transport == nil {
		tr := proxy.NewTransport(nil)
		t.Cleanup(tr.CloseIdleConnections)
		c.Transport = tr
	}
	srv := httptest.NewServer(proxy.New(c))
	t.Cleanup(srv.Close)
	return srv
}

// do sends req through client and returns the response with its body read.
func do(t *testing.T, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

// get sends a GET for path through the proxy.
func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, srv.Client(), req)
}

// raw writes a request verbatim on a new connection to srv and reads the
// response, so that tests control every byte of the request line and headers.
func raw(t *testing.T, srv *httptest.Server, request string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", request, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return resp, body
}

// sidecarError is the JSON body of an error made by the sidecar itself.
type sidecarError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// checkSidecarError checks that a response is a sidecar-made JSON error with
// the given status and code.
func checkSidecarError(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %q)", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want %q", got, "application/json")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var e sidecarError
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body %q is not {\"error\",\"message\"} JSON: %v", body, err)
	}
	if e.Error != code {
		t.Errorf("error = %q, want %q", e.Error, code)
	}
	if e.Message == "" {
		t.Errorf("message is empty, want an explanation (body %q)", body)
	}
}

func TestForwardsToUpstreamBasePath(t *testing.T) {
	tests := []struct {
		name     string
		base     string // appended to the upstream's URL
		path     string // requested from the proxy
		wantURI  string // request-target the upstream receives
		wantBody string
	}{
		{name: "path and query", base: "/base", path: "/dir?q=1", wantURI: "/base/dir?q=1"},
		{name: "base with trailing slash", base: "/base/", path: "/dir?q=1", wantURI: "/base/dir?q=1"},
		{name: "nested path", base: "/api/v2", path: "/a/b/c?x=1&y=2", wantURI: "/api/v2/a/b/c?x=1&y=2"},
		{name: "root", base: "/base", path: "/", wantURI: "/base/"},
		{name: "no base path", base: "", path: "/dir?q=1", wantURI: "/dir?q=1"},
		{name: "escaped slash kept", base: "/base", path: "/a%2Fb?x=%20y", wantURI: "/base/a%2Fb?x=%20y"},
		{name: "dots inside a segment", base: "/base", path: "/.well-known/a..b/...", wantURI: "/base/.well-known/a..b/..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, tc.base)})
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "sidecar.local"
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET %s = %d %q, want 200 %q", tc.path, resp.StatusCode, body, "ok")
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			if got[0].RequestURI != tc.wantURI {
				t.Errorf("upstream request-target = %q, want %q", got[0].RequestURI, tc.wantURI)
			}
			if want := up.Listener.Addr().String(); got[0].Host != want {
				t.Errorf("upstream Host = %q, want %q", got[0].Host, want)
			}
		})
	}
}

func TestForwardsMethodBodyAndResponse(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "%s %s", got.Method, got.Body)
	})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base")})
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/thing", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, srv.Client(), req)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status = %d, want %d", resp.StatusCode, http.StatusCreated)
	}
	if want := `PUT {"a":1}`; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	if got := resp.Header.Get("X-Upstream"); got != "yes" {
		t.Errorf("X-Upstream = %q, want %q", got, "yes")
	}
}

func TestDropsClientForwardingHeaders(t *testing.T) {
	tests := []struct {
		header string
		value  string
	}{
		{"X-Forwarded-For", "10.9.9.9"},
		{"X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Proto", "https"},
		{"Forwarded", "for=10.9.9.9;host=evil.example"},
		// httputil.ReverseProxy strips only the four above; the sidecar
		// promises every X-Forwarded-*.
		{"X-Forwarded-Port", "8443"},
		{"X-Forwarded-Prefix", "/admin"},
	}
	for _, tc := range tests {
		t.Run(tc.header, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base")})
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(tc.header, tc.value)
			req.Header.Set("X-Request-Id", "kept")
			if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d %q, want 200", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			for k, v := range got[0].Header {
				if strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" {
					t.Errorf("upstream got %s: %q, want no forwarding header", k, v)
				}
			}
			if v := got[0].Header.Get("X-Request-Id"); v != "kept" {
				t.Errorf("upstream X-Request-Id = %q, want %q (other headers pass)", v, "kept")
			}
		})
	}
}

func TestInjectsToken(t *testing.T) {
	tests := []struct {
		name    string
		headers string // raw header lines sent by the app, each ending in \r\n
	}{
		{name: "no Authorization", headers: ""},
		{name: "client Authorization replaced", headers: "Authorization: Bearer app-token\r\n"},
		{name: "lower-case header name", headers: "authorization: Basic YXBwOnB3\r\n"},
		{name: "two client Authorization headers", headers: "Authorization: Bearer one\r\nAuthorization: Bearer two\r\n"},
		{name: "Connection: Authorization", headers: "Connection: Authorization\r\nAuthorization: Bearer app-token\r\n"},
		{name: "Connection: Authorization without one", headers: "Connection: keep-alive, Authorization\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache})
			resp, body := raw(t, srv, "GET /x HTTP/1.1\r\nHost: sidecar.local\r\n"+tc.headers+"\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %q)", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			want := []string{"Bearer tok-1"}
			if auth := got[0].Header.Values("Authorization"); !slices.Equal(auth, want) {
				t.Errorf("upstream Authorization = %q, want %q", auth, want)
			}
		})
	}
}

func TestInjectsTokenOnEveryRequest(t *testing.T) {
	up := newUpstream(t, nil)
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache})
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodHead, http.MethodOptions, "PURGE"} {
		req, err := http.NewRequest(method, srv.URL+"/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer app-token")
		if resp, _ := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
			t.Errorf("%s status = %d, want 200", method, resp.StatusCode)
		}
	}
	got := up.requests()
	if len(got) != 6 {
		t.Fatalf("upstream received %d requests, want 6", len(got))
	}
	for _, r := range got {
		if auth, want := r.Header.Values("Authorization"), []string{"Bearer tok-1"}; !slices.Equal(auth, want) {
			t.Errorf("%s: upstream Authorization = %q, want %q", r.Method, auth, want)
		}
	}
	if n := src.fetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1 (the cached token is reused)", n)
	}
}

func TestWithoutTokensClientAuthorizationPassesUntouched(t *testing.T) {
	tests := []struct {
		name    string
		headers string
		want    []string
	}{
		{name: "none", headers: "", want: nil},
		{name: "one", headers: "Authorization: Basic YXBwOnB3\r\n", want: []string{"Basic YXBwOnB3"}},
		{name: "two", headers: "Authorization: Bearer one\r\nAuthorization: Bearer two\r\n", want: []string{"Bearer one", "Bearer two"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base")})
			resp, body := raw(t, srv, "GET /x HTTP/1.1\r\nHost: sidecar.local\r\n"+tc.headers+"\r\n")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200 (body %q)", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			if auth := got[0].Header.Values("Authorization"); !slices.Equal(auth, tc.want) {
				t.Errorf("upstream Authorization = %q, want %q", auth, tc.want)
			}
		})
	}
}

// countingTransport counts the requests the proxy sends upstream, so that a
// test can tell "not forwarded" from "forwarded and refused by the upstream".
type countingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	uris []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.uris = append(c.uris, r.URL.RequestURI())
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingTransport) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.uris)
}

func TestNeverForwardsElsewhere(t *testing.T) {
	evil := newUpstream(t, nil) // a host the app must not reach through the sidecar
	up := newUpstream(t, nil)
	evilAddr := evil.Listener.Addr().String()
	upAddr := up.Listener.Addr().String()
	tests := []struct {
		name    string
		request string
		status  int
		code    string
	}{
		{name: "absolute-form to another host", status: 400, code: "bad_request",
			request: "GET http://" + evilAddr + "/x HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n"},
		{name: "absolute-form POST to another host", status: 400, code: "bad_request",
			request: "POST http://" + evilAddr + "/x HTTP/1.1\r\nHost: " + evilAddr + "\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "absolute-form to another host, upstream in Host", status: 400, code: "bad_request",
			request: "GET http://" + evilAddr + "/x HTTP/1.1\r\nHost: " + upAddr + "\r\n\r\n"},
		{name: "absolute-form https to another host", status: 400, code: "bad_request",
			request: "GET https://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n"},
		{name: "absolute-form with userinfo", status: 400, code: "bad_request",
			request: "GET http://" + upAddr + "@" + evilAddr + "/x HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n"},
		{name: "CONNECT to another host", status: 405, code: "method_not_allowed",
			request: "CONNECT " + evilAddr + " HTTP/1.1\r\nHost: " + evilAddr + "\r\n\r\n"},
		{name: "CONNECT to the upstream", status: 405, code: "method_not_allowed",
			request: "CONNECT " + upAddr + " HTTP/1.1\r\nHost: " + upAddr + "\r\n\r\n"},
		// TRACE (and IIS's TRACK) would have an upstream or a middlebox echo
		// the injected Authorization back to the app. Go's server passes
		// the method as sent, so every case is refused.
		{name: "TRACE", status: 405, code: "method_not_allowed",
			request: "TRACE /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "TRACE with Max-Forwards", status: 405, code: "method_not_allowed",
			request: "TRACE /x HTTP/1.1\r\nHost: sidecar.local\r\nMax-Forwards: 0\r\n\r\n"},
		{name: "TRACE with a body", status: 405, code: "method_not_allowed",
			request: "TRACE /x HTTP/1.1\r\nHost: sidecar.local\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "trace in lower case", status: 405, code: "method_not_allowed",
			request: "trace /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "TRACK", status: 405, code: "method_not_allowed",
			request: "TRACK /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "Track in mixed case", status: 405, code: "method_not_allowed",
			request: "Track /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "TRACE absolute-form to the upstream", status: 405, code: "method_not_allowed",
			request: "TRACE http://" + upAddr + "/x HTTP/1.1\r\nHost: " + upAddr + "\r\n\r\n"},
		{name: "dot-dot segment", status: 400, code: "bad_request",
			request: "GET /a/../../admin HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "trailing dot-dot", status: 400, code: "bad_request",
			request: "GET /a/.. HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "dot segment", status: 400, code: "bad_request",
			request: "GET /a/./b HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "encoded dot-dot", status: 400, code: "bad_request",
			request: "GET /%2e%2e/admin HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "encoded slash and dot-dot", status: 400, code: "bad_request",
			request: "GET /a%2F..%2F..%2Fadmin HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "dot-dot in absolute-form to the upstream", status: 400, code: "bad_request",
			request: "GET http://" + upAddr + "/../admin HTTP/1.1\r\nHost: " + upAddr + "\r\n\r\n"},
		// An opaque URI has no path for hasDotSegment to check; its opaque
		// part would be sent upstream verbatim as the request-target.
		{name: "opaque absolute-form with dot-dot", status: 400, code: "bad_request",
			request: "GET http:../../admin HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "opaque absolute-form naming a host", status: 400, code: "bad_request",
			request: "GET http:evil.example/x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &tokenSource{}
			cache := startCache(t, src, tokens.CacheOptions{})
			tr := proxy.NewTransport(nil)
			t.Cleanup(tr.CloseIdleConnections)
			ct := &countingTransport{next: tr}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Transport: ct})
			before := len(up.requests())
			resp, body := raw(t, srv, tc.request)
			if sent := ct.sent(); len(sent) != 0 {
				t.Errorf("proxy sent request-target %q upstream, want nothing sent", sent)
			}
			if n := len(up.requests()) - before; n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
			checkSidecarError(t, resp, body, tc.status, tc.code)
		})
	}
	if got := evil.requests(); len(got) != 0 {
		t.Errorf("the other host received %d requests (first %+v), want 0", len(got), got[0])
	}
}

func TestForwardsAbsoluteFormForTheUpstream(t *testing.T) {
	up := newUpstream(t, nil)
	upAddr := up.Listener.Addr().String()
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base")})
	resp, body := raw(t, srv, "GET http://"+upAddr+"/x?q=1 HTTP/1.1\r\nHost: "+upAddr+"\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %q)", resp.StatusCode, body)
	}
	got := up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(got))
	}
	if want := "/base/x?q=1"; got[0].RequestURI != want {
		t.Errorf("upstream request-target = %q, want %q", got[0].RequestURI, want)
	}
}
