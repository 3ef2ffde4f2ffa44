package proxy

import (
	"context"
	"net/http/httputil"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// These benchmarks split BenchmarkSidecar's cost against
// BenchmarkBareReverseProxy in two: the sidecar without metrics (token cache,
// injection, replay bookkeeping), and the bare proxy with the sidecar's
// metrics instrumentation (metrics.InstrumentHandler and InstrumentTransport).

// benchCache returns a running token cache holding a valid token.
func benchCache(b *testing.B) *tokens.Cache {
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
	return cache
}

// BenchmarkSidecarNoMetrics is BenchmarkSidecar without metrics.
func BenchmarkSidecarNoMetrics(b *testing.B) {
	runBench(b, New(Config{
		Upstream:      benchUpstream,
		Tokens:        benchCache(b),
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
	}))
}

// BenchmarkBareReverseProxyMetrics is BenchmarkBareReverseProxy wrapped in
// the sidecar's metrics instrumentation.
func BenchmarkBareReverseProxyMetrics(b *testing.B) {
	m := metrics.New(prometheus.NewRegistry())
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(benchUpstream)
			pr.Out.Header.Set("Authorization", "Bearer static-token")
		},
		Transport:  m.InstrumentTransport(benchTransport()),
		BufferPool: bufferPool{},
	}
	runBench(b, m.InstrumentHandler(rp))
}
