package proxy_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// toFloat64 is the value of a collector that holds exactly one counter or
// gauge.
func toFloat64(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// series returns every series of the family name gathered from g, keyed by
// its labels written `a="x",b="y"`; a histogram gives its sample count. The
// route label is left out of the key, after checking it is that of
// metrics.New, "default".
func series(t *testing.T, g prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather() error = %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			route := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "route" {
					route = lp.GetValue()
					continue
				}
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			if route != metrics.DefaultRoute {
				t.Errorf("%s{%s}: route %q, want %q", name, strings.Join(labels, ","), route, metrics.DefaultRoute)
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			}
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func TestMetricsAfterRequests(t *testing.T) {
	var (
		mu      sync.Mutex
		revoked = map[string]bool{}
	)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		mu.Lock()
		rejected := revoked[r.Header.Get("Authorization")]
		mu.Unlock()
		switch {
		case rejected:
			w.WriteHeader(http.StatusUnauthorized)
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
		}
		io.WriteString(w, "done")
	})
	reg, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{Observer: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, MaxReplayBody: 1 << 10, Metrics: m})

	check := func(step string, resp *http.Response, body []byte, want int) {
		t.Helper()
		if resp.StatusCode != want {
			t.Fatalf("%s: status = %d %q, want %d", step, resp.StatusCode, body, want)
		}
	}
	resp, body := get(t, srv, "/a")
	check("GET /a", resp, body, 200)
	mu.Lock()
	revoked["Bearer tok-1"] = true
	mu.Unlock()
	resp, body = get(t, srv, "/b") // 401, refresh, replay: 200
	check("GET /b", resp, body, 200)
	resp, body = do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/c", []byte("payload"), false))
	check("POST /c", resp, body, 201)
	resp, body = raw(t, srv, "GET /a/../b HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
	check("GET /a/../b", resp, body, 400)
	addr := up.Listener.Addr().String()
	resp, body = raw(t, srv, "CONNECT "+addr+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	check("CONNECT", resp, body, 405)
	resp, body = raw(t, srv, "FROB /d HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
	check("FROB /d", resp, body, 200)

	tests := []struct {
		name string
		want map[string]float64
	}{
		{"authsidecar_requests_total", map[string]float64{
			`code="200",method="get"`:     2,
			`code="201",method="post"`:    1,
			`code="400",method="get"`:     1,
			`code="405",method="connect"`: 1,
			`code="200",method="unknown"`: 1, // methods outside a fixed set share one label value
		}},
		{"authsidecar_request_duration_seconds", map[string]float64{``: 6}},
		{"authsidecar_upstream_responses_total", map[string]float64{
			`code="200"`: 3,
			`code="201"`: 1,
			`code="401"`: 1,
		}},
		{"authsidecar_replays_total", map[string]float64{
			`result="success"`:      1,
			`result="rejected"`:     0,
			`result="error"`:        0,
			`result="too_large"`:    0,
			`result="rate_limited"`: 0,
		}},
		{"authsidecar_errors_total", map[string]float64{
			`reason="bad_request"`:        1,
			`reason="method_not_allowed"`: 1,
		}},
		{"authsidecar_token_fetches_total", map[string]float64{
			`result="success"`: 2,
			`result="error"`:   0,
		}},
		{"authsidecar_token_fetch_duration_seconds", map[string]float64{``: 2}},
		{"authsidecar_token_forced_refreshes_total", map[string]float64{``: 1}},
		{"authsidecar_token_expiry_timestamp_seconds", map[string]float64{
			``: float64(src.last().Expiry.UnixMilli()) / 1000,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := series(t, reg, tc.name)
			if !maps.Equal(got, tc.want) {
				t.Errorf("%s = %v, want %v", tc.name, fmtSeries(got), fmtSeries(tc.want))
			}
		})
	}
}

func fmtSeries(s map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(&b, "{%s} %v; ", k, s[k])
	}
	return b.String()
}

func TestNilMetricsProxies(t *testing.T) {
	up := newUpstream(t, rejectTok1)
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: nil})
	// A replay, a sidecar-made error and a plain request all run with no metrics.
	if resp, body := get(t, srv, "/x"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /x = %d %q, want 200", resp.StatusCode, body)
	}
	resp, body := raw(t, srv, "GET /../x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n")
	checkSidecarError(t, resp, body, http.StatusBadRequest, "bad_request")
}
