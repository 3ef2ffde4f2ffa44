package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// Compile-time checks: the cache and the shared cache can report to the metrics.
var (
	_ tokens.Observer = (*metrics.Metrics)(nil)
	_ shared.Observer = (*metrics.Metrics)(nil)
)

var allNames = []string{
	"authsidecar_customer_token_fetches_total",
	"authsidecar_errors_total",
	"authsidecar_replays_total",
	"authsidecar_request_duration_seconds",
	"authsidecar_requests_total",
	"authsidecar_sdk_auth_total",
	"authsidecar_shared_cache_lock_waits_total",
	"authsidecar_shared_cache_lookups_total",
	"authsidecar_tenant_token_fetches_total",
	"authsidecar_token_expiry_timestamp_seconds",
	"authsidecar_token_fetch_duration_seconds",
	"authsidecar_token_fetches_total",
	"authsidecar_token_forced_refreshes_total",
	"authsidecar_upstream_responses_total",
}

// gather returns the families of g, by name.
func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather() error = %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// touchAll makes one series of every labelled collector, so that every
// family shows up in a scrape.
func touchAll(m *metrics.Metrics) {
	m.Requests.WithLabelValues("get", "200")
	m.RequestDuration.Observe(0.01)
	m.UpstreamResponses.WithLabelValues("200")
	m.Errors.WithLabelValues("bad_request")
}

func TestNewRegistersEveryMetricWithHelp(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	touchAll(m)
	mfs := gather(t, reg)
	var names []string
	for name, mf := range mfs {
		names = append(names, name)
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("%s has no Help text", name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, allNames) {
		t.Errorf("registered metrics = %q, want %q", names, allNames)
	}
	wantType := map[string]dto.MetricType{
		"authsidecar_customer_token_fetches_total":   dto.MetricType_COUNTER,
		"authsidecar_errors_total":                   dto.MetricType_COUNTER,
		"authsidecar_replays_total":                  dto.MetricType_COUNTER,
		"authsidecar_request_duration_seconds":       dto.MetricType_HISTOGRAM,
		"authsidecar_requests_total":                 dto.MetricType_COUNTER,
		"authsidecar_sdk_auth_total":                 dto.MetricType_COUNTER,
		"authsidecar_shared_cache_lock_waits_total":  dto.MetricType_COUNTER,
		"authsidecar_tenant_token_fetches_total":     dto.MetricType_COUNTER,
		"authsidecar_shared_cache_lookups_total":     dto.MetricType_COUNTER,
		"authsidecar_token_expiry_timestamp_seconds": dto.MetricType_GAUGE,
		"authsidecar_token_fetch_duration_seconds":   dto.MetricType_HISTOGRAM,
		"authsidecar_token_fetches_total":            dto.MetricType_COUNTER,
		"authsidecar_token_forced_refreshes_total":   dto.MetricType_COUNTER,
		"authsidecar_upstream_responses_total":       dto.MetricType_COUNTER,
	}
	for name, want := range wantType {
		if mf, ok := mfs[name]; ok && mf.GetType() != want {
			t.Errorf("%s type = %v, want %v", name, mf.GetType(), want)
		}
	}
	// promlint checks Help text, units, _total suffixes and the like.
	problems, err := testutil.GatherAndLint(reg, names...)
	if err != nil {
		t.Fatalf("GatherAndLint() error = %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewUsesOnlyTheGivenRegistry(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	ma, mb := metrics.New(a), metrics.New(b) // a second New must not clash
	ma.Error("bad_request")
	if n, err := testutil.GatherAndCount(b, "authsidecar_errors_total"); err != nil || n != 0 {
		t.Errorf("registry b shows %d authsidecar_errors_total series (error %v) after an error counted on a, want none", n, err)
	}
	mb.TokenForcedRefresh()
	if got := testutil.ToFloat64(ma.ForcedRefreshes); got != 0 {
		t.Errorf("registry a forced refreshes = %v, want 0", got)
	}
	for name := range gather(t, prometheus.DefaultGatherer) {
		if strings.HasPrefix(name, "authsidecar_") {
			t.Errorf("%s is on the default registry, want only on the given one", name)
		}
	}
}

func TestNewStartsWithKnownSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	// Result labels exist at zero from the start, so that rate() works on
	// the first increment; the other families wait for their first series.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_customer_token_fetches_total Fetches of per-customer tokens (TOKEN_SOURCE=juspay-customer), by result (success, error). The single-token metrics (authsidecar_token_fetches_total, authsidecar_token_expiry_timestamp_seconds) stay 0 with such a source.
		# TYPE authsidecar_customer_token_fetches_total counter
		authsidecar_customer_token_fetches_total{result="error",route="default"} 0
		authsidecar_customer_token_fetches_total{result="success",route="default"} 0
		# HELP authsidecar_replays_total Requests whose token the upstream rejected, by what followed (success, rejected, error, too_large, rate_limited).
		# TYPE authsidecar_replays_total counter
		authsidecar_replays_total{result="error",route="default"} 0
		authsidecar_replays_total{result="rate_limited",route="default"} 0
		authsidecar_replays_total{result="rejected",route="default"} 0
		authsidecar_replays_total{result="success",route="default"} 0
		authsidecar_replays_total{result="too_large",route="default"} 0
		# HELP authsidecar_sdk_auth_total Requests to the Axepta mobile-SDK authentication endpoint, each registering one fresh AuthToken, by result (ok, failed, unreachable, timeout, busy, bad_request, canceled).
		# TYPE authsidecar_sdk_auth_total counter
		authsidecar_sdk_auth_total{result="bad_request",route="default"} 0
		authsidecar_sdk_auth_total{result="busy",route="default"} 0
		authsidecar_sdk_auth_total{result="canceled",route="default"} 0
		authsidecar_sdk_auth_total{result="failed",route="default"} 0
		authsidecar_sdk_auth_total{result="ok",route="default"} 0
		authsidecar_sdk_auth_total{result="timeout",route="default"} 0
		authsidecar_sdk_auth_total{result="unreachable",route="default"} 0
		# HELP authsidecar_shared_cache_lock_waits_total Renewals that waited for another sidecar's fetch, which held the fleet's lock.
		# TYPE authsidecar_shared_cache_lock_waits_total counter
		authsidecar_shared_cache_lock_waits_total{route="default"} 0
		# HELP authsidecar_shared_cache_lookups_total Tokens obtained with the shared cache on, by where they came from: hit (another sidecar fetched it), miss (fetched here for the fleet), fallback (fetched here alone: Redis unusable).
		# TYPE authsidecar_shared_cache_lookups_total counter
		authsidecar_shared_cache_lookups_total{result="fallback",route="default"} 0
		authsidecar_shared_cache_lookups_total{result="hit",route="default"} 0
		authsidecar_shared_cache_lookups_total{result="miss",route="default"} 0
		# HELP authsidecar_tenant_token_fetches_total Fetches of tenants' tokens (TENANTS_DIR), of their customers' with juspay-customer, by result (success, error); which tenant's is in the log only. The single-token metrics stay 0 for them.
		# TYPE authsidecar_tenant_token_fetches_total counter
		authsidecar_tenant_token_fetches_total{result="error",route="default"} 0
		authsidecar_tenant_token_fetches_total{result="success",route="default"} 0
		# HELP authsidecar_token_expiry_timestamp_seconds Unix time at which the current token expires; 0 before the first token.
		# TYPE authsidecar_token_expiry_timestamp_seconds gauge
		authsidecar_token_expiry_timestamp_seconds{route="default"} 0
		# HELP authsidecar_token_fetches_total Token fetches by renewals, by result (success, error): from the provider, or with the shared cache on, from the provider or the fleet (see authsidecar_shared_cache_lookups_total).
		# TYPE authsidecar_token_fetches_total counter
		authsidecar_token_fetches_total{result="error",route="default"} 0
		authsidecar_token_fetches_total{result="success",route="default"} 0
		# HELP authsidecar_token_forced_refreshes_total Tokens dropped because the upstream rejected them.
		# TYPE authsidecar_token_forced_refreshes_total counter
		authsidecar_token_forced_refreshes_total{route="default"} 0
		`), slices.DeleteFunc(slices.Clone(allNames), func(n string) bool { return strings.HasSuffix(n, "_duration_seconds") })...); err != nil {
		t.Errorf("exposition after New: %v", err)
	}
	// Both histograms have no label but route: one empty series each from
	// the start.
	mfs := gather(t, reg)
	for _, name := range []string{"authsidecar_token_fetch_duration_seconds", "authsidecar_request_duration_seconds"} {
		if h := mfs[name].GetMetric(); len(h) != 1 || h[0].GetHistogram().GetSampleCount() != 0 {
			t.Errorf("%s = %v, want one empty histogram", name, h)
		}
	}
}

func TestTokenFetched(t *testing.T) {
	expiry := time.Unix(1700000000, 123_000_000)
	later := time.Unix(1700003600, 500_000_000)
	type fetch struct {
		d   time.Duration
		tok *tokens.Token
		err error
	}
	tests := []struct {
		name        string
		fetches     []fetch
		wantSuccess float64
		wantError   float64
		wantExpiry  float64
		wantCount   uint64
		wantSum     float64
	}{
		{
			name:        "success",
			fetches:     []fetch{{d: 250 * time.Millisecond, tok: &tokens.Token{Value: "v", Expiry: expiry}}},
			wantSuccess: 1, wantExpiry: 1700000000.123, wantCount: 1, wantSum: 0.25,
		},
		{
			name:      "error",
			fetches:   []fetch{{d: 2 * time.Second, err: errors.New("provider down")}},
			wantError: 1, wantExpiry: 0, wantCount: 1, wantSum: 2,
		},
		{
			name: "error keeps the last expiry",
			fetches: []fetch{
				{d: time.Second, tok: &tokens.Token{Value: "v", Expiry: expiry}},
				{d: time.Second, err: errors.New("provider down")},
			},
			wantSuccess: 1, wantError: 1, wantExpiry: 1700000000.123, wantCount: 2, wantSum: 2,
		},
		{
			name: "newest token's expiry",
			fetches: []fetch{
				{d: time.Second, tok: &tokens.Token{Value: "v1", Expiry: expiry}},
				{d: time.Second, tok: &tokens.Token{Value: "v2", Expiry: later}},
			},
			wantSuccess: 2, wantExpiry: 1700003600.5, wantCount: 2, wantSum: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := metrics.New(reg)
			var o tokens.Observer = m
			for _, f := range tc.fetches {
				o.TokenFetched(f.d, f.tok, f.err)
			}
			if v := testutil.ToFloat64(m.TokenFetches.WithLabelValues("success")); v != tc.wantSuccess {
				t.Errorf(`authsidecar_token_fetches_total{result="success"} = %v, want %v`, v, tc.wantSuccess)
			}
			if v := testutil.ToFloat64(m.TokenFetches.WithLabelValues("error")); v != tc.wantError {
				t.Errorf(`authsidecar_token_fetches_total{result="error"} = %v, want %v`, v, tc.wantError)
			}
			if v := testutil.ToFloat64(m.TokenExpiry); v != tc.wantExpiry {
				t.Errorf("authsidecar_token_expiry_timestamp_seconds = %v, want %v", v, tc.wantExpiry)
			}
			h := gather(t, reg)["authsidecar_token_fetch_duration_seconds"].GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != tc.wantCount || h.GetSampleSum() != tc.wantSum {
				t.Errorf("authsidecar_token_fetch_duration_seconds count, sum = %d, %v, want %d, %v", h.GetSampleCount(), h.GetSampleSum(), tc.wantCount, tc.wantSum)
			}
			if n := testutil.CollectAndCount(m.TokenFetches); n != 2 {
				t.Errorf("authsidecar_token_fetches_total has %d series, want 2", n)
			}
		})
	}
}

func TestCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.TokenForcedRefresh()
	m.TokenForcedRefresh()
	for _, r := range []string{metrics.ReplaySuccess, metrics.ReplaySuccess, metrics.ReplayRejected, metrics.ReplayError, metrics.ReplayTooLarge, metrics.ReplayRateLimited, metrics.ReplayRateLimited, metrics.ReplayRateLimited} {
		m.Replay(r)
	}
	m.Error("token_unavailable")
	m.Error("upstream_timeout")
	m.Error("upstream_timeout")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_errors_total Error responses made by the sidecar itself, by reason.
		# TYPE authsidecar_errors_total counter
		authsidecar_errors_total{reason="token_unavailable",route="default"} 1
		authsidecar_errors_total{reason="upstream_timeout",route="default"} 2
		# HELP authsidecar_replays_total Requests whose token the upstream rejected, by what followed (success, rejected, error, too_large, rate_limited).
		# TYPE authsidecar_replays_total counter
		authsidecar_replays_total{result="error",route="default"} 1
		authsidecar_replays_total{result="rate_limited",route="default"} 3
		authsidecar_replays_total{result="rejected",route="default"} 1
		authsidecar_replays_total{result="success",route="default"} 2
		authsidecar_replays_total{result="too_large",route="default"} 1
		# HELP authsidecar_token_forced_refreshes_total Tokens dropped because the upstream rejected them.
		# TYPE authsidecar_token_forced_refreshes_total counter
		authsidecar_token_forced_refreshes_total{route="default"} 2
		`), "authsidecar_errors_total", "authsidecar_replays_total", "authsidecar_token_forced_refreshes_total"); err != nil {
		t.Errorf("exposition after the counts: %v", err)
	}
}

func TestReplayResultsAreTheDocumentedLabels(t *testing.T) {
	got := []string{metrics.ReplaySuccess, metrics.ReplayRejected, metrics.ReplayError, metrics.ReplayTooLarge, metrics.ReplayRateLimited}
	want := []string{"success", "rejected", "error", "too_large", "rate_limited"}
	if !slices.Equal(got, want) {
		t.Errorf("replay results = %q, want %q", got, want)
	}
}

func TestSDKAuth(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	for _, r := range []string{metrics.SDKAuthOK, metrics.SDKAuthOK, metrics.SDKAuthOK, metrics.SDKAuthFailed, metrics.SDKAuthBusy, metrics.SDKAuthBusy, metrics.SDKAuthTimeout} {
		m.SDKAuth(r)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_sdk_auth_total Requests to the Axepta mobile-SDK authentication endpoint, each registering one fresh AuthToken, by result (ok, failed, unreachable, timeout, busy, bad_request, canceled).
		# TYPE authsidecar_sdk_auth_total counter
		authsidecar_sdk_auth_total{result="bad_request",route="default"} 0
		authsidecar_sdk_auth_total{result="busy",route="default"} 2
		authsidecar_sdk_auth_total{result="canceled",route="default"} 0
		authsidecar_sdk_auth_total{result="failed",route="default"} 1
		authsidecar_sdk_auth_total{result="ok",route="default"} 3
		authsidecar_sdk_auth_total{result="timeout",route="default"} 1
		authsidecar_sdk_auth_total{result="unreachable",route="default"} 0
		`), "authsidecar_sdk_auth_total"); err != nil {
		t.Errorf("exposition after the SDK authentications: %v", err)
	}
	if got := testutil.ToFloat64(m.SDKAuths.WithLabelValues(metrics.SDKAuthOK)); got != 3 {
		t.Errorf(`authsidecar_sdk_auth_total{result="ok"} = %v, want 3`, got)
	}
}

func TestSDKAuthResultsAreTheDocumentedLabels(t *testing.T) {
	got := []string{metrics.SDKAuthOK, metrics.SDKAuthFailed, metrics.SDKAuthUnreachable, metrics.SDKAuthTimeout, metrics.SDKAuthBusy, metrics.SDKAuthBadRequest, metrics.SDKAuthCanceled}
	want := []string{"ok", "failed", "unreachable", "timeout", "busy", "bad_request", "canceled"}
	if !slices.Equal(got, want) {
		t.Errorf("SDK auth results = %q, want %q", got, want)
	}
}

func TestInstrumentHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := m.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
		case "/silent": // writes nothing: 200
		default:
			io.WriteString(w, "ok")
		}
	}))
	tests := []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{http.MethodGet, "/teapot", 418, "short and stout"},
		{http.MethodGet, "/x", 200, "ok"},
		{http.MethodPost, "/x", 200, "ok"},
		{http.MethodPost, "/y", 200, "ok"},
		{http.MethodDelete, "/silent", 200, ""},
		{"FROB", "/x", 200, "ok"},
		{"SOMETHING-ELSE", "/x", 200, "ok"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.wantCode || rec.Body.String() != tc.wantBody {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, rec.Code, rec.Body, tc.wantCode, tc.wantBody)
		}
	}
	// Paths never become labels, and unknown methods share one value.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_requests_total Requests from the app answered by the sidecar, by method and status code.
		# TYPE authsidecar_requests_total counter
		authsidecar_requests_total{code="200",method="delete",route="default"} 1
		authsidecar_requests_total{code="200",method="get",route="default"} 1
		authsidecar_requests_total{code="200",method="post",route="default"} 2
		authsidecar_requests_total{code="200",method="unknown",route="default"} 2
		authsidecar_requests_total{code="418",method="get",route="default"} 1
		`), "authsidecar_requests_total"); err != nil {
		t.Errorf("exposition after the requests: %v", err)
	}
	hist := gather(t, reg)["authsidecar_request_duration_seconds"].GetMetric()
	if len(hist) != 1 || hist[0].GetHistogram().GetSampleCount() != uint64(len(tests)) {
		t.Errorf("authsidecar_request_duration_seconds = %v, want one series with %d samples", hist, len(tests))
	}
}

// roundTripFunc adapts a function to an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestInstrumentTransport(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	errDown := errors.New("connection refused")
	rt := m.InstrumentTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		switch r.URL.Path {
		case "/down":
			return nil, errDown
		case "/busy":
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Body: http.NoBody, Request: r}, nil
		}
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	for _, tc := range []struct {
		path     string
		wantCode int
		wantErr  error
	}{
		{"/ok", 200, nil},
		{"/busy", 503, nil},
		{"/ok", 200, nil},
		{"/down", 0, errDown},
	} {
		req := httptest.NewRequest(http.MethodGet, "http://upstream.test"+tc.path, nil)
		req.RequestURI = ""
		resp, err := rt.RoundTrip(req)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("RoundTrip(%s) error = %v, want %v", tc.path, err, tc.wantErr)
		}
		if err == nil && resp.StatusCode != tc.wantCode {
			t.Errorf("RoundTrip(%s) status = %d, want %d", tc.path, resp.StatusCode, tc.wantCode)
		}
	}
	// Failed round trips have no status: they are not counted here.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_upstream_responses_total Responses received from the upstream, replays included, by status code.
		# TYPE authsidecar_upstream_responses_total counter
		authsidecar_upstream_responses_total{code="200",route="default"} 2
		authsidecar_upstream_responses_total{code="503",route="default"} 1
		`), "authsidecar_upstream_responses_total"); err != nil {
		t.Errorf("exposition after the round trips: %v", err)
	}
}

func TestNilMetricsIsSafe(t *testing.T) {
	var m *metrics.Metrics
	var o tokens.Observer = m
	o.TokenFetched(time.Second, &tokens.Token{Value: "v", Expiry: time.Now()}, nil)
	o.TokenFetched(time.Second, nil, errors.New("provider down"))
	o.TokenForcedRefresh()
	m.Replay(metrics.ReplaySuccess)
	m.Error("bad_request")
	m.SDKAuth(metrics.SDKAuthOK)

	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	h := m.InstrumentHandler(inner)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusAccepted {
		t.Errorf("nil InstrumentHandler: status = %d, want %d", rec.Code, http.StatusAccepted)
	}

	called := false
	rt := m.InstrumentTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		called = true
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	}))
	req := httptest.NewRequest(http.MethodGet, "http://upstream.test/", nil)
	req.RequestURI = ""
	resp, err := rt.RoundTrip(req)
	if err != nil || !called || resp.StatusCode != http.StatusNoContent {
		t.Errorf("nil InstrumentTransport: RoundTrip = %v, %v (called %v), want 204 from the wrapped transport", resp, err, called)
	}
}

func TestSharedCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	names := []string{"authsidecar_shared_cache_lookups_total", "authsidecar_shared_cache_lock_waits_total"}
	m.SharedCacheLookup(shared.ResultHit)
	m.SharedCacheLookup(shared.ResultHit)
	m.SharedCacheLookup(shared.ResultFallback)
	m.SharedCacheLockWait()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_shared_cache_lock_waits_total Renewals that waited for another sidecar's fetch, which held the fleet's lock.
		# TYPE authsidecar_shared_cache_lock_waits_total counter
		authsidecar_shared_cache_lock_waits_total{route="default"} 1
		# HELP authsidecar_shared_cache_lookups_total Tokens obtained with the shared cache on, by where they came from: hit (another sidecar fetched it), miss (fetched here for the fleet), fallback (fetched here alone: Redis unusable).
		# TYPE authsidecar_shared_cache_lookups_total counter
		authsidecar_shared_cache_lookups_total{result="fallback",route="default"} 1
		authsidecar_shared_cache_lookups_total{result="hit",route="default"} 2
		authsidecar_shared_cache_lookups_total{result="miss",route="default"} 0
		`), names...); err != nil {
		t.Errorf("after lookups: %v", err)
	}
	var nilM *metrics.Metrics
	nilM.SharedCacheLookup(shared.ResultMiss) // must not panic
	nilM.SharedCacheLockWait()
}

// TestKeyedTokensLeaveTheSingleTokenAlone: fetches of per-customer and
// per-tenant tokens are each counted apart, and set no expiry: no one token
// is the sidecar's, and the alerts on the single token must not fire.
func TestKeyedTokensLeaveTheSingleTokenAlone(t *testing.T) {
	for _, kind := range []struct {
		name     string
		observer func(*metrics.Metrics) tokens.Observer
		own      func(*metrics.Metrics) *prometheus.CounterVec
		other    func(*metrics.Metrics) *prometheus.CounterVec
	}{
		{"customers", (*metrics.Metrics).Customers, func(m *metrics.Metrics) *prometheus.CounterVec { return m.CustomerTokens }, func(m *metrics.Metrics) *prometheus.CounterVec { return m.TenantTokens }},
		{"tenants", (*metrics.Metrics).Tenants, func(m *metrics.Metrics) *prometheus.CounterVec { return m.TenantTokens }, func(m *metrics.Metrics) *prometheus.CounterVec { return m.CustomerTokens }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			m := metrics.New(prometheus.NewRegistry())
			o := kind.observer(m)
			o.TokenFetched(time.Millisecond, &tokens.Token{Value: "tkn_1", Expiry: time.Now().Add(time.Minute)}, nil)
			o.TokenFetched(time.Millisecond, nil, errors.New("unknown customer"))
			o.TokenForcedRefresh()
			for _, tc := range []struct {
				name string
				c    prometheus.Collector
				want float64
			}{
				{"own fetches, success", kind.own(m).WithLabelValues("success"), 1},
				{"own fetches, error", kind.own(m).WithLabelValues("error"), 1},
				{"the other kind's fetches", kind.other(m).WithLabelValues("success"), 0},
				{"token fetches", m.TokenFetches.WithLabelValues("success"), 0},
				{"token expiry", m.TokenExpiry, 0},
				{"forced refreshes", m.ForcedRefreshes, 1},
			} {
				if got := testutil.ToFloat64(tc.c); got != tc.want {
					t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
				}
			}
		})
	}
}
