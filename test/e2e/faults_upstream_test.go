package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// TestFaultUpstreamNetwork puts a faulty network between the sidecar and the
// upstream, one fault at a time, and heals it after each: the app gets the
// sidecar's JSON error (or sees the cut), after about UPSTREAM_TIMEOUT at
// most, and a request after the heal succeeds. No upstream fault costs a
// token.
func TestFaultUpstreamNetwork(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	p, provider := newTezPay(t, 0, nil)
	full := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
	up := httptest.NewServer(p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Path == "/small" {
			io.WriteString(w, "a small answer")
			return
		}
		w.Write(full)
	})))
	t.Cleanup(up.Close)
	network, err := fake.NewFaultProxy(up.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { network.Close() })
	s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", "http://"+network.Addr(), "UPSTREAM_TIMEOUT", timeout.String()))
	s.waitReady(10 * time.Second)
	// A slow drip of the headers must not meet the timeout of the fast
	// faults: it gets a sidecar of its own, with a long one.
	const dripTimeout = 10 * time.Second
	sDrip := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", "http://"+network.Addr(), "UPSTREAM_TIMEOUT", dripTimeout.String()))
	sDrip.waitReady(10 * time.Second)
	c := newClient(t)
	made := map[string]int{} // the sidecar's errors the app got, by code

	tests := []struct {
		name    string
		fault   fake.Fault
		path    string
		status  int
		code    string // the sidecar's error; empty for the upstream's answer
		cut     bool   // the body is cut: the app must see it cut, not complete
		minTook time.Duration
	}{
		{name: "reset", fault: fake.Reset, path: "/", status: 502, code: "upstream_unreachable"},
		{name: "hang", fault: fake.Hang, path: "/", status: 504, code: "upstream_timeout", minTook: timeout},
		{name: "blackhole", fault: fake.Blackhole, path: "/", status: 504, code: "upstream_timeout", minTook: timeout},
		{name: "delay within UPSTREAM_TIMEOUT", fault: fake.Delay(300 * time.Millisecond), path: "/", status: 200, minTook: 300 * time.Millisecond},
		{name: "delay past UPSTREAM_TIMEOUT", fault: fake.Delay(timeout + time.Second), path: "/", status: 504, code: "upstream_timeout", minTook: timeout},
		{name: "response cut mid-body", fault: fake.Truncate(1000), path: "/", status: 200, cut: true},
		// Headers within UPSTREAM_TIMEOUT: a slow answer is not cut.
		{name: "slow-drip response", fault: fake.SlowDrip(time.Millisecond), path: "/small", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, timeout := s, timeout
			if tc.name == "slow-drip response" {
				s, timeout = sDrip, dripTimeout
			}
			network.Set(tc.fault)
			start := time.Now()
			r := call(c, http.MethodGet, s.URL+tc.path, nil)
			took := time.Since(start)
			network.Set(fake.Pass)

			var e sidecarError
			var what string
			switch {
			case tc.cut:
				if r.err == nil || r.status != tc.status || len(r.body) >= len(full) {
					t.Errorf("GET %s = %v with %d of %d bytes, want %d and the body cut short with an error", tc.path, r, len(r.body), len(full), tc.status)
				}
				what = fmt.Sprintf("%d, body cut after %d of %d bytes (%v)", r.status, len(r.body), len(full), r.err)
			case tc.code != "":
				if r.status != tc.status || json.Unmarshal(r.body, &e) != nil || e.Error != tc.code || r.header.Get("Content-Type") != "application/json" {
					t.Errorf("GET %s = %v, want %d {\"error\":%q,…}", tc.path, r, tc.status, tc.code)
				}
				what = fmt.Sprintf("%d %s", r.status, e.Error)
				made[e.Error]++
			default:
				want := full
				if tc.path == "/small" {
					want = []byte("a small answer")
				}
				if r.err != nil || r.status != tc.status || !bytes.Equal(r.body, want) {
					t.Errorf("GET %s = %v, want %d and the whole body", tc.path, r, tc.status)
				}
				what = fmt.Sprintf("%d, whole body", r.status)
			}
			// The upper bound only catches a hang: a loaded machine is slow.
			if took < tc.minTook || took > tc.minTook+5*time.Second {
				t.Errorf("GET %s took %s, want %s to %s", tc.path, took, tc.minTook, tc.minTook+5*time.Second)
			}
			// Healed, the sidecar serves again: at once, unless the machine
			// is so slow that a request meets the timeout.
			tries := 0
			for tries < 3 {
				tries++
				after := call(c, http.MethodGet, s.URL+"/", nil)
				if after.status == http.StatusOK && bytes.Equal(after.body, full) {
					break
				}
				if json.Unmarshal(after.body, &e) == nil && after.status == http.StatusGatewayTimeout && e.Error == "upstream_timeout" {
					made[e.Error]++
					continue
				}
				t.Fatalf("GET / after the heal = %v, want 200 and the whole body", after)
			}
			t.Logf("FIGURE: upstream %s (%s, UPSTREAM_TIMEOUT=%s): the app got %s in %.2fs; after the heal the %s request succeeded",
				tc.name, tc.fault, timeout, what, took.Seconds(), map[int]string{1: "first", 2: "second", 3: "third"}[tries])
		})
	}

	if n := p.Fetches(); n != 2 {
		t.Errorf("token fetches = %d, want 2 (one per sidecar): an upstream fault is no reason for a new token", n)
	}
	if made["upstream_unreachable"] != 1 || made["upstream_timeout"] < 3 {
		t.Errorf("the sidecar's errors = %v, want 1 upstream_unreachable and 3 upstream_timeout (more if the machine was slow)", made)
	}
	want := map[string]float64{
		`authsidecar_errors_total{reason="upstream_unreachable",route="default"}`: float64(made["upstream_unreachable"]),
		`authsidecar_errors_total{reason="upstream_timeout",route="default"}`:     float64(made["upstream_timeout"]),
		`authsidecar_token_forced_refreshes_total`:                                0,
	}
	m := s.metrics()
	for series, v := range want {
		if got, _ := metric(m, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
}

// TestFaultUpstreamErrorsPassThrough checks that 502, 503 and 504 answered
// by the upstream itself reach the app unchanged — status, headers and body
// byte for byte, even a body shaped like the sidecar's own errors — and are
// neither counted as the sidecar's errors nor a reason for a new token.
func TestFaultUpstreamErrorsPassThrough(t *testing.T) {
	t.Parallel()
	type answer struct {
		status int
		header map[string]string
		body   string
	}
	answers := map[string]answer{
		"/502-json":  {502, map[string]string{"Content-Type": "application/json"}, `{"error":"upstream_unreachable","message":"said by the upstream itself"}`},
		"/502-text":  {502, map[string]string{"Content-Type": "text/plain; charset=utf-8"}, "Bad Gateway\n"},
		"/503-html":  {503, map[string]string{"Content-Type": "text/html", "Retry-After": "30"}, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\r\n"},
		"/503-bytes": {503, map[string]string{"Content-Type": "application/octet-stream"}, "\x00\xff\x1b[31m not \"JSON\" \u00e9\n"},
		"/504-empty": {504, map[string]string{"X-Upstream-Id": "lb-7"}, ""},
		"/504-json":  {504, map[string]string{"Content-Type": "application/problem+json"}, `{"type":"about:blank","title":"Gateway Timeout","status":504}`},
	}
	p, provider := newTezPay(t, 0, nil)
	up := httptest.NewServer(p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.URL.Path]
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	})))
	t.Cleanup(up.Close)
	s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", up.URL))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	n := 0
	for path, a := range answers {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			var body []byte
			if method == http.MethodPost {
				body = payment("PASS-" + path)
			}
			r := call(c, method, s.URL+path, body)
			n++
			if r.err != nil || r.status != a.status || string(r.body) != a.body {
				t.Errorf("%s %s = %v, want %d %q byte for byte", method, path, r, a.status, a.body)
			}
			for k, v := range a.header {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s %s: %s = %q, want the upstream's %q", method, path, k, got, v)
				}
			}
		}
	}
	m := s.metrics()
	if got, _ := metric(m, "authsidecar_errors_total"); got != 0 {
		t.Errorf("authsidecar_errors_total = %v, want 0: the upstream made these errors, not the sidecar", got)
	}
	var passed float64
	for _, code := range []string{"502", "503", "504"} {
		v, _ := metric(m, `authsidecar_upstream_responses_total{code="`+code+`",route="default"}`)
		passed += v
	}
	if int(passed) != n {
		t.Errorf("authsidecar_upstream_responses_total for 502, 503, 504 = %v, want %d", passed, n)
	}
	if f := p.Fetches(); f != 1 {
		t.Errorf("token fetches = %d, want 1", f)
	}
	t.Logf("FIGURE: upstream 502/503/504: %d of %d answers (JSON, text, HTML, binary, empty) reached the app unchanged (status, headers, body byte for byte); 0 counted as the sidecar's errors; 0 extra token fetches", n, n)
}

// TestFault401Storm makes the upstream reject every token for a while under
// concurrent load: token fetches are bounded by FORCED_REFRESH_INTERVAL, and
// every request gets the upstream's 401 promptly, unchanged.
func TestFault401Storm(t *testing.T) {
	t.Parallel()
	const (
		interval = time.Second
		storm    = 4 * time.Second
		workers  = 16
		rejected = `{"detail":"Token has expired"}`
	)
	p := fake.NewTezPay(clientID, clientSecret, 0)
	trackTezPay(t, p)
	mux := http.NewServeMux()
	mux.Handle(fake.AuthenticatePath, p.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, rejected)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s := startSidecar(t, tezPayEnv(srv.URL, "FORCED_REFRESH_INTERVAL", interval.String()))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	before := p.Fetches()
	var total, wrong atomic.Int64
	var mu sync.Mutex
	var slowest time.Duration
	var firstWrong string
	end := time.Now().Add(storm)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				start := time.Now()
				var r result
				if i%2 == 0 {
					r = call(c, http.MethodGet, fmt.Sprintf("%s%s?transaction_id=S%dR%d", s.URL, fake.GetStatusPath, w, i), nil)
				} else {
					r = call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment(fmt.Sprintf("STORM-%d-%d", w, i)))
				}
				took := time.Since(start)
				total.Add(1)
				mu.Lock()
				slowest = max(slowest, took)
				if r.status != http.StatusUnauthorized || string(r.body) != rejected {
					wrong.Add(1)
					if firstWrong == "" {
						firstWrong = r.String()
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fetches := p.Fetches() - before

	if n := wrong.Load(); n != 0 {
		t.Errorf("%d of %d requests did not get the upstream's 401 %s unchanged; first: %s", n, total.Load(), rejected, firstWrong)
	}
	if limit := int(storm/interval) + 2; fetches > limit || fetches < 2 {
		t.Errorf("token fetches during a %s storm = %d, want 2 to %d with FORCED_REFRESH_INTERVAL=%s", storm, fetches, limit, interval)
	}
	m := s.metrics()
	replays := map[string]float64{}
	for _, res := range []string{"success", "rejected", "rate_limited", "error"} {
		replays[res], _ = metric(m, `authsidecar_replays_total{result="`+res+`",route="default"}`)
	}
	forced, _ := metric(m, "authsidecar_token_forced_refreshes_total")
	if replays["success"] != 0 || int(forced) != fetches {
		t.Errorf("replays succeeded = %v, forced refreshes = %v; want 0 and one per fetch (%d)", replays["success"], forced, fetches)
	}
	t.Logf("FIGURE: 401 storm: %d requests from %d workers in %s, every token rejected: %d token fetches (FORCED_REFRESH_INTERVAL=%s, %d forced refreshes); "+
		"replays: %.0f rejected again, %.0f not tried (rate-limited), %.0f without a token; every request got the upstream's 401 unchanged, the slowest in %.2fs",
		total.Load(), workers, storm, fetches, interval, int(forced), replays["rejected"], replays["rate_limited"], replays["error"], slowest.Seconds())
}

// TestFaultTokenRevokedMidStream revokes the token a long event stream began
// with, and makes another request meet the revocation, so that the sidecar
// drops that token and fetches another: the stream goes on to its end.
func TestFaultTokenRevokedMidStream(t *testing.T) {
	t.Parallel()
	const (
		events = 20
		every  = 100 * time.Millisecond
	)
	p := fake.NewTezPay(clientID, clientSecret, 0)
	trackTezPay(t, p)
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/tezpay/events", p.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			fmt.Fprintf(w, "id: %d\ndata: {\"seq\":%d}\n\n", i, i)
			rc.Flush()
			select {
			case <-time.After(every):
			case <-r.Context().Done():
				return
			}
		}
	})))
	mux.Handle("/", p.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s := startSidecar(t, tezPayEnv(srv.URL))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	type event struct {
		at   time.Time
		data string
	}
	got := make(chan event, events+1)
	streamErr := make(chan error, 1)
	start := time.Now()
	go func() {
		resp, err := c.Get(s.URL + "/api/v1/tezpay/events")
		if err != nil {
			streamErr <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			streamErr <- fmt.Errorf("status %d", resp.StatusCode)
			return
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				got <- event{time.Now(), data}
			}
		}
		streamErr <- sc.Err()
	}()

	// Three events in, the token is revoked; a request meets the
	// revocation, and is replayed with a new token.
	var seen []event
	for len(seen) < 3 {
		select {
		case e := <-got:
			seen = append(seen, e)
		case err := <-streamErr:
			t.Fatalf("the stream ended after %d events: %v", len(seen), err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d events after 5s, want 3", len(seen))
		}
	}
	revokedAt := time.Since(start)
	p.RevokeAll()
	if r := call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=MID", nil); r.status != http.StatusOK {
		t.Errorf("GET get-status with the token revoked = %v, want 200 after a replay", r)
	}
	if n := p.Fetches(); n != 2 {
		t.Errorf("token fetches = %d, want 2", n)
	}

	if err := <-streamErr; err != nil {
		t.Errorf("the stream failed: %v", err)
	}
	close(got)
	for e := range got {
		seen = append(seen, e)
	}
	took := time.Since(start)
	for i, e := range seen {
		if want := fmt.Sprintf(`{"seq":%d}`, i); e.data != want {
			t.Errorf("event %d = %s, want %s", i, e.data, want)
		}
	}
	if len(seen) != events {
		t.Fatalf("the stream delivered %d events, want %d", len(seen), events)
	}
	// Streamed as they came, not held until the end.
	if gap := seen[events-1].at.Sub(seen[0].at); gap < (events-2)*every {
		t.Errorf("first and last events %s apart, want about %s: the stream was buffered", gap, (events-1)*every)
	}
	t.Logf("FIGURE: token revoked mid-stream: the %.1fs event stream completed (%d of %d events, in order, flushed as they came) though the token it began with was revoked at %.2fs and replaced (1 more fetch); a request meeting the revoked token was replayed: 200",
		took.Seconds(), len(seen), events, revokedAt.Seconds())
}
