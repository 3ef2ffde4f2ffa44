package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tezpayEpoch is the iat of the TezPay documentation's example token. Tests
// in a bubble (see bubble) start there, so that fake time reads the same on
// every run.
var tezpayEpoch = time.Unix(1758141644, 0).UTC()

// bubble runs f in a testing/synctest bubble whose clock reads tezpayEpoch:
// time there moves only when every goroutine of the bubble waits, so a
// 12-hour token's life takes microseconds. Nothing in a bubble may use a
// real socket: fake endpoints there are newEndpoint's, in memory.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(tezpayEpoch)) // bubbles start in 2000
		f(t)
	})
}

// events records when something happened (a fetch, a request), for a test
// to wait for and to read the times of.
type events struct {
	mu      sync.Mutex
	at      []time.Time
	changed chan struct{} // closed at the next event; nil while nobody waits
}

// add records an event now and returns its number, from 1.
func (e *events) add() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.at = append(e.at, time.Now())
	if e.changed != nil {
		close(e.changed)
		e.changed = nil
	}
	return len(e.at)
}

func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.at)
}

// times returns when each event happened, in order.
func (e *events) times() []time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Time(nil), e.at...)
}

// after returns a channel closed once more than n events have happened.
func (e *events) after(n int) <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.at) > n {
		c := make(chan struct{})
		close(c)
		return c
	}
	if e.changed == nil {
		e.changed = make(chan struct{})
	}
	return e.changed
}

// wait waits for the n-th event (from 1) and returns when it happened. In a
// bubble the wait moves fake time on; it fails the test after two days of
// it (or of real time outside a bubble, where go test's timeout ends a hang
// first).
func (e *events) wait(t testing.TB, n int) time.Time {
	t.Helper()
	deadline := time.NewTimer(48 * time.Hour)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		if len(e.at) >= n {
			defer e.mu.Unlock()
			return e.at[n-1]
		}
		got := len(e.at)
		e.mu.Unlock()
		select {
		case <-e.after(got):
		case <-deadline.C:
			t.Fatalf("waited 48h for event %d, %d happened", n, got)
		}
	}
}

// answer writes the fake endpoint's reply to the n-th request (from 1).
type answer func(w http.ResponseWriter, r *http.Request, n int)

// seen is what one request to the fake endpoint carried.
type seen struct {
	Method, Path, ContentType, Accept, Authorization string
	Body                                             []byte
}

// endpoint is a fake token endpoint: it records every request and replies
// with an answer that tests may change between fetches.
type endpoint struct {
	base    string // "http://provider.test", or the real server's URL
	cl      *http.Client
	release chan struct{} // closed at cleanup, to free hanging handlers
	arrived events        // one per request, as it arrives

	mu       sync.Mutex
	requests []seen
	answer   answer
}

// newEndpoint starts a fake endpoint served in memory, over net.Pipe
// connections: real HTTP/1.1, usable inside a synctest bubble. Only the
// client returned by client reaches it.
func newEndpoint(t *testing.T, a answer) *endpoint {
	t.Helper()
	e := &endpoint{answer: a, release: make(chan struct{}), base: "http://provider.test"}
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: e.handler(t)}
	tr := &http.Transport{DialContext: l.dial}
	e.cl = &http.Client{Transport: tr}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		close(e.release) // frees hanging handlers, so that Close can return
		srv.Close()
		tr.CloseIdleConnections()
		<-served
	})
	return e
}

// newTCPEndpoint starts a fake endpoint on a real socket, for the tests of
// what a nil Client means (http.DefaultClient). Not for bubbles.
func newTCPEndpoint(t *testing.T, a answer) *endpoint {
	t.Helper()
	e := &endpoint{answer: a, release: make(chan struct{})}
	srv := httptest.NewServer(e.handler(t))
	e.base, e.cl = srv.URL, srv.Client()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(e.release) }) // runs first: frees handlers so Close can return
	return e
}

func (e *endpoint) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("fake endpoint: reading request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.mu.Lock()
		e.requests = append(e.requests, seen{
			Method: r.Method, Path: r.URL.Path, Body: body,
			ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"),
			Authorization: r.Header.Get("Authorization"),
		})
		n, a := len(e.requests), e.answer
		e.mu.Unlock()
		e.arrived.add()
		a(w, r, n)
	})
}

// client is the HTTP client that reaches the endpoint.
func (e *endpoint) client() *http.Client { return e.cl }

func (e *endpoint) setAnswer(a answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.answer = a
}

func (e *endpoint) seen() []seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]seen(nil), e.requests...)
}

func (e *endpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.requests)
}

func (e *endpoint) url() string { return e.base + "/api/v1/tezpay/authenticate" }

// pipeListener is a net.Listener of in-memory connections, made by dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial is the client's side: one end of a net.Pipe, the other accepted.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "provider.test:80" }

// reply answers every request with status and body, as JSON unless a
// Content-Type is among the header pairs.
func reply(status int, body string, header ...string) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hang answers nothing until the client gives up (or the test ends).
func (e *endpoint) hang() answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-e.release:
		}
	}
}

// dropConnection closes the connection without answering: a network error.
func dropConnection(w http.ResponseWriter, r *http.Request, n int) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

const (
	tezpayID     = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
	tezpaySecret = "example_client_secret_key_123456789abcdef"
)

// tezpay answers as TezPay documents it: a 12-hour JWT for the right
// credentials ("tok-n" in a claim, so each differs), 401 otherwise.
func tezpay(secret string) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		var creds struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.NewDecoder(r.Body).Decode(&creds); err != nil || creds.ClientID != tezpayID || creds.ClientSecret != secret {
			reply(http.StatusUnauthorized, `{"detail":"Invalid credentials"}`)(w, r, n)
			return
		}
		now := time.Now()
		tok := signJWT(jwt.MapClaims{"client_id": tezpayID, "jti": fmt.Sprint(n), "iat": now.Unix(), "exp": now.Add(12 * time.Hour).Unix()})
		body, _ := json.Marshal(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 43200, "client_id": tezpayID})
		reply(http.StatusOK, string(body))(w, r, n)
	}
}

// signJWT returns an HS256 JWT of claims; the sidecar never checks signatures.
func signJWT(claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("JWT_SECRET_KEY"))
	if err != nil {
		panic(err)
	}
	return s
}

func newTezPaySource(e *endpoint) Source {
	return NewJSONSource(JSONConfig{
		URL: e.url(), ClientID: Literal(tezpayID), ClientSecret: Literal(tezpaySecret),
		Client: e.client(),
	})
}

// TestEndpointInABubble checks the in-memory endpoint itself: a request, a
// hanging answer given up at the client's deadline in fake time, and a
// dropped connection, all inside a bubble.
func TestEndpointInABubble(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, reply(200, `{"ok":true}`))
		resp, err := e.client().Post(e.url(), "application/json", bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatalf("Post() error = %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
			t.Errorf("answer = %d %q, want 200 %q", resp.StatusCode, body, `{"ok":true}`)
		}

		e.setAnswer(e.hang())
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url(), nil)
		if _, err := e.client().Do(req); err == nil || time.Since(start) != time.Hour {
			t.Errorf("Do() to a hanging endpoint = %v after %v, want an error after 1h", err, time.Since(start))
		}

		e.setAnswer(dropConnection)
		if _, err := e.client().Get(e.url()); err == nil {
			t.Errorf("Get() of a dropped connection = nil error, want one")
		}
		if n, at := e.arrived.count(), e.arrived.times(); n != 3 || !at[2].Equal(start.Add(time.Hour)) {
			t.Errorf("requests arrived = %d at %v, want 3, the last at %v", n, at, start.Add(time.Hour))
		}
	})
}

// checkMalformed checks what a source's Token returned for a 2xx answer it
// cannot use: no token, and a tokens: error containing wantErr that is not a
// provider's refusal.
func checkMalformed(t *testing.T, tok *Token, err error, wantErr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Token() = %v (expiry %v), want an error containing %q", tok, tok.Expiry, wantErr)
	}
	if tok != nil {
		t.Errorf("Token() = %v with error %v, want nil", tok, err)
	}
	if !strings.Contains(err.Error(), wantErr) || !strings.HasPrefix(err.Error(), "tokens: ") {
		t.Errorf("Token() error = %q, want a tokens: error containing %q", err, wantErr)
	}
	var re *RetrieveError
	if errors.As(err, &re) {
		t.Errorf("Token() error is a *RetrieveError (%v) for a 2xx answer, want a malformed answer", re)
	}
}
