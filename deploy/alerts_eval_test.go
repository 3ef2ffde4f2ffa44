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
// situation, named for it, with the one route of a sidecar without ROUTES
// ("default"); and a pod with several routes, multi-route, where tezpay
// fails in every way the alerts watch, juspay is healthy and busy enough
// that the pod as a whole would look healthy, and plain fetches no token.
const series = `
load 1m
  authsidecar_token_fetches_total{namespace="n",pod="renewal-failing",route="default",result="error"}   0+2x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-failing",route="default",result="success"} 1x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-flaky",route="default",result="error"}     0+1x30
  authsidecar_token_fetches_total{namespace="n",pod="renewal-flaky",route="default",result="success"}   1+1x30
  authsidecar_token_fetches_total{namespace="n",pod="healthy",route="default",result="error"}           0x30
  authsidecar_token_fetches_total{namespace="n",pod="healthy",route="default",result="success"}         1x30
  authsidecar_token_fetches_total{namespace="n",pod="expired",route="default",result="error"}           0+1x30
  authsidecar_token_fetches_total{namespace="n",pod="expired",route="default",result="success"}         1x30
  authsidecar_token_fetches_total{namespace="n",pod="never-fetched",route="default",result="error"}     0+5x30
  authsidecar_token_fetches_total{namespace="n",pod="never-fetched",route="default",result="success"}   0x30
  authsidecar_token_fetches_total{namespace="n",pod="no-token-source",route="default",result="error"}   0x30
  authsidecar_token_fetches_total{namespace="n",pod="no-token-source",route="default",result="success"} 0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="healthy",route="default"}          5400x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="expiring",route="default"}         1860x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="expired",route="default"}          1700x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="never-fetched",route="default"}    0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="no-token-source",route="default"}  0x30
  authsidecar_token_fetches_total{namespace="n",pod="per-customer",route="default",result="error"}     0x30
  authsidecar_token_fetches_total{namespace="n",pod="per-customer",route="default",result="success"}   0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="per-customer",route="default"}     0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="per-customer",route="default",result="success"}      0+3x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="per-customer",route="default",result="error"}        0+1x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="customers-failing",route="default",result="success"} 5x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="customers-failing",route="default",result="error"}   0+2x30
  authsidecar_tenant_token_fetches_total{namespace="n",pod="one-tenant-revoked",route="default",result="success"} 0+30x30
  authsidecar_tenant_token_fetches_total{namespace="n",pod="one-tenant-revoked",route="default",result="error"}   0+1x30
  authsidecar_tenant_token_fetches_total{namespace="n",pod="tenants-failing",route="default",result="success"}    3x30
  authsidecar_tenant_token_fetches_total{namespace="n",pod="tenants-failing",route="default",result="error"}      0+3x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="rejected-tokens",route="default"}    0+1x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="healthy",route="default"}            0x30
  authsidecar_upstream_responses_total{namespace="n",pod="upstream-failing",route="default",code="200"} 0+90x30
  authsidecar_upstream_responses_total{namespace="n",pod="upstream-failing",route="default",code="502"} 0+10x30
  authsidecar_upstream_responses_total{namespace="n",pod="healthy",route="default",code="200"}          0+99x30
  authsidecar_upstream_responses_total{namespace="n",pod="healthy",route="default",code="500"}          0+1x30
  authsidecar_errors_total{namespace="n",pod="starved",route="default",reason="token_unavailable"} 0+1x30
  authsidecar_errors_total{namespace="n",pod="healthy",route="default",reason="bad_request"}       0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",route="default",result="hit"}                    0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",route="default",result="miss"}                   0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="healthy",route="default",result="fallback"}               0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",route="default",result="hit"}                 0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",route="default",result="miss"}                1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-hits",route="default",result="fallback"}            0x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",route="default",result="hit"}             5x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",route="default",result="miss"}            1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-fallback",route="default",result="fallback"}        0x25 1 2 2 3 3
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-recovered",route="default",result="hit"}            0x10 1+1x19
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-recovered",route="default",result="fallback"}       0+1x10 10x19
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-hit",route="default",result="hit"}          _x22 1x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-hit",route="default",result="fallback"}     _x22 0x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-fallback",route="default",result="hit"}     _x22 0x8
  authsidecar_shared_cache_lookups_total{namespace="n",pod="cache-started-fallback",route="default",result="fallback"} _x22 1x8
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="tezpay",result="error"}      0+2x30
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="tezpay",result="success"}    1x30
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="juspay",result="error"}      0x30
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="juspay",result="success"}    1+1x30
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="plain",result="error"}       0x30
  authsidecar_token_fetches_total{namespace="n",pod="multi-route",route="plain",result="success"}     0x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="multi-route",route="tezpay"}         1700x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="multi-route",route="juspay"}         5400x30
  authsidecar_token_expiry_timestamp_seconds{namespace="n",pod="multi-route",route="plain"}          0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="multi-route",route="tezpay",result="success"}  0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="multi-route",route="tezpay",result="error"}    0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="multi-route",route="juspay",result="success"}  0x30
  authsidecar_customer_token_fetches_total{namespace="n",pod="multi-route",route="juspay",result="error"}    0x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="multi-route",route="tezpay"}           0+1x30
  authsidecar_token_forced_refreshes_total{namespace="n",pod="multi-route",route="juspay"}           0x30
  authsidecar_upstream_responses_total{namespace="n",pod="multi-route",route="tezpay",code="200"}    0+90x30
  authsidecar_upstream_responses_total{namespace="n",pod="multi-route",route="tezpay",code="502"}    0+10x30
  authsidecar_upstream_responses_total{namespace="n",pod="multi-route",route="juspay",code="200"}    0+1000x30
  authsidecar_errors_total{namespace="n",pod="multi-route",route="tezpay",reason="token_unavailable"} 0+1x30
  authsidecar_errors_total{namespace="n",pod="multi-route",route="juspay",reason="bad_request"}       0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="multi-route",route="tezpay",result="hit"}      5x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="multi-route",route="tezpay",result="fallback"} 0x25 1 2 2 3 3
  authsidecar_shared_cache_lookups_total{namespace="n",pod="multi-route",route="juspay",result="hit"}      0+1x30
  authsidecar_shared_cache_lookups_total{namespace="n",pod="multi-route",route="juspay",result="fallback"} 0x30
`

// Each alert fires for the pods in its situation and for no other: the
// rules mean what the README's alert table says.
func TestAlertsFireWhenTheyShould(t *testing.T) {
	want := map[string]map[string]float64{ // alert → pod/route → value (-1: any)
		"AuthsidecarTokenRenewalFailing":   {"renewal-failing/default": -1, "expired/default": -1, "never-fetched/default": -1, "multi-route/tezpay": -1},
		"AuthsidecarTokenExpiringSoon":     {"expiring/default": 60}, // seconds left
		"AuthsidecarNoValidToken":          {"expired/default": -1, "never-fetched/default": -1, "multi-route/tezpay": -1},
		"AuthsidecarForcedRefreshesRising": {"rejected-tokens/default": -1, "multi-route/tezpay": -1},
		"AuthsidecarUpstreamErrors":        {"upstream-failing/default": 0.1, "multi-route/tezpay": 0.1}, // the 5xx ratio
		"AuthsidecarServing503":            {"starved/default": -1, "multi-route/tezpay": -1},
		"AuthsidecarSharedCacheUnusable":   {"cache-fallback/default": 3, "cache-started-fallback/default": 1, "multi-route/tezpay": 3}, // fallbacks in 15 minutes
		"AuthsidecarCustomerTokensFailing": {"customers-failing/default": -1},
		"AuthsidecarTenantTokensFailing":   {"tenants-failing/default": -1},
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
		// Each alert is per route: its series keep the pod and the route
		// (one without a route shows as "pod/").
		got := map[string]float64{}
		for _, s := range vec {
			got[s.Metric.Get("pod")+"/"+s.Metric.Get("route")] = s.F
		}
		for where, v := range want[alert] {
			f, fired := got[where]
			switch {
			case !fired:
				t.Errorf("%s does not fire for %s", alert, where)
			case v >= 0 && (f < v*0.999 || f > v*1.001):
				t.Errorf("%s for %s has value %v, want %v (the alert's summary shows it)", alert, where, f, v)
			}
		}
		for where := range got {
			if _, ok := want[alert][where]; !ok {
				t.Errorf("%s fires for %s", alert, where)
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
