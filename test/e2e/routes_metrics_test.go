package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// AWAITS THE ROUTE LABEL (branch route-metrics): until it is merged, the
// routes of ROUTES count on a throwaway registry (cmd/authsidecar/zz_tmp.go)
// and this test fails. Everything else about routes is tested in
// routes_test.go.
//
// TestRoutesMetricsCarryTheRoute: every authsidecar_* series carries a
// route label, and each route's requests, upstream responses and token
// fetches are counted under its own name.
func TestRoutesMetricsCarryTheRoute(t *testing.T) {
	t.Parallel()
	p := newThreeProviders(t, 0)
	s := startSidecar(t, p.env)
	s.waitReady(10 * time.Second)
	c := newClient(t)
	const n = 5
	for i := range n {
		for route, r := range map[string]result{
			"tezpay": call(c, http.MethodGet, s.routeURL("tezpay")+fake.GetStatusPath+"?transaction_id=m"+strconv.Itoa(i), nil),
			"juspay": call(c, http.MethodPost, s.routeURL("juspay")+"/v4/sdk", initiate(juspayCustomers[i%len(juspayCustomers)])),
			"alt":    call(c, http.MethodPost, s.routeURL("alt")+"/v1/checkout-auth/init", []byte(`{}`)),
		} {
			if r.status != http.StatusOK {
				t.Fatalf("request on route %s = %v, want 200", route, r)
			}
		}
	}
	exposition := s.metrics()

	for _, w := range []struct {
		series string // name{labels}, the route's among them
		want   float64
	}{
		{`authsidecar_requests_total{route="tezpay"}`, n},
		{`authsidecar_requests_total{route="juspay"}`, n},
		{`authsidecar_requests_total{route="alt"}`, n},
		{`authsidecar_upstream_responses_total{route="tezpay",code="200"}`, n},
		{`authsidecar_upstream_responses_total{route="juspay",code="200"}`, n},
		{`authsidecar_upstream_responses_total{route="alt",code="200"}`, n},
		{`authsidecar_token_fetches_total{route="tezpay",result="success"}`, 1},
		{`authsidecar_token_fetches_total{route="alt",result="success"}`, 1},
		{`authsidecar_token_fetches_total{route="juspay",result="success"}`, 0}, // tokens per customer
		{`authsidecar_customer_token_fetches_total{route="juspay",result="success"}`, float64(len(juspayCustomers))},
	} {
		if got, ok := routeMetric(exposition, w.series); !ok || got != w.want {
			t.Errorf("%s = %v (present: %v), want %v", w.series, got, ok, w.want)
		}
	}
	for _, route := range routeNames {
		if exp, ok := routeMetric(exposition, `authsidecar_token_expiry_timestamp_seconds{route="`+route+`"}`); !ok || (route != "juspay" && exp < float64(time.Now().Unix())) {
			t.Errorf("authsidecar_token_expiry_timestamp_seconds of route %s = %v (present: %v), want a time ahead (0 for juspay)", route, exp, ok)
		}
	}
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, "authsidecar_") && !strings.Contains(line, `route="`) {
			t.Errorf("series without a route label: %s", line)
		}
	}
}

// routeMetric sums the series of an exposition that have the name and
// every label of series (written `name{a="x",b="y"}`, in any order), and
// reports whether there is one.
func routeMetric(exposition, series string) (float64, bool) {
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	sum, found := 0.0, false
	for _, line := range strings.Split(exposition, "\n") {
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		head := line[:i]
		if n, _, _ := strings.Cut(head, "{"); n != name {
			continue
		}
		all := true
		for l := range strings.SplitSeq(labels, ",") {
			if l != "" && !strings.Contains(head, l) {
				all = false
			}
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if !all || err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}
