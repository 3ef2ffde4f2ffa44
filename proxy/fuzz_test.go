package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/tokens"
)

// fuzzTokens is a TokenSource that issues "fuzz-n" and replaces its token
// whenever the current one is invalidated.
type fuzzTokens struct {
	mu  sync.Mutex
	n   int
	cur *tokens.Token
}

func (s *fuzzTokens) Token(context.Context) (*tokens.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		s.n++
		s.cur = &tokens.Token{Value: fmt.Sprintf("fuzz-%d", s.n), Expiry: time.Now().Add(time.Hour)}
	}
	return s.cur, nil
}

func (s *fuzzTokens) Invalidate(tok *tokens.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.cur {
		s.cur = nil
	}
	return true
}

func (s *fuzzTokens) Accepted(*tokens.Token) {}
func (s *fuzzTokens) Replayed(tok *tokens.Token, ok bool) {
	if !ok {
		s.Invalidate(tok)
	}
}

// violations collects what the upstream side saw that it must never see.
type violations struct {
	mu   sync.Mutex
	list []string
}

func (v *violations) addf(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, fmt.Sprintf(format, args...))
}

func (v *violations) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.list
	v.list = nil
	return l
}

// checkOutbound checks a request about to reach the upstream, as the
// transport will put it on the wire.
func checkOutbound(v *violations, where string, r *http.Request, upstreamHost string) {
	var auth []string
	for k, vals := range r.Header {
		if strings.EqualFold(k, "Authorization") {
			auth = append(auth, vals...)
		}
	}
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer fuzz-") {
		v.addf("%s: Authorization = %q, want one injected token", where, auth)
	}
	if r.Method == http.MethodConnect {
		v.addf("%s: method CONNECT reached the upstream", where)
	}
	if m := strings.ToUpper(r.Method); m == "TRACE" || m == "TRACK" {
		v.addf("%s: method %s reached the upstream", where, r.Method)
	}
	if r.URL != nil && r.URL.Host != "" && r.URL.Host != upstreamHost {
		v.addf("%s: URL host %q, want %q", where, r.URL.Host, upstreamHost)
	}
	target := r.URL.RequestURI() // what the transport writes
	if where == "upstream" {
		target = r.RequestURI // what the upstream's server read
	}
	p, _, _ := strings.Cut(target, "?")
	if p != "/base" && !strings.HasPrefix(p, "/base/") {
		v.addf("%s: request-target %q is outside /base", where, target)
	}
	if decoded := r.URL.Path; hasDotSegment(decoded) || !strings.HasPrefix(path.Clean(decoded), "/base") {
		v.addf("%s: path %q resolves outside /base", where, decoded)
	}
}

// wireCheck is the proxy's Transport: it sees each outbound request after
// the token is put on it.
type wireCheck struct {
	next http.RoundTripper
	v    *violations
	host string
}

func (c *wireCheck) RoundTrip(r *http.Request) (*http.Response, error) {
	checkOutbound(c.v, "outbound", r, c.host)
	return c.next.RoundTrip(r)
}

// FuzzHandler sends arbitrary requests through the handler to a real
// upstream: nothing panics, and the upstream never sees a second
// Authorization value, a CONNECT, a TRACE or TRACK, or a path outside the
// base path.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/dir?q=1", "Authorization: Bearer app\nAuthorization: Bearer two", []byte(nil))
	f.Add("POST", "/pay", "Connection: Authorization\nAuthorization: Basic eDp5", []byte(`{"a":1}`))
	f.Add("GET", "/a/../../admin", "", []byte(nil))
	f.Add("GET", "/%2e%2e/admin", "", []byte(nil))
	f.Add("GET", "/a%2F..%2F..%2Fadmin", "", []byte(nil))
	f.Add("GET", "http://evil.example/x", "Host: evil.example", []byte(nil))
	f.Add("GET", "http://upstream.test/x?reject=1", "", []byte(nil))
	f.Add("GET", "http:../../admin", "", []byte(nil))
	f.Add("GET", "http:evil.example/x", "", []byte(nil))
	f.Add("CONNECT", "evil.example:443", "", []byte(nil))
	f.Add("TRACE", "/x", "Max-Forwards: 0", []byte(nil))
	f.Add("track", "/x", "", []byte(nil))
	f.Add("PUT", "/x?reject=1", "Transfer-Encoding: chunked", []byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add("PUT", "/x?reject=1", "Transfer-Encoding: chunked", []byte("zz\r\nhello\r\n0\r\n\r\n"))
	f.Add("POST", "/x?reject=1", "Expect: 100-continue", bytes.Repeat([]byte("b"), 2<<10))
	f.Add("OPTIONS", "*", "", []byte(nil))
	f.Add("GET", "//evil.example/x", "X-Forwarded-Host: evil.example\nForwarded: host=evil", []byte(nil))

	var v violations
	var upstreamHost string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checkOutbound(&v, "upstream", r, upstreamHost)
		io.Copy(io.Discard, r.Body)
		if strings.Contains(r.URL.RawQuery, "reject") {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	f.Cleanup(up.Close)
	upstreamHost = up.Listener.Addr().String()
	tr := NewTransport(nil)
	f.Cleanup(tr.CloseIdleConnections)
	base, err := url.Parse(up.URL + "/base")
	if err != nil {
		f.Fatal(err)
	}
	h := New(Config{
		Upstream:      base,
		Tokens:        &fuzzTokens{},
		Transport:     &wireCheck{next: tr, v: &v, host: upstreamHost},
		MaxReplayBody: 1 << 10,
	})

	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: sidecar.local\r\n", method, strings.ReplaceAll(target, "upstream.test", upstreamHost))
		framed := false
		for line := range strings.SplitSeq(headers, "\n") {
			if line == "" {
				continue
			}
			k, _, _ := strings.Cut(line, ":")
			if k = strings.TrimSpace(k); strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Transfer-Encoding") {
				framed = true
			}
			b.WriteString(line + "\r\n")
		}
		if !framed {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		b.WriteString("\r\n")
		b.Write(body)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			return // the server would not have accepted it either
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		req.RemoteAddr = "127.0.0.1:50000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		for _, msg := range v.take() {
			t.Errorf("%s %q: %s", method, target, msg)
		}
	})
}

// hasDotSegmentRef is the definition: some segment separated by "/" or "\\"
// is "." or "..", once its ";" parameters are cut off.
func hasDotSegmentRef(p string) bool {
	for _, seg := range strings.Split(strings.ReplaceAll(p, "\\", "/"), "/") {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func FuzzHasDotSegment(f *testing.F) {
	for _, p := range []string{"", "/", ".", "..", "/..", "/a/../b", "/a/./b", "/a/..", "/.well-known", "/a..b", "/...", "//..//", "/a/b/", "..%2f", "/%2e%2e"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := hasDotSegment(p)
		if want := hasDotSegmentRef(p); got != want {
			t.Errorf("hasDotSegment(%q) = %v, want %v", p, got, want)
		}
		// Whatever the upstream's path cleaning, a path without dot
		// segments stays under the base path.
		if !got && !strings.HasPrefix(path.Join("/base", p), "/base") {
			t.Errorf("hasDotSegment(%q) = false, but /base + it cleans to %q", p, path.Join("/base", p))
		}
	})
}

func TestHasDotSegment(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"", false},
		{"/", false},
		{"/a/b", false},
		{"/.well-known/x", false},
		{"/a..b/c.d", false},
		{"/...", false},
		{"/.", true},
		{"/..", true},
		{"/a/../b", true},
		{"/a/./b", true},
		{"/a/..", true},
		{"../a", true},
		{"/a//../b", true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := hasDotSegment(tc.path); got != tc.want {
				t.Errorf("hasDotSegment(%q) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}
