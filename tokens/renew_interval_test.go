package tokens

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// A provider whose tokens live 20ms cannot make the cache fetch more than
// once per MinRenewInterval (250ms), whether the renewal timer or stale-token
// requests ask; a forced refresh (Invalidate) is not delayed.
func TestCacheMinRenewInterval(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: func(n int, now time.Time) (*Token, error) {
			return &Token{Value: fmt.Sprintf("tok-%d", n), Expiry: now.Add(20 * time.Millisecond)}, nil
		}}
		c := NewCache(src, CacheOptions{ForcedRefreshInterval: time.Millisecond})
		run(t, c)
		mustToken(t, c)

		// The renewal is due after ~15ms: it must wait. A request finds the
		// token stale at 15ms and asks for one: still no fetch.
		time.Sleep(20 * time.Millisecond)
		got := make(chan *Token)
		go func() {
			tok, _ := tokenWithin(c)
			got <- tok
		}()
		synctest.Wait() // the request waits too
		if n := src.count(); n != 1 {
			t.Fatalf("%d fetches within 250ms of the first, want 1", n)
		}
		if tok := receive(t, got); tok == nil || tok.Value != "tok-2" {
			t.Fatalf("waiting request got %v, want tok-2", tok)
		}
		starts := src.calls.times()
		if gap := starts[1].Sub(starts[0]); gap < 250*time.Millisecond || gap > 266*time.Millisecond {
			t.Errorf("second fetch %v after the first, want MinRenewInterval (250ms), and no more than the rest of it after the renewal was due", gap)
		}

		// A rejected token is replaced at once.
		if !c.Invalidate(mustToken(t, c)) {
			t.Fatal("Invalidate refused")
		}
		if tok := mustToken(t, c); tok.Value != "tok-3" {
			t.Fatalf("after Invalidate Token() = %q, want tok-3", tok.Value)
		}
		starts = src.calls.times()
		if !starts[2].Equal(starts[1]) {
			t.Errorf("forced refresh waited %v, want none", starts[2].Sub(starts[1]))
		}
	})
}

// While no valid token is held requests are failing: retries are capped at
// MaxBackoffNoToken (5s), not MaxBackoff (30s), so a healed provider is
// found within seconds.
func TestCacheBackoffWithoutTokenIsShort(t *testing.T) {
	setJitter(t, 1) // the longest wait each time
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: failWith(errors.New("connection refused"))}
		c := NewCache(src, CacheOptions{})
		run(t, c)
		var waits []time.Duration
		for i := range 8 {
			waits = append(waits, src.calls.wait(t, i+2).Sub(src.calls.wait(t, i+1)))
		}
		want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second}
		if !slices.Equal(waits, want) {
			t.Errorf("waits between failed fetches without a token = %v, want %v", waits, want)
		}
	})
}
