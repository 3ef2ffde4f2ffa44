package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-request instrumentation without allocations: the series of each
// (method, status) pair is looked up once, in the route's vector curried
// once by Families.Route, and kept in a table of that route's series; the
// response writer that records the status comes from a pool. The label
// values are those of promhttp: lower-case standard methods, "unknown" for
// the others.

// methods are the method label's values; the last is for all other methods.
var methods = [...]string{"get", "put", "head", "post", "delete", "connect", "options", "notify", "trace", "patch", "unknown"}

func methodIndex(m string) int {
	switch m {
	case "GET", "get":
		return 0
	case "PUT", "put":
		return 1
	case "HEAD", "head":
		return 2
	case "POST", "post":
		return 3
	case "DELETE", "delete":
		return 4
	case "CONNECT", "connect":
		return 5
	case "OPTIONS", "options":
		return 6
	case "NOTIFY", "notify":
		return 7
	case "TRACE", "trace":
		return 8
	case "PATCH", "patch":
		return 9
	}
	return len(methods) - 1
}

// Status codes with a table slot; others (non-standard, out of range) take
// the slow path.
const minCode, maxCode = 100, 599

// counterTable caches the counters of a vector by up to two label values:
// an index (method, or 0) and a status code.
type counterTable struct {
	vec   *prometheus.CounterVec
	slots []atomic.Pointer[prometheus.Counter]
	// labels names the counter of (index, code).
	labels func(index, code int) []string
}

func newCounterTable(vec *prometheus.CounterVec, indexes int, labels func(index, code int) []string) *counterTable {
	return &counterTable{vec: vec, slots: make([]atomic.Pointer[prometheus.Counter], indexes*(maxCode-minCode+1)), labels: labels}
}

func (t *counterTable) inc(index, code int) {
	if code < minCode || code > maxCode {
		t.vec.WithLabelValues(t.labels(index, code)...).Inc()
		return
	}
	slot := &t.slots[index*(maxCode-minCode+1)+code-minCode]
	c := slot.Load()
	if c == nil {
		counter := t.vec.WithLabelValues(t.labels(index, code)...)
		c = &counter
		slot.Store(c)
	}
	(*c).Inc()
}

// statusWriter records the status of the response it writes.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx responses other than 101 Switching Protocols precede the final one.
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer (Flush for
// event streams, Hijack for upgrades, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

type instrumentedHandler struct {
	next     http.Handler
	requests *counterTable
	duration prometheus.Observer
}

// epoch is the origin of the handler's clock readings: time.Since of a Time
// that has a monotonic reading reads only the monotonic clock, which is
// cheaper than time.Now, which reads the wall clock too.
var epoch = time.Now()

func (h *instrumentedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Since(epoch)
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter, sw.code = w, 0
	defer func() {
		code := sw.code
		if code == 0 {
			code = http.StatusOK // nothing written: the server sends 200
		}
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
		h.requests.inc(methodIndex(r.Method), code)
		h.duration.Observe((time.Since(epoch) - start).Seconds())
	}()
	h.next.ServeHTTP(sw, r)
}

type instrumentedTransport struct {
	next      http.RoundTripper
	responses *counterTable
}

func (t *instrumentedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		t.responses.inc(0, resp.StatusCode)
	}
	return resp, err
}

// InstrumentHandler counts and times the requests h serves.
func (m *Metrics) InstrumentHandler(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return &instrumentedHandler{
		next: h,
		requests: newCounterTable(m.Requests, len(methods), func(i, code int) []string {
			return []string{methods[i], strconv.Itoa(code)}
		}),
		duration: m.RequestDuration,
	}
}

// InstrumentTransport counts the upstream's responses.
func (m *Metrics) InstrumentTransport(rt http.RoundTripper) http.RoundTripper {
	if m == nil {
		return rt
	}
	return &instrumentedTransport{
		next: rt,
		responses: newCounterTable(m.UpstreamResponses, 1, func(_, code int) []string {
			return []string{strconv.Itoa(code)}
		}),
	}
}
