package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// MAX_CONNECTIONS: connections beyond the cap wait, unserved, until one
// closes; then they are served. Nothing is refused or lost.
func TestMaxConnectionsQueuesTheRest(t *testing.T) {
	t.Parallel()
	_, provider := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(provider.URL, "MAX_CONNECTIONS", "2"))
	s.waitReady(10 * time.Second)

	get := "GET /api/v1/tezpay/get-status?transaction_id=TXN1 HTTP/1.1\r\nHost: x\r\n\r\n"
	open := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", s.listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, get)
		return c, bufio.NewReader(c)
	}
	read := func(r *bufio.Reader, c net.Conn, d time.Duration) (*http.Response, error) {
		c.SetReadDeadline(time.Now().Add(d))
		resp, err := http.ReadResponse(r, nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	a, ra := open()
	b, rb := open()
	for i, conn := range []net.Conn{a, b} {
		if resp, err := read([]*bufio.Reader{ra, rb}[i], conn, 5*time.Second); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d within the cap: %v %v", i+1, resp, err)
		}
	}
	// Both connections stay open (keep-alive): a third waits.
	c, rc := open()
	if resp, err := read(rc, c, 500*time.Millisecond); err == nil {
		t.Fatalf("a third connection with MAX_CONNECTIONS=2 was served at once: %s", resp.Status)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a third connection with MAX_CONNECTIONS=2: %v, want it to wait", err)
	}
	closed := time.Now()
	a.Close()
	if resp, err := read(rc, c, 5*time.Second); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting connection once another closed: %v %v", resp, err)
	}
	t.Logf("FIGURE: MAX_CONNECTIONS=2: third connection waited, then served %s after one closed", time.Since(closed).Round(time.Millisecond))
}

// REQUIRE_HEADER end to end: refused without the header, forwarded without
// it when present.
func TestRequireHeaderEndToEnd(t *testing.T) {
	t.Parallel()
	p, provider := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(provider.URL, "REQUIRE_HEADER", "X-Authsidecar-Request"))
	s.waitReady(10 * time.Second)
	c := newClient(t)
	if r := call(c, http.MethodPost, s.URL+"/api/v1/tezpay/process-payment", payment("NOHDR")); r.status != http.StatusForbidden || !strings.Contains(string(r.body), `"forbidden"`) {
		t.Errorf("without the header: %v, want 403 forbidden", r)
	}
	if total, _ := p.Calls(); total != 0 {
		t.Errorf("a refused request reached the provider")
	}
	if r := call(c, http.MethodPost, s.URL+"/api/v1/tezpay/process-payment", payment("HDR"), "X-Authsidecar-Request", "1"); r.status != http.StatusOK {
		t.Errorf("with the header: %v, want 200", r)
	}
}
