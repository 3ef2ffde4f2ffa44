package metrics_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authsidecar/authsidecar/metrics"
)

// Informational responses precede the final status, which is what counts;
// 101 Switching Protocols is final; codes outside the table are counted too.
func TestInstrumentHandlerStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(http.ResponseWriter)
		code  string
	}{
		{"early hints then 200", func(w http.ResponseWriter) { w.WriteHeader(http.StatusEarlyHints); w.Write([]byte("x")) }, "200"},
		{"continue then 201", func(w http.ResponseWriter) { w.WriteHeader(http.StatusContinue); w.WriteHeader(http.StatusCreated) }, "201"},
		{"switching protocols", func(w http.ResponseWriter) { w.WriteHeader(http.StatusSwitchingProtocols) }, "101"},
		{"non-standard 799", func(w http.ResponseWriter) { w.WriteHeader(799) }, "799"},
		{"second WriteHeader ignored", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted); w.WriteHeader(http.StatusTeapot) }, "202"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New(prometheus.NewRegistry())
			h := m.InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.write(w) }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPatch, "/", nil))
			if got := testutil.ToFloat64(m.Requests.WithLabelValues("patch", tc.code)); got != 1 {
				t.Errorf(`authsidecar_requests_total{code=%q,method="patch"} = %v, want 1`, tc.code, got)
			}
		})
	}
}

// http.ResponseController reaches the server's writer through the
// instrumenting one: event streams are flushed, upgrades can hijack.
func TestInstrumentHandlerResponseController(t *testing.T) {
	h := metrics.New(prometheus.NewRegistry()).InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush through the instrumented writer: %v", err)
		}
		if _, _, err := rc.Hijack(); !errors.Is(err, errHijacked) {
			t.Errorf("Hijack through the instrumented writer = %v, want the server writer's", err)
		}
	}))
	rec := &hijackRecorder{ResponseRecorder: httptest.NewRecorder()}
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if !rec.Flushed {
		t.Errorf("the server's writer was not flushed")
	}
}

var errHijacked = errors.New("hijack reached the server's writer")

type hijackRecorder struct{ *httptest.ResponseRecorder }

func (r *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, errHijacked }
