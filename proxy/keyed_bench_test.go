package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// benchCustomers is how many customers the json-body benchmarks cycle
// through.
const benchCustomers = 1000

// benchInitiate is an SDK initiate body for customer, as test/e2e's
// juspayInitiate: about 200 bytes, numbers to keep exactly as written.
func benchInitiate(customer string) []byte {
	return []byte(`{"payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"` +
		customer + `","amount":12345678901234567890,"fee":1.10}}`)
}

// benchBodies is one initiate body per customer, cust-0000 on.
func benchBodies() [][]byte {
	bodies := make([][]byte, benchCustomers)
	for i := range bodies {
		bodies[i] = benchInitiate(fmt.Sprintf("cust-%04d", i))
	}
	return bodies
}

// keyedSourceFunc adapts a function to a tokens.KeyedSource.
type keyedSourceFunc func(ctx context.Context, key string) (*tokens.Token, error)

func (f keyedSourceFunc) Token(ctx context.Context, key string) (*tokens.Token, error) {
	return f(ctx, key)
}

// benchKeyedCache is a real KeyedCache over a source that issues tokens at
// once, holding a token for each of benchCustomers customers.
func benchKeyedCache(b *testing.B) *tokens.KeyedCache {
	src := keyedSourceFunc(func(_ context.Context, key string) (*tokens.Token, error) {
		return &tokens.Token{Value: "tkn_" + key, Expiry: time.Now().Add(time.Hour)}, nil
	})
	cache := tokens.NewKeyedCache(src, tokens.KeyedCacheOptions{})
	for i := range benchCustomers {
		if _, err := cache.Token(context.Background(), fmt.Sprintf("cust-%04d", i)); err != nil {
			b.Fatal(err)
		}
	}
	if n := cache.Len(); n != benchCustomers {
		b.Fatalf("cache holds %d customers, want %d", n, benchCustomers)
	}
	return cache
}

// rewindBody is a request body that the benchmark loop points at the next
// customer's bytes without allocating.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// runBodyBench POSTs the bodies through h one at a time, in turn.
func runBodyBench(b *testing.B, h http.Handler, bodies [][]byte) {
	b.ReportAllocs()
	req := httptest.NewRequest(http.MethodPost, "/v4/sdk", nil)
	req.Header.Set("Content-Type", "application/json")
	body := &rewindBody{}
	i := 0
	for b.Loop() {
		next := bodies[i%len(bodies)]
		i++
		body.Reset(next)
		req.Body, req.ContentLength = body, int64(len(next))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status = %d %q, want 200", w.Code, w.Body)
		}
	}
}

// BenchmarkJSONBodyPerCustomer is json-body with a token per customer, read
// from each body: initiate bodies of 1000 customers in turn, their tokens
// warm in a real KeyedCache.
func BenchmarkJSONBodyPerCustomer(b *testing.B) {
	runBodyBench(b, New(Config{
		Upstream:      benchUpstream,
		KeyedTokens:   benchKeyedCache(b),
		Injector:      JSONBody("payload.clientAuthToken", "payload.authExpiry"),
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	}), benchBodies())
}

// BenchmarkJSONBodyOneToken is BenchmarkJSONBodyPerCustomer with one token
// for every body: the same bodies, the token from a real Cache.
func BenchmarkJSONBodyOneToken(b *testing.B) {
	runBodyBench(b, New(Config{
		Upstream:      benchUpstream,
		Tokens:        benchCache(b),
		Injector:      JSONBody("payload.clientAuthToken", "payload.authExpiry"),
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	}), benchBodies())
}
