package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The runtime profiles are served only when AUTHSIDECAR_PPROF asks for them.
func TestAdminPprofIsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := adminHandler(prometheus.NewRegistry(), nil, new(atomic.Bool), on)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("PPROF=%v: GET %s = %d, want %d", on, path, rec.Code, want)
			}
			if on && path == "/debug/pprof/heap?debug=1" && !strings.Contains(rec.Body.String(), "heap profile") {
				t.Errorf("PPROF=true: GET %s does not answer a heap profile: %.100q", path, rec.Body.String())
			}
		}
	}
}

// Clients that connect to the admin port and stay idle or silent must not
// make the kubelet's probes wait: with 100 such connections held open,
// /healthz and /readyz still answer.
func TestAdminIdleConnectionsDoNotStarveProbes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first string // what each of the 100 clients sends before it goes quiet
	}{
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n"},
		{"silent", ""},
		{"half a header", "GET /healthz HTTP/1.1\r\nHost: ad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startAdmin(t, nil)
			for i := range 100 {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				t.Cleanup(func() { c.Close() })
				if _, err := io.WriteString(c, tc.first); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			// The kubelet opens a connection per probe and gives up after
			// its timeout (1 s by default).
			probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for round := range 10 {
				for _, path := range []string{"/healthz", "/readyz"} {
					resp, err := probe.Get("http://" + addr + path)
					if err != nil {
						t.Fatalf("round %d: GET %s with 100 %s connections open: %v", round, path, tc.name, err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("round %d: GET %s = %d, want 200", round, path, resp.StatusCode)
					}
				}
			}
		})
	}
}

// Closing the admin server does not wait for a slot: with every slot taken
// by requests in progress, Close returns.
func TestAdminCloseWithEverySlotTaken(t *testing.T) {
	release := make(chan struct{})
	var inFlight sync.WaitGroup
	inFlight.Add(maxAdminConnections)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, ln := adminServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Done()
		<-release
	}), ln, nil)
	go srv.Serve(ln)
	defer close(release)
	for range maxAdminConnections {
		go http.Get("http://" + ln.Addr().String() + "/slow")
	}
	inFlight.Wait()
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close() still blocked after 10s with every admin slot taken")
	}
}

// startAdmin serves the admin handler (or h) on a loopback port, until the
// test ends.
func startAdmin(t *testing.T, h http.Handler) string {
	t.Helper()
	if h == nil {
		h = adminHandler(prometheus.NewRegistry(), nil, new(atomic.Bool), false)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, ln := adminServer(h, ln, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
