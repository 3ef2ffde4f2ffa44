package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
)

// The instrumentation's own cost per request: a handler and a transport that
// do nothing, one request at a time and from GOMAXPROCS goroutines at once
// (every request updates the same series, as on a busy sidecar).

func instrumented() (http.Handler, http.RoundTripper) {
	m := metrics.New(prometheus.NewRegistry())
	h := m.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	ok := &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}
	rt := m.InstrumentTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) { return ok, nil }))
	return h, rt
}

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{}

func (nopWriter) Header() http.Header         { return nil }
func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriter) WriteHeader(int)             {}

func BenchmarkInstrument(b *testing.B) {
	h, rt := instrumented()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(nopWriter{}, req)
		rt.RoundTrip(req)
	}
}

func BenchmarkInstrumentParallel(b *testing.B) {
	h, rt := instrumented()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		for pb.Next() {
			h.ServeHTTP(nopWriter{}, req)
			rt.RoundTrip(req)
		}
	})
}
