package tokens

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// revokingUpstream is a fake upstream that accepts any token its provider
// issued and has not revoked, as a provider with one active token per client
// does when a second client logs in with the same credentials.
type revokingUpstream struct {
	mu        sync.Mutex
	revoked   map[string]bool
	rejectAll bool // every token is rejected, as by a misconfigured upstream
}

func (u *revokingUpstream) accepts(tok *Token) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.rejectAll && !u.revoked[tok.Value]
}

func (u *revokingUpstream) revoke(value string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.revoked == nil {
		u.revoked = map[string]bool{}
	}
	u.revoked[value] = true
}

// proxyRequest sends one request to u as the proxy does (proxy/inject.go):
// with the cached token; when it is rejected, Invalidate, and if that says a
// replay is worth it, once more with the token Token gives then. An answer
// that is not a rejection is reported with Accepted. It returns whether the
// app got an accepted answer.
func proxyRequest(ctx context.Context, c *Cache, u *revokingUpstream) bool {
	tok, err := c.Token(ctx)
	if err != nil {
		return false
	}
	if u.accepts(tok) {
		c.Accepted(tok)
		return true
	}
	if !c.Invalidate(tok) {
		return false
	}
	fresh, err := c.Token(ctx)
	if err != nil {
		return false
	}
	if u.accepts(fresh) {
		c.Accepted(fresh)
		return true
	}
	if fresh != tok {
		c.Invalidate(fresh)
	}
	return false
}

// wave sends n concurrent requests and returns how many succeeded.
func wave(c *Cache, u *revokingUpstream, n int) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	for range n {
		wg.Go(func() {
			if proxyRequest(context.Background(), c, u) {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// TestCacheTwoRevocationsCloseTogether is finding 1 of issue 13: a provider
// revokes the sidecar's token twice, 2s apart, and 32 concurrent requests
// meet each revocation. A token the upstream had accepted is refreshed at
// once, however recent the last forced refresh: every request succeeds after
// its replay, with one refresh per revocation.
func TestCacheTwoRevocationsCloseTogether(t *testing.T) {
	tests := []struct {
		name     string
		warmUp   bool // a request before the first revocation
		interval time.Duration
	}{
		{"first token never used before its revocation", false, 0},
		{"first token used before its revocation", true, 0},
		{"ForcedRefreshInterval of a minute", true, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				obs := &observer{}
				src := &fakeSource{answer: issue(time.Hour)}
				c := NewCache(src, CacheOptions{Observer: obs, ForcedRefreshInterval: tc.interval})
				run(t, c)
				u := &revokingUpstream{}
				if tc.warmUp && !proxyRequest(context.Background(), c, u) {
					t.Fatalf("request before any revocation failed")
				}

				succeeded := 0
				for i := range 2 {
					if i > 0 {
						time.Sleep(2 * time.Second)
					}
					u.revoke(mustToken(t, c).Value)
					succeeded += wave(c, u, 32)
				}
				if succeeded != 64 {
					t.Errorf("requests succeeded = %d, want 64 of 64", succeeded)
				}
				if n, f := src.count(), obs.forcedRefreshes(); n != 3 || f != 2 {
					t.Errorf("fetches = %d, forced refreshes = %d; want 3 and 2 (one per revocation)", n, f)
				}
			})
		})
	}
}

// TestCacheUpstreamRejectingEveryToken: an upstream that answers 401 to
// every token, met by 20 requests 100ms apart, costs the provider at most 3
// fetches: tokens never accepted are refreshed at most after a wait that
// doubles from 1s.
func TestCacheUpstreamRejectingEveryToken(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &observer{}
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{Observer: obs})
		run(t, c)
		u := &revokingUpstream{rejectAll: true}
		for i := range 20 {
			if proxyRequest(context.Background(), c, u) {
				t.Fatalf("request %d succeeded against an upstream rejecting every token", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := src.count(); n > 3 {
			t.Errorf("fetches for 20 rejected requests = %d, want at most 3", n)
		}
	})
}

// TestCacheForcedRefreshBackoff: refreshes forced by tokens never accepted
// are spaced by a wait that doubles from 1s up to ForcedRefreshInterval;
// a refused Invalidate keeps the token, and a token accepted once is
// refreshed at once, which also starts the doubling afresh.
func TestCacheForcedRefreshBackoff(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     []time.Duration // waits before the 2nd, 3rd, … forced refresh
	}{
		{"default 10s", 0, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{"1 minute", time.Minute, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute}},
		{"below the base", 300 * time.Millisecond, []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				src := &fakeSource{answer: issue(time.Hour)}
				c := NewCache(src, CacheOptions{ForcedRefreshInterval: tc.interval})
				run(t, c)
				if !c.Invalidate(mustToken(t, c)) {
					t.Fatalf("first Invalidate() = false, want true")
				}
				for i, want := range tc.want {
					tok := mustToken(t, c)
					time.Sleep(want - time.Millisecond)
					if c.Invalidate(tok) {
						t.Fatalf("forced refresh %d: Invalidate() %v after the last = true, want false", i+2, want-time.Millisecond)
					}
					if got := mustToken(t, c); got != tok {
						t.Fatalf("Token() after a refused Invalidate = %q, want %q", got.Value, tok.Value)
					}
					time.Sleep(time.Millisecond)
					if !c.Invalidate(tok) {
						t.Fatalf("forced refresh %d: Invalidate() %v after the last = false, want true", i+2, want)
					}
				}
				tok := mustToken(t, c)
				c.Accepted(tok)
				if !c.Invalidate(tok) {
					t.Errorf("Invalidate() of an accepted token at once = false, want true")
				}
				if !c.Invalidate(mustToken(t, c)) {
					t.Errorf("Invalidate() of a new token right after an accepted one = false, want true: the doubling starts afresh")
				}
				synctest.Wait() // the last refresh is made
				if got, want := src.count(), len(tc.want)+4; got != want {
					t.Errorf("fetches = %d, want %d", got, want)
				}
			})
		})
	}
}

// TestCacheAccepted: Accepted marks only the current token; one reported
// for a token already replaced changes nothing.
func TestCacheAccepted(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{})
		c.Accepted(&Token{Value: "none held"}) // no token yet: nothing to mark
		run(t, c)
		first := mustToken(t, c)
		if !c.Invalidate(first) {
			t.Fatalf("Invalidate(first) = false, want true")
		}
		second := mustToken(t, c)
		c.Accepted(first) // a late answer to a request sent with the old token
		if c.Invalidate(second) {
			t.Errorf("Invalidate(second) = true at once after Accepted(first): the old token's acceptance was counted for the new one")
		}
		c.Accepted(second)
		if !c.Invalidate(second) {
			t.Errorf("Invalidate(second) after Accepted(second) = false, want true")
		}
		if got := mustToken(t, c).Value; got != fmt.Sprintf("tok-%d", 3) {
			t.Errorf("Token() = %q, want %q", got, "tok-3")
		}
	})
}

// BenchmarkCacheAccepted: Accepted is on the hot path, once per answer.
func BenchmarkCacheAccepted(b *testing.B) {
	c := NewCache(nil, CacheOptions{})
	tok := &Token{Value: "t", Expiry: time.Now().Add(time.Hour)}
	c.cur.Store(&entry{tok: tok, staleAt: tok.Expiry})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Accepted(tok)
		}
	})
}

// TestCacheReplayed: a rejected replay spaces the forced refreshes that
// follow, even of tokens the upstream accepted elsewhere, until a replay is
// accepted again; then a revoked token is refreshed at once.
func TestCacheReplayed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{})
		run(t, c)
		first := mustToken(t, c)
		c.Accepted(first)
		if !c.Invalidate(first) {
			t.Fatalf("Invalidate(first, accepted) = false, want true")
		}
		second := mustToken(t, c)
		c.Replayed(second, false) // the replay was rejected too
		if got := mustToken(t, c); got != second {
			t.Fatalf("Token() after a rejected replay = %q, want %q kept: the wait applies", got.Value, second.Value)
		}
		c.Accepted(second) // other requests accept it
		if c.Invalidate(second) {
			t.Errorf("Invalidate(second, accepted) right after a rejected replay = true, want false")
		}
		time.Sleep(time.Second)
		if !c.Invalidate(second) {
			t.Fatalf("Invalidate(second, accepted) 1s after the last forced refresh = false, want true")
		}
		third := mustToken(t, c)
		c.Replayed(third, true)
		if !c.Invalidate(third) {
			t.Errorf("Invalidate(third, accepted) after an accepted replay = false, want true at once")
		}
		synctest.Wait()
		if got := src.count(); got != 4 {
			t.Errorf("fetches = %d, want 4", got)
		}
	})
}
