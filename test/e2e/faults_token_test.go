package e2e

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// tokenFault is one way the token endpoint fails.
type tokenFault struct {
	name   string
	answer *fake.Answer // the endpoint's answer during the fault, or
	net    fake.Fault   // what the network in front of it does
	// tls, if set, makes the endpoint HTTPS, and the fault divert its
	// connections to "plain" HTTP or to a server with an "untrusted"
	// certificate.
	tls   string
	hangs bool // fetches hang until TOKEN_TIMEOUT abandons them
	// wantLog is part of the error of the "token fetch failed" log lines:
	// proof that the fault happened as meant.
	wantLog string
}

// The settings of every token fault scenario: 6s tokens renewed at half
// their life, held until 4.5s (see staleAt); a fetch is abandoned after 2s,
// a request waits 1s at most for a token.
const (
	faultTTL          = 6 * time.Second
	faultTokenTimeout = 2 * time.Second
	faultTokenWait    = time.Second
)

// TestFaultTokenEndpoint breaks the token endpoint in each way right after
// the sidecar got its first token, until well after that token went stale,
// then heals it. Meanwhile the app sends a request every 100ms and /readyz is
// polled every 200ms. The sidecar must serve with its cached token while it is
// valid, answer 503 token_unavailable within TOKEN_WAIT and be unready only
// once it is not, recover by itself, and never send an expired token.
func TestFaultTokenEndpoint(t *testing.T) {
	t.Parallel()
	faults := []tokenFault{
		{name: "500", answer: &fake.Answer{Status: 500, Body: `{"detail":"Internal Server Error"}`}, wantLog: "status 500"},
		{name: "429 Retry-After 2s", answer: &fake.Answer{Status: 429, RetryAfter: 2 * time.Second, Body: `{"detail":"Too many requests"}`}, wantLog: "status 429"},
		{name: "connection reset", net: fake.Reset, wantLog: "connection reset by peer"},
		{name: "response cut mid-JSON", net: fake.Truncate(160), wantLog: "unexpected EOF"},
		{name: "truncated JSON", answer: &fake.Answer{Status: 200, Body: `{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6`}, wantLog: "malformed token response"},
		{name: "empty 200", answer: &fake.Answer{Status: 200}, wantLog: "malformed token response"},
		{name: "JSON without a token", answer: &fake.Answer{Status: 200, Body: `{"token_type":"bearer","expires_in":6}`}, wantLog: `has no "access_token"`},
		{name: "hang past TOKEN_TIMEOUT", net: fake.Blackhole, hangs: true, wantLog: "deadline exceeded"},
		// Headers within TOKEN_TIMEOUT, the body not: the timeout must
		// cover the body too.
		{name: "slow-drip bytes", net: fake.SlowDrip(8 * time.Millisecond), hangs: true, wantLog: "deadline exceeded"},
		{name: "TLS handshake with a plain HTTP server", tls: "plain", wantLog: "server gave HTTP response to HTTPS client"},
		{name: "TLS handshake with an untrusted certificate", tls: "untrusted", wantLog: "certificate signed by unknown authority"},
	}
	// The scenarios wait on timers, hardly on the CPU: they run at once
	// rather than -parallel (GOMAXPROCS) at a time.
	var wg sync.WaitGroup
	for _, tc := range faults {
		wg.Go(func() { t.Run(tc.name, func(t *testing.T) { testTokenFault(t, tc) }) })
	}
	wg.Wait()
}

func testTokenFault(t *testing.T, tc tokenFault) {
	p := fake.NewTezPay(clientID, clientSecret, faultTTL)
	trackTezPay(t, p)
	answers := fake.NewHTTPFaults(p.Handler(), fake.AuthenticatePath)
	plain := httptest.NewServer(answers) // the upstream, and the token endpoint unless tls
	t.Cleanup(plain.Close)
	endpoint, scheme := plain, "http"
	env := tezPayEnv(plain.URL, "RENEW_AT", "0.5",
		"TOKEN_TIMEOUT", faultTokenTimeout.String(), "TOKEN_WAIT", faultTokenWait.String())
	if tc.tls != "" {
		endpoint, scheme = httptest.NewTLSServer(answers), "https"
		t.Cleanup(endpoint.Close)
		env["UPSTREAM_CA_FILE"] = writeCA(t, endpoint)
		divert := plain
		if tc.tls == "untrusted" {
			divert = httptest.NewUnstartedServer(answers)
			divert.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			divert.Config.ErrorLog = log.New(io.Discard, "", 0) // each refused handshake
			divert.StartTLS()
			t.Cleanup(divert.Close)
		}
		tc.net = fake.Divert(divert.Listener.Addr().String())
	}
	network, err := fake.NewFaultProxy(endpoint.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { network.Close() })
	env["TOKEN_URL"] = scheme + "://" + network.Addr() + fake.AuthenticatePath

	s := startSidecar(t, env)
	s.waitReady(10 * time.Second)
	l := startLoad(t, s)
	faultAt := time.Now()
	if tc.answer != nil {
		answers.Set(*tc.answer)
	} else {
		network.Set(tc.net)
	}
	// The token the sidecar holds, and when it goes stale.
	var held []fetched
	if !eventually(5*time.Second, func() bool { held = s.tokensFetched(); return len(held) != 0 }) {
		t.Fatalf("no token fetched logged 5s after /readyz said ready")
	}
	staleAt := held[len(held)-1].staleAt()
	// The sidecar dates the token's end a moment after it logs the fetch:
	// past this, it surely holds no valid token.
	noneAfter := staleAt.Add(200 * time.Millisecond)
	if time.Until(staleAt) < time.Second {
		t.Fatalf("the held token goes stale in %s, want at least a second of the fault before: the start was too slow", time.Until(staleAt))
	}
	// The fault lasts until the sidecar has shown what it does without a
	// valid token: a request made after the token went stale got 503
	// token_unavailable and /readyz said 503; a hanging fetch was abandoned.
	noTokenShown := func() bool {
		return l.someRequest(func(r timedResult) bool {
			var e sidecarError
			return r.start.After(noneAfter) && r.status == http.StatusServiceUnavailable && json.Unmarshal(r.body, &e) == nil && e.Error == "token_unavailable"
		}) && l.someReadyz(func(r readySample) bool {
			return r.start.After(noneAfter) && r.status == http.StatusServiceUnavailable
		}) && (!tc.hangs || abandoned(network.Conns(), faultAt))
	}
	if !eventually(time.Until(staleAt.Add(15*time.Second)), noTokenShown) {
		t.Errorf("15s after the token went stale, no 503 token_unavailable for a request made after it, no /readyz 503, or (for a hanging fault) no fetch abandoned")
	}
	healAt := time.Now()
	atHeal := network.Conns()
	answers.Clear()
	network.Set(fake.Pass)
	var recovered time.Time
	if !eventually(15*time.Second, func() bool { recovered = l.firstOK(healAt); return !recovered.IsZero() }) {
		t.Errorf("no request succeeded within 15s after the endpoint healed")
	} else if !eventually(10*time.Second, func() bool { return l.someRequest(func(r timedResult) bool { return r.start.After(recovered) }) }) {
		t.Errorf("no request made after the recovery at %s finished within 10s", clock(recovered, faultAt))
	}
	reqs, readyz := l.stop()

	// Each request is judged by its whole span, so that a slow machine
	// cannot make a verdict wrong: one that ended before the token went
	// stale had it all along and must have succeeded; one that began after
	// it (and a moment more) and ended before the heal had none and must
	// have got a 503 within about TOKEN_WAIT; one that ended after the heal may have succeeded; one
	// that began after the recovery must have.
	firstFail := firstFailure(answers, network, faultAt)
	var valid, afterFail, noToken, noTokenOK, afterRecovery int
	var slowest503 time.Duration
	for _, r := range reqs {
		var e sidecarError
		is503 := r.status == http.StatusServiceUnavailable && json.Unmarshal(r.body, &e) == nil && e.Error == "token_unavailable"
		if is503 {
			slowest503 = max(slowest503, r.end.Sub(r.start))
		}
		switch {
		case !recovered.IsZero() && r.start.After(recovered):
			afterRecovery++
			if r.status != http.StatusOK {
				t.Errorf("request at %s, after the recovery at %s = %v, want 200", clock(r.start, faultAt), clock(recovered, faultAt), r.result)
			}
		case r.end.Before(staleAt):
			valid++
			if r.status != http.StatusOK {
				t.Errorf("request at %s–%s, the cached token valid until %s = %v, want 200", clock(r.start, faultAt), clock(r.end, faultAt), clock(staleAt, faultAt), r.result)
			} else if !firstFail.IsZero() && r.start.After(firstFail) {
				afterFail++
			}
		case r.start.After(noneAfter):
			noToken++
			switch {
			case is503:
			case r.status == http.StatusOK && r.end.After(healAt):
				noTokenOK++ // waited for a fetch due within TOKEN_WAIT, after the heal
			default:
				t.Errorf("request at %s–%s, no valid token = %v, want 503 token_unavailable", clock(r.start, faultAt), clock(r.end, faultAt), r.result)
			}
		default: // across the token's end
			// The fake's 401 for a token sent valid that arrived expired
			// is counted by checkNoStaleToken.
			late := r.status == http.StatusUnauthorized && strings.Contains(string(r.body), "Token has expired")
			if r.status != http.StatusOK && !is503 && !late {
				t.Errorf("request at %s–%s, as the token went stale = %v, want 200 or 503 token_unavailable", clock(r.start, faultAt), clock(r.end, faultAt), r.result)
			}
		}
	}
	if slowest503 > faultTokenWait+3*time.Second {
		t.Errorf("a 503 took %s with TOKEN_WAIT=%s, want about TOKEN_WAIT", slowest503, faultTokenWait)
	}
	if valid < 3 || noToken-noTokenOK < 1 || afterRecovery < 1 {
		t.Errorf("requests while the token was valid, 503s while none was, requests after the recovery = %d, %d, %d; want at least 3, 1, 1", valid, noToken-noTokenOK, afterRecovery)
	}
	for _, r := range readyz { // status 0: no answer within 2s, which says nothing
		switch {
		case r.end.Before(staleAt) && r.status == http.StatusServiceUnavailable:
			t.Errorf("/readyz at %s–%s, with a valid token = %d, want 200", clock(r.start, faultAt), clock(r.end, faultAt), r.status)
		case r.start.After(noneAfter) && r.end.Before(healAt) && r.status == http.StatusOK:
			t.Errorf("/readyz at %s–%s, without a valid token = %d, want 503", clock(r.start, faultAt), clock(r.end, faultAt), r.status)
		}
	}
	if got := s.adminStatus("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz after the recovery = %d, want 200", got)
	}
	if code, exited := s.waitExit(0); exited {
		t.Fatalf("authsidecar exited with %d", code)
	}

	// The fault happened as meant, and fetches failed because of it.
	failed := s.logged("token fetch failed")
	var fetchErrors []string
	for _, line := range failed {
		e, _ := line.fields["error"].(string)
		fetchErrors = append(fetchErrors, e)
	}
	if len(fetchErrors) == 0 || !strings.Contains(strings.Join(fetchErrors, "\n"), tc.wantLog) {
		t.Errorf("token fetch errors logged = %q, want one with %q", fetchErrors, tc.wantLog)
	}

	stale, late := checkNoStaleToken(t, p, reqs, held)
	figure := fmt.Sprintf("token endpoint %s: %d requests made while the cached token was valid all got 200 (%d of them after the renewal had failed); "+
		"%d made while none was got 503 token_unavailable, the slowest in %.2fs (%d more waited for the fetch after the heal: 200); /readyz 503 only then; "+
		"%d failed fetches; recovered %.2fs after the endpoint healed; %d stale tokens sent, %d arrived after expiry",
		tc.name, valid, afterFail, noToken-noTokenOK, slowest503.Seconds(), noTokenOK, len(fetchErrors), recovered.Sub(healAt).Seconds(), stale, late)
	if tc.answer != nil && tc.answer.RetryAfter > 0 {
		figure += "; " + checkRetryAfter(t, failed, answers.Arrivals(), tc.answer.RetryAfter)
	}
	if tc.hangs {
		figure += "; " + checkAbandoned(t, atHeal, faultAt, healAt)
	}
	t.Logf("FIGURE: %s", figure)
}

// fetched is a token the sidecar logged as fetched: when, and its expiry.
type fetched struct{ at, expiry time.Time }

// staleAt is when the sidecar stops handing the token out, as the README
// says: 10s before its expiry, or a quarter of its life for tokens shorter
// than 40s.
func (f fetched) staleAt() time.Time {
	return f.expiry.Add(-min(10*time.Second, f.expiry.Sub(f.at)/4))
}

// tokensFetched returns the tokens the sidecar logged as fetched so far.
func (s *sidecar) tokensFetched() []fetched {
	var out []fetched
	for _, l := range s.logged("token fetched") {
		tok, _ := l.fields["token"].(map[string]any)
		text, _ := tok["expiry"].(string)
		if exp, err := time.Parse(time.RFC3339Nano, text); err == nil {
			out = append(out, fetched{l.at, exp})
		}
	}
	return out
}

// logLine is one of the sidecar's log lines.
type logLine struct {
	at     time.Time
	fields map[string]any
}

// msgForcedRefresh is the message the sidecar logs as it drops a token the
// upstream rejected (a forced refresh), after it noted the time for
// FORCED_REFRESH_INTERVAL.
const msgForcedRefresh = "token rejected by upstream: refreshing"

// logged returns the sidecar's log lines with the message msg.
func (s *sidecar) logged(msg string) []logLine {
	var out []logLine
	for _, l := range s.logLines() {
		text, _ := l["time"].(string)
		at, err := time.Parse(time.RFC3339Nano, text)
		if err == nil && l["msg"] == msg {
			out = append(out, logLine{at, l})
		}
	}
	return out
}

// checkRetryAfter checks that after every 429 the sidecar read (logged as a
// failed fetch), it waited the Retry-After before its next token request,
// and describes the waits. A 429 the sidecar never read, its fetch having
// timed out first, binds nothing.
func checkRetryAfter(t *testing.T, failed []logLine, arrivals []fake.Arrival, ra time.Duration) string {
	t.Helper()
	var waits []string
	for _, f := range failed {
		if e, _ := f.fields["error"].(string); !strings.Contains(e, "status 429") {
			continue
		}
		text, _ := f.fields["retry_in"].(string)
		if d, err := time.ParseDuration(text); err != nil || d < ra {
			t.Errorf("after a 429 with Retry-After: %d, retry_in = %q, want at least %s", int(ra.Seconds()), text, ra)
		}
		for _, a := range arrivals {
			if a.At.After(f.at) {
				gap := a.At.Sub(f.at)
				waits = append(waits, fmt.Sprintf("%.2fs", gap.Seconds()))
				if gap < ra {
					t.Errorf("a token request came %s after the sidecar read a 429 with Retry-After: %d, want no sooner than %s", gap, int(ra.Seconds()), ra)
				}
				break
			}
		}
	}
	if len(waits) == 0 {
		t.Errorf("no token request followed a 429 the sidecar read")
	}
	return fmt.Sprintf("next token request %s after each 429 read (Retry-After: %d)", strings.Join(waits, ", "), int(ra.Seconds()))
}

// checkAbandoned checks, from the connections through the faulty network
// at the moment of the heal, that no fetch hung much past TOKEN_TIMEOUT, and
// describes when the fetches of the fault were abandoned.
func checkAbandoned(t *testing.T, conns []fake.ConnRecord, from, heal time.Time) string {
	t.Helper()
	limit := faultTokenTimeout + 2*time.Second // a slow machine's slack
	var shortest, longest time.Duration
	n := 0
	for _, c := range conns {
		switch {
		case c.Opened.Before(from):
		case c.Closed.IsZero():
			if age := heal.Sub(c.Opened); age > limit {
				t.Errorf("a fetch through the hanging network was still open after %s, with TOKEN_TIMEOUT=%s", age, faultTokenTimeout)
			}
		default:
			d := c.Closed.Sub(c.Opened)
			if n == 0 || d < shortest {
				shortest = d
			}
			longest = max(longest, d)
			n++
			if d > limit {
				t.Errorf("a fetch through the hanging network was abandoned after %s, with TOKEN_TIMEOUT=%s", d, faultTokenTimeout)
			}
		}
	}
	if n == 0 {
		t.Errorf("no fetch was abandoned during the fault")
	}
	return fmt.Sprintf("fetches abandoned (%d) after %.2f–%.2fs (TOKEN_TIMEOUT=%s)", n, shortest.Seconds(), longest.Seconds(), faultTokenTimeout)
}

// abandoned reports whether a connection through the faulty network opened
// after from has been closed: a fetch that hung was given up.
func abandoned(conns []fake.ConnRecord, from time.Time) bool {
	for _, c := range conns {
		if !c.Opened.Before(from) && !c.Closed.IsZero() {
			return true
		}
	}
	return false
}

// firstFailure is when the first request of the fault reached the endpoint
// or the network in front of it.
func firstFailure(answers *fake.HTTPFaults, network *fake.FaultProxy, from time.Time) time.Time {
	var first time.Time
	consider := func(at time.Time) {
		if at.After(from) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	for _, a := range answers.Arrivals() {
		if a.Faulted {
			consider(a.At)
		}
	}
	for _, c := range network.Conns() {
		if c.Fault != fake.Pass.String() {
			consider(c.Opened)
		}
	}
	return first
}

// checkNoStaleToken fails the test if the fake TezPay received a token it
// did not issue, or a token the sidecar had fetched (held) on a request the
// app made after the sidecar held it stale. It returns how many tokens
// were sent stale, and how many arrived after their expiry: on a machine so
// slow that a request took longer than the margin the sidecar keeps (see
// staleAt) to go from the sidecar to the fake, a token sent valid may arrive
// expired; those are reported, not failed.
func checkNoStaleToken(t *testing.T, p *fake.TezPay, reqs []timedResult, held []fetched) (stale, late int) {
	t.Helper()
	started := map[string]time.Time{}
	for _, r := range reqs {
		started[r.uri] = r.start
	}
	for _, u := range p.Uses() {
		if u.Expiry.IsZero() {
			t.Errorf("the upstream received at %s a token the fake did not issue", u.At.Format("15:04:05.000"))
			continue
		}
		if !u.At.Before(u.Expiry) {
			late++
		}
		// The sidecar's own view of this token: the fetch it logged with
		// the nearest expiry at or after the fake's.
		var mine fetched
		for _, f := range held {
			if !f.expiry.Before(u.Expiry) && (mine.expiry.IsZero() || f.expiry.Before(mine.expiry)) {
				mine = f
			}
		}
		if start, ok := started[u.URI]; ok && !mine.expiry.IsZero() && start.After(mine.staleAt()) {
			stale++
			t.Errorf("a request the app made at %s carried a token the sidecar held stale from %s", start.Format("15:04:05.000"), mine.staleAt().Format("15:04:05.000"))
		}
	}
	if _, rejected := p.Calls(); rejected != late {
		t.Errorf("the upstream rejected %d requests, want only those whose token arrived late (%d)", rejected, late)
	}
	if late != 0 {
		t.Logf("%d tokens sent before they went stale arrived after their expiry: the machine was slower than the sidecar's margin", late)
	}
	return stale, late
}

// writeCA writes the certificate of a TLS test server to a PEM file, for
// UPSTREAM_CA_FILE (which the token client uses too).
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// selfSigned returns a certificate for 127.0.0.1 that nothing trusts.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := fake.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// clock is at as seconds since from, for messages.
func clock(at, from time.Time) string { return fmt.Sprintf("+%.2fs", at.Sub(from).Seconds()) }

// timedResult is one request of a load: its URI, what it got, when it
// started and ended.
type timedResult struct {
	result
	uri        string
	start, end time.Time
}

// readySample is one /readyz answer, and when it was asked and answered.
type readySample struct {
	start, end time.Time
	status     int
}

// load sends the app's requests at a steady pace (one every 100ms, each in
// its own goroutine, so that a slow one does not hold the others) and polls
// /readyz every 200ms, recording everything.
type load struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	reqs   []timedResult
	readyz []readySample
}

func startLoad(t *testing.T, s *sidecar) *load {
	l := &load{done: make(chan struct{})}
	c := newClient(t)
	l.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			l.wg.Go(func() {
				uri := fmt.Sprintf("%s?transaction_id=L%d", fake.GetStatusPath, i)
				start := time.Now()
				r := call(c, http.MethodGet, s.URL+uri, nil)
				l.mu.Lock()
				l.reqs = append(l.reqs, timedResult{r, uri, start, time.Now()})
				l.mu.Unlock()
			})
		}
	})
	l.wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			start := time.Now()
			status := s.adminStatus("/readyz")
			l.mu.Lock()
			l.readyz = append(l.readyz, readySample{start, time.Now(), status})
			l.mu.Unlock()
		}
	})
	t.Cleanup(func() { l.stop() })
	return l
}

// firstOK is when the first request started after from that succeeded
// ended; zero if none has yet.
func (l *load) firstOK(from time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, r := range l.reqs {
		if r.status == http.StatusOK && r.start.After(from) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

// someRequest reports whether a finished request of the load matches.
func (l *load) someRequest(match func(timedResult) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.reqs {
		if match(r) {
			return true
		}
	}
	return false
}

// someReadyz reports whether a /readyz answer of the load matches.
func (l *load) someReadyz(match func(readySample) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.readyz {
		if match(r) {
			return true
		}
	}
	return false
}

// stop ends the load, waits for its requests and returns what it recorded.
func (l *load) stop() ([]timedResult, []readySample) {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reqs, l.readyz
}
