package fake

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Answer is what an HTTPFaults gives instead of the handler it wraps.
type Answer struct {
	// Status is the HTTP status.
	Status int
	// RetryAfter, if not zero, is sent as Retry-After, in whole seconds.
	RetryAfter time.Duration
	// Body is sent as it is, as application/json; empty means no body.
	Body string
}

// HTTPFaults wraps a handler: while an Answer is set, the requests for one
// path get it instead of the handler's answer (a token endpoint answering
// 500, 429, an empty 200 or broken JSON). It records when each request for
// that path arrived, faulted or not. Its methods are safe for concurrent
// use.
type HTTPFaults struct {
	next http.Handler
	path string

	mu       sync.Mutex
	answer   *Answer
	arrivals []Arrival
}

// Arrival is one request for the faulted path: when it came and whether it
// got the fault's answer.
type Arrival struct {
	At      time.Time
	Faulted bool
}

// NewHTTPFaults wraps next, faulting the requests for path.
func NewHTTPFaults(next http.Handler, path string) *HTTPFaults {
	return &HTTPFaults{next: next, path: path}
}

// Set makes every request for the path get a, until Clear.
func (h *HTTPFaults) Set(a Answer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answer = &a
}

// Clear lets the requests for the path through to the wrapped handler again.
func (h *HTTPFaults) Clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answer = nil
}

// Arrivals returns the requests for the path so far, oldest first.
func (h *HTTPFaults) Arrivals() []Arrival {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Arrival(nil), h.arrivals...)
}

func (h *HTTPFaults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.path {
		h.next.ServeHTTP(w, r)
		return
	}
	h.mu.Lock()
	a := h.answer
	h.arrivals = append(h.arrivals, Arrival{At: time.Now(), Faulted: a != nil})
	h.mu.Unlock()
	if a == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if a.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(a.RetryAfter/time.Second)))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Body)))
	w.WriteHeader(a.Status)
	w.Write([]byte(a.Body))
}
