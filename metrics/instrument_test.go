package metrics_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
)

// Informational responses precede the final status, which is what counts;
// 101 Switching Protocols is final; codes outside the table are counted too.
func TestInstrumentHandlerStatus(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(http.ResponseWriter)
		want  string
	}{
		{"early hints then 200", func(w http.ResponseWriter) { w.WriteHeader(http.StatusEarlyHints); w.Write([]byte("x")) }, `code="200"`},
		{"continue then 201", func(w http.ResponseWriter) { w.WriteHeader(http.StatusContinue); w.WriteHeader(http.StatusCreated) }, `code="201"`},
		{"switching protocols", func(w http.ResponseWriter) { w.WriteHeader(http.StatusSwitchingProtocols) }, `code="101"`},
		{"non-standard 799", func(w http.ResponseWriter) { w.WriteHeader(799) }, `code="799"`},
		{"second WriteHeader ignored", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted); w.WriteHeader(http.StatusTeapot) }, `code="202"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := metrics.New(reg).InstrumentHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tc.write(w) }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPatch, "/", nil))
			want := `authsidecar_requests_total{` + tc.want + `,method="patch"} 1`
			if got := exposition(t, reg, "authsidecar_requests_total"); !containsLine(got, want) {
				t.Errorf("exposition:\n%s\nwant the line %s", got, want)
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

func containsLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
