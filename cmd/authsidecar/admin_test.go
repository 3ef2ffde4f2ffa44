package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The runtime profiles are served only when AUTHSIDECAR_PPROF asks for them.
func TestAdminPprofIsOptIn(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := adminHandler(prometheus.NewRegistry(), nil, new(atomic.Bool), on)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("PPROF=%v: GET %s = %d, want %d", on, path, rec.Code, want)
			}
			if on && path == "/debug/pprof/heap?debug=1" && !strings.Contains(rec.Body.String(), "heap profile") {
				t.Errorf("PPROF=true: GET %s does not answer a heap profile: %.100q", path, rec.Body.String())
			}
		}
	}
}
