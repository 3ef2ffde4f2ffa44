package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"weak"
)

// keyedSource is a scripted KeyedSource: the n-th call for a key (from 1)
// returns answer(key, n, now), by default a token "key-n" that lives an hour.
type keyedSource struct {
	calls events // one per call, as it starts

	mu     sync.Mutex
	n      map[string]int
	gates  map[string]chan struct{}
	answer func(key string, n int, now time.Time) (*Token, error)
}

func (s *keyedSource) Token(ctx context.Context, key string) (*Token, error) {
	s.mu.Lock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[key]++
	n, gate, answer := s.n[key], s.gates[key], s.answer
	s.mu.Unlock()
	s.calls.add()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if answer == nil {
		answer = keyedIssue(time.Hour)
	}
	return answer(key, n, time.Now())
}

// count is how many fetches were made for key.
func (s *keyedSource) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

// gate makes key's fetches wait until the returned channel is closed.
func (s *keyedSource) gate(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gates == nil {
		s.gates = map[string]chan struct{}{}
	}
	g := make(chan struct{})
	s.gates[key] = g
	return g
}

// keyedIssue answers with a new token, "key-n", that lives for life.
func keyedIssue(life time.Duration) func(string, int, time.Time) (*Token, error) {
	return func(key string, n int, now time.Time) (*Token, error) {
		return &Token{Value: fmt.Sprintf("%s-%d", key, n), Expiry: now.Add(life)}, nil
	}
}

// keyedTokenWithin calls c.Token, giving up after 5s: a Token that waits for
// nothing fails the test instead of hanging it.
func keyedTokenWithin(c *KeyedCache, key string) (*Token, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchdog := time.AfterFunc(5*time.Second, cancel)
	defer watchdog.Stop()
	return c.Token(ctx, key)
}

func mustKeyed(t *testing.T, c *KeyedCache, key string) *Token {
	t.Helper()
	tok, err := keyedTokenWithin(c, key)
	if err != nil {
		t.Fatalf("Token(%q) error = %v", key, err)
	}
	return tok
}

type keyedResult struct {
	tok *Token
	err error
}

// goToken calls c.Token(ctx, key) in a goroutine; its result arrives on the
// channel returned.
func goToken(ctx context.Context, c *KeyedCache, key string) <-chan keyedResult {
	done := make(chan keyedResult, 1)
	go func() {
		tok, err := c.Token(ctx, key)
		done <- keyedResult{tok, err}
	}()
	return done
}

// ready returns ch's result if one has arrived.
func ready(ch <-chan keyedResult) (keyedResult, bool) {
	select {
	case r := <-ch:
		return r, true
	default:
		return keyedResult{}, false
	}
}

// checkShards checks every shard's LRU list against its map and its bound.
func checkShards(t *testing.T, c *KeyedCache) {
	t.Helper()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n := 0
		var prev *keyedEntry
		for e := s.head; e != nil; prev, e = e, e.next {
			if e.prev != prev || s.m[e.key] != e {
				t.Errorf("shard %d: list entry %d (%q) is not linked or not in the map", i, n, e.key)
			}
			n++
		}
		if s.tail != prev || n != len(s.m) || n > s.size {
			t.Errorf("shard %d: list of %d entries, map of %d, size %d; want equal lengths within the size", i, n, len(s.m), s.size)
		}
		s.mu.Unlock()
	}
}

func TestKeyedCacheShards(t *testing.T) {
	tests := []struct {
		size       int
		wantShards int
		wantSize   int
	}{
		{0, 64, 10000},
		{-1, 64, 10000},
		{1, 1, 1},
		{20, 1, 20},
		{32, 2, 32},
		{100, 4, 100},
		{1000, 32, 1000},
		{10000, 64, 10000},
		{10007, 64, 10007},
	}
	for _, tc := range tests {
		c := NewKeyedCache(&keyedSource{}, KeyedCacheOptions{Size: tc.size})
		total := 0
		for i := range c.shards {
			total += c.shards[i].size
			if c.shards[i].size < min(tc.wantSize, minKeysPerShard) {
				t.Errorf("Size %d: shard %d holds %d keys, want at least %d", tc.size, i, c.shards[i].size, min(tc.wantSize, minKeysPerShard))
			}
		}
		if len(c.shards) != tc.wantShards || total != tc.wantSize {
			t.Errorf("Size %d: %d shards holding %d keys, want %d holding %d", tc.size, len(c.shards), total, tc.wantShards, tc.wantSize)
		}
	}
}

// TestKeyedCacheOneFetchPerKey: 3 keys × 20 concurrent callers make exactly
// 3 fetches, and every caller gets its own key's token.
func TestKeyedCacheOneFetchPerKey(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &keyedSource{}
		c := NewKeyedCache(src, KeyedCacheOptions{})
		keys := []string{"cust_a", "cust_b", "cust_c"}
		var gates []chan struct{}
		for _, k := range keys {
			gates = append(gates, src.gate(k))
		}
		const perKey = 20
		toks, errs := make([]*Token, len(keys)*perKey), make([]error, len(keys)*perKey)
		var wg sync.WaitGroup
		for i := range toks {
			wg.Go(func() { toks[i], errs[i] = keyedTokenWithin(c, keys[i%len(keys)]) })
		}
		synctest.Wait() // every caller waits for its key's fetch
		if n := src.calls.count(); n != len(keys) {
			t.Errorf("%d fetches in flight for %d keys, want %d", n, len(keys), len(keys))
		}
		for _, g := range gates {
			close(g)
		}
		wg.Wait()
		for i, tok := range toks {
			key := keys[i%len(keys)]
			if errs[i] != nil || tok == nil || tok.Value != key+"-1" || tok != toks[i%len(keys)] {
				t.Fatalf("caller %d: Token(%q) = %v, %v; want the one token %q", i, key, tok, errs[i], key+"-1")
			}
		}
		for _, k := range keys {
			if n := src.count(k); n != 1 {
				t.Errorf("source called %d times for %q, want 1", n, k)
			}
		}
		if n := c.Len(); n != len(keys) {
			t.Errorf("Len() = %d, want %d", n, len(keys))
		}
	})
}

// TestKeyedCacheRenewal: a token is reused until RenewAt of its lifetime;
// then it is still handed out at once while one background fetch replaces
// it; once stale, callers wait for the fetch.
func TestKeyedCacheRenewal(t *testing.T) {
	// An hour's token with no jitter: renewed from 48m, stale from 59m50s.
	tests := []struct {
		name        string
		after       time.Duration
		wantOld     bool // the first token handed out at once
		wantFetches int  // fetches made, the last one held, after 100 calls
	}{
		{"before RenewAt", 48*time.Minute - time.Millisecond, true, 1},
		{"at RenewAt", 48 * time.Minute, true, 2},
		{"just before stale", 59*time.Minute + 50*time.Second - time.Millisecond, true, 2},
		{"stale", 59*time.Minute + 50*time.Second, false, 2},
		{"expired", 2 * time.Hour, false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				src := &keyedSource{}
				c := NewKeyedCache(src, KeyedCacheOptions{})
				first := mustKeyed(t, c, "k")
				other := mustKeyed(t, c, "other")
				gate := src.gate("k")
				time.Sleep(tc.after)
				start := time.Now()
				var results []<-chan keyedResult
				for range 100 {
					results = append(results, goToken(context.Background(), c, "k"))
				}
				synctest.Wait()
				for i, ch := range results {
					r, ok := ready(ch)
					switch {
					case tc.wantOld && (!ok || r.tok != first || r.err != nil):
						t.Fatalf("call %d: Token() = %v, %v (returned: %t); want the first token at once", i, r.tok, r.err, ok)
					case !tc.wantOld && ok:
						t.Fatalf("call %d: Token() = %v, %v with a stale token held; want it waiting for the fetch", i, r.tok, r.err)
					}
				}
				if n := src.count("k"); n != tc.wantFetches {
					t.Errorf("source called %d times after 100 calls, want %d", n, tc.wantFetches)
				}
				close(gate)
				synctest.Wait()
				if !tc.wantOld {
					for i, ch := range results {
						r := receive(t, ch)
						if r.err != nil || r.tok.Value != "k-2" {
							t.Fatalf("call %d: Token() = %v, %v; want %q", i, r.tok, r.err, "k-2")
						}
					}
				}
				want := fmt.Sprintf("k-%d", tc.wantFetches)
				if got := mustKeyed(t, c, "k"); got.Value != want {
					t.Errorf("Token() after the fetch = %q, want %q", got.Value, want)
				}
				if time.Since(start) != 0 {
					t.Errorf("calls took %v of fake time, want none", time.Since(start))
				}
				if n := src.count("k"); n != tc.wantFetches {
					t.Errorf("source called %d times, want %d", n, tc.wantFetches)
				}
				// Fetched at the same time, another key renews on its own use only.
				if n := src.count("other"); n != 1 {
					t.Errorf("source called %d times for another key, want 1", n)
				}
				if got := mustKeyed(t, c, "other"); got != other && tc.wantOld {
					t.Errorf("Token(other) = %q, want the held %q", got.Value, other.Value)
				}
			})
		})
	}
}

// TestKeyedCacheMinRenewInterval: tokens that live a few milliseconds do not
// cause a background refresh at every call.
func TestKeyedCacheMinRenewInterval(t *testing.T) {
	setJitter(t, 0)
	bubble(t, func(t *testing.T) {
		src := &keyedSource{answer: keyedIssue(time.Second)} // renewed from 800ms, stale from 750ms
		c := NewKeyedCache(src, KeyedCacheOptions{RenewAt: 0.1})
		mustKeyed(t, c, "k")
		for range 200 { // one call a millisecond for 200ms
			mustKeyed(t, c, "k")
			time.Sleep(time.Millisecond)
		}
		synctest.Wait()
		if n := src.count("k"); n != 1 {
			t.Errorf("source called %d times in the first 200ms, want 1", n)
		}
		time.Sleep(50 * time.Millisecond)
		mustKeyed(t, c, "k")
		synctest.Wait()
		if n := src.count("k"); n != 2 {
			t.Errorf("source called %d times after 250ms, want 2", n)
		}
	})
}

// TestKeyedCacheInvalidate: a rejected token is dropped for its key only,
// and forced refreshes that do not help are spaced per key.
func TestKeyedCacheInvalidate(t *testing.T) {
	t.Run("only that key refetches", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{}
			obs := &observer{}
			c := NewKeyedCache(src, KeyedCacheOptions{Observer: obs})
			keys := []string{"a", "b", "c"}
			toks := map[string]*Token{}
			for _, k := range keys {
				toks[k] = mustKeyed(t, c, k)
				c.Accepted(k, toks[k])
			}
			if !c.Invalidate("b", toks["b"]) {
				t.Fatalf("Invalidate(b, accepted token) = false, want true")
			}
			if got := mustKeyed(t, c, "b"); got.Value != "b-2" {
				t.Errorf("Token(b) after Invalidate = %q, want %q", got.Value, "b-2")
			}
			for _, k := range []string{"a", "c"} {
				if got := mustKeyed(t, c, k); got != toks[k] {
					t.Errorf("Token(%q) = %q, want %q untouched", k, got.Value, toks[k].Value)
				}
				if n := src.count(k); n != 1 {
					t.Errorf("source called %d times for %q, want 1", n, k)
				}
			}
			if !c.Invalidate("b", toks["b"]) {
				t.Errorf("Invalidate(b, replaced token) = false, want true: a replay gets the new one")
			}
			if !c.Invalidate("a", toks["b"]) || mustKeyed(t, c, "a") != toks["a"] {
				t.Errorf("Invalidate(a, b's token) dropped a's token or said no replay is worth it")
			}
			if n, f := src.count("b"), obs.forcedRefreshes(); n != 2 || f != 1 {
				t.Errorf("b fetched %d times, %d forced refreshes reported; want 2 and 1", n, f)
			}
			if !c.Invalidate("never-held", toks["a"]) {
				t.Errorf("Invalidate of a key not held = false, want true")
			}
		})
	})

	t.Run("rate limited per key", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{}
			c := NewKeyedCache(src, KeyedCacheOptions{ForcedRefreshInterval: 4 * time.Second})
			other := mustKeyed(t, c, "other")
			// An upstream that rejects every token of "k": each invalidation
			// after the first waits 1s, 2s, 4s, 4s since the last one let through.
			storm := func() {
				for range 100 {
					c.Invalidate("k", mustKeyed(t, c, "k"))
				}
			}
			storm() // k-1 dropped at once, k-2 kept
			if got := src.count("k"); got != 2 {
				t.Fatalf("source called %d times for k, want 2", got)
			}
			for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
				time.Sleep(wait - time.Millisecond)
				storm()
				if got, want := src.count("k"), i+2; got != want {
					t.Fatalf("%v after the last drop: source called %d times for k, want %d", wait-time.Millisecond, got, want)
				}
				time.Sleep(time.Millisecond)
				storm()
				if got, want := src.count("k"), i+3; got != want {
					t.Fatalf("%v after the last drop: source called %d times for k, want %d", wait, got, want)
				}
			}
			// Another key's revoked token is refreshed at once meanwhile.
			c.Accepted("other", other)
			if !c.Invalidate("other", other) || mustKeyed(t, c, "other").Value != "other-2" {
				t.Errorf("Invalidate(other) during k's storm did not refresh other at once")
			}
		})
	})

	t.Run("accepted token refreshed at once, spaced after a rejected replay", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{}
			c := NewKeyedCache(src, KeyedCacheOptions{})
			first := mustKeyed(t, c, "k")
			c.Accepted("k", first)
			if !c.Invalidate("k", first) {
				t.Fatalf("Invalidate(first, accepted) = false, want true")
			}
			second := mustKeyed(t, c, "k")
			c.Replayed("k", second, false) // the replay was rejected too
			if got := mustKeyed(t, c, "k"); got != second {
				t.Fatalf("Token() after a rejected replay = %q, want %q kept: the wait applies", got.Value, second.Value)
			}
			c.Accepted("k", second)
			if c.Invalidate("k", second) {
				t.Errorf("Invalidate(second, accepted) right after a rejected replay = true, want false")
			}
			time.Sleep(time.Second)
			if !c.Invalidate("k", second) {
				t.Fatalf("Invalidate(second, accepted) 1s after the last forced refresh = false, want true")
			}
			third := mustKeyed(t, c, "k")
			c.Replayed("k", third, true)
			if !c.Invalidate("k", third) {
				t.Errorf("Invalidate(third, accepted) after an accepted replay = false, want true at once")
			}
			if got := mustKeyed(t, c, "k"); got.Value != "k-4" {
				t.Errorf("Token() = %q, want %q", got.Value, "k-4")
			}
		})
	})

	t.Run("revoked again and again: spaced after 3", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{}
			c := NewKeyedCache(src, KeyedCacheOptions{})
			for i := range 3 {
				tok := mustKeyed(t, c, "k")
				c.Accepted("k", tok)
				if !c.Invalidate("k", tok) {
					t.Fatalf("Invalidate of accepted token %d = false, want true", i+1)
				}
			}
			tok := mustKeyed(t, c, "k")
			c.Accepted("k", tok)
			if c.Invalidate("k", tok) {
				t.Errorf("4th Invalidate of an accepted token within ForcedRefreshInterval = true, want false")
			}
		})
	})
}

// TestKeyedCacheSlowKeyDoesNotDelayOthers: while a fetch for one key hangs,
// other keys, in its shard or not, are fetched and served at once.
func TestKeyedCacheSlowKeyDoesNotDelayOthers(t *testing.T) {
	for _, sameShard := range []bool{true, false} {
		t.Run(map[bool]string{true: "same shard", false: "other shard"}[sameShard], func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				src := &keyedSource{}
				c := NewKeyedCache(src, KeyedCacheOptions{})
				other := ""
				for i := 0; other == ""; i++ {
					if k := fmt.Sprintf("b%d", i); (c.shard(k) == c.shard("a")) == sameShard {
						other = k
					}
				}
				held := mustKeyed(t, c, other+"-held")
				gate := src.gate("a")
				slow := goToken(context.Background(), c, "a")
				synctest.Wait()
				start := time.Now()
				if got := mustKeyed(t, c, other); got.Value != other+"-1" {
					t.Errorf("Token(%q) = %q, want %q", other, got.Value, other+"-1")
				}
				if got := mustKeyed(t, c, other+"-held"); got != held {
					t.Errorf("Token(%q) = %q, want the held %q", other+"-held", got.Value, held.Value)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("other keys took %v while a's fetch hangs, want no time", d)
				}
				if _, ok := ready(slow); ok {
					t.Fatalf("Token(a) returned before its fetch ended")
				}
				close(gate)
				if r := receive(t, slow); r.err != nil || r.tok.Value != "a-1" {
					t.Errorf("Token(a) = %v, %v; want %q", r.tok, r.err, "a-1")
				}
			})
		})
	}
}

// TestKeyedCacheFetchError: a failed fetch fails its waiters with
// ErrNoToken wrapping the cause, and the key is refused at once for a
// growing backoff, without a fetch, while other keys are served.
func TestKeyedCacheFetchError(t *testing.T) {
	refused := &RetrieveError{Status: 503, Description: "try later"}
	tests := []struct {
		name    string
		answer  func(key string, n int, now time.Time) (*Token, error)
		want    string // in the error
		wantErr error  // errors.Is
	}{
		{"provider refused", func(string, int, time.Time) (*Token, error) { return nil, refused }, "status 503: try later", refused},
		{"connection refused", func(string, int, time.Time) (*Token, error) { return nil, errors.New("connection refused") }, "connection refused", nil},
		{"empty token", func(string, int, time.Time) (*Token, error) { return &Token{Expiry: time.Now().Add(time.Hour)}, nil }, errNoValue.Error(), errNoValue},
		{"expired token", func(string, int, time.Time) (*Token, error) { return &Token{Value: "v", Expiry: time.Now()}, nil }, "expired at", nil},
		{"control characters", func(string, int, time.Time) (*Token, error) {
			return &Token{Value: "v\r\nX-Evil: 1", Expiry: time.Now().Add(time.Hour)}, nil
		}, "control characters", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0.5) // backoffs: 3/4 of 500ms, 1s, 2s, 4s, 5s, 5s
			bubble(t, func(t *testing.T) {
				src := &keyedSource{answer: func(key string, n int, now time.Time) (*Token, error) {
					if key == "bad" && n <= 6 {
						return tc.answer(key, n, now)
					}
					return keyedIssue(time.Hour)(key, n, now)
				}}
				c := NewKeyedCache(src, KeyedCacheOptions{})
				check := func(when string) {
					t.Helper()
					tok, err := keyedTokenWithin(c, "bad")
					if tok != nil || !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), tc.want) ||
						tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
						t.Fatalf("%s: Token(bad) = %v, %v; want ErrNoToken wrapping %q", when, tok, err, tc.want)
					}
				}
				check("first call")
				if tc.wantErr == refused {
					var re *RetrieveError
					if _, err := keyedTokenWithin(c, "bad"); !errors.As(err, &re) || re.Status != 503 {
						t.Errorf("Token(bad) = %v, want a *RetrieveError with status 503", err)
					}
				}
				for i, wait := range []time.Duration{375 * time.Millisecond, 750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 3750 * time.Millisecond, 3750 * time.Millisecond} {
					for range 10 {
						check(fmt.Sprintf("during backoff %d", i+1))
					}
					if got := mustKeyed(t, c, "good"); got.Value != "good-1" {
						t.Errorf("Token(good) during bad's backoff = %q, want %q", got.Value, "good-1")
					}
					if n := src.count("bad"); n != i+1 {
						t.Fatalf("backoff %d: source called %d times for bad, want %d", i+1, n, i+1)
					}
					time.Sleep(wait - time.Millisecond)
					check(fmt.Sprintf("1ms before the end of backoff %d", i+1))
					time.Sleep(time.Millisecond)
					if i == 5 {
						break
					}
					check(fmt.Sprintf("after backoff %d", i+1))
				}
				if got := mustKeyed(t, c, "bad"); got.Value != "bad-7" {
					t.Errorf("Token(bad) once the source heals = %q, want %q", got.Value, "bad-7")
				}
			})
		})
	}

	t.Run("Retry-After", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{answer: func(key string, n int, now time.Time) (*Token, error) {
				if n == 1 {
					return nil, &RetrieveError{Status: 429, RetryAfter: 30 * time.Second}
				}
				return keyedIssue(time.Hour)(key, n, now)
			}}
			c := NewKeyedCache(src, KeyedCacheOptions{})
			keyedTokenWithin(c, "k")
			time.Sleep(30*time.Second - time.Millisecond)
			if _, err := keyedTokenWithin(c, "k"); !errors.Is(err, ErrNoToken) {
				t.Errorf("Token() before Retry-After = %v, want ErrNoToken", err)
			}
			time.Sleep(time.Millisecond)
			if got := mustKeyed(t, c, "k"); got.Value != "k-2" {
				t.Errorf("Token() after Retry-After = %q, want %q", got.Value, "k-2")
			}
		})
	})

	t.Run("failed refresh keeps the token", func(t *testing.T) {
		setJitter(t, 0)
		bubble(t, func(t *testing.T) {
			src := &keyedSource{answer: func(key string, n int, now time.Time) (*Token, error) {
				if n == 1 || n == 4 {
					return keyedIssue(time.Hour)(key, n, now)
				}
				return nil, errors.New("connection refused")
			}}
			c := NewKeyedCache(src, KeyedCacheOptions{})
			first := mustKeyed(t, c, "k")
			time.Sleep(48 * time.Minute)
			for i, wait := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond} {
				for range 10 {
					if got := mustKeyed(t, c, "k"); got != first {
						t.Fatalf("Token() while refreshes fail = %q, want the held %q", got.Value, first.Value)
					}
					synctest.Wait()
				}
				if n := src.count("k"); n != i+2 {
					t.Fatalf("source called %d times, want %d: one refresh per backoff", n, i+2)
				}
				time.Sleep(wait)
			}
			mustKeyed(t, c, "k")
			synctest.Wait()
			if got := mustKeyed(t, c, "k"); got.Value != "k-4" {
				t.Errorf("Token() after a successful refresh = %q, want %q", got.Value, "k-4")
			}
		})
	})

	t.Run("a forced refresh skips the refresh backoff", func(t *testing.T) {
		setJitter(t, 0)
		bubble(t, func(t *testing.T) {
			src := &keyedSource{answer: func(key string, n int, now time.Time) (*Token, error) {
				if n == 2 {
					return nil, errors.New("connection refused")
				}
				return keyedIssue(time.Hour)(key, n, now)
			}}
			c := NewKeyedCache(src, KeyedCacheOptions{})
			first := mustKeyed(t, c, "k")
			c.Accepted("k", first)
			time.Sleep(48 * time.Minute)
			mustKeyed(t, c, "k") // starts the refresh, which fails
			synctest.Wait()
			if !c.Invalidate("k", first) {
				t.Fatalf("Invalidate(accepted) = false, want true")
			}
			if got := mustKeyed(t, c, "k"); got.Value != "k-3" {
				t.Errorf("Token() after Invalidate = %q, want %q", got.Value, "k-3")
			}
		})
	})
}

// TestKeyedCacheWaitEnds: a caller whose context ends, or whose MaxWait
// passes, returns then with ErrNoToken; the fetch goes on for the others.
func TestKeyedCacheWaitEnds(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool // else MaxWait passes
		want   error
		msg    string
	}{
		{"context canceled", true, context.Canceled, "context canceled"},
		{"MaxWait", false, nil, "timed out waiting for a token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				src := &keyedSource{}
				c := NewKeyedCache(src, KeyedCacheOptions{MaxWait: 3 * time.Second})
				gate := src.gate("k")
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				first := goToken(ctx, c, "k")
				time.Sleep(2 * time.Second)
				second := goToken(context.Background(), c, "k")
				synctest.Wait()
				start := time.Now()
				if tc.cancel {
					cancel()
				}
				r := receive(t, first)
				if d, want := time.Since(start), map[bool]time.Duration{true: 0, false: time.Second}[tc.cancel]; d != want {
					t.Errorf("Token() returned %v later, want %v", d, want)
				}
				if r.tok != nil || !errors.Is(r.err, ErrNoToken) || tc.want != nil && !errors.Is(r.err, tc.want) || !strings.Contains(r.err.Error(), tc.msg) {
					t.Errorf("Token() = %v, %v; want ErrNoToken: %s", r.tok, r.err, tc.msg)
				}
				synctest.Wait()
				if _, ok := ready(second); ok {
					t.Fatalf("the other caller stopped waiting too")
				}
				close(gate)
				if r := receive(t, second); r.err != nil || r.tok.Value != "k-1" {
					t.Errorf("other caller: Token() = %v, %v; want %q", r.tok, r.err, "k-1")
				}
				if n := src.count("k"); n != 1 {
					t.Errorf("source called %d times, want 1", n)
				}
			})
		})
	}

	t.Run("FetchTimeout", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			src := &keyedSource{}
			c := NewKeyedCache(src, KeyedCacheOptions{FetchTimeout: 2 * time.Second})
			src.gate("k") // never opened
			start := time.Now()
			tok, err := keyedTokenWithin(c, "k")
			if d := time.Since(start); tok != nil || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrNoToken) || d != 2*time.Second {
				t.Errorf("Token() = %v, %v after %v; want ErrNoToken: deadline exceeded after FetchTimeout = 2s", tok, err, d)
			}
		})
	})
}

// TestKeyedCacheLRU: 50,000 distinct keys through a cache of 100 leave 100
// keys, the most recently used; the evicted keys' entries and tokens are
// unreachable.
func TestKeyedCacheLRU(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &keyedSource{}
		c := NewKeyedCache(src, KeyedCacheOptions{Size: 100})
		tok := mustKeyed(t, c, "k0")
		s := c.shard("k0")
		s.mu.Lock()
		entry := weak.Make(s.m["k0"])
		s.mu.Unlock()
		token := weak.Make(tok)
		tok = nil

		const keys = 50000
		hot := mustKeyed(t, c, "hot")
		for i := 1; i < keys; i++ {
			mustKeyed(t, c, fmt.Sprintf("k%d", i))
			if i%10 == 0 && mustKeyed(t, c, "hot") != hot {
				t.Fatalf("the key used every 10 keys was evicted after %d keys", i)
			}
			if n := c.Len(); n > 100 {
				t.Fatalf("Len() = %d after %d keys, want at most 100", n, i+1)
			}
		}
		synctest.Wait()
		if n := c.Len(); n != 100 {
			t.Errorf("Len() = %d after %d keys, want 100", n, keys)
		}
		checkShards(t, c)
		fetched := src.calls.count()
		if fetched != keys+1 {
			t.Errorf("%d fetches for %d distinct keys, want one each", fetched, keys+1)
		}
		for i := keys - 10; i < keys; i++ {
			mustKeyed(t, c, fmt.Sprintf("k%d", i))
		}
		mustKeyed(t, c, "hot")
		if n := src.calls.count(); n != fetched {
			t.Errorf("the 10 most recent keys and a hot one made %d fetches, want none", n-fetched)
		}

		runtime.GC()
		if entry.Value() != nil || token.Value() != nil {
			t.Errorf("the least recently used key's entry or token is still reachable after eviction")
		}
		if got := mustKeyed(t, c, "k0"); got.Value != "k0-2" {
			t.Errorf("Token(k0) after its eviction = %q, want %q fetched again", got.Value, "k0-2")
		}
		checkShards(t, c)
	})
}

// TestKeyedCacheEvictedWhileFetching: a key evicted while its fetch is in
// flight still gets the fetch's token for its waiters.
func TestKeyedCacheEvictedWhileFetching(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &keyedSource{}
		c := NewKeyedCache(src, KeyedCacheOptions{Size: 1})
		gate := src.gate("a")
		waiting := goToken(context.Background(), c, "a")
		synctest.Wait()
		if got := mustKeyed(t, c, "b"); got.Value != "b-1" {
			t.Errorf("Token(b) = %q, want %q", got.Value, "b-1")
		}
		if n := c.Len(); n != 1 {
			t.Errorf("Len() = %d, want 1", n)
		}
		close(gate)
		if r := receive(t, waiting); r.err != nil || r.tok.Value != "a-1" {
			t.Errorf("Token(a), evicted while fetching = %v, %v; want %q", r.tok, r.err, "a-1")
		}
		if got := mustKeyed(t, c, "b"); got.Value != "b-1" {
			t.Errorf("Token(b) = %q, want %q: the evicted key's fetch must not evict it", got.Value, "b-1")
		}
		checkShards(t, c)
	})
}

// TestKeyedCacheLogs: no token is ever logged, and a key (which a source's
// error may quote) only at debug level.
func TestKeyedCacheLogs(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(level.String(), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				var buf syncBuffer
				log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
				src := &keyedSource{answer: func(key string, n int, now time.Time) (*Token, error) {
					if key == "cust_fails" {
						return nil, &RetrieveError{Status: 404, Description: "no customer cust_fails"}
					}
					return &Token{Value: "tkn_secret_" + key, Expiry: now.Add(time.Hour)}, nil
				}}
				c := NewKeyedCache(src, KeyedCacheOptions{Logger: log})
				tok := mustKeyed(t, c, "cust_ok")
				keyedTokenWithin(c, "cust_fails")
				c.Accepted("cust_ok", tok)
				c.Invalidate("cust_ok", tok)
				mustKeyed(t, c, "cust_ok")
				out := buf.String()
				if strings.Contains(out, "tkn_secret") {
					t.Errorf("log holds a token:\n%s", out)
				}
				if got := strings.Contains(out, "cust_"); got != (level == slog.LevelDebug) {
					t.Errorf("log at %v holds a key: %t, want %t:\n%s", level, got, level == slog.LevelDebug, out)
				}
				if !strings.Contains(out, `"status":404`) {
					t.Errorf("log lacks the failed fetch's status:\n%s", out)
				}
			})
		})
	}
}
