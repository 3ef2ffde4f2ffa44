package tokens

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkKeyedCacheHit: Token for one of 1000 held keys, from parallel
// callers: the hot path of a per-customer token. Target: < 100 ns/op, 0
// allocs/op.
func BenchmarkKeyedCacheHit(b *testing.B) {
	src := &keyedSource{answer: keyedIssue(24 * time.Hour)}
	c := NewKeyedCache(src, KeyedCacheOptions{})
	keys := make([]string, 1000)
	ctx := context.Background()
	for i := range keys {
		keys[i] = fmt.Sprintf("cust_%08d", i)
		if _, err := c.Token(ctx, keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			if _, err := c.Token(ctx, keys[i]); err != nil {
				b.Fatal(err)
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
	b.StopTimer()
	if n := src.calls.count(); n != len(keys) {
		b.Errorf("%d fetches for %d keys, want one each", n, len(keys))
	}
}

// BenchmarkKeyedCacheHitNoClock is BenchmarkKeyedCacheHit without reading
// the clock, which costs more than the rest on some virtual machines: the
// cost of the sharded map and LRU list alone.
func BenchmarkKeyedCacheHitNoClock(b *testing.B) {
	src := &keyedSource{answer: keyedIssue(24 * time.Hour)}
	c := NewKeyedCache(src, KeyedCacheOptions{})
	keys := make([]string, 1000)
	ctx := context.Background()
	for i := range keys {
		keys[i] = fmt.Sprintf("cust_%08d", i)
		if _, err := c.Token(ctx, keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			if _, err := c.tokenAt(ctx, keys[i], now); err != nil {
				b.Fatal(err)
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
}

// BenchmarkKeyedCacheAccepted: Accepted follows every answer the upstream
// did not reject.
func BenchmarkKeyedCacheAccepted(b *testing.B) {
	c := NewKeyedCache(&keyedSource{answer: keyedIssue(24 * time.Hour)}, KeyedCacheOptions{})
	keys := make([]string, 1000)
	toks := make([]*Token, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("cust_%08d", i)
		var err error
		if toks[i], err = c.Token(context.Background(), keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			c.Accepted(keys[i], toks[i])
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
}

// BenchmarkCacheHit: Token of the single-token Cache, for comparison.
func BenchmarkCacheHit(b *testing.B) {
	c := NewCache(nil, CacheOptions{})
	tok := &Token{Value: "t", Expiry: time.Now().Add(24 * time.Hour)}
	c.cur.Store(&entry{tok: tok, staleAt: tok.Expiry})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
