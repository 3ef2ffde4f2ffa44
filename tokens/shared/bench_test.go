package shared_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authsidecar/authsidecar/test/redistest"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// BenchmarkRenewalHit is what a renewal costs a sidecar when another has
// already renewed: a GET over loopback and a decryption. Requests never pay
// it; they read the Cache's copy.
func BenchmarkRenewalHit(b *testing.B) {
	srv := redistest.Start(b)
	p := newProvider(time.Hour)
	fetcher := newBenchSidecar(b, srv.URL(), p)
	if _, err := fetcher.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s := newBenchSidecar(b, srv.URL(), p) // holds no token: takes the fleet's
		if _, err := s.Token(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	if n := p.calls.Load(); n != 1 {
		b.Fatalf("provider fetches = %d, want 1", n)
	}
}

// BenchmarkRenewalMiss is a renewal for the fleet: read, lock, fetch (from
// an in-memory provider), encrypt, store, release.
func BenchmarkRenewalMiss(b *testing.B) {
	srv := redistest.Start(b)
	s := newBenchSidecar(b, srv.URL(), newProvider(time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Token(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// benchClient is one connection per Redis, as each pod has one.
var benchClient = map[string]*redis.Client{}

func newBenchSidecar(b *testing.B, url string, p tokens.Source) *shared.Source {
	b.Helper()
	c, ok := benchClient[url]
	if !ok {
		var err error
		if c, err = shared.NewClient(shared.ClientConfig{URL: url}); err != nil {
			b.Fatal(err)
		}
		benchClient[url] = c
		b.Cleanup(func() { c.Close(); delete(benchClient, url) })
	}
	s, err := shared.New(p, shared.Config{Client: c, Key: fleetKey, Identity: identity})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
