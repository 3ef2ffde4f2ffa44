package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// wireTap keeps every byte an upstream's server reads.
type wireTap struct {
	net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *wireTap) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapped{c, l}, nil
}

func (l *wireTap) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

func (l *wireTap) from(off int) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes()[off:])
}

type tapped struct {
	net.Conn
	l *wireTap
}

func (c *tapped) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// errBlocked is a client that has written everything and waits.
var errBlocked = errors.New("blocked: the client has written everything")

// waiting is the end of a client's bytes: a server's read there would block.
type waiting struct{}

func (waiting) Read([]byte) (int, error) { panic(errBlocked) }

// complete reports whether a server answers raw without waiting for more
// bytes, as it would until ReadHeaderTimeout, or forever for a body: whether
// reading it as a request, body included, ends (well or not) before reading
// past it. (A server peeks past each header line for a folded continuation,
// and past a chunked body for trailers.)
func complete(raw []byte) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if r != errBlocked {
				panic(r)
			}
			ok = false
		}
	}()
	req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(raw), waiting{})))
	if err == nil {
		io.Copy(io.Discard, req.Body)
	}
	return true
}

// checkUpstreamWire checks the bytes an upstream read for one client
// request: nothing, or exactly one request, framed by one header, with
// nothing after its body.
func checkUpstreamWire(wire []byte) error {
	if len(wire) == 0 {
		return nil
	}
	head, _, _ := bytes.Cut(wire, []byte("\r\n\r\n"))
	framing := 0
	for line := range strings.SplitSeq(string(head), "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Transfer-Encoding") {
			framing++
		}
	}
	if framing > 1 {
		return fmt.Errorf("request head with %d framing headers:\n%s", framing, head)
	}
	br := bufio.NewReader(bytes.NewReader(wire))
	req, err := http.ReadRequest(br)
	if err != nil {
		return fmt.Errorf("upstream read %q, not a request: %v", wire, err)
	}
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return fmt.Errorf("upstream read %q: body: %v", wire, err)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		return fmt.Errorf("upstream read %q after the request", rest)
	}
	return nil
}

// FuzzWire writes arbitrary bytes to a real http.Server (run.go's limits,
// keep-alives off: one request per connection) serving the handler, in
// front of a real upstream. Nothing panics; whatever the client wrote, the
// upstream gets at most one request, framed unambiguously, carrying exactly
// the injected token, under the base path, from the upstream's own Host; and
// the client gets one response. Connection reuse after ambiguous framing is
// TestAttackRequestSmuggling's.
func FuzzWire(f *testing.F) {
	for _, s := range []string{
		"GET /pay HTTP/1.1\r\nHost: s\r\nConnection: Authorization\r\nAuthorization: Bearer app\r\n\r\n",
		"GET /pay HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer a\r\nauthorization: Bearer b\r\n\r\n",
		"POST /pay HTTP/1.1\r\nHost: s\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: s\r\n\r\n",
		"POST /pay HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST /pay HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST /pay HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"POST /pay HTTP/1.1\r\nHost: s\r\nX-A: 1\r\n folded\r\nContent-Length: 5\r\n\r\nhello",
		"POST /pay HTTP/1.1\nHost: s\nContent-Length: 5\n\nhello",
		"POST /pay HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
		"TRACE /x HTTP/1.1\r\nHost: s\r\nMax-Forwards: 0\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil.example\r\n\r\n",
		"GET /..;/..;/admin HTTP/1.1\r\nHost: s\r\n\r\n",
		"GET /%2e%2e%2fadmin HTTP/1.1\r\nHost: s\r\n\r\n",
		"GET /a%2Fb/%252e%252e HTTP/1.1\r\nHost: s\r\n\r\n",
		"GET //x//y HTTP/1.1\r\nHost: s\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: s\r\n\r\n",
		"POST /x?reject=1 HTTP/1.1\r\nHost: s\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET /x HTTP/1.1\r\nHost: s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	} {
		f.Add([]byte(s))
	}

	var v violations
	var upstreamHost string
	var mu sync.Mutex
	count := 0
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		count++
		mu.Unlock()
		checkOutbound(&v, "upstream", r, upstreamHost)
		if r.Host != upstreamHost {
			v.addf("upstream: Host %q, want %q", r.Host, upstreamHost)
		}
		for k := range r.Header {
			if k == "Forwarded" || strings.HasPrefix(k, "X-Forwarded-") {
				v.addf("upstream: the app's %s reached the upstream", k)
			}
		}
		io.Copy(io.Discard, r.Body)
	}))
	tap := &wireTap{Listener: up.Listener}
	up.Listener = tap
	up.Start()
	f.Cleanup(up.Close)
	upstreamHost = up.Listener.Addr().String()
	tr := NewTransport(nil)
	f.Cleanup(tr.CloseIdleConnections)
	base, err := url.Parse(up.URL + "/base")
	if err != nil {
		f.Fatal(err)
	}
	srv := &http.Server{
		Handler:           New(Config{Upstream: base, Tokens: &fuzzTokens{}, Transport: &wireCheck{next: tr, v: &v, host: upstreamHost}, MaxReplayBody: 1 << 10}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	srv.SetKeepAlivesEnabled(false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	f.Cleanup(func() {
		srv.Close()
		<-done
	})

	f.Fuzz(func(t *testing.T, raw []byte) {
		if !complete(raw) {
			return // the server would wait for the rest
		}
		mu.Lock()
		before := count
		mu.Unlock()
		off := tap.len()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		conn.Write(raw)
		answer, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%q: no answer in 3s", raw)
		}
		mu.Lock()
		n := count - before
		mu.Unlock()
		if n > 1 {
			t.Errorf("%q: upstream received %d requests, want at most 1", raw, n)
		}
		if err := checkUpstreamWire(tap.from(off)); err != nil {
			t.Errorf("%q: %v", raw, err)
		}
		for _, msg := range v.take() {
			t.Errorf("%q: %s", raw, msg)
		}
		br := bufio.NewReader(bytes.NewReader(answer))
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%q: answer %q is not a response: %v", raw, answer, err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode >= 200 {
				break // 1xx (100 Continue) come before the final one
			}
		}
		if rest, _ := io.ReadAll(br); len(rest) != 0 {
			t.Errorf("%q: %q after the response", raw, rest)
		}
	})
}
