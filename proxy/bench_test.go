package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
)

// memTransport answers every request with the same 1 KiB JSON body, so that
// the benchmarks measure the proxy, not a network.
type memTransport struct{ body []byte }

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(t.body)),
		ContentLength: int64(len(t.body)),
		Request:       req,
	}, nil
}

var benchUpstream, _ = url.Parse("http://api.example")

func benchTransport() memTransport {
	return memTransport{body: bytes.Repeat([]byte("x"), 1024)}
}

// runBench sends GET requests through h, one at a time.
func runBench(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	req := httptest.NewRequest(http.MethodGet, "/v1/status?id=1", nil)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status = %d, want 200", w.Code)
		}
	}
}

// BenchmarkBareReverseProxy is the baseline: a ReverseProxy that sets a
// static header, with the same transport and buffer pool.
func BenchmarkBareReverseProxy(b *testing.B) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(benchUpstream)
			pr.Out.Header.Set("Authorization", "Bearer static-token")
		},
		Transport:  benchTransport(),
		BufferPool: bufferPool{},
	}
	runBench(b, rp)
}

// BenchmarkSidecar is the sidecar's handler with a real token cache and
// metrics.
func BenchmarkSidecar(b *testing.B) {
	cache := benchCache(b)
	h := New(Config{
		Upstream:      benchUpstream,
		Tokens:        cache,
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	})
	runBench(b, h)
}
