package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, secret string }{
		{"alphanumeric secret", clientSecret},
		// Generated secrets hold symbols, which JSON and URL encoding change:
		// the echoed secret is then no longer the literal one.
		{"secret with symbols", `e2e&S3cr3t<Qx7>+/="Vb2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testSecretsNeverLeak(t, tc.secret)
		})
	}
}

// testSecretsNeverLeak runs fetch, replay and failure scenarios with debug
// logging and looks for the secret and the tokens everywhere.
func testSecretsNeverLeak(t *testing.T, secret string) {
	// When echo is set, the token endpoint refuses and echoes the request,
	// and so the client secret, back in its message, as careless providers do.
	var echo atomic.Bool
	p, srv := newTezPayFor(t, secret, 0, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == fake.AuthenticatePath && echo.Load() {
				req, _ := io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(map[string]string{"detail": "Invalid credentials: " + string(req)})
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	s := startSidecar(t, tezPayEnv(srv.URL, "CLIENT_SECRET", secret, "LOG_LEVEL", "debug", "TOKEN_WAIT", "1s", "FORCED_REFRESH_INTERVAL", "1ms"))
	s.waitReady(10 * time.Second)
	c := newClient(t)
	var responses []result
	send := func(method, path string, body []byte, want int) result {
		t.Helper()
		r := call(c, method, s.URL+path, body)
		responses = append(responses, r)
		if r.status != want {
			t.Errorf("%s %s = %v, want %d", method, path, r, want)
		}
		return r
	}

	// Fetch.
	send(http.MethodPost, fake.ProcessPaymentPath, payment("PAY1"), http.StatusOK)
	send(http.MethodGet, fake.GetStatusPath+"?transaction_id=TXN1", nil, http.StatusOK)
	// Replay with a new token.
	p.RevokeAll()
	send(http.MethodPost, fake.ProcessPaymentPath, payment("PAY2"), http.StatusOK)
	if n := p.Fetches(); n != 2 {
		t.Fatalf("token fetches after a replay = %d, want 2", n)
	}
	// Failure: the token is revoked and the provider refuses a new one. The
	// replay finds no token and the app gets the upstream's 401; then the
	// sidecar answers 503 itself, quoting the provider's (echoing) message.
	echo.Store(true)
	p.RevokeAll()
	// Let FORCED_REFRESH_INTERVAL (1ms) pass since the last forced refresh,
	// as logged: within it the sidecar rightly refuses to drop the new token
	// again.
	forced := s.logged(msgForcedRefresh)
	if len(forced) == 0 {
		t.Fatalf("no %q logged after the replay", msgForcedRefresh)
	}
	lastForced := forced[len(forced)-1].at
	waitUntil(t, time.Second, func() bool { return time.Since(lastForced) > time.Millisecond }, "FORCED_REFRESH_INTERVAL since the last forced refresh")
	send(http.MethodPost, fake.ProcessPaymentPath, payment("PAY3"), http.StatusUnauthorized)
	r := send(http.MethodGet, fake.GetStatusPath+"?transaction_id=TXN3", nil, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), "Invalid credentials") {
		t.Errorf("503 body = %s, want the provider's message (so that an echoed secret would show)", r.body)
	}

	jsonSecret, _ := json.Marshal(secret)
	secrets := map[string]string{
		"client secret":              secret,
		"JSON-escaped client secret": string(jsonSecret[1 : len(jsonSecret)-1]),
		"URL-encoded client secret":  url.QueryEscape(secret),
	}
	for i, tok := range p.Issued() {
		secrets[fmt.Sprintf("token #%d", i)] = tok
		// A part of a JWT is a leak too: its payload holds the client secret.
		parts := strings.Split(tok, ".")
		secrets[fmt.Sprintf("payload of token #%d", i)] = parts[1]
		secrets[fmt.Sprintf("signature of token #%d", i)] = parts[2]
	}
	places := map[string]string{"process output": s.output(), "/metrics": s.metrics()}
	for i, r := range responses {
		var h strings.Builder
		r.header.Write(&h)
		places[fmt.Sprintf("response #%d", i)] = h.String() + string(r.body)
		places[fmt.Sprintf("response #%d, decoded", i)] = jsonStrings(r.body)
	}
	places["process output, decoded"] = jsonStrings([]byte(s.output()))
	for what, secret := range secrets {
		for where, text := range places {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("the %s appears in the %s: …%s…", what, where, text[max(0, i-60):min(len(text), i+len(secret)+10)])
			}
		}
	}
	// The scenarios did run: tokens were fetched and refused, and logged.
	for _, msg := range []string{`"msg":"token fetched"`, `"msg":"token rejected by upstream: refreshing"`, `"msg":"token fetch failed"`} {
		if !strings.Contains(s.output(), msg) {
			t.Errorf("output lacks %s", msg)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	p, srv := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(srv.URL))
	s.waitReady(10 * time.Second)
	c := newClient(t)
	started := time.Now()

	for range 3 {
		if r := call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN1", nil); r.status != http.StatusOK {
			t.Fatalf("GET get-status = %v, want 200", r)
		}
	}
	if r := call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment("PAY1")); r.status != http.StatusOK {
		t.Fatalf("POST process-payment = %v, want 200", r)
	}
	// Tokens that worked and are then rejected were revoked: each is
	// refreshed at once and the request replayed, three times within
	// FORCED_REFRESH_INTERVAL (10s); the fourth is passed on, not replayed.
	for i, txn := range []string{"TXN2", "TXN3", "TXN4"} {
		p.RevokeAll()
		if r := call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id="+txn, nil); r.status != http.StatusOK {
			t.Fatalf("GET get-status with revoked token %d = %v, want 200", i+1, r)
		}
	}
	p.RevokeAll()
	if r := call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN5", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("GET get-status with a fourth revoked token within FORCED_REFRESH_INTERVAL = %v, want the upstream's 401", r)
	}

	// A request the sidecar refuses itself.
	if r := call(c, http.MethodGet, s.URL+"/api/v1/../../admin", nil); r.status != http.StatusBadRequest {
		t.Fatalf("GET with dot segments = %v, want 400", r)
	}

	want := map[string]float64{
		`authsidecar_token_fetches_total{result="success",route="default"}`:    4,
		`authsidecar_token_fetches_total{result="error",route="default"}`:      0,
		`authsidecar_token_fetch_duration_seconds_count`:                       4,
		`authsidecar_token_forced_refreshes_total`:                             3,
		`authsidecar_replays_total{result="success",route="default"}`:          3,
		`authsidecar_replays_total{result="rejected",route="default"}`:         0,
		`authsidecar_replays_total{result="error",route="default"}`:            0,
		`authsidecar_replays_total{result="too_large",route="default"}`:        0,
		`authsidecar_replays_total{result="rate_limited",route="default"}`:     1,
		`authsidecar_requests_total{code="200",method="get",route="default"}`:  6,
		`authsidecar_requests_total{code="200",method="post",route="default"}`: 1,
		`authsidecar_requests_total{code="401",method="get",route="default"}`:  1,
		`authsidecar_requests_total{code="400",method="get",route="default"}`:  1,
		`authsidecar_requests_total`:                                           9,
		`authsidecar_request_duration_seconds_count`:                           9,
		`authsidecar_errors_total{reason="bad_request",route="default"}`:       1,
		`authsidecar_errors_total`:                                             1,
		`authsidecar_upstream_responses_total{code="200",route="default"}`:     7,
		`authsidecar_upstream_responses_total{code="401",route="default"}`:     4,
	}
	var m string
	mismatch := func() []string {
		m = s.metrics()
		var bad []string
		for series, v := range want {
			if got, ok := metric(m, series); !ok || got != v {
				bad = append(bad, series)
			}
		}
		return bad
	}
	// Counters are updated as responses finish: allow them a moment.
	eventually(5*time.Second, func() bool { return len(mismatch()) == 0 })
	for _, series := range mismatch() {
		got, ok := metric(m, series)
		t.Errorf("%s = %v (present: %v), want %v", series, got, ok, want[series])
	}

	expiry, _ := metric(m, "authsidecar_token_expiry_timestamp_seconds")
	if lo, hi := started.Add(12*time.Hour-time.Minute), time.Now().Add(12*time.Hour+time.Minute); expiry < float64(lo.Unix()) || expiry > float64(hi.Unix()) {
		t.Errorf("authsidecar_token_expiry_timestamp_seconds = %v, want about now + 12h (%d)", expiry, hi.Unix()-60)
	}
	if v, _ := metric(m, "go_goroutines"); v <= 0 {
		t.Errorf("go_goroutines = %v, want > 0", v)
	}
	if v, _ := metric(m, "process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v, want > 0", v)
	}
	// /proc dates a process from the boot time, in whole seconds: allow slack.
	if v, _ := metric(m, "process_start_time_seconds"); v < float64(started.Add(-5*time.Minute).Unix()) || v > float64(time.Now().Unix()+2) {
		t.Errorf("process_start_time_seconds = %v, want a moment ago", v)
	}

	// Every family has help and a type; no label value is a path or a token.
	families := regexp.MustCompile(`(?m)^# TYPE (authsidecar_\w+) (\w+)$`).FindAllStringSubmatch(m, -1)
	if len(families) < 9 {
		t.Errorf("%d authsidecar_ families exposed, want 9", len(families))
	}
	for _, f := range families {
		if !regexp.MustCompile(`(?m)^# HELP ` + f[1] + ` \S`).MatchString(m) {
			t.Errorf("%s has no HELP", f[1])
		}
	}
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "authsidecar_") && (strings.Contains(line, "/api/") || strings.Contains(line, "TXN") || strings.Contains(line, "eyJ")) {
			t.Errorf("metric with a path, an id or a token in a label: %s", line)
		}
		// Every series says its route: "default" without ROUTES.
		if strings.HasPrefix(line, "authsidecar_") && !strings.Contains(line, `route="default"`) {
			t.Errorf("series without route=\"default\": %s", line)
		}
	}
}

// jsonStrings returns the string values of the JSON documents in text, one
// per line, decoded: what a reader of a log or an error body sees once its
// JSON escaping is undone.
func jsonStrings(text []byte) string {
	var b strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
			b.WriteByte('\n')
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, line := range strings.Split(string(text), "\n") {
		var v any
		if json.Unmarshal([]byte(line), &v) == nil {
			walk(v)
		}
	}
	return b.String()
}
