package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// Two routes on one registry: each records to its own series, labelled
// with its name, and what one records leaves the other's at zero.
func TestRoutesHaveTheirOwnSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := metrics.NewFamilies(reg)
	tezpay, juspay := f.Route("tezpay"), f.Route("juspay")

	// tezpay: a token, a request answered 200 by the upstream, a replay,
	// a shared cache hit.
	tezpay.TokenFetched(time.Second, &tokens.Token{Value: "t", Expiry: time.Unix(1700000000, 0)}, nil)
	tezpay.TokenForcedRefresh()
	tezpay.Replay(metrics.ReplaySuccess)
	tezpay.SharedCacheLookup(shared.ResultHit)
	ok := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	tezpay.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tezpay.InstrumentTransport(ok).RoundTrip(r)
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	// juspay: a failed token fetch, per-customer tokens, a 503 of its own,
	// an SDK authentication, a signature and a refused body.
	juspay.TokenFetched(2*time.Second, nil, errors.New("provider down"))
	juspay.Customers().TokenFetched(time.Millisecond, &tokens.Token{Value: "c"}, nil)
	juspay.Error("token_unavailable")
	juspay.SDKAuth(metrics.SDKAuthOK)
	juspay.Signature("success")
	juspay.RejectedBody("no_customer_id")
	juspay.SharedCacheLockWait()
	juspay.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", nil))

	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_customer_token_fetches_total Fetches of per-customer tokens (TOKEN_SOURCE=juspay-customer), by result (success, error). The single-token metrics (authsidecar_token_fetches_total, authsidecar_token_expiry_timestamp_seconds) stay 0 with such a source.
		# TYPE authsidecar_customer_token_fetches_total counter
		authsidecar_customer_token_fetches_total{result="error",route="juspay"} 0
		authsidecar_customer_token_fetches_total{result="error",route="tezpay"} 0
		authsidecar_customer_token_fetches_total{result="success",route="juspay"} 1
		authsidecar_customer_token_fetches_total{result="success",route="tezpay"} 0
		# HELP authsidecar_errors_total Error responses made by the sidecar itself, by reason.
		# TYPE authsidecar_errors_total counter
		authsidecar_errors_total{reason="token_unavailable",route="juspay"} 1
		# HELP authsidecar_rejected_bodies_total Request bodies refused before going upstream because they could not be authenticated, by reason (not_json_object, no_payload, no_customer_id, bad_field, too_large).
		# TYPE authsidecar_rejected_bodies_total counter
		authsidecar_rejected_bodies_total{reason="no_customer_id",route="juspay"} 1
		# HELP authsidecar_requests_total Requests from the app answered by the sidecar, by method and status code.
		# TYPE authsidecar_requests_total counter
		authsidecar_requests_total{code="200",method="get",route="tezpay"} 1
		authsidecar_requests_total{code="503",method="post",route="juspay"} 1
		# HELP authsidecar_shared_cache_lock_waits_total Renewals that waited for another sidecar's fetch, which held the fleet's lock.
		# TYPE authsidecar_shared_cache_lock_waits_total counter
		authsidecar_shared_cache_lock_waits_total{route="juspay"} 1
		authsidecar_shared_cache_lock_waits_total{route="tezpay"} 0
		# HELP authsidecar_shared_cache_lookups_total Tokens obtained with the shared cache on, by where they came from: hit (another sidecar fetched it), miss (fetched here for the fleet), fallback (fetched here alone: Redis unusable).
		# TYPE authsidecar_shared_cache_lookups_total counter
		authsidecar_shared_cache_lookups_total{result="fallback",route="juspay"} 0
		authsidecar_shared_cache_lookups_total{result="fallback",route="tezpay"} 0
		authsidecar_shared_cache_lookups_total{result="hit",route="juspay"} 0
		authsidecar_shared_cache_lookups_total{result="hit",route="tezpay"} 1
		authsidecar_shared_cache_lookups_total{result="miss",route="juspay"} 0
		authsidecar_shared_cache_lookups_total{result="miss",route="tezpay"} 0
		# HELP authsidecar_signatures_total Request payloads signed, by result (success, error).
		# TYPE authsidecar_signatures_total counter
		authsidecar_signatures_total{result="success",route="juspay"} 1
		# HELP authsidecar_token_expiry_timestamp_seconds Unix time at which the current token expires; 0 before the first token.
		# TYPE authsidecar_token_expiry_timestamp_seconds gauge
		authsidecar_token_expiry_timestamp_seconds{route="juspay"} 0
		authsidecar_token_expiry_timestamp_seconds{route="tezpay"} 1.7e+09
		# HELP authsidecar_token_fetches_total Token fetches by renewals, by result (success, error): from the provider, or with the shared cache on, from the provider or the fleet (see authsidecar_shared_cache_lookups_total).
		# TYPE authsidecar_token_fetches_total counter
		authsidecar_token_fetches_total{result="error",route="juspay"} 1
		authsidecar_token_fetches_total{result="error",route="tezpay"} 0
		authsidecar_token_fetches_total{result="success",route="juspay"} 0
		authsidecar_token_fetches_total{result="success",route="tezpay"} 1
		# HELP authsidecar_token_forced_refreshes_total Tokens dropped because the upstream rejected them.
		# TYPE authsidecar_token_forced_refreshes_total counter
		authsidecar_token_forced_refreshes_total{route="juspay"} 0
		authsidecar_token_forced_refreshes_total{route="tezpay"} 1
		# HELP authsidecar_upstream_responses_total Responses received from the upstream, replays included, by status code.
		# TYPE authsidecar_upstream_responses_total counter
		authsidecar_upstream_responses_total{code="200",route="tezpay"} 1
		`), "authsidecar_customer_token_fetches_total", "authsidecar_errors_total", "authsidecar_rejected_bodies_total",
		"authsidecar_requests_total", "authsidecar_shared_cache_lock_waits_total", "authsidecar_shared_cache_lookups_total",
		"authsidecar_signatures_total", "authsidecar_token_expiry_timestamp_seconds", "authsidecar_token_fetches_total",
		"authsidecar_token_forced_refreshes_total", "authsidecar_upstream_responses_total"); err != nil {
		t.Errorf("exposition of two routes: %v", err)
	}

	// The families with a zero series per route and a route of their own:
	// replays and SDK authentications, by the route's count.
	for _, tc := range []struct {
		name  string
		c     prometheus.Collector
		route string
		want  float64
	}{
		{"replays", tezpay.Replays.WithLabelValues(metrics.ReplaySuccess), "tezpay", 1},
		{"replays", juspay.Replays.WithLabelValues(metrics.ReplaySuccess), "juspay", 0},
		{"sdk auth", tezpay.SDKAuths.WithLabelValues(metrics.SDKAuthOK), "tezpay", 0},
		{"sdk auth", juspay.SDKAuths.WithLabelValues(metrics.SDKAuthOK), "juspay", 1},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s of route %s = %v, want %v", tc.name, tc.route, got, tc.want)
		}
	}

	// Histograms: one series per route, each with its own samples.
	mfs := gather(t, reg)
	for name, want := range map[string]map[string]uint64{
		"authsidecar_token_fetch_duration_seconds": {"tezpay": 1, "juspay": 2}, // juspay: its own fetch and a customer's
		"authsidecar_request_duration_seconds":     {"tezpay": 1, "juspay": 1},
	} {
		got := map[string]uint64{}
		for _, m := range mfs[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					got[l.GetValue()] = m.GetHistogram().GetSampleCount()
				}
			}
		}
		if len(got) != len(want) || got["tezpay"] != want["tezpay"] || got["juspay"] != want["juspay"] {
			t.Errorf("%s samples by route = %v, want %v", name, got, want)
		}
	}

	// Every series of every family says its route.
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			route := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					route = l.GetValue()
				}
			}
			if route != "tezpay" && route != "juspay" {
				t.Errorf("%s series %v: route %q, want tezpay or juspay", name, m.GetLabel(), route)
			}
		}
	}
}

// Route is safe to call again with a name it has seen: both Metrics record
// to the same series, and tables built from either count the same requests.
func TestRouteTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := metrics.NewFamilies(reg)
	a, b := f.Route("tezpay"), f.Route("tezpay")
	a.TokenForcedRefresh()
	b.TokenForcedRefresh()
	a.Error("bad_request")
	b.Error("bad_request")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	a.InstrumentHandler(h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	b.InstrumentHandler(h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_errors_total Error responses made by the sidecar itself, by reason.
		# TYPE authsidecar_errors_total counter
		authsidecar_errors_total{reason="bad_request",route="tezpay"} 2
		# HELP authsidecar_requests_total Requests from the app answered by the sidecar, by method and status code.
		# TYPE authsidecar_requests_total counter
		authsidecar_requests_total{code="200",method="get",route="tezpay"} 2
		# HELP authsidecar_token_forced_refreshes_total Tokens dropped because the upstream rejected them.
		# TYPE authsidecar_token_forced_refreshes_total counter
		authsidecar_token_forced_refreshes_total{route="tezpay"} 2
		`), "authsidecar_errors_total", "authsidecar_requests_total", "authsidecar_token_forced_refreshes_total"); err != nil {
		t.Errorf("after counting on both: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "authsidecar_token_fetches_total"); err != nil || n != 2 {
		t.Errorf("authsidecar_token_fetches_total has %d series (error %v), want 2: success and error, once", n, err)
	}
}

// New is the default route of a sidecar without ROUTES.
func TestNewIsTheDefaultRoute(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg).TokenForcedRefresh()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
		# HELP authsidecar_token_forced_refreshes_total Tokens dropped because the upstream rejected them.
		# TYPE authsidecar_token_forced_refreshes_total counter
		authsidecar_token_forced_refreshes_total{route="default"} 1
		`), "authsidecar_token_forced_refreshes_total"); err != nil {
		t.Errorf("after New: %v", err)
	}
	var f *metrics.Families
	if m := f.Route("x"); m != nil {
		t.Errorf("nil Families: Route = %v, want nil", m)
	}
}
