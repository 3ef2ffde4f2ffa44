package tokens

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// A provider whose tokens live 20ms cannot make the cache fetch more than
// once per MinRenewInterval (250ms), whether the renewal timer or stale-token
// requests ask; a forced refresh (Invalidate) is not delayed.
func TestCacheMinRenewInterval(t *testing.T) {
	clk := newFakeClock(tezpayEpoch)
	var mu sync.Mutex
	var starts []time.Time
	src := &fakeSource{clk: clk, answer: func(n int, now time.Time) (*Token, error) {
		mu.Lock()
		starts = append(starts, now)
		mu.Unlock()
		return &Token{Value: fmt.Sprintf("tok-%d", n), Expiry: now.Add(20 * time.Millisecond)}, nil
	}}
	c := NewCache(src, CacheOptions{Clock: clk, ForcedRefreshInterval: time.Millisecond})
	run(t, c)
	mustToken(t, c)

	clk.BlockUntil(t, 1)
	clk.AdvanceToNext(t) // the renewal is due after ~16ms: it must wait
	clk.BlockUntil(t, 1)
	if ws := clk.Waiting(); len(ws) != 1 || ws[0] < 200*time.Millisecond || ws[0] > 250*time.Millisecond {
		t.Fatalf("after a renewal due at ~15ms the cache waits %v, want the rest of 250ms", ws)
	}
	// A request finds the token stale and asks for one: still no fetch.
	clk.Advance(5 * time.Millisecond)
	got := make(chan *Token)
	go func() {
		tok, _ := tokenWithin(c)
		got <- tok
	}()
	clk.BlockUntil(t, 2) // the request waits too
	if n := src.count(); n != 1 {
		t.Fatalf("%d fetches within 250ms of the first, want 1", n)
	}
	clk.Advance(clk.Waiting()[0])
	if tok := <-got; tok == nil || tok.Value != "tok-2" {
		t.Fatalf("waiting request got %v, want tok-2", tok)
	}
	mu.Lock()
	gap := starts[1].Sub(starts[0])
	mu.Unlock()
	if gap < 250*time.Millisecond {
		t.Errorf("second fetch %v after the first, want at least MinRenewInterval (250ms)", gap)
	}

	// A rejected token is replaced at once.
	if !c.Invalidate(mustToken(t, c)) {
		t.Fatal("Invalidate refused")
	}
	if tok := mustToken(t, c); tok.Value != "tok-3" {
		t.Fatalf("after Invalidate Token() = %q, want tok-3", tok.Value)
	}
	mu.Lock()
	defer mu.Unlock()
	if !starts[2].Equal(starts[1]) {
		t.Errorf("forced refresh waited %v, want none", starts[2].Sub(starts[1]))
	}
}

// While no valid token is held requests are failing: retries are capped at
// MaxBackoffNoToken (5s), not MaxBackoff (30s), so a healed provider is
// found within seconds.
func TestCacheBackoffWithoutTokenIsShort(t *testing.T) {
	setJitter(t, 1) // the longest wait each time
	clk := newFakeClock(tezpayEpoch)
	src := &fakeSource{clk: clk, answer: failWith(errors.New("connection refused"))}
	c := NewCache(src, CacheOptions{Clock: clk})
	run(t, c)
	var waits []time.Duration
	for range 8 {
		clk.BlockUntil(t, 1)
		waits = append(waits, clk.AdvanceToNext(t))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("waits between failed fetches without a token = %v, want %v", waits, want)
	}
}
