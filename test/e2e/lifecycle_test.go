package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runToExit runs the binary with args and env until it exits, within 10s.
func runToExit(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = environ(env)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("authsidecar %v did not exit within 10s; output:\n%s%s", args, &out, &errOut)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run authsidecar: %v", err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func TestVersionFlag(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runToExit(t, nil, "-version")
	if code != 0 || stdout != "authsidecar "+testVersion+"\n" || stderr != "" {
		t.Errorf("authsidecar -version = %d, stdout %q, stderr %q; want 0, %q, nothing", code, stdout, "authsidecar "+testVersion+"\n", stderr)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string // the variables reported, without the prefix
	}{
		{
			name: "empty environment",
			env:  map[string]string{},
			want: []string{"UPSTREAM_URL", "TOKEN_SOURCE"},
		},
		{
			name: "every problem at once",
			env: map[string]string{
				"UPSTREAM_URL":      "ftp://files.example.com",
				"TOKEN_SOURCE":      "json",
				"CLIENT_ID":         clientID,
				"CLIENT_SECRET":     clientSecret,
				"RENEW_AT":          "1.2",
				"TOKEN_WAIT":        "soon",
				"REFRESH_ON_STATUS": "200",
				"MAX_REPLAY_BODY":   "-1",
				"LOG_LEVEL":         "loud",
			},
			want: []string{"UPSTREAM_URL", "TOKEN_URL", "RENEW_AT", "TOKEN_WAIT", "REFRESH_ON_STATUS", "MAX_REPLAY_BODY", "LOG_LEVEL"},
		},
		{
			name: "secret given twice",
			env: map[string]string{
				"UPSTREAM_URL":       "https://api.example.com",
				"TOKEN_SOURCE":       "oauth2",
				"TOKEN_URL":          "https://auth.example.com/token",
				"CLIENT_ID":          clientID,
				"CLIENT_SECRET":      clientSecret,
				"CLIENT_SECRET_FILE": "/run/secrets/client-secret",
			},
			want: []string{"CLIENT_SECRET"},
		},
		{
			// Only the admin address is wrong: the proxy must not listen
			// even for a moment.
			name: "admin port out of range",
			env: map[string]string{
				"UPSTREAM_URL": "https://api.example.com",
				"TOKEN_SOURCE": "none",
				"ADMIN_ADDR":   "127.0.0.1:99999",
			},
			want: []string{"ADMIN_ADDR"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Addresses held by the test: a sidecar that tried to listen,
			// even for a moment, would fail with "address already in use".
			env := map[string]string{"LISTEN_ADDR": heldAddr(t), "ADMIN_ADDR": heldAddr(t)}
			for k, v := range tc.env {
				env[k] = v
			}
			code, stdout, stderr := runToExit(t, env)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if lines[0] != "authsidecar: invalid configuration:" {
				t.Errorf("stderr starts with %q, want %q", lines[0], "authsidecar: invalid configuration:")
			}
			problems := lines[1:]
			for _, v := range tc.want {
				n := 0
				for _, l := range problems {
					if strings.HasPrefix(l, "  AUTHSIDECAR_"+v+": ") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("stderr names AUTHSIDECAR_%s on %d lines, want 1", v, n)
				}
			}
			if len(problems) != len(tc.want) {
				t.Errorf("stderr lists %d problems, want %d", len(problems), len(tc.want))
			}
			for _, bad := range []string{"panic", "goroutine ", ".go:", "authsidecar started", clientSecret} {
				if strings.Contains(stderr, bad) {
					t.Errorf("stderr contains %q", bad)
				}
			}
			if strings.Contains(stderr, "address already in use") {
				t.Errorf("authsidecar tried to listen despite the configuration error")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}

// slowUpstream holds every request until released, counting arrivals.
type slowUpstream struct {
	*httptest.Server
	arrived chan struct{}
	gate
}

func newSlowUpstream(t *testing.T) *slowUpstream {
	u := &slowUpstream{arrived: make(chan struct{}, 100), gate: gate{open: make(chan struct{})}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			http.Error(w, `{"detail":"Invalid token"}`, http.StatusUnauthorized)
			return
		}
		u.arrived <- struct{}{}
		select {
		case <-u.open:
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "done %s", r.URL.Path)
	}))
	t.Cleanup(u.Close)
	t.Cleanup(u.release)
	return u
}

// waitArrivals waits until n requests reached the upstream.
func (u *slowUpstream) waitArrivals(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for i := range n {
		select {
		case <-u.arrived:
		case <-timeout:
			t.Fatalf("%d of %d requests reached the upstream in 15s", i, n)
		}
	}
}

func TestSigtermDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	_, provider := newTezPay(t, 0, nil)
	upstream := newSlowUpstream(t)
	s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", upstream.URL, "SHUTDOWN_TIMEOUT", "10s"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	const n = 20
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = call(c, http.MethodGet, fmt.Sprintf("%s/slow/%d", s.URL, i), nil) })
	}
	upstream.waitArrivals(t, n)

	signalled := time.Now()
	s.signal(syscall.SIGTERM)
	if !eventually(5*time.Second, func() bool { return s.adminStatus("/readyz") == http.StatusServiceUnavailable }) {
		t.Errorf("/readyz did not go 503 during the drain")
	}
	if !eventually(5*time.Second, func() bool { return isRefused(s.listen) }) {
		t.Errorf("new connections to the proxy are still accepted during the drain")
	}
	if code, exited := s.waitExit(0); exited {
		t.Fatalf("authsidecar exited with %d while %d requests were in flight", code, n)
	}

	// The upstream answers after about a second: the process waits for it,
	// and every request completes.
	if code, exited := s.waitExit(time.Until(signalled.Add(time.Second))); exited {
		t.Fatalf("authsidecar exited with %d %s after SIGTERM while %d requests were in flight", code, time.Since(signalled), n)
	}
	upstream.release()
	wg.Wait()
	for i, r := range results {
		if want := fmt.Sprintf("done /slow/%d", i); r.status != http.StatusOK || string(r.body) != want {
			t.Errorf("in-flight request %d = %v, want 200 %q", i, r, want)
		}
	}
	code, exited := s.waitExit(10 * time.Second)
	if !exited {
		t.Fatalf("authsidecar still running %s after SIGTERM with SHUTDOWN_TIMEOUT=10s", time.Since(signalled))
	}
	if code != 0 {
		t.Errorf("exit code after a clean drain = %d, want 0", code)
	}
	for _, msg := range []string{`"msg":"shutting down"`, `"msg":"authsidecar stopped"`} {
		if !strings.Contains(s.output(), msg) {
			t.Errorf("output lacks %s", msg)
		}
	}
}

func TestSigtermDrainTimeout(t *testing.T) {
	t.Parallel()
	_, provider := newTezPay(t, 0, nil)
	upstream := newSlowUpstream(t) // never answers in time
	s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", upstream.URL, "SHUTDOWN_TIMEOUT", "1s"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	done := make(chan result, 1)
	go func() { done <- call(c, http.MethodGet, s.URL+"/stuck", nil) }()
	upstream.waitArrivals(t, 1)
	signalled := time.Now()
	s.signal(syscall.SIGTERM)
	code, exited := s.waitExit(10 * time.Second)
	if !exited {
		t.Fatalf("authsidecar still running 10s after SIGTERM with SHUTDOWN_TIMEOUT=1s")
	}
	if took := time.Since(signalled); took < time.Second || took > 5*time.Second {
		t.Errorf("exit %s after SIGTERM, want about SHUTDOWN_TIMEOUT=1s", took)
	}
	if code != 1 {
		t.Errorf("exit code after an incomplete drain = %d, want 1", code)
	}
	if r := <-done; r.err == nil {
		t.Errorf("the request cut by the drain deadline got %v, want a connection error", r)
	}
	if !strings.Contains(s.output(), "drain requests") {
		t.Errorf(`output lacks the "drain requests" error`)
	}
}

func TestSigtermWhileTheFirstFetchHangs(t *testing.T) {
	t.Parallel()
	g := &gate{open: make(chan struct{})}
	_, srv := newTezPay(t, 0, g.holdTokens)
	t.Cleanup(g.release)
	s := startSidecar(t, tezPayEnv(srv.URL, "TOKEN_TIMEOUT", "60s", "SHUTDOWN_TIMEOUT", "20s"))
	if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while the first fetch hangs = %d, want 503", got)
	}
	signalled := time.Now()
	s.signal(syscall.SIGTERM)
	code, exited := s.waitExit(10 * time.Second)
	if !exited {
		t.Fatalf("authsidecar still running 10s after SIGTERM, with nothing to drain but a hanging token fetch")
	}
	if code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	if took := time.Since(signalled); took > 5*time.Second {
		t.Errorf("exit %s after SIGTERM with nothing to drain, want at once", took)
	}
}

// With SHUTDOWN_DELAY (a plain-container sidecar on clusters without native
// sidecars gets SIGTERM with the app), the proxy keeps serving new requests
// for the delay, not ready, then drains and exits.
func TestSigtermShutdownDelayKeepsServing(t *testing.T) {
	t.Parallel()
	_, provider := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(provider.URL, "SHUTDOWN_DELAY", "2s"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	signalled := time.Now()
	s.signal(syscall.SIGTERM)
	if !eventually(time.Second, func() bool { return s.adminStatus("/readyz") == http.StatusServiceUnavailable }) {
		t.Errorf("/readyz did not go 503 during the shutdown delay")
	}
	// A request every 100ms for the first 1.5s of the delay.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; time.Since(signalled) < 1500*time.Millisecond; i++ {
		if r := call(c, http.MethodPost, s.URL+"/api/v1/tezpay/process-payment", payment(fmt.Sprint("DELAY", i))); r.status != http.StatusOK {
			t.Fatalf("request %d, %s after SIGTERM with SHUTDOWN_DELAY=2s = %v, want 200", i, time.Since(signalled), r)
		}
		<-tick.C
	}
	code, exited := s.waitExit(10 * time.Second)
	if !exited || code != 0 {
		t.Fatalf("after the delay: exited %v with %d, want exit 0", exited, code)
	}
	if waited := time.Since(signalled); waited < 2*time.Second {
		t.Errorf("exited %s after SIGTERM, before SHUTDOWN_DELAY=2s", waited)
	}
}
