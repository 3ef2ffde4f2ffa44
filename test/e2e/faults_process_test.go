package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// TestFaultSigtermWith100InFlight signals SIGTERM while 100 requests are in
// flight, half of them waiting for the upstream's headers and half in the
// middle of a 64 KiB body: none is lost and none is cut.
func TestFaultSigtermWith100InFlight(t *testing.T) {
	t.Parallel()
	const (
		n    = 100
		size = 64 << 10
	)
	bodyOf := func(i int) []byte {
		line := fmt.Appendf(nil, "response %03d, every byte of it\n", i)
		return bytes.Repeat(line, size/len(line)+1)[:size]
	}
	_, provider := newTezPay(t, 0, nil)
	arrived := make(chan struct{}, n)
	g := &gate{open: make(chan struct{})}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/inflight/"))
		body := bodyOf(i)
		w.Header().Set("Content-Length", strconv.Itoa(size))
		if i%2 == 1 { // headers and half the body now, the rest later
			w.Write(body[:size/2])
			http.NewResponseController(w).Flush()
			body = body[size/2:]
		}
		arrived <- struct{}{}
		select {
		case <-g.open:
		case <-r.Context().Done():
			return
		}
		w.Write(body)
	}))
	t.Cleanup(up.Close)
	t.Cleanup(g.release)
	s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", up.URL, "SHUTDOWN_TIMEOUT", "10s"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = call(c, http.MethodGet, fmt.Sprintf("%s/inflight/%d", s.URL, i), nil) })
	}
	for i := range n {
		select {
		case <-arrived:
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of %d requests reached the upstream in 15s", i, n)
		}
	}

	signalled := time.Now()
	s.signal(syscall.SIGTERM)
	if !eventually(5*time.Second, func() bool { return s.adminStatus("/readyz") == http.StatusServiceUnavailable }) {
		t.Errorf("/readyz did not go 503 during the drain")
	}
	unready := time.Since(signalled)
	if !eventually(5*time.Second, func() bool { return isRefused(s.listen) }) {
		t.Errorf("new connections to the proxy are still accepted during the drain")
	}
	refused := time.Since(signalled)
	// The upstream finishes answering a second after SIGTERM: the process
	// waits for it.
	if code, exited := s.waitExit(time.Until(signalled.Add(time.Second))); exited {
		t.Fatalf("authsidecar exited with %d %s after SIGTERM while %d requests were in flight", code, time.Since(signalled), n)
	}
	g.release()
	wg.Wait()

	lost, cut := 0, 0
	for i, r := range results {
		switch {
		case r.status != http.StatusOK:
			lost++
			t.Errorf("in-flight request %d = %.80v, want 200", i, r)
		case r.err != nil || !bytes.Equal(r.body, bodyOf(i)):
			cut++
			t.Errorf("in-flight request %d: %d of %d bytes (%v), want the whole body", i, len(r.body), size, r.err)
		}
	}
	code, exited := s.waitExit(10 * time.Second)
	stopped := time.Since(signalled)
	if !exited {
		t.Fatalf("authsidecar still running %s after SIGTERM with SHUTDOWN_TIMEOUT=10s", time.Since(signalled))
	}
	if code != 0 {
		t.Errorf("exit code after a clean drain = %d, want 0", code)
	}
	t.Logf("FIGURE: SIGTERM with %d requests in flight (%d mid-body): %d complete with their whole %d KiB body, %d lost, %d cut; "+
		"/readyz 503 within %.2fs and new connections refused within %.2fs; exit %d %.2fs after SIGTERM (the upstream finished answering after 1s)",
		n, n/2, n-lost-cut, size>>10, lost, cut, unready.Seconds(), refused.Seconds(), code, stopped.Seconds())
}

// TestFaultSighupIgnored sends SIGHUP a few times: the process keeps serving,
// stays ready and does not reload (nor fetch again).
func TestFaultSighupIgnored(t *testing.T) {
	t.Parallel()
	p, provider := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(provider.URL))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	const hups = 3
	ok := 0
	for i := range hups {
		s.signal(syscall.SIGHUP)
		// A SIGHUP that is not ignored ends a Go process at once.
		if code, exited := s.waitExit(100 * time.Millisecond); exited {
			t.Fatalf("authsidecar exited with %d after SIGHUP #%d", code, i+1)
		}
		if r := call(c, http.MethodGet, fmt.Sprintf("%s%s?transaction_id=HUP%d", s.URL, fake.GetStatusPath, i), nil); r.status == http.StatusOK {
			ok++
		} else {
			t.Errorf("GET after SIGHUP #%d = %v, want 200", i+1, r)
		}
		if got := s.adminStatus("/readyz"); got != http.StatusOK {
			t.Errorf("/readyz after SIGHUP #%d = %d, want 200", i+1, got)
		}
	}
	if n := p.Fetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1: SIGHUP reloads nothing", n)
	}
	if strings.Contains(s.output(), `"msg":"shutting down"`) {
		t.Errorf("SIGHUP started a shutdown")
	}
	t.Logf("FIGURE: SIGHUP ×%d: ignored; the process kept serving (%d of %d requests 200), stayed ready, fetched no token and did not restart", hups, ok, hups)
}
