package proxy_test

// Hostile input on the proxy listener: raw bytes written to a real
// http.Server with the limits cmd/authsidecar/run.go sets, in front of a fake
// upstream that records every byte it reads. Raw TCP, because Go's client
// would normalize most of these attacks away before they left the test.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// listenerLimits are the proxy listener's http.Server limits.
type listenerLimits struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// runLimits are the limits cmd/authsidecar/run.go sets on the proxy
// listener; TestListenerLimitsMatchRun keeps the two in step.
var runLimits = listenerLimits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}

// TestListenerLimitsMatchRun reads run.go: the limits these tests use must be
// the ones the binary serves with.
func TestListenerLimitsMatchRun(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "../cmd/authsidecar/run.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ReadHeaderTimeout": "10 * time.Second",
		"IdleTimeout":       "120 * time.Second",
		"MaxHeaderBytes":    "64 << 10",
	}
	// The proxy listeners' server is the &http.Server{…} that func
	// proxyServer returns (every route's listener is made by it).
	got := map[string]string{}
	ast.Inspect(file, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "proxyServer" || fn.Body == nil {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			ret, ok := n.(*ast.ReturnStmt)
			if !ok || len(ret.Results) != 1 {
				return true
			}
			if u, ok := ret.Results[0].(*ast.UnaryExpr); ok {
				if lit, ok := u.X.(*ast.CompositeLit); ok && types.ExprString(lit.Type) == "http.Server" {
					for _, elt := range lit.Elts {
						if kv, ok := elt.(*ast.KeyValueExpr); ok {
							got[types.ExprString(kv.Key)] = types.ExprString(kv.Value)
						}
					}
				}
			}
			return false
		})
		return false
	})
	if len(got) == 0 {
		t.Fatalf("run.go: no func proxyServer returning &http.Server{…} found")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("run.go proxyServer's %s = %q, want %q (update runLimits in attack_test.go with it)", k, got[k], v)
		}
	}
}

// wireRequest is one request as the fake upstream's server parsed it.
type wireRequest struct {
	Method, Host, RequestURI, RawPath string
	Header                            http.Header
	ContentLength                     int64
	TransferEncoding                  []string
	Body                              []byte
}

// wireUpstream is a fake of the real API that keeps each request as its
// server parsed it, and every byte read from the proxy's connections.
type wireUpstream struct {
	*httptest.Server

	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []wireRequest
}

func newWireUpstream(t *testing.T) *wireUpstream {
	t.Helper()
	u := &wireUpstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Listener = tapListener{u.Listener, u}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

func (u *wireUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, wireRequest{
		Method: r.Method, Host: r.Host, RequestURI: r.RequestURI, RawPath: r.URL.RawPath,
		Header: r.Header.Clone(), ContentLength: r.ContentLength,
		TransferEncoding: slices.Clone(r.TransferEncoding), Body: body,
	})
	u.mu.Unlock()
	if err != nil {
		http.Error(w, "upstream: read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "upstream ok")
}

// requests returns what the upstream's server parsed so far.
func (u *wireUpstream) requests() []wireRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

// wire returns every byte read from the proxy so far.
func (u *wireUpstream) wire() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.raw.Bytes())
}

// tapListener copies what its connections read into a wireUpstream.
type tapListener struct {
	net.Listener
	u *wireUpstream
}

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tapConn{c, l.u}, nil
}

type tapConn struct {
	net.Conn
	u *wireUpstream
}

func (c tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.u.mu.Lock()
	c.u.raw.Write(p[:n])
	c.u.mu.Unlock()
	return n, err
}

// outboundLog is the proxy's Transport: it records the host and
// request-target of every request the proxy sends anywhere.
type outboundLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	sent []string
}

func (o *outboundLog) RoundTrip(r *http.Request) (*http.Response, error) {
	o.mu.Lock()
	o.sent = append(o.sent, r.URL.Host+" "+r.URL.RequestURI())
	o.mu.Unlock()
	return o.next.RoundTrip(r)
}

func (o *outboundLog) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sent)
}

// rig is the proxy listener under attack, its upstream, and another host
// that the proxy must never reach.
type rig struct {
	addr  string        // the proxy listener
	up    *wireUpstream // the configured upstream
	evil  *wireUpstream // another host
	out   *outboundLog
	token string // the Authorization the upstream must see, and only it
}

// newRig serves proxy.New, with an upstream at basePath and a real token
// cache, on 127.0.0.1:0 with the given listener limits.
func newRig(t *testing.T, basePath string, lim listenerLimits) *rig {
	t.Helper()
	r := &rig{up: newWireUpstream(t), evil: newWireUpstream(t)}
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	r.token = "Bearer " + src.last().Value
	tr := proxy.NewTransport(nil)
	t.Cleanup(tr.CloseIdleConnections)
	r.out = &outboundLog{next: tr}
	base, err := url.Parse(r.up.URL + basePath)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           proxy.New(proxy.Config{Upstream: base, Tokens: cache, Transport: r.out, MaxReplayBody: 1 << 20}),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return r
}

// rawResponse is one response read off the wire.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// exchange is what a raw client saw on one connection.
type exchange struct {
	responses []rawResponse
	closed    bool // the server closed the connection after the last response
}

// quiet is how long a client waits for a response beyond the first before it
// concludes that the server keeps the connection open and has nothing more.
const quiet = 300 * time.Millisecond

// send writes request on a new connection to r's listener and reads every
// response until the server closes the connection or stays quiet.
func (r *rig) send(t *testing.T, request string) exchange {
	t.Helper()
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil && !isClosed(err) {
		t.Fatalf("write request: %v", err)
	}
	var ex exchange
	br := bufio.NewReader(conn)
	for {
		wait := quiet
		if len(ex.responses) == 0 {
			wait = 10 * time.Second
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout() && len(ex.responses) > 0:
			case isClosed(err):
				ex.closed = true
			default:
				t.Fatalf("read response %d to %q: %v", len(ex.responses)+1, request, err)
			}
			return ex
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("read response body: %v", err)
		}
		ex.responses = append(ex.responses, rawResponse{resp.StatusCode, resp.Header, body})
		if resp.Close {
			// The server said it closes: check that it does.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := br.ReadByte()
			ex.closed = isClosed(err)
			return ex
		}
	}
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// checkNothingSent checks that no request left the proxy, for any host.
func (r *rig) checkNothingSent(t *testing.T) {
	t.Helper()
	if sent := r.out.list(); len(sent) != 0 {
		t.Errorf("proxy sent %q, want nothing sent", sent)
	}
	if n := len(r.up.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want 0", n)
	}
	if n := len(r.evil.requests()); n != 0 {
		t.Errorf("the other host received %d requests, want 0", n)
	}
}

// checkOneRequest checks that the upstream received exactly one request,
// carrying exactly the sidecar's Authorization, and that it reached nobody
// else. It returns that request.
func (r *rig) checkOneRequest(t *testing.T) wireRequest {
	t.Helper()
	if n := len(r.evil.requests()); n != 0 {
		t.Errorf("the other host received %d requests, want 0", n)
	}
	for _, s := range r.out.list() {
		if host, _, _ := strings.Cut(s, " "); host != r.up.Listener.Addr().String() {
			t.Errorf("proxy sent %q, to a host other than the upstream %s", s, r.up.Listener.Addr())
		}
	}
	got := r.up.requests()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests (%s), want exactly 1", len(got), uris(got))
	}
	if auth := got[0].Header.Values("Authorization"); len(auth) != 1 || auth[0] != r.token {
		t.Errorf("upstream Authorization = %q, want exactly [%q]", auth, r.token)
	}
	if n := authorizationLines(r.up.wire()); n != 1 {
		t.Errorf("upstream's wire holds %d Authorization lines, want 1:\n%s", n, r.up.wire())
	}
	if host := r.up.Listener.Addr().String(); got[0].Host != host {
		t.Errorf("upstream Host = %q, want %q", got[0].Host, host)
	}
	return got[0]
}

// authorizationLines counts the header lines named Authorization, in any
// case, on a request's wire.
func authorizationLines(wire []byte) int {
	n := 0
	for line := range strings.SplitSeq(string(wire), "\n") {
		if len(line) > len("authorization:") && strings.EqualFold(line[:len("authorization:")], "authorization:") {
			n++
		}
	}
	return n
}

func uris(reqs []wireRequest) string {
	var s []string
	for _, r := range reqs {
		s = append(s, r.Method+" "+r.RequestURI)
	}
	return strings.Join(s, ", ")
}

// checkOneBodyOnWire checks that the bytes the upstream read are exactly one
// request, framed by one Content-Length (or by chunked alone), whose body is
// want, with nothing after it that a server could read as another request.
func checkOneBodyOnWire(t *testing.T, wire []byte, want string) {
	t.Helper()
	head, _, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("upstream's wire holds no complete request head: %q", wire)
	}
	var cl, te int
	for line := range strings.SplitSeq(string(head), "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		switch {
		case strings.EqualFold(name, "Content-Length"):
			cl++
		case strings.EqualFold(name, "Transfer-Encoding"):
			te++
		}
	}
	if cl+te > 1 {
		t.Errorf("upstream's request head has %d Content-Length and %d Transfer-Encoding lines, want one framing header:\n%s", cl, te, head)
	}
	br := bufio.NewReader(bytes.NewReader(wire))
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("upstream's wire is not a request: %v\n%q", err, wire)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("upstream's wire: read body: %v", err)
	}
	if string(body) != want {
		t.Errorf("upstream's wire body = %q, want %q", body, want)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("upstream's wire holds %q after the request: a second request could hide there", rest)
	}
}

func TestAttackAuthorizationHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers string // between the request line and the blank line
		gone    []string
	}{
		{name: "Connection: Authorization", headers: "Connection: Authorization\r\nAuthorization: Bearer app\r\n"},
		{name: "Connection: Authorization, without an app Authorization", headers: "Connection: Authorization\r\n"},
		{name: "Connection: X-Foo, Authorization", headers: "X-Foo: 1\r\nConnection: X-Foo, Authorization\r\nAuthorization: Bearer app\r\n", gone: []string{"X-Foo"}},
		{name: "two Connection headers naming Authorization", headers: "Connection: keep-alive\r\nConnection: authorization\r\nAuthorization: Bearer app\r\n"},
		{name: "two app Authorization headers", headers: "Authorization: Bearer app-1\r\nAuthorization: Bearer app-2\r\n"},
		{name: "the app's own bearer", headers: "Authorization: Bearer app\r\n"},
		{name: "Basic credentials from the app", headers: "Authorization: Basic YXBwOnNlY3JldA==\r\n"},
		{name: "lower-case authorization", headers: "authorization: Bearer app\r\n"},
		{name: "mixed case, twice", headers: "AUTHORIZATION: Bearer app-1\r\naUtHoRiZaTiOn: Bearer app-2\r\n"},
		{name: "obs-folded Authorization", headers: "Authorization: Bearer app\r\n  folded\r\n"},
		{name: "empty Authorization", headers: "Authorization:\r\n"},
		{name: "Proxy-Authorization is hop-by-hop", headers: "Proxy-Authorization: Basic YXBwOnNlY3JldA==\r\n", gone: []string{"Proxy-Authorization"}},
		{name: "X-Forwarded-* and Forwarded dropped", headers: "X-Forwarded-Host: evil.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: host=evil.example\r\n", gone: []string{"X-Forwarded-Host", "X-Forwarded-For", "Forwarded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "/api/v1", runLimits)
			ex := r.send(t, "GET /pay HTTP/1.1\r\nHost: sidecar.local\r\n"+tc.headers+"\r\n")
			if len(ex.responses) != 1 || ex.responses[0].Status != http.StatusOK {
				t.Fatalf("responses = %+v, want one 200", ex.responses)
			}
			got := r.checkOneRequest(t)
			for _, h := range tc.gone {
				if v, ok := got.Header[h]; ok {
					t.Errorf("upstream received %s: %q, want it dropped", h, v)
				}
			}
			if strings.Contains(string(r.up.wire()), "app") {
				t.Errorf("the app's credentials reached the upstream:\n%s", r.up.wire())
			}
		})
	}
}

// smuggled is a complete request hidden in the body of another.
const smuggled = "GET /smuggled HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"

// post is a POST head with headers, a Content-Length of body's length
// (unless headers already frame it), and body.
func post(headers, body string) string {
	return "POST /pay HTTP/1.1\r\nHost: sidecar.local\r\n" + strings.ReplaceAll(headers, "{len}", fmt.Sprint(len(body))) + "\r\n" + body
}

func TestAttackRequestSmuggling(t *testing.T) {
	tests := []struct {
		name    string
		request string
		// refused is the status of a request answered without anything sent
		// upstream; 0 means it is forwarded.
		refused int
		// body is the one body the upstream must get for a forwarded request.
		body string
		// closed says the server must close the connection after answering.
		closed bool
	}{
		{name: "control: Content-Length", request: post("Content-Length: {len}\r\n", "hello"), body: "hello"},
		{name: "control: chunked", request: post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), body: "hello"},
		// RFC 9112 6.1: a server MAY process such a request by
		// Transfer-Encoding alone; "regardless, the server MUST close the
		// connection after responding to such a request". Otherwise what
		// follows the chunked body is read as a second request.
		{name: "CL.TE: Transfer-Encoding and Content-Length", request: post("Content-Length: {len}\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"+smuggled), body: "", closed: true},
		{name: "TE.CL: Transfer-Encoding and a short Content-Length", request: post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)), body: smuggled, closed: true},
		{name: "Transfer-Encoding: chunked, identity", request: post("Transfer-Encoding: chunked, identity\r\nContent-Length: {len}\r\n", "0\r\n\r\n"+smuggled), refused: http.StatusNotImplemented, closed: true},
		{name: "Transfer-Encoding: identity, chunked", request: post("Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n"+smuggled), refused: http.StatusNotImplemented, closed: true},
		{name: "two Transfer-Encoding headers", request: post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {len}\r\n", "0\r\n\r\n"+smuggled), refused: http.StatusNotImplemented, closed: true},
		{name: "Transfer-Encoding: xchunked", request: post("Transfer-Encoding: xchunked\r\nContent-Length: {len}\r\n", "0\r\n\r\n"+smuggled), refused: http.StatusNotImplemented, closed: true},
		{name: "Transfer-Encoding with a space before the colon", request: post("Transfer-Encoding : chunked\r\nContent-Length: {len}\r\n", "0\r\n\r\n"+smuggled), refused: http.StatusBadRequest, closed: true},
		{name: "obs-folded Transfer-Encoding", request: post("Transfer-Encoding:\r\n chunked\r\nContent-Length: {len}\r\n", "0\r\n\r\n"+smuggled), body: "", closed: true},
		{name: "two different Content-Lengths", request: post("Content-Length: 5\r\nContent-Length: {len}\r\n", "hello"+smuggled), refused: http.StatusBadRequest, closed: true},
		{name: "two equal Content-Lengths", request: post("Content-Length: {len}\r\nContent-Length: {len}\r\n", "hello"), body: "hello"},
		{name: "Content-Length list", request: post("Content-Length: 5, {len}\r\n", "hello"+smuggled), refused: http.StatusBadRequest, closed: true},
		{name: "Content-Length with a sign", request: post("Content-Length: +5\r\n", "hello"), refused: http.StatusBadRequest, closed: true},
		{name: "negative Content-Length", request: post("Content-Length: -1\r\n", "hello"), refused: http.StatusBadRequest, closed: true},
		{name: "obs-folded Content-Length", request: post("Content-Length: 5\r\n {len}\r\n", "hello"+smuggled), refused: http.StatusBadRequest, closed: true},
		{name: "obs-folded other header", request: post("X-Note: one\r\n two\r\nContent-Length: {len}\r\n", "hello"), body: "hello"},
		{name: "obs-fold on the first header line", request: "POST /pay HTTP/1.1\r\n Host: sidecar.local\r\nContent-Length: 5\r\n\r\nhello", refused: http.StatusBadRequest, closed: true},
		{name: "bare LF line ends", request: "POST /pay HTTP/1.1\nHost: sidecar.local\nContent-Length: 5\n\nhello", body: "hello"},
		{name: "bare LF after a chunk size", request: post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"), refused: http.StatusBadRequest},
		{name: "bare CR in a header value", request: post("X-Note: a\rb\r\nContent-Length: {len}\r\n", "hello"), refused: http.StatusBadRequest, closed: true},
		{name: "NUL in a header value", request: post("X-Note: a\x00b\r\nContent-Length: {len}\r\n", "hello"), refused: http.StatusBadRequest, closed: true},
		{name: "chunk size overflow", request: post("Transfer-Encoding: chunked\r\n", "10000000000000005\r\nhello\r\n0\r\n\r\n"), refused: http.StatusBadRequest},
		{name: "chunk extension", request: post("Transfer-Encoding: chunked\r\n", "5;ext=\"x\"\r\nhello\r\n0\r\n\r\n"), body: "hello"},
		{name: "chunked trailer", request: post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"), body: "hello"},
		// HTTP/1.0 has no chunked coding: Go frames by Content-Length. RFC
		// 9112 6.1: the framing is faulty, and the server MUST close the
		// connection after the response, even with keep-alive asked for;
		// else the chunk's data is read as a second request.
		{name: "HTTP/1.0 keep-alive with Transfer-Encoding and a short Content-Length", request: strings.Replace(post("Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)), "HTTP/1.1", "HTTP/1.0", 1), body: fmt.Sprintf("%x\r\n", len(smuggled)), closed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "/api/v1", runLimits)
			ex := r.send(t, tc.request)
			if len(ex.responses) == 0 {
				t.Fatalf("no response (connection closed: %v)", ex.closed)
			}
			if tc.refused != 0 {
				if got := ex.responses[0].Status; got != tc.refused {
					t.Errorf("status = %d, want %d (body %q)", got, tc.refused, ex.responses[0].Body)
				}
				r.checkNothingSent(t)
			} else {
				if got := ex.responses[0].Status; got != http.StatusOK {
					t.Errorf("status = %d, want 200 (body %q)", got, ex.responses[0].Body)
				}
				got := r.checkOneRequest(t)
				if string(got.Body) != tc.body {
					t.Errorf("upstream body = %q, want %q", got.Body, tc.body)
				}
				checkOneBodyOnWire(t, r.up.wire(), tc.body)
			}
			if len(ex.responses) != 1 {
				t.Errorf("the client got %d responses to one request, want 1 (upstream saw: %s)", len(ex.responses), uris(r.up.requests()))
			}
			if tc.closed && !ex.closed {
				t.Errorf("the server kept the connection open after an ambiguously framed request, want it closed")
			}
			t.Logf("outcome: %d %s, upstream received [%s], connection closed: %v",
				ex.responses[0].Status, ex.responses[0].Header.Get("Content-Type"), uris(r.up.requests()), ex.closed)
		})
	}
}

// TestAttackPipelining is the control for the smuggling tests: two requests
// written at once are two requests, each forwarded once, in order.
func TestAttackPipelining(t *testing.T) {
	r := newRig(t, "/api/v1", runLimits)
	ex := r.send(t, post("Content-Length: {len}\r\n", "hello")+"GET /second HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
	if len(ex.responses) != 2 {
		t.Fatalf("the client got %d responses, want 2", len(ex.responses))
	}
	got := r.up.requests()
	if want := "POST /api/v1/pay, GET /api/v1/second"; uris(got) != want {
		t.Errorf("upstream received %s, want %s", uris(got), want)
	}
	if ex.closed {
		t.Errorf("the server closed a keep-alive connection")
	}
}

func TestAttackHeaderSize(t *testing.T) {
	// Go's server reads up to MaxHeaderBytes plus 4 KiB of slack for the
	// request line and the whole head before it answers 431.
	limit := runLimits.MaxHeaderBytes
	head := "GET /pay HTTP/1.1\r\nHost: sidecar.local\r\n"
	tests := []struct {
		name    string
		headers string
		want    int
	}{
		{name: "one header line just under MaxHeaderBytes", headers: "X-Big: " + strings.Repeat("a", limit-len(head)-len("X-Big: \r\n\r\n")) + "\r\n", want: http.StatusOK},
		{name: "a header block over MaxHeaderBytes and its slack", headers: "X-Big: " + strings.Repeat("a", limit+4096) + "\r\n", want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "many small headers over MaxHeaderBytes", headers: strings.Repeat("X-Small: "+strings.Repeat("b", 90)+"\r\n", (limit+8192)/100), want: http.StatusRequestHeaderFieldsTooLarge},
		{name: "an Authorization over MaxHeaderBytes", headers: "Authorization: Bearer " + strings.Repeat("c", limit+4096) + "\r\n", want: http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "/api/v1", runLimits)
			ex := r.send(t, head+tc.headers+"\r\n")
			if len(ex.responses) != 1 || ex.responses[0].Status != tc.want {
				t.Fatalf("responses = %d, first %+v; want one %d", len(ex.responses), firstStatus(ex), tc.want)
			}
			if tc.want != http.StatusOK {
				r.checkNothingSent(t)
				if !ex.closed {
					t.Errorf("the server kept the connection open after a 431")
				}
				return
			}
			got := r.checkOneRequest(t)
			if v := got.Header.Get("X-Big"); len(v) != len(strings.TrimSpace(tc.headers))-len("X-Big: ") {
				t.Errorf("upstream X-Big is %d bytes, want the app's %d", len(v), len(strings.TrimSpace(tc.headers))-len("X-Big: "))
			}
		})
	}
}

func firstStatus(ex exchange) int {
	if len(ex.responses) == 0 {
		return 0
	}
	return ex.responses[0].Status
}

// waitClosed reads from conn until the server closes it, and returns when
// that happened; it fails the test if the server keeps it open past limit.
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) time.Time {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err == nil {
			continue // a response to what was sent before
		}
		if !isClosed(err) {
			t.Fatalf("the connection is still open after %v: %v", limit, err)
		}
		return time.Now()
	}
}

func TestAttackSlowloris(t *testing.T) {
	const timeout = 500 * time.Millisecond
	lim := runLimits
	lim.ReadHeaderTimeout = timeout
	tests := []struct {
		name string
		// before is sent at once, then drip one byte per tick.
		before, drip string
	}{
		{name: "headers one byte at a time", drip: "GET /pay HTTP/1.1\r\nHost: sidecar.local\r\nX-Slow: " + strings.Repeat("z", 100)},
		{name: "a header line that never ends", before: "GET /pay HTTP/1.1\r\nHost: sidecar.local\r\n", drip: "X-Slow: " + strings.Repeat("z", 100)},
		{name: "nothing at all"},
		{name: "second request on a keep-alive connection", before: "GET /first HTTP/1.1\r\nHost: sidecar.local\r\n\r\n", drip: "GET /second HTTP/1.1\r\nHost: sidecar.local\r\nX-Slow: " + strings.Repeat("z", 100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "/api/v1", lim)
			conn, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			io.WriteString(conn, tc.before)
			dripDone := make(chan struct{})
			go func() {
				defer close(dripDone)
				tick := time.NewTicker(timeout / 5)
				defer tick.Stop()
				for i := 0; i < len(tc.drip); i++ {
					<-tick.C
					if _, err := conn.Write([]byte{tc.drip[i]}); err != nil {
						return // the server hung up
					}
				}
			}()
			end := waitClosed(t, conn, 10*timeout)
			conn.Close()
			<-dripDone
			if took := end.Sub(start); took < timeout-50*time.Millisecond {
				t.Errorf("closed after %v, before ReadHeaderTimeout %v", took, timeout)
			} else {
				t.Logf("closed after %v (ReadHeaderTimeout %v)", took.Round(time.Millisecond), timeout)
			}
			want := 0
			if tc.before != "" && strings.HasSuffix(tc.before, "\r\n\r\n") {
				want = 1 // the complete first request
			}
			if got := r.up.requests(); len(got) != want {
				t.Errorf("upstream received %s, want %d requests", uris(got), want)
			}
		})
	}
}

func TestAttackIdleConnectionClosed(t *testing.T) {
	const timeout = 500 * time.Millisecond
	lim := runLimits
	lim.IdleTimeout = timeout
	r := newRig(t, "/api/v1", lim)
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /pay HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("status = %d, close = %v; want 200 on a keep-alive connection", resp.StatusCode, resp.Close)
	}
	idleFrom := time.Now()
	end := waitClosed(t, conn, 10*timeout)
	if took := end.Sub(idleFrom); took < timeout-50*time.Millisecond {
		t.Errorf("idle connection closed after %v, before IdleTimeout %v", took, timeout)
	} else {
		t.Logf("idle connection closed after %v (IdleTimeout %v)", took.Round(time.Millisecond), timeout)
	}
}

func TestAttackForeignHosts(t *testing.T) {
	tests := []struct {
		name string
		// request is sent with {up} and {evil} replaced by the upstream's and
		// the other host's addresses.
		request string
		// refused is the status of a request answered without anything sent
		// anywhere, code its JSON error ("" for Go's plain-text 400); 0 means
		// forwarded to the upstream.
		refused int
		code    string
	}{
		{name: "absolute-form naming another host", request: "GET http://{evil}/x HTTP/1.1\r\nHost: {evil}\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form naming another host, upstream in Host", request: "GET http://{evil}/x HTTP/1.1\r\nHost: {up}\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form https to a named host", request: "GET https://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form upper-case scheme and host", request: "GET HTTP://EVIL.EXAMPLE/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form without a path", request: "GET http://{evil} HTTP/1.1\r\nHost: {evil}\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form with the upstream as userinfo", request: "GET http://{up}@{evil}/x HTTP/1.1\r\nHost: {evil}\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "absolute-form with the other host before a fragment", request: "GET http://{evil}#@{up}/x HTTP/1.1\r\nHost: {up}\r\n\r\n", refused: 400},
		{name: "absolute-form upstream host, another port", request: "GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n", refused: 400, code: "bad_request"},
		{name: "CONNECT another host", request: "CONNECT {evil} HTTP/1.1\r\nHost: {evil}\r\n\r\n", refused: 405, code: "method_not_allowed"},
		{name: "CONNECT evil.example:443", request: "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", refused: 405, code: "method_not_allowed"},
		{name: "CONNECT the upstream", request: "CONNECT {up} HTTP/1.1\r\nHost: {up}\r\n\r\n", refused: 405, code: "method_not_allowed"},
		// Go's server answers OPTIONS * itself, before any handler.
		{name: "OPTIONS *", request: "OPTIONS * HTTP/1.1\r\nHost: {evil}\r\n\r\n", refused: 200},
		{name: "two Host headers", request: "GET /x HTTP/1.1\r\nHost: {up}\r\nHost: {evil}\r\n\r\n", refused: 400},
		{name: "Host naming another host", request: "GET /x HTTP/1.1\r\nHost: {evil}\r\n\r\n"},
		{name: "Host naming another host, with X-Forwarded-Host", request: "GET /x HTTP/1.1\r\nHost: {evil}\r\nX-Forwarded-Host: {evil}\r\nForwarded: host={evil}\r\n\r\n"},
		{name: "absolute-form naming the upstream, Host another host", request: "GET http://{up}/x HTTP/1.1\r\nHost: {evil}\r\n\r\n"},
		{name: "origin-form starting with //", request: "GET //{evil}/x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"},
		{name: "HTTP/1.0 without Host", request: "GET /x HTTP/1.0\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, "/api/v1", runLimits)
			evil := r.evil.Listener.Addr().String()
			request := strings.NewReplacer("{up}", r.up.Listener.Addr().String(), "{evil}", evil).Replace(tc.request)
			ex := r.send(t, request)
			if len(ex.responses) != 1 {
				t.Fatalf("the client got %d responses, want 1", len(ex.responses))
			}
			resp := ex.responses[0]
			t.Logf("outcome: %d %s, upstream received [%s]", resp.Status, resp.Header.Get("Content-Type"), uris(r.up.requests()))
			if tc.refused != 0 {
				r.checkNothingSent(t)
				if tc.code == "" {
					if resp.Status != tc.refused {
						t.Errorf("status = %d, want %d (body %q)", resp.Status, tc.refused, resp.Body)
					}
					return
				}
				checkSidecarError(t, &http.Response{StatusCode: resp.Status, Header: resp.Header}, resp.Body, tc.refused, tc.code)
				return
			}
			if resp.Status != http.StatusOK {
				t.Errorf("status = %d, want 200 (body %q)", resp.Status, resp.Body)
			}
			got := r.checkOneRequest(t)
			if !strings.HasPrefix(got.RequestURI, "/api/v1/") {
				t.Errorf("upstream request-target = %q, want it under /api/v1/", got.RequestURI)
			}
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, evil) || strings.HasPrefix(k, "X-Forwarded-") || k == "Forwarded" {
						t.Errorf("upstream received %s: %q", k, v)
					}
				}
			}
		})
	}
}
