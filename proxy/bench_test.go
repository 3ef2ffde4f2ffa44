package proxy

import (
	"bytes"
	"context"
	"fmt"
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

// runBenchParallel sends GET requests through h from GOMAXPROCS goroutines
// at once, so that what requests share (metrics, the token cache) is
// contended as on a busy multi-core sidecar.
func runBenchParallel(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/v1/status?id=1", nil)
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status = %d, want 200", w.Code)
				return
			}
		}
	})
}

// BenchmarkBareReverseProxy is the baseline: a ReverseProxy that sets a
// static header, with the same transport and buffer pool.
func BenchmarkBareReverseProxy(b *testing.B) {
	runBench(b, bareReverseProxy())
}

func bareReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(benchUpstream)
			pr.Out.Header.Set("Authorization", "Bearer static-token")
		},
		Transport:  benchTransport(),
		BufferPool: bufferPool{},
	}
}

// BenchmarkBareReverseProxyParallel is BenchmarkBareReverseProxy from
// GOMAXPROCS goroutines.
func BenchmarkBareReverseProxyParallel(b *testing.B) {
	runBenchParallel(b, bareReverseProxy())
}

// BenchmarkSidecar is the sidecar's handler with a real token cache and
// metrics.
func BenchmarkSidecar(b *testing.B) {
	runBench(b, benchSidecar(b))
}

// BenchmarkSidecarParallel is BenchmarkSidecar from GOMAXPROCS goroutines.
func BenchmarkSidecarParallel(b *testing.B) {
	runBenchParallel(b, benchSidecar(b))
}

func benchSidecar(b *testing.B) http.Handler {
	return New(Config{
		Upstream:      benchUpstream,
		Tokens:        benchCache(b),
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	})
}

// BenchmarkSidecarTenants is BenchmarkSidecar with tenants: each request
// names its merchant in a header, and its token comes from the merchant's
// entry in a warm keyed cache: one merchant (what tenants cost a request),
// and requests spread over 1,000 (with what a larger working set costs the
// CPU's caches).
func BenchmarkSidecarTenants(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("merchants=%d", n), func(b *testing.B) { benchmarkSidecarTenants(b, n) })
	}
}

func benchmarkSidecarTenants(b *testing.B, merchants int) {
	keyed := tokens.NewKeyedCache(tokens.KeyedSourceFunc(func(_ context.Context, key string) (*tokens.Token, error) {
		return &tokens.Token{Value: "tok-" + key, Expiry: time.Now().Add(time.Hour)}, nil
	}), tokens.KeyedCacheOptions{})
	names := make([][]string, merchants)
	known := benchTenants{}
	for i := range names {
		name := fmt.Sprintf("merchant-%d", i)
		names[i] = []string{name}
		if _, err := keyed.Token(context.Background(), name); err != nil {
			b.Fatal(err)
		}
		known[name] = &Tenant{Key: name, Tokens: BindKey(keyed, name)}
	}
	h := New(Config{
		Upstream:     benchUpstream,
		Transport:    benchTransport(),
		Injector:     Bearer(),
		Tenants:      known,
		TenantHeader: "X-Merchant",
		Metrics:      metrics.New(prometheus.NewRegistry()),
	})
	b.ReportAllocs()
	req := httptest.NewRequest(http.MethodGet, "/v1/status?id=1", nil)
	i := 0
	for b.Loop() {
		req.Header["X-Merchant"] = names[i%len(names)]
		i++
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status = %d, want 200", w.Code)
		}
	}
}

// benchTenants are tenants by name, built beforehand as cmd builds them at
// their first request.
type benchTenants map[string]*Tenant

func (b benchTenants) Tenant(name string) (*Tenant, error) { return b[name], nil }
