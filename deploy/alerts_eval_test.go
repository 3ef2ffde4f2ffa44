package deploy

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// series is what the alert rules are evaluated against, at 30m: one pod per
// situation, named for it.
const series = `
load 1m
  authsidecar_token_fetches_total{namespace="n",pod="renewal-failing",result="error"}   0+2x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-failing",result="success"} 1x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-flaky",result="error"}     0+1x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-flaky",result="success"}   1+1x30
  authsidecar_token_fetches_total{namespace="n",pod="healthy",result="error"}           0x30
  authsidecar_token_fetches_total{namespace="n",pod="healthy",result="success"}         1x30
  authsidecar_token_fetches_total{namespace="n",pod="expired",result="error"}           0+1x30
  authsidecar_token_fetches_total{namespace="n",pod="expired",result="success"}         1x30
  authsidecar_token_fetches_total{namespace="n",pod="never-fetched",result="error"}     0+5x30
  authsidecar_token_fetches_total{namespace="n",pod="never-fetched",result="success"}   0x30
  authsidecar_token_fetches_total{namespace="n",pod="no-token-source",result="error"}   0x30
  authsidecar_token_fetches_total{namespace="n",pod="no-token-source",result="success"} 0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="healthy"}          5400x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="expiring"}         1860x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="expired"}          1700x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="never-fetched"}    0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="no-token-source"}  0x30
  authsidecar_token_fetches_total{namespace="n",pod="per-customer",result="error"}     0x30
  authsidecar_token_fetches_total{namespace="n",pod="per-customer",result="success"}   0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="per-customer"}     0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="per-customer",result="success"}      0+3x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="per-customer",result="error"}        0+1x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="customers-failing",result="success"} 5x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="customers-failing",result="error"}   0+2x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="rejected-tokens"}    0+1x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="healthy"}            0x30
  authsidecar_upstream_responses_total{namespace="n",pod="upstream-failing",code="200"} 0+90x30
  authsidecar_upstream_responses_total{namespace="n",pod="upstream-failing",code="502"} 0+10x30
  authsidecar_upstream_responses_total{namespace="n",pod="healthy",code="200"}          0+99x30
  authsidecar_upstream_responses_total{namespace="n",pod="healthy",code="500"}          0+1x30
  authsidecar_errors_total{namespace="n",pod="starved",reason="token_unavailable"} 0+1x30
  authsidecar_errors_total{namespace="n",pod="healthy",reason="bad_request"}       0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",result="hit"}                    0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",result="miss"}                   0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",result="fallback"}               0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",result="hit"}                 0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",result="miss"}                1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",result="fallback"}            0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",result="hit"}             5x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",result="miss"}            1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",result="fallback"}        0x25 1 2 2 3 3
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-recovered",result="hit"}            0x10 1+1x19
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-recovered",result="fallback"}       0+1x10 10x19
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-hit",result="hit"}          _x22 1x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-hit",result="fallback"}     _x22 0x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-fallback",result="hit"}     _x22 0x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-fallback",result="fallback"} _x22 1x8
`

// Each alert fires for the pods in its situation and for no other: the
// rules mean what the README's alert table says.
func TestAlertsFireWhenTheyShould(t *testing.T) {
	want := map[string]map[string]float64{ // alert → pod → value (-1: any)
		"AuthsidecarTokenRenewalFailing":   {"renewal-failing": -1, "expired": -1, "never-fetched": -1},
		"AuthsidecarTokenExpiringSoon":     {"expiring": 60}, // seconds left
		"AuthsidecarNoValidToken":          {"expired": -1, "never-fetched": -1},
		"AuthsidecarForcedRefreshesRising": {"rejected-tokens": -1},
		"AuthsidecarUpstreamErrors":        {"upstream-failing": 0.1}, // the 5xx ratio
		"AuthsidecarServing503":            {"starved": -1},
		"AuthsidecarSharedCacheUnusable":   {"cache-fallback": 3, "cache-started-fallback": 1}, // fallbacks in 15 minutes
		"AuthsidecarCustomerTokensFailing": {"customers-failing": -1},
	}
	rules := alertExprs(t)
	if got := slices.Sorted(maps.Keys(rules)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("alerts %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	storage := promqltest.LoadedStorage(t, series)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 100000)
	at := time.Unix(30*60, 0)
	for alert, expr := range rules {
		q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, at)
		if err != nil {
			t.Fatalf("%s: %v", alert, err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", alert, res.Err)
		}
		vec, err := res.Vector()
		if err != nil {
			t.Fatalf("%s: %v", alert, err)
		}
		got := map[string]float64{}
		for _, s := range vec {
			got[s.Metric.Get("pod")] = s.F
		}
		for pod, v := range want[alert] {
			f, fired := got[pod]
			switch {
			case !fired:
				t.Errorf("%s does not fire for pod %s", alert, pod)
			case v >= 0 && (f < v*0.999 || f > v*1.001):
				t.Errorf("%s for pod %s has value %v, want %v (the alert's summary shows it)", alert, pod, f, v)
			}
		}
		for pod := range got {
			if _, ok := want[alert][pod]; !ok {
				t.Errorf("%s fires for pod %s", alert, pod)
			}
		}
		q.Close()
	}
}

func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	for _, v := range decoded(t, "monitoring") {
		if r, ok := v.(*monitoringv1.PrometheusRule); ok {
			for _, g := range r.Spec.Groups {
				for _, rule := range g.Rules {
					exprs[rule.Alert] = rule.Expr.String()
				}
			}
		}
	}
	return exprs
}

var _ promql.QueryEngine = (*promql.Engine)(nil)
