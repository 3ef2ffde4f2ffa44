package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeSource is a scripted Source: its n-th call (from 1) returns
// answer(n, now).
type fakeSource struct {
	started chan int // if non-nil, gets the number of each call as it starts
	calls   events   // one per call, as it starts

	mu     sync.Mutex
	answer func(n int, now time.Time) (*Token, error)
	gate   chan struct{} // if non-nil, calls wait for it to be closed, or for ctx
}

func (s *fakeSource) Token(ctx context.Context) (*Token, error) {
	s.mu.Lock()
	answer, gate := s.answer, s.gate
	s.mu.Unlock()
	n := s.calls.add()
	if s.started != nil {
		s.started <- n
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return answer(n, time.Now())
}

func (s *fakeSource) count() int { return s.calls.count() }

func (s *fakeSource) setGate(gate chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

// issue answers with a new token, "tok-n", that lives for life.
func issue(life time.Duration) func(int, time.Time) (*Token, error) {
	return func(n int, now time.Time) (*Token, error) {
		return &Token{Value: fmt.Sprintf("tok-%d", n), Expiry: now.Add(life)}, nil
	}
}

// firstThen issues a token of life at the first call and fails with err after.
func firstThen(life time.Duration, err error) func(int, time.Time) (*Token, error) {
	return func(n int, now time.Time) (*Token, error) {
		if n == 1 {
			return issue(life)(n, now)
		}
		return nil, err
	}
}

func failWith(err error) func(int, time.Time) (*Token, error) {
	return func(int, time.Time) (*Token, error) { return nil, err }
}

// observer records what a Cache reports.
type observer struct {
	ended events // one per fetch, as it ends

	mu      sync.Mutex
	fetches []fetchEvent
	forced  int
}

type fetchEvent struct {
	d   time.Duration
	tok *Token
	err error
}

func (o *observer) TokenFetched(d time.Duration, tok *Token, err error) {
	o.mu.Lock()
	o.fetches = append(o.fetches, fetchEvent{d, tok, err})
	o.mu.Unlock()
	o.ended.add()
}

func (o *observer) TokenForcedRefresh() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forced++
}

func (o *observer) events() []fetchEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]fetchEvent(nil), o.fetches...)
}

func (o *observer) last(t *testing.T) fetchEvent {
	t.Helper()
	evs := o.events()
	if len(evs) == 0 {
		t.Fatalf("observer: no fetch reported")
	}
	return evs[len(evs)-1]
}

func (o *observer) forcedRefreshes() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.forced
}

// syncBuffer is a log destination safe for the renewal goroutine and the
// test, which can wait for a line.
type syncBuffer struct {
	writes events

	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	b.writes.add()
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitCount waits until s appears n times in the log, at most 10s: for
// tests on the real clock (inotify), not for bubbles.
func (b *syncBuffer) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		written := b.writes.count()
		if strings.Count(b.String(), s) >= n {
			return
		}
		select {
		case <-b.writes.after(written):
		case <-deadline.C:
			t.Fatalf("log holds %q %d times after 10s, want %d; log:\n%s", s, strings.Count(b.String(), s), n, b)
		}
	}
}

// setJitter fixes the package's jitter for one test. Call it before run, so
// that it is restored after the renewal goroutine has stopped.
func setJitter(t *testing.T, v float64) {
	old := jitter
	jitter = func() float64 { return v }
	t.Cleanup(func() { jitter = old })
}

// run starts c.Run, and stops it when the test ends.
func run(t *testing.T, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run() did not return within 10s of its context's end")
		}
	})
}

// tokenWithin calls c.Token, giving up after 5s: a Token that waits for
// nothing fails the test instead of hanging it. It cancels rather than sets
// a deadline, so that MaxWait alone bounds the wait below 5s.
func tokenWithin(c *Cache) (*Token, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchdog := time.AfterFunc(5*time.Second, cancel)
	defer watchdog.Stop()
	return c.Token(ctx)
}

func mustToken(t *testing.T, c *Cache) *Token {
	t.Helper()
	tok, err := tokenWithin(c)
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	return tok
}

func TestCacheFirstTokenFetchedByRun(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{})
		if c.Valid() {
			t.Errorf("Valid() = true before Run, want false")
		}
		if n := src.count(); n != 0 {
			t.Errorf("NewCache made %d fetches, want 0", n)
		}
		run(t, c)
		tok := mustToken(t, c)
		if tok.Value != "tok-1" || !tok.Expiry.Equal(tezpayEpoch.Add(time.Hour)) {
			t.Errorf("Token() = %q expiring %v, want %q expiring %v", tok.Value, tok.Expiry, "tok-1", tezpayEpoch.Add(time.Hour))
		}
		if again := mustToken(t, c); again != tok {
			t.Errorf("second Token() = %q, want the same token %q", again.Value, tok.Value)
		}
		if !c.Valid() {
			t.Errorf("Valid() = false with a fresh token, want true")
		}
		if n := src.count(); n != 1 {
			t.Errorf("source called %d times, want 1", n)
		}
	})
}

// TestCacheOneFetchForManyCallers: 64 callers waiting for the first token
// cause exactly one fetch and all get the same token.
func TestCacheOneFetchForManyCallers(t *testing.T) {
	for _, startRunFirst := range []bool{false, true} {
		name := map[bool]string{false: "callers before Run", true: "callers during the first fetch"}[startRunFirst]
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				src := &fakeSource{answer: issue(time.Hour), gate: make(chan struct{}), started: make(chan int, 8)}
				c := NewCache(src, CacheOptions{})
				if startRunFirst {
					run(t, c)
					receive(t, src.started)
				}
				const callers = 64
				toks, errs := make([]*Token, callers), make([]error, callers)
				var wg sync.WaitGroup
				for i := range callers {
					wg.Go(func() { toks[i], errs[i] = tokenWithin(c) })
				}
				synctest.Wait() // each caller waits for the fetch
				if !startRunFirst {
					run(t, c)
				}
				close(src.gate)
				wg.Wait()
				for i := range callers {
					if errs[i] != nil || toks[i] != toks[0] || toks[0] == nil {
						t.Fatalf("caller %d: Token() = %v, %v; want the one token fetched", i, toks[i], errs[i])
					}
				}
				if n := src.count(); n != 1 {
					t.Errorf("source called %d times for %d callers, want 1", n, callers)
				}
			})
		})
	}
}

// TestCacheRenewsTwelveHourToken is TezPay's case: a 12-hour token is renewed
// at 0.8 of its lifetime less up to 5% jitter, that is between 9h07m12s and
// 9h36m, and the old token is served until then. Fake time: milliseconds.
func TestCacheRenewsTwelveHourToken(t *testing.T) {
	const life = 12 * time.Hour
	tests := []struct {
		name   string
		jitter float64
		want   time.Duration
	}{
		{"no jitter: 0.8", 0, 9*time.Hour + 36*time.Minute},
		{"half jitter: 0.78", 0.5, 9*time.Hour + 21*time.Minute + 36*time.Second},
		{"full jitter: 0.76", 1, 9*time.Hour + 7*time.Minute + 12*time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now() // real time: outside the bubble
			setJitter(t, tc.jitter)
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, tezpay(tezpaySecret))
				c := NewCache(newTezPaySource(e), CacheOptions{})
				run(t, c)
				first := mustToken(t, c)
				issued := time.Now()
				if !first.Expiry.Equal(tezpayEpoch.Add(life)) {
					t.Fatalf("Token().Expiry = %v, want %v", first.Expiry, tezpayEpoch.Add(life))
				}

				time.Sleep(tc.want - time.Second)
				synctest.Wait()
				if n := e.count(); n != 1 {
					t.Fatalf("endpoint got %d requests 1s before the renewal, want 1", n)
				}
				if got := mustToken(t, c); got != first {
					t.Errorf("Token() 1s before renewal = a new token, want the first")
				}
				renewed := e.arrived.wait(t, 2)
				if d := renewed.Sub(issued) - tc.want; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("renewal after %v, want %v", renewed.Sub(issued), tc.want)
				}
				synctest.Wait() // renewed, waiting for the next renewal
				if n := e.count(); n != 2 {
					t.Fatalf("endpoint got %d requests after the renewal time, want 2", n)
				}
				second := mustToken(t, c)
				if second == first || second.Value == first.Value {
					t.Errorf("Token() after renewal = the first token, want a new one")
				}
				if want := renewed.Add(life); !second.Expiry.Equal(want) {
					t.Errorf("renewed Token().Expiry = %v, want %v", second.Expiry, want)
				}
			})
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("12 hours of fake time took %v of real time", elapsed)
			}
		})
	}

	t.Run("random jitter, ten renewals", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			e := newEndpoint(t, tezpay(tezpaySecret))
			c := NewCache(newTezPaySource(e), CacheOptions{})
			run(t, c)
			lo, hi := time.Duration(0.76*float64(life)), time.Duration(0.8*float64(life))
			issued := e.arrived.wait(t, 1)
			for i := 1; i <= 10; i++ {
				time.Sleep(time.Until(issued.Add(lo - time.Second)))
				synctest.Wait()
				if n := e.count(); n != i {
					t.Fatalf("endpoint got %d requests before 0.76 of the lifetime, want %d", n, i)
				}
				renewed := e.arrived.wait(t, i+1)
				if d := renewed.Sub(issued); d < lo || d > hi {
					t.Errorf("renewal %d after %v, want between %v and %v", i, d, lo, hi)
				}
				issued = renewed
			}
		})
	})
}

// TestCacheServesCurrentTokenDuringRenewal: callers are not held up by a
// renewal in progress while the current token is valid.
func TestCacheServesCurrentTokenDuringRenewal(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour), started: make(chan int, 8)}
		c := NewCache(src, CacheOptions{})
		run(t, c)
		first := mustToken(t, c)
		gate := make(chan struct{})
		src.setGate(gate)
		for receive(t, src.started) != 2 { // until the renewal is in progress
		}
		for i := range 100 {
			tok, err := tokenWithin(c)
			if err != nil || tok != first {
				t.Fatalf("Token() #%d during renewal = %v, %v; want the current token at once", i, tok, err)
			}
		}
		close(gate)
		synctest.Wait()
		if got := mustToken(t, c); got.Value != "tok-2" {
			t.Errorf("Token() after renewal = %q, want %q", got.Value, "tok-2")
		}
	})
}

// TestCacheBackoffAfterFailedRenewals: failed renewals are retried after
// MinBackoff doubled each time, capped at MaxBackoff, with equal jitter; the
// cached token is served meanwhile, and a healed source ends the outage.
func TestCacheBackoffAfterFailedRenewals(t *testing.T) {
	setJitter(t, 0.5)
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: func(n int, now time.Time) (*Token, error) {
			if n == 1 || n == 7 {
				return issue(time.Hour)(n, now)
			}
			return nil, errors.New("connection refused")
		}}
		c := NewCache(src, CacheOptions{MinBackoff: time.Second, MaxBackoff: 8 * time.Second})
		run(t, c)
		first := mustToken(t, c)
		failed := src.calls.wait(t, 2) // the renewal, which fails
		// 3/4 of 1s, 2s, 4s, 8s, 8s: half fixed, half times a jitter of 0.5.
		for i, want := range []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, 6 * time.Second, 6 * time.Second} {
			synctest.Wait()
			if got := mustToken(t, c); got != first {
				t.Errorf("Token() during the outage = %q, want the cached %q", got.Value, first.Value)
			}
			retry := src.calls.wait(t, i+3)
			if d := retry.Sub(failed); d != want {
				t.Errorf("retry %d after %v, want %v", i+1, d, want)
			}
			failed = retry
		}
		synctest.Wait()
		if n := src.count(); n != 7 {
			t.Errorf("source called %d times, want 7", n)
		}
		if got := mustToken(t, c); got.Value != "tok-7" {
			t.Errorf("Token() after the outage = %q, want %q", got.Value, "tok-7")
		}
		if d, want := src.calls.wait(t, 8).Sub(failed), time.Duration(0.78*float64(time.Hour)); d != want {
			t.Errorf("after recovery, renewal after %v, want %v", d, want)
		}
	})
}

// TestCacheRecoversFromOutage drives a real JSON source through each kind of
// failure: the cached token is served, retries back off, and the cache
// recovers without a restart once the provider heals.
func TestCacheRecoversFromOutage(t *testing.T) {
	expired := signJWT(jwt.MapClaims{"exp": tezpayEpoch.Unix()})
	tests := []struct {
		name    string
		fail    func(e *endpoint) answer
		wantErr string
	}{
		// Only the hanging endpoint meets FetchTimeout; the others answer at once.
		{"network error", func(*endpoint) answer { return dropConnection }, "tokens: token request"},
		{"5xx", func(*endpoint) answer { return reply(500, `{"detail":"Authentication service error"}`) }, "status 500: Authentication service error"},
		{"malformed JSON", func(*endpoint) answer { return reply(200, `{"access_token"`) }, "malformed token response"},
		{"empty 200", func(*endpoint) answer { return reply(200, ``) }, "malformed token response"},
		{"no token", func(*endpoint) answer { return reply(200, `{"expires_in":3600}`) }, `no "access_token"`},
		{"expired on arrival", func(*endpoint) answer { return reply(200, `{"access_token":"`+expired+`"}`) }, "expired"},
		{"hanging endpoint", (*endpoint).hang, "context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(200, `{"access_token":"tok-1","expires_in":3600}`))
				obs := &observer{}
				fetchTimeout := 10 * time.Second
				if tc.name == "hanging endpoint" {
					fetchTimeout = 50 * time.Millisecond
				}
				c := NewCache(newTezPaySource(e), CacheOptions{FetchTimeout: fetchTimeout, Observer: obs})
				run(t, c)
				first := mustToken(t, c)
				synctest.Wait()

				e.setAnswer(tc.fail(e))
				retries := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}
				for i, wantRetry := range retries {
					failed := obs.ended.wait(t, i+2) // the renewal, then a retry
					synctest.Wait()
					if ev := obs.last(t); ev.err == nil || ev.tok != nil || !strings.Contains(ev.err.Error(), tc.wantErr) {
						t.Errorf("failure %d: fetch reported %v, %v; want an error containing %q", i+1, ev.tok, ev.err, tc.wantErr)
					}
					if got := mustToken(t, c); got != first {
						t.Errorf("failure %d: Token() = %q, want the cached %q", i+1, got.Value, first.Value)
					}
					if i == len(retries)-1 {
						e.setAnswer(reply(200, `{"access_token":"tok-2","expires_in":3600}`))
					}
					if d := e.arrived.wait(t, i+3).Sub(failed); d != wantRetry {
						t.Errorf("failure %d: retry after %v, want %v", i+1, d, wantRetry)
					}
				}

				synctest.Wait()
				if got := mustToken(t, c); got.Value != "tok-2" {
					t.Errorf("Token() after the provider healed = %q, want %q", got.Value, "tok-2")
				}
				if ev := obs.last(t); ev.err != nil || ev.tok == nil || ev.tok.Value != "tok-2" {
					t.Errorf("last fetch reported %v, %v; want tok-2", ev.tok, ev.err)
				}
			})
		})
	}
}

func TestCacheHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		minBackoff time.Duration
		want       time.Duration
	}{
		{"longer than the backoff", "120", 0, 2 * time.Minute},
		{"capped at 10 minutes", "3600", 0, 10 * time.Minute},
		{"shorter than the backoff", "1", 10 * time.Second, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(429, `{"detail":"Too many requests"}`, "Retry-After", tc.retryAfter))
				c := NewCache(newTezPaySource(e), CacheOptions{MinBackoff: tc.minBackoff, MaxWait: time.Hour})
				run(t, c)
				refused := e.arrived.wait(t, 1)
				time.Sleep(tc.want - time.Millisecond)
				synctest.Wait()
				if n := e.count(); n != 1 {
					t.Errorf("endpoint got %d requests before the retry time, want 1", n)
				}
				if d := e.arrived.wait(t, 2).Sub(refused); d != tc.want {
					t.Errorf("retry after %v, want %v", d, tc.want)
				}
				synctest.Wait()
				if n := e.count(); n != 2 {
					t.Errorf("endpoint got %d requests at the retry time, want 2", n)
				}
			})
		})
	}
}

// TestCacheTokenFailsFast: with no valid token and the next attempt further
// away than MaxWait or the caller's deadline, Token fails at once.
func TestCacheTokenFailsFast(t *testing.T) {
	tests := []struct {
		name        string
		opts        CacheOptions
		err         error
		ctxDeadline time.Duration // zero for none
	}{
		{"Retry-After beyond MaxWait", CacheOptions{MaxWait: 10 * time.Second},
			&RetrieveError{Status: 503, Description: "maintenance", RetryAfter: 5 * time.Minute}, 0},
		{"backoff beyond the caller's deadline", CacheOptions{MaxWait: time.Hour, MinBackoff: time.Minute},
			errors.New("connection refused"), 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				src := &fakeSource{answer: failWith(tc.err)}
				c := NewCache(src, tc.opts)
				run(t, c)
				synctest.Wait() // the first fetch failed; Run waits to retry

				ctx, cancel := context.WithCancel(context.Background())
				if tc.ctxDeadline > 0 {
					ctx, cancel = context.WithTimeout(context.Background(), tc.ctxDeadline)
				}
				defer cancel()
				watchdog := time.AfterFunc(5*time.Second, cancel)
				defer watchdog.Stop()
				start := time.Now()
				tok, err := c.Token(ctx)
				if tok != nil || !errors.Is(err, ErrNoToken) {
					t.Fatalf("Token() = %v, %v; want ErrNoToken", tok, err)
				}
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 0 {
					t.Fatalf("Token() = %v after %v: it waited instead of failing fast", err, time.Since(start))
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("Token() error = %v, want it to wrap the last fetch error %v", err, tc.err)
				}
				if n := src.count(); n != 1 {
					t.Errorf("source called %d times, want 1", n)
				}
			})
		})
	}
}

// TestCacheTokenWaitsAtMostMaxWait: a fetch that does not end keeps callers
// at most MaxWait, or until their context ends.
func TestCacheTokenWaitsAtMostMaxWait(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour), gate: make(chan struct{}), started: make(chan int, 8)}
		c := NewCache(src, CacheOptions{MaxWait: 3 * time.Second, FetchTimeout: time.Hour})
		run(t, c)
		receive(t, src.started) // the first fetch hangs

		type result struct {
			tok *Token
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			tok, err := tokenWithin(c)
			done <- result{tok, err}
		}()
		time.Sleep(3*time.Second - time.Millisecond)
		synctest.Wait()
		select {
		case r := <-done:
			t.Fatalf("Token() = %v, %v before MaxWait, want it still waiting", r.tok, r.err)
		default:
		}
		r := receive(t, done)
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("Token() waited %v, want MaxWait = 3s", waited)
		}
		if r.tok != nil || !errors.Is(r.err, ErrNoToken) || !strings.Contains(r.err.Error(), "timed out waiting for a token") {
			t.Errorf("Token() after MaxWait = %v, %v; want ErrNoToken: timed out", r.tok, r.err)
		}

		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			tok, err := c.Token(ctx)
			done <- result{tok, err}
		}()
		synctest.Wait()
		cancel()
		r = receive(t, done)
		if r.tok != nil || !errors.Is(r.err, ErrNoToken) || !errors.Is(r.err, context.Canceled) {
			t.Errorf("Token() with its context canceled = %v, %v; want ErrNoToken wrapping context.Canceled", r.tok, r.err)
		}
		if n := src.count(); n != 1 {
			t.Errorf("source called %d times, want 1", n)
		}
	})
}

// receive waits for a value from ch, at most 48h: of fake time in a bubble,
// where nothing takes that long; outside one, go test's timeout ends a hang
// first.
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(48 * time.Hour):
		t.Fatalf("nothing received within 48h")
		panic("unreachable")
	}
}

// TestCacheStalePoint: a token is never handed out at or after its expiry
// less min(10s, a tenth of its lifetime), even when its renewal failed.
func TestCacheStalePoint(t *testing.T) {
	tests := []struct {
		name   string
		life   time.Duration
		margin time.Duration
	}{
		{"1 hour", time.Hour, 10 * time.Second},
		{"100 seconds", 100 * time.Second, 10 * time.Second},
		{"40 seconds", 40 * time.Second, 10 * time.Second},
		{"20 seconds", 20 * time.Second, 5 * time.Second},
		{"2 seconds", 2 * time.Second, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				src := &fakeSource{answer: firstThen(tc.life, &RetrieveError{Status: 503, RetryAfter: 10 * time.Minute})}
				c := NewCache(src, CacheOptions{MaxWait: time.Second})
				run(t, c)
				first := mustToken(t, c)

				// The renewal, due at the stale point at the latest, fails;
				// the next try is 10 minutes away.
				stale := tezpayEpoch.Add(tc.life - tc.margin)
				time.Sleep(time.Until(stale) - time.Nanosecond)
				synctest.Wait()
				if tok, err := tokenWithin(c); tok != first || err != nil || !c.Valid() {
					t.Errorf("Token() 1ns before the stale point = %v, %v (Valid %v); want the cached token", tok, err, c.Valid())
				}
				time.Sleep(time.Nanosecond)
				synctest.Wait()
				if n := src.count(); n < 2 {
					t.Errorf("source called %d times by the stale point, want at least 2: the renewal failed", n)
				}
				if c.Valid() {
					t.Errorf("Valid() = true at the stale point, want false")
				}
				if tok, err := tokenWithin(c); tok != nil || !errors.Is(err, ErrNoToken) || errors.Is(err, context.Canceled) {
					t.Errorf("Token() at the stale point = %v, %v; want ErrNoToken", tok, err)
				}
			})
		})
	}
}

func TestCacheRenewAt(t *testing.T) {
	tests := []struct {
		name    string
		renewAt float64
		life    time.Duration
		want    time.Duration
	}{
		{"zero means 0.8", 0, time.Hour, 48 * time.Minute},
		{"0.5", 0.5, time.Hour, 30 * time.Minute},
		{"1 means 0.8", 1, time.Hour, 48 * time.Minute},
		{"above 1 means 0.8", 1.5, time.Hour, 48 * time.Minute},
		{"negative means 0.8", -0.2, time.Hour, 48 * time.Minute},
		{"never after the stale point", 0.95, 100 * time.Second, 90 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				src := &fakeSource{answer: issue(tc.life)}
				c := NewCache(src, CacheOptions{RenewAt: tc.renewAt})
				run(t, c)
				if d := src.calls.wait(t, 2).Sub(src.calls.wait(t, 1)); d != tc.want {
					t.Errorf("renewal after %v, want %v", d, tc.want)
				}
			})
		})
	}
}

// TestCacheRefusesUnusableTokens: a token already expired on arrival, or
// without a value, is a failed fetch.
func TestCacheRefusesUnusableTokens(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(n int, now time.Time) (*Token, error)
		wantErr string
	}{
		{"expires on arrival", func(_ int, now time.Time) (*Token, error) { return &Token{Value: "t", Expiry: now}, nil }, "expired at"},
		{"expired an hour ago", func(_ int, now time.Time) (*Token, error) {
			return &Token{Value: "t", Expiry: now.Add(-time.Hour)}, nil
		}, "expired at"},
		{"no expiry", func(int, time.Time) (*Token, error) { return &Token{Value: "t"}, nil }, "expired at"},
		{"empty value", func(_ int, now time.Time) (*Token, error) { return &Token{Expiry: now.Add(time.Hour)}, nil }, "empty token"},
		{"nil token", func(int, time.Time) (*Token, error) { return nil, nil }, "empty token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			setJitter(t, 0)
			bubble(t, func(t *testing.T) {
				obs := &observer{}
				src := &fakeSource{answer: tc.answer}
				c := NewCache(src, CacheOptions{Observer: obs, MinBackoff: time.Minute, MaxBackoff: time.Minute})
				run(t, c)
				failed := obs.ended.wait(t, 1)
				synctest.Wait()
				if ev := obs.last(t); ev.tok != nil || ev.err == nil || !strings.Contains(ev.err.Error(), tc.wantErr) {
					t.Errorf("fetch reported %v, %v; want an error containing %q", ev.tok, ev.err, tc.wantErr)
				}
				tok, err := tokenWithin(c)
				if tok != nil || !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Token() = %v, %v; want ErrNoToken with %q", tok, err, tc.wantErr)
				}
				if d := src.calls.wait(t, 2).Sub(failed); d != 30*time.Second {
					t.Errorf("retry after %v, want the backoff, 30s", d)
				}
			})
		})
	}
}

func TestCacheInvalidate(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &observer{}
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{Observer: obs})
		if !c.Invalidate(&Token{Value: "unknown"}) {
			t.Errorf("Invalidate() with no token held = false, want true")
		}
		run(t, c)
		first := mustToken(t, c)
		if !c.Invalidate(first) {
			t.Fatalf("Invalidate(current) = false, want true")
		}
		second := mustToken(t, c)
		if second == first || second.Value != "tok-2" {
			t.Errorf("Token() after Invalidate = %q, want %q", second.Value, "tok-2")
		}
		// A request that still held the first token is rejected too: nothing to
		// drop, but a replay with the new token is worth it.
		if !c.Invalidate(first) {
			t.Errorf("Invalidate(replaced token) = false, want true")
		}
		synctest.Wait()
		if got := mustToken(t, c); got != second {
			t.Errorf("Token() = %q after invalidating a replaced token, want %q", got.Value, second.Value)
		}
		if n, f := src.count(), obs.forcedRefreshes(); n != 2 || f != 1 {
			t.Errorf("source called %d times with %d forced refreshes, want 2 and 1", n, f)
		}
	})
}

// TestCacheInvalidateDuringRenewal: a token rejected while its renewal is in
// flight is dropped, and the renewal is the refresh: no second fetch.
func TestCacheInvalidateDuringRenewal(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &observer{}
		src := &fakeSource{answer: issue(time.Hour), started: make(chan int, 8)}
		c := NewCache(src, CacheOptions{Observer: obs})
		run(t, c)
		first := mustToken(t, c)
		gate := make(chan struct{})
		src.setGate(gate)
		for receive(t, src.started) != 2 { // until the renewal is in flight
		}
		if !c.Invalidate(first) {
			t.Errorf("Invalidate() during renewal = false, want true")
		}
		if c.Valid() {
			t.Errorf("Valid() = true after Invalidate, want false")
		}
		close(gate)
		if got := mustToken(t, c); got.Value != "tok-2" {
			t.Errorf("Token() = %q, want the renewed %q", got.Value, "tok-2")
		}
		synctest.Wait()
		if n, f := src.count(), obs.forcedRefreshes(); n != 2 || f != 1 || len(c.kick) != 0 {
			t.Errorf("%d fetches, %d forced refreshes, %d pending; want 2, 1, 0", n, f, len(c.kick))
		}
	})
}

// TestCacheInvalidateConcurrent: 32 requests rejected with the same token
// cause one refresh.
func TestCacheInvalidateConcurrent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &observer{}
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{Observer: obs})
		run(t, c)
		first := mustToken(t, c)
		gate := make(chan struct{})
		src.setGate(gate) // the refresh stays in flight while they all invalidate

		const callers = 32
		replay := make([]bool, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				replay[i] = c.Invalidate(first)
			})
		}
		close(start)
		wg.Wait()
		close(gate)
		second := mustToken(t, c)
		synctest.Wait()
		for i, r := range replay {
			if !r {
				t.Errorf("caller %d: Invalidate() = false, want true", i)
			}
		}
		if second == first {
			t.Errorf("Token() after Invalidate = the invalidated token")
		}
		if n, f := src.count(), obs.forcedRefreshes(); n != 2 || f != 1 {
			t.Errorf("%d callers invalidating one token: %d fetches, %d forced refreshes; want 2 and 1", callers, n, f)
		}
		if len(c.kick) != 0 {
			t.Errorf("a fetch is still pending after the refresh")
		}
	})
}

// TestCacheRejectingUpstreamNoStorm: an upstream that rejects every token
// with 401, one request every 100ms for a minute, gets forced refreshes 1s,
// 2s, 4s and 8s apart, then one every ForcedRefreshInterval (at 0, 1, 3, 7,
// 15, 25, 35, 45 and 55s), not one per request.
func TestCacheRejectingUpstreamNoStorm(t *testing.T) {
	bubble(t, func(t *testing.T) {
		obs := &observer{}
		src := &fakeSource{answer: issue(time.Hour)}
		c := NewCache(src, CacheOptions{Observer: obs})
		run(t, c)
		replays := 0
		for range 600 {
			tok := mustToken(t, c)
			if c.Invalidate(tok) { // the proxy replays only when this says so
				replays++
				if again := mustToken(t, c); again == tok {
					t.Fatalf("Invalidate() = true but Token() gave the rejected token again")
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n, f := src.count(), obs.forcedRefreshes(); n != 10 || f != 9 || replays != 9 {
			t.Errorf("a minute of 401s: %d fetches, %d forced refreshes, %d replays; want 10, 9, 9", n, f, replays)
		}
	})
}

// TestCacheObserverAndLogs: fetches and forced refreshes are reported, and
// neither the token nor the secret reaches the logs, even when the provider
// echoes the secret back.
func TestCacheObserverAndLogs(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, tezpay(tezpaySecret))
		obs := &observer{}
		var logs syncBuffer
		log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c := NewCache(newTezPaySource(e), CacheOptions{Observer: obs, Logger: log, MinBackoff: time.Minute})
		run(t, c)
		first := mustToken(t, c)
		e.setAnswer(reply(401, `{"detail":"Invalid credentials: `+tezpaySecret+`"}`))
		if !c.Invalidate(first) {
			t.Fatalf("Invalidate() = false, want true")
		}
		// Waits for the forced refresh, which fails; the retry is too far to wait.
		tok, err := tokenWithin(c)
		if tok != nil || !errors.Is(err, ErrNoToken) || strings.Contains(err.Error(), tezpaySecret) ||
			!strings.Contains(err.Error(), "status 401: Invalid credentials: [redacted]") {
			t.Errorf("Token() = %v, %v; want ErrNoToken with the redacted refusal", tok, err)
		}

		evs := obs.events()
		if len(evs) != 2 {
			t.Fatalf("observer got %d fetches, want 2", len(evs))
		}
		if evs[0].tok != first || evs[0].err != nil || evs[0].d < 0 {
			t.Errorf("first fetch reported %v, %v, %v; want the token", evs[0].d, evs[0].tok, evs[0].err)
		}
		var re *RetrieveError
		if evs[1].tok != nil || !errors.As(evs[1].err, &re) || re.Status != http.StatusUnauthorized {
			t.Errorf("second fetch reported %v, %v; want a 401 refusal", evs[1].tok, evs[1].err)
		}
		if f := obs.forcedRefreshes(); f != 1 {
			t.Errorf("observer got %d forced refreshes, want 1", f)
		}

		out := logs.String()
		for _, want := range []string{"token fetched", "token rejected by upstream", "token fetch failed", "Invalid credentials: [redacted]"} {
			if !strings.Contains(out, want) {
				t.Errorf("logs do not contain %q:\n%s", want, out)
			}
		}
		for _, secret := range []string{first.Value, tezpaySecret} {
			if strings.Contains(out, secret) {
				t.Errorf("logs contain a credential %q:\n%s", secret, out)
			}
		}
	})
}

// TestCacheSecretRotation: a secret file rotated between two fetches is used
// at the next renewal, without a restart.
func TestCacheSecretRotation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		secretFile := filepath.Join(t.TempDir(), "client_secret")
		writeFile(t, secretFile, "old-secret\n")
		e := newEndpoint(t, tezpay("old-secret"))
		src := NewJSONSource(JSONConfig{URL: e.url(), ClientID: Literal(tezpayID), ClientSecret: File(secretFile), Client: e.client()})
		c := NewCache(src, CacheOptions{})
		run(t, c)
		first := mustToken(t, c)
		synctest.Wait()

		writeFile(t, secretFile, "new-secret\n")
		e.setAnswer(tezpay("new-secret")) // the provider rotated too
		e.arrived.wait(t, 2)              // the renewal
		synctest.Wait()
		if got := mustToken(t, c); got == first {
			t.Errorf("Token() after renewal with the rotated secret = the first token, want a new one")
		}
		if reqs := e.seen(); len(reqs) != 2 || !strings.Contains(string(reqs[1].Body), `"client_secret":"new-secret"`) {
			t.Errorf("requests = %d, second body %q; want the new secret", len(reqs), reqs[len(reqs)-1].Body)
		}
	})
}

// TestCacheRunStops: Run returns nil when its context ends, even in the
// middle of a fetch that does not end by itself.
func TestCacheRunStops(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &fakeSource{answer: issue(time.Hour), gate: make(chan struct{}), started: make(chan int, 1)}
		c := NewCache(src, CacheOptions{FetchTimeout: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		receive(t, src.started)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Run() did not return within 10s of its context's end")
		}
		if c.Valid() {
			t.Errorf("Valid() = true, want false: the only fetch was canceled")
		}
	})
}

// TestCacheBackoff checks the wait after the n-th consecutive failure for
// every n: MinBackoff doubled n-1 times, capped at MaxBackoff, between half
// of that and all of it.
func TestCacheBackoff(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
	}{
		{"defaults 500ms and 30s", 0, 0},
		{"1s to 1m", time.Second, time.Minute},
		{"10s to 1m", 10 * time.Second, time.Minute},
		{"1h to 2h", time.Hour, 2 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(nil, CacheOptions{MinBackoff: tc.min, MaxBackoff: tc.max})
			lo, hi := c.opts.MinBackoff, c.opts.MaxBackoff
			if tc.min == 0 && (lo != 500*time.Millisecond || hi != 30*time.Second) {
				t.Errorf("default backoff = %v to %v, want 500ms to 30s", lo, hi)
			}
			for n := 1; n <= 70; n++ {
				want := hi // saturating MinBackoff << (n-1)
				if n-1 < 62 && lo <= hi>>(n-1) {
					want = lo << (n - 1)
				}
				for _, j := range []float64{0, 0.999} {
					setJitter(t, j)
					if got := c.backoff(n, errors.New("refused"), c.opts.MaxBackoff); got < want/2 || got > want {
						t.Fatalf("backoff(%d) with jitter %v = %v, want between %v and %v", n, j, got, want/2, want)
					}
				}
			}
		})
	}

	t.Run("Retry-After", func(t *testing.T) {
		setJitter(t, 0)
		c := NewCache(nil, CacheOptions{MinBackoff: time.Second})
		for _, tc := range []struct{ retryAfter, want time.Duration }{
			{0, 500 * time.Millisecond}, {time.Millisecond, 500 * time.Millisecond},
			{time.Minute, time.Minute}, {time.Hour, 10 * time.Minute},
		} {
			err := fmt.Errorf("wrapped: %w", &RetrieveError{Status: 429, RetryAfter: tc.retryAfter})
			if got := c.backoff(1, err, c.opts.MaxBackoff); got != tc.want {
				t.Errorf("backoff(1) with Retry-After %v = %v, want %v", tc.retryAfter, got, tc.want)
			}
		}
	})
}

// rejecterSource is a fakeSource that records what the Cache says was
// rejected, as the shared cache does.
type rejecterSource struct {
	*fakeSource
	shared   bool // every token came from another process
	mu       sync.Mutex
	rejected []*Token
}

func (s *rejecterSource) Shared(*Token) bool { return s.shared }

func (s *rejecterSource) Rejected(tok *Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, tok)
}

func (s *rejecterSource) told() []*Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Token(nil), s.rejected...)
}

// TestCacheTellsARejecterWhatItDrops: the source hears of a rejected token
// when the Cache drops it, and only then: not for a token already replaced,
// nor for one kept because forced refreshes are rate-limited.
func TestCacheTellsARejecterWhatItDrops(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &rejecterSource{fakeSource: &fakeSource{answer: issue(time.Hour)}}
		c := NewCache(src, CacheOptions{ForcedRefreshInterval: time.Minute})
		run(t, c)
		first := mustToken(t, c)
		c.Invalidate(first)
		second := mustToken(t, c)
		c.Invalidate(first)  // already replaced
		c.Invalidate(second) // within ForcedRefreshInterval: kept
		if got := src.told(); len(got) != 1 || got[0] != first {
			t.Errorf("Rejected() calls = %v, want one, for the first token", got)
		}
		if got := mustToken(t, c); got != second {
			t.Errorf("Token() = %q, want %q kept", got.Value, second.Value)
		}
	})
}

// TestCacheLetsOneSharedTokenThroughTheRateLimit: a token another process
// fetched, rejected right after a forced refresh, is dropped once more
// within the interval (it may have been revoked with the one it replaced);
// a second one is kept, as any token is.
func TestCacheLetsOneSharedTokenThroughTheRateLimit(t *testing.T) {
	bubble(t, func(t *testing.T) {
		src := &rejecterSource{fakeSource: &fakeSource{answer: issue(time.Hour)}, shared: true}
		c := NewCache(src, CacheOptions{ForcedRefreshInterval: time.Minute})
		run(t, c)
		first := mustToken(t, c)
		if !c.Invalidate(first) {
			t.Fatalf("Invalidate(first) = false, want true")
		}
		second := mustToken(t, c)
		if !c.Invalidate(second) {
			t.Errorf("Invalidate(second, shared) within the interval = false, want true: one more drop")
		}
		third := mustToken(t, c)
		if third == second || c.Invalidate(third) {
			t.Errorf("third token %q dropped within the interval, want it kept", third.Value)
		}
		if got := mustToken(t, c); got != third {
			t.Errorf("Token() = %q, want %q kept", got.Value, third.Value)
		}
		time.Sleep(time.Minute)
		if !c.Invalidate(third) {
			t.Errorf("Invalidate(third) after the interval = false, want true")
		}
		if n := len(src.told()); n != 3 {
			t.Errorf("Rejected() calls = %d, want 3", n)
		}
	})
}
