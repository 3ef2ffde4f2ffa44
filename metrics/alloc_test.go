//go:build !race

package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
)

// Instrumenting a request costs no allocation once its series exists (the
// race detector's sync.Pool drops items, hence the build tag): on the
// default route, and on each of two routes sharing one registry.
func TestInstrumentationAllocatesNothing(t *testing.T) {
	f := metrics.NewFamilies(prometheus.NewRegistry())
	for name, m := range map[string]*metrics.Metrics{
		"default": metrics.New(prometheus.NewRegistry()),
		"tezpay":  f.Route("tezpay"),
		"juspay":  f.Route("juspay"),
	} {
		h := m.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
		rt := m.InstrumentTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) { return okResponse, nil }))
		w, req := discard{}, httptest.NewRequest(http.MethodPost, "/", nil)
		h.ServeHTTP(w, req)
		if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); n != 0 {
			t.Errorf("route %s: InstrumentHandler: %v allocations per request, want 0", name, n)
		}
		rt.RoundTrip(req)
		if n := testing.AllocsPerRun(1000, func() { rt.RoundTrip(req) }); n != 0 {
			t.Errorf("route %s: InstrumentTransport: %v allocations per request, want 0", name, n)
		}
	}
}

var okResponse = &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}

// discard is a ResponseWriter that allocates nothing.
type discard struct{}

func (discard) Header() http.Header         { return nil }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
