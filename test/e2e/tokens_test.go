package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

func TestRenewalUnderLoad(t *testing.T) {
	t.Parallel()
	// Tokens live 3s and are renewed at half their life: about 5 renewals
	// during the load.
	p, srv := newTezPay(t, 3*time.Second, nil)
	s := startSidecar(t, tezPayEnv(srv.URL, "RENEW_AT", "0.5"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	const workers, load = 8, 8 * time.Second
	var total, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	end := time.Now().Add(load)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond) // steady load, not a benchmark
			defer tick.Stop()
			for i := 0; time.Now().Before(end); i++ {
				r := call(c, http.MethodGet, fmt.Sprintf("%s%s?transaction_id=W%dR%d", s.URL, fake.GetStatusPath, w, i), nil)
				total.Add(1)
				if r.status < 200 || r.status > 299 {
					failed.Add(1)
					mu.Lock()
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), r))
					}
					mu.Unlock()
				}
				<-tick.C
			}
		})
	}
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during renewal, want 0; first: %q", n, total.Load(), failures)
	}
	if n := total.Load(); n < 100 {
		t.Errorf("only %d requests in %s: the load did not happen", n, load)
	}
	// 1 first fetch + a renewal every ~1.5s.
	if n := p.Fetches(); n < 4 || n > 12 {
		t.Errorf("token fetches during %s of 3s tokens = %d, want about 6 (4 to 12)", load, n)
	}
	// The provider rejects expired tokens: none reached it.
	if calls, rejected := p.Calls(); rejected != 0 || int64(calls) != total.Load() {
		t.Errorf("provider calls = %d (%d rejected with an expired token), want %d (0 rejected)", calls, rejected, total.Load())
	}
}

// seen is one request as the upstream received it.
type seen struct {
	id, token string
	body      []byte
	status    int
}

// recorder records the requests reaching the protected endpoints.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fake.AuthenticatePath {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.reqs = append(rec.reqs, seen{
			id:     r.Header.Get("X-Request-Id"),
			token:  strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			body:   body,
			status: sw.status,
		})
	})
}

// of returns the attempts of the request with the given id, in order.
func (rec *recorder) of(id string) []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []seen
	for _, s := range rec.reqs {
		if s.id == id {
			out = append(out, s)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func TestRevokedTokenIsReplayed(t *testing.T) {
	t.Parallel()

	t.Run("one POST", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		p, srv := newTezPay(t, 0, rec.wrap)
		s := startSidecar(t, tezPayEnv(srv.URL))
		s.waitReady(10 * time.Second)
		c := newClient(t)
		if r := call(c, http.MethodGet, s.URL+fake.GetStatusPath, nil); r.status != http.StatusOK {
			t.Fatalf("GET get-status = %v, want 200", r)
		}

		p.RevokeAll()
		body := payment("PAY-REPLAY-1")
		r := call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, body, "X-Request-Id", "post-1")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"merchant_reference":"PAY-REPLAY-1"`)) {
			t.Fatalf("POST process-payment with a revoked token = %v, want 200 for PAY-REPLAY-1", r)
		}
		issued := p.Issued()
		if len(issued) != 2 {
			t.Fatalf("token fetches = %d, want 2", len(issued))
		}
		attempts := rec.of("post-1")
		if len(attempts) != 2 {
			t.Fatalf("upstream received the POST %d times, want 2 (rejected, replayed)", len(attempts))
		}
		for i, want := range []struct {
			token  string
			status int
		}{{issued[0], http.StatusUnauthorized}, {issued[1], http.StatusOK}} {
			a := attempts[i]
			if a.token != want.token || a.status != want.status {
				t.Errorf("attempt %d: token #%d, status %d; want token #%d, status %d",
					i+1, index(issued, a.token), a.status, index(issued, want.token), want.status)
			}
			if !bytes.Equal(a.body, body) {
				t.Errorf("attempt %d: upstream body = %q, want %q", i+1, a.body, body)
			}
		}
	})

	t.Run("32 concurrent requests", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		p, srv := newTezPay(t, 0, rec.wrap)
		s := startSidecar(t, tezPayEnv(srv.URL))
		s.waitReady(10 * time.Second)
		c := newClient(t)
		// Open the app's connections first, so that the 32 requests leave at once.
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() { call(c, http.MethodGet, s.URL+fake.GetStatusPath, nil) })
		}
		wg.Wait()

		p.RevokeAll()
		const n = 32
		bodies := make([][]byte, n)
		results := make([]result, n)
		for i := range n {
			id := fmt.Sprintf("req-%d", i)
			if i%2 == 0 {
				bodies[i] = payment(fmt.Sprintf("PAY-%d-%s", i, strings.Repeat("x", 2000)))
				wg.Go(func() {
					results[i] = call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, bodies[i], "X-Request-Id", id)
				})
			} else {
				wg.Go(func() { results[i] = call(c, http.MethodGet, s.URL+fake.GetStatusPath, nil, "X-Request-Id", id) })
			}
		}
		wg.Wait()

		issued := p.Issued()
		if len(issued) != 2 {
			t.Errorf("token fetches = %d, want 2: one extra for %d requests meeting the revoked token", len(issued), n)
		}
		replayed := 0
		for i, r := range results {
			if r.status != http.StatusOK {
				t.Errorf("request %d = %v, want 200", i, r)
				continue
			}
			attempts := rec.of(fmt.Sprintf("req-%d", i))
			if len(attempts) == 2 {
				replayed++
			}
			if len(attempts) == 0 || attempts[len(attempts)-1].status != http.StatusOK || len(attempts) > 2 {
				t.Errorf("request %d reached the upstream %d times, want once or twice, the last accepted", i, len(attempts))
			}
			for j, a := range attempts {
				if want := bodies[i]; !bytes.Equal(a.body, want) {
					t.Errorf("request %d attempt %d: upstream body of %d bytes differs from the %d bytes sent", i, j+1, len(a.body), len(want))
				}
				if wantRevoked := j < len(attempts)-1; (a.token == issued[0]) != wantRevoked {
					t.Errorf("request %d attempt %d used token #%d", i, j+1, index(issued, a.token))
				}
			}
		}
		_, rejected := p.Calls()
		if replayed == 0 || replayed != rejected {
			t.Errorf("requests replayed = %d, provider rejections = %d; want the same, and at least one", replayed, rejected)
		}
		m := s.metrics()
		if got, _ := metric(m, `authsidecar_replays_total{result="success",route="default"}`); int(got) != replayed {
			t.Errorf(`authsidecar_replays_total{result="success"} = %v, want %d`, got, replayed)
		}
		if got, _ := metric(m, "authsidecar_token_forced_refreshes_total"); got != 1 {
			t.Errorf("authsidecar_token_forced_refreshes_total = %v, want 1", got)
		}
	})
}

// index returns the position of tok among the issued tokens, -1 if none.
func index(issued []string, tok string) int {
	for i, s := range issued {
		if s == tok {
			return i
		}
	}
	return -1
}

// sidecarError is the body of an error made by the sidecar itself.
type sidecarError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// checkTokenUnavailable fails the test unless r is the sidecar's 503.
func checkTokenUnavailable(t *testing.T, r result) sidecarError {
	t.Helper()
	var e sidecarError
	if r.status != http.StatusServiceUnavailable || json.Unmarshal(r.body, &e) != nil || e.Error != "token_unavailable" || e.Message == "" {
		t.Errorf("response = %v, want 503 {\"error\":\"token_unavailable\",\"message\":…}", r)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return e
}

func TestTokenEndpointOutage(t *testing.T) {
	t.Parallel()
	p, srv := newTezPay(t, 0, nil)
	p.SetDown(true)
	s := startSidecar(t, tezPayEnv(srv.URL, "TOKEN_WAIT", "1s"))
	c := newClient(t)

	// Requests get a clear 503 within TOKEN_WAIT (plus scheduling slack),
	// never hang.
	const n = 8
	results := make([]result, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			results[i] = call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment(fmt.Sprint("OUT", i)))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, r := range results {
		checkTokenUnavailable(t, r)
		if took[i] > 3*time.Second {
			t.Errorf("request %d took %s with TOKEN_WAIT=1s, want at most about 1s", i, took[i])
		}
	}
	if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage = %d, want 503", got)
	}
	if got := s.adminStatus("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the outage = %d, want 200", got)
	}
	if total, _ := p.Calls(); total != 0 {
		t.Errorf("provider API calls during the outage = %d, want 0: nothing is forwarded without a token", total)
	}

	// The endpoint heals: the same process recovers by itself.
	p.SetDown(false)
	var last result
	if !eventually(20*time.Second, func() bool {
		last = call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN1", nil)
		return last.status == http.StatusOK
	}) {
		t.Fatalf("after the endpoint healed, GET get-status = %v, want 200 without a restart", last)
	}
	if got := s.adminStatus("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz after the outage = %d, want 200", got)
	}
	if code, exited := s.waitExit(0); exited {
		t.Errorf("authsidecar exited with %d during the outage", code)
	}
}

func TestRejectedCredentials(t *testing.T) {
	t.Parallel()
	const wrongSecret = "wrong-secret-Zr5Yp1Hd6Nf0Jk"
	p, srv := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(srv.URL, "CLIENT_SECRET", wrongSecret, "TOKEN_WAIT", "1s"))
	c := newClient(t)

	r := call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment("PAY1"))
	checkTokenUnavailable(t, r)

	// The operator sees why, in one log line: the provider's status and message.
	found := eventually(5*time.Second, func() bool {
		for _, l := range s.logLines() {
			msg, _ := l["msg"].(string)
			errText, _ := l["error"].(string)
			if msg == "token fetch failed" && strings.Contains(errText, "status 401") && strings.Contains(errText, "Invalid credentials") {
				return true
			}
		}
		return false
	})
	if !found {
		t.Errorf(`no "token fetch failed" log line with status 401 and "Invalid credentials"`)
	}
	for what, text := range map[string]string{"output": s.output(), "error body": string(r.body), "metrics": s.metrics()} {
		if strings.Contains(text, wrongSecret) {
			t.Errorf("the client secret appears in the %s", what)
		}
	}
	if n, _ := p.Calls(); n != 0 || p.Fetches() != 0 {
		t.Errorf("provider calls = %d, tokens issued = %d; want 0 and 0", n, p.Fetches())
	}
}

func TestSecretFileRotation(t *testing.T) {
	t.Parallel()
	p, srv := newTezPay(t, 0, nil)
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte("stale-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := tezPayEnv(srv.URL, "CLIENT_SECRET_FILE", secretFile, "TOKEN_WAIT", "1s")
	delete(env, "CLIENT_SECRET")
	s := startSidecar(t, env)
	c := newClient(t)
	checkTokenUnavailable(t, call(c, http.MethodGet, s.URL+fake.GetStatusPath, nil))

	// The Secret is rotated in place, as Kubernetes does: no restart needed.
	if err := os.WriteFile(secretFile, []byte(clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var last result
	if !eventually(20*time.Second, func() bool {
		last = call(c, http.MethodGet, s.URL+fake.GetStatusPath, nil)
		return last.status == http.StatusOK
	}) {
		t.Fatalf("after the secret file was rotated, GET get-status = %v, want 200", last)
	}
	if n := p.Fetches(); n != 1 {
		t.Errorf("tokens issued = %d, want 1", n)
	}
	if strings.Contains(s.output(), "stale-secret") {
		t.Errorf("the old secret appears in the output")
	}
}
