package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
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
	ctx, cancel := context.WithCancel(context.Background())
	src := tokens.SourceFunc(func(context.Context) (*tokens.Token, error) {
		return &tokens.Token{Value: "static-token", Expiry: time.Now().Add(time.Hour)}, nil
	})
	cache := tokens.NewCache(src, tokens.CacheOptions{})
	done := make(chan struct{})
	go func() { cache.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	if _, err := cache.Token(ctx); err != nil {
		b.Fatal(err)
	}
	h := New(Config{
		Upstream:      benchUpstream,
		Tokens:        cache,
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	})
	runBench(b, h)
}
