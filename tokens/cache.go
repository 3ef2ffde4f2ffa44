package tokens

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Observer is told what a Cache does, for metrics. Its methods are called
// from the renewal goroutine and from Invalidate; they must be fast.
type Observer interface {
	// TokenFetched reports one fetch: how long it took, and the token or error.
	TokenFetched(d time.Duration, tok *Token, err error)
	// TokenForcedRefresh reports that a rejected token was dropped.
	TokenForcedRefresh()
}

// CacheOptions tunes a Cache. Every zero value means the default given.
type CacheOptions struct {
	// RenewAt is the fraction of a token's lifetime after which it is renewed,
	// less up to 5% jitter. Zero means 0.8.
	RenewAt float64
	// FetchTimeout bounds one fetch. Zero means 10s.
	FetchTimeout time.Duration
	// MaxWait bounds how long Token waits for a fetch when no valid token is
	// held. Zero means 10s.
	MaxWait time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed fetches, which
	// doubles from MinBackoff. Zero means 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// MaxBackoffNoToken caps the wait instead of MaxBackoff while no valid
	// token is held, when requests are failing: a healed provider is found
	// within seconds, not half a minute. Zero means 5s.
	MaxBackoffNoToken time.Duration
	// ForcedRefreshInterval caps the wait between two refreshes forced by
	// Invalidate that do not help (see Invalidate), so that an upstream
	// rejecting every token, or one request whatever its token, cannot cause
	// a storm of fetches: the wait doubles from 1s up to it. A token the
	// upstream accepted is refreshed at once when it is rejected (it was
	// revoked), unless a replay was rejected since the last one accepted.
	// Zero means 10s.
	ForcedRefreshInterval time.Duration
	// MinRenewInterval is the least time from one successful fetch's start to
	// the next fetch, except one forced by Invalidate or Changed: a provider
	// handing out tokens that live a few milliseconds cannot cause a storm of
	// renewals. Zero means 250ms.
	MinRenewInterval time.Duration
	// Logger receives fetch results. If nil, nothing is logged.
	Logger *slog.Logger
	// Observer receives events for metrics. If nil, none are sent.
	Observer Observer
	// Changed, if not nil, signals that the source's credential changed (a
	// token file was rotated): each receive starts a fetch at once.
	Changed <-chan struct{}
	// Rotated, if not nil, signals that a file the source reads to ask for
	// tokens was rotated (an assertion, a subject token): after a failed
	// fetch, the next starts at once; a token renewing fine is kept, and
	// renewed at its time with the new file, so that the kubelet's hourly
	// rotations cause no fetches of their own.
	Rotated <-chan struct{}
}

// maxRetryAfter caps how long a provider's Retry-After may delay a fetch.
const maxRetryAfter = 10 * time.Minute

// acceptedBudget is how many tokens the upstream had accepted may be
// refreshed at once within ForcedRefreshInterval; beyond it their refreshes
// are spaced too, so that two sidecars revoking each other's tokens (one
// active token per client, without SHARED_CACHE), or a route that rejects
// unreplayable requests whatever their token, cannot cause a storm.
const acceptedBudget = 3

// forcedRefreshBase is the least wait after the first forced refresh that did
// not help; it doubles with each one after.
const forcedRefreshBase = time.Second

// Cache holds the current token of a Source and renews it in the background
// (see Run). It is safe for concurrent use: Token costs an atomic load while a
// valid token is held, and however many callers wait, one fetch is made.
type Cache struct {
	src  Source
	opts CacheOptions
	cur  atomic.Pointer[entry]
	kick chan struct{}

	mu               sync.Mutex
	fetched          chan struct{} // closed and replaced after every fetch
	fetching         bool
	lastErr          error
	nextAttempt      time.Time
	lastForced       time.Time
	lastSharedForced time.Time // last drop let through the rate limit for a shared token
	unaccepted       int       // forced refreshes in a row of tokens never accepted
	replayFailures   int       // replays rejected since the last one accepted
	acceptedFrom     time.Time // start of the window acceptedDrops counts in
	acceptedDrops    int       // drops of accepted tokens since acceptedFrom
	forced           bool      // Invalidate asked for a fetch not yet started
}

// entry is a held token and the moment it stops being handed out: a little
// before its expiry, so that it cannot expire in flight.
type entry struct {
	tok      *Token
	staleAt  time.Time
	accepted atomic.Bool // the upstream accepted tok at least once
}

// sharedDefaults are the options CacheOptions and KeyedCacheOptions share,
// whose zero values mean the same defaults in both.
type sharedDefaults struct {
	renewAt                              *float64
	fetchTimeout, maxWait, forcedRefresh *time.Duration
	logger                               **slog.Logger
	observer                             *Observer
}

// fill puts the defaults in place of the zero values.
func (d sharedDefaults) fill() {
	if *d.renewAt <= 0 || *d.renewAt >= 1 {
		*d.renewAt = 0.8
	}
	if *d.fetchTimeout <= 0 {
		*d.fetchTimeout = 10 * time.Second
	}
	if *d.maxWait <= 0 {
		*d.maxWait = 10 * time.Second
	}
	if *d.forcedRefresh <= 0 {
		*d.forcedRefresh = 10 * time.Second
	}
	if *d.logger == nil {
		*d.logger = slog.New(slog.DiscardHandler)
	}
	if *d.observer == nil {
		*d.observer = nopObserver{}
	}
}

// NewCache returns a Cache over src. Nothing is fetched until Run is called.
func NewCache(src Source, o CacheOptions) *Cache {
	sharedDefaults{&o.RenewAt, &o.FetchTimeout, &o.MaxWait, &o.ForcedRefreshInterval, &o.Logger, &o.Observer}.fill()
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoffNoToken <= 0 {
		o.MaxBackoffNoToken = 5 * time.Second
	}
	if o.MinRenewInterval <= 0 {
		o.MinRenewInterval = 250 * time.Millisecond
	}
	return &Cache{src: src, opts: o, kick: make(chan struct{}, 1), fetched: make(chan struct{})}
}

// Token returns the current token. While none is valid it waits for the
// renewal goroutine's next fetch, at most MaxWait or until ctx is done, and
// fails at once with ErrNoToken when the next attempt is further away than that.
func (c *Cache) Token(ctx context.Context) (*Token, error) {
	if tok := c.valid(time.Now()); tok != nil {
		return tok, nil
	}
	return c.wait(ctx)
}

// Valid reports whether a valid token is held.
func (c *Cache) Valid() bool { return c.valid(time.Now()) != nil }

func (c *Cache) valid(now time.Time) *Token {
	if e := c.cur.Load(); e != nil && now.Before(e.staleAt) {
		return e.tok
	}
	return nil
}

func (c *Cache) wait(ctx context.Context) (*Token, error) {
	deadline := time.Now().Add(c.opts.MaxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var timeout <-chan time.Time
	for {
		now := time.Now()
		c.mu.Lock()
		if tok := c.valid(now); tok != nil {
			c.mu.Unlock()
			return tok, nil
		}
		fetched, lastErr := c.fetched, c.lastErr
		if !c.fetching {
			if lastErr != nil && c.nextAttempt.After(deadline) {
				c.mu.Unlock()
				return nil, fmt.Errorf("%w: %w", ErrNoToken, lastErr)
			}
			if lastErr == nil {
				c.kickLocked() // the token went stale before its renewal ran
			}
		}
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(deadline.Sub(now))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-fetched:
		case <-timeout:
			return nil, c.noToken(errors.New("timed out waiting for a token"))
		case <-ctx.Done():
			return nil, c.noToken(ctx.Err())
		}
	}
}

func (c *Cache) noToken(cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil {
		return fmt.Errorf("%w: %w (last fetch: %w)", ErrNoToken, cause, c.lastErr)
	}
	return fmt.Errorf("%w: %w", ErrNoToken, cause)
}

// Accepted reports that the upstream accepted tok: if tok is still the current
// token, a later rejection of it is taken for a revocation and refreshed at
// once (see Invalidate). It is meant for every answer the upstream did not
// reject, and costs two atomic loads, and one store the first time.
func (c *Cache) Accepted(tok *Token) {
	if e := c.cur.Load(); e != nil && e.tok == tok && !e.accepted.Load() {
		e.accepted.Store(true)
	}
}

// Invalidate reports that the upstream rejected tok. If tok is still the
// current token it is dropped and a fetch starts — at once if the upstream
// had accepted it (see Accepted): it was revoked, up to acceptedBudget times
// within ForcedRefreshInterval. Forced refreshes that do
// not help are spaced: refreshes of tokens the upstream never accepted (an
// upstream that rejects whatever it is given), and any refresh after a
// replay was rejected again (see Replayed: an upstream that rejects some
// request whatever its token) wait, since the last forced refresh, twice as
// long as the one before, from 1s up to ForcedRefreshInterval. A token that a
// Rejecter source says is Shared (another process fetched it, and it may
// have been accepted there) is let through that wait once per
// ForcedRefreshInterval. A source that is a Rejecter is told of every drop.
// It returns whether a call to Token may now yield a different token, that
// is whether a replay is worth it.
func (c *Cache) Invalidate(tok *Token) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.cur.Load()
	if e == nil || e.tok != tok {
		return true // already replaced, or being replaced
	}
	if !e.accepted.Load() {
		return c.dropLocked(e, max(c.unaccepted, c.replayFailures))
	}
	c.unaccepted = 0
	now := time.Now()
	if !within(c.acceptedFrom, now, c.opts.ForcedRefreshInterval) {
		c.acceptedFrom, c.acceptedDrops = now, 0
	}
	fruitless := c.replayFailures
	if over := c.acceptedDrops - acceptedBudget + 1; over > 0 {
		fruitless = max(fruitless, over) // revoked again and again: spaced too
	}
	dropped := c.dropLocked(e, fruitless)
	if dropped {
		c.acceptedDrops++
	}
	return dropped
}

// Replayed reports how the upstream answered a request that was rejected,
// then replayed with tok. Accepted, it shows that refreshing helps. Rejected
// — tok was revoked too, or the upstream rejects that request whatever its
// token — the forced refreshes that follow are spaced until a replay is
// accepted again, and tok is dropped only if that wait allows it.
func (c *Cache) Replayed(tok *Token, accepted bool) {
	if accepted {
		c.Accepted(tok)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if accepted {
		c.replayFailures = 0
		return
	}
	c.replayFailures++
	if e := c.cur.Load(); e != nil && e.tok == tok {
		c.dropLocked(e, c.replayFailures)
	}
}

// dropLocked drops the current entry e and starts a fetch, unless the last
// forced refresh was less than forcedWait(fruitless) ago.
func (c *Cache) dropLocked(e *entry, fruitless int) bool {
	now := time.Now()
	accepted := e.accepted.Load()
	switch {
	case !within(c.lastForced, now, c.forcedWait(fruitless)):
		if !accepted {
			c.unaccepted++
		}
	default:
		r, ok := c.src.(Rejecter)
		if !ok || !r.Shared(e.tok) || within(c.lastSharedForced, now, c.opts.ForcedRefreshInterval) {
			return false
		}
		c.lastSharedForced = now // a shared token: one more drop allowed
	}
	c.lastForced = now
	c.forced = true
	c.cur.Store(nil)
	if r, ok := c.src.(Rejecter); ok {
		r.Rejected(e.tok)
	}
	c.opts.Observer.TokenForcedRefresh()
	c.opts.Logger.Info("token rejected by upstream: refreshing", "token", e.tok, "accepted_before", accepted)
	if !c.fetching {
		c.kickLocked()
	}
	return true
}

// forcedWait is the least time from the last forced refresh to the next one
// after fruitless refreshes in a row that did not help: none for zero, then
// 1s doubled for each one, up to ForcedRefreshInterval.
func (c *Cache) forcedWait(fruitless int) time.Duration {
	return forcedWait(fruitless, c.opts.ForcedRefreshInterval)
}

// forcedWait is Cache.forcedWait with the interval given, for a KeyedCache too.
func forcedWait(fruitless int, interval time.Duration) time.Duration {
	if fruitless == 0 {
		return 0
	}
	d := forcedRefreshBase
	for i := 1; i < fruitless && d < interval; i++ {
		d *= 2
	}
	return min(d, interval)
}

// kickLocked wakes the renewal goroutine for an immediate fetch.
func (c *Cache) kickLocked() {
	c.nextAttempt = time.Now()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run fetches the first token, then renews it at RenewAt of its lifetime and
// retries failures with capped exponential backoff, until ctx is done. It
// returns nil when ctx is done; call it once.
func (c *Cache) Run(ctx context.Context) error {
	failures := 0
	var lastOK time.Time // start of the last successful fetch
	changed := false
	for {
		c.mu.Lock()
		forced := c.forced || changed
		c.mu.Unlock()
		if !forced && !lastOK.IsZero() {
			if d := c.opts.MinRenewInterval - time.Since(lastOK); d > 0 {
				c.opts.Logger.Warn("tokens live too briefly: renewal delayed", "min_renew_interval", c.opts.MinRenewInterval.String())
				if !c.sleep(ctx, d) {
					c.publish(nil, ctx.Err(), 0)
					return nil
				}
			}
		}
		c.mu.Lock()
		c.fetching, c.forced, changed = true, false, false
		select { // a fetch satisfies every kick made before it starts
		case <-c.kick:
		default:
		}
		select { // and reads the rotated files
		case <-c.opts.Rotated:
		default:
		}
		c.mu.Unlock()

		start := time.Now()
		tok, err := c.fetch(ctx)
		if ctx.Err() != nil {
			c.publish(nil, ctx.Err(), 0)
			return nil
		}
		now := time.Now()
		var wait time.Duration
		if err != nil {
			failures++
			limit := c.opts.MaxBackoff
			if c.valid(now) == nil {
				limit = min(limit, max(c.opts.MaxBackoffNoToken, c.opts.MinBackoff))
			}
			wait = c.backoff(failures, err, limit)
			c.opts.Logger.Warn("token fetch failed", "error", err, "failures", failures, "retry_in", wait.Round(time.Millisecond).String())
		} else {
			failures, lastOK = 0, start
			wait = c.renewIn(tok, now)
			c.opts.Logger.Info("token fetched", "token", tok, "renew_in", wait.Round(time.Second).String())
		}
		c.publish(tok, err, wait)

		rotated := c.opts.Rotated
		var re *RetrieveError
		if err == nil || (errors.As(err, &re) && re.RetryAfter > 0) {
			// A rotation waits for the renewal, and for the provider's
			// Retry-After.
			rotated = nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-c.kick:
			t.Stop()
		case <-c.opts.Changed:
			t.Stop()
			changed = true
			c.opts.Logger.Info("credential changed: fetching")
		case <-rotated:
			t.Stop()
			c.opts.Logger.Info("a file the token request reads was rotated: retrying the failed fetch")
		}
	}
}

// sleep waits d; false if ctx was done first.
func (c *Cache) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fetch gets one token from the source and checks it is usable.
func (c *Cache) fetch(ctx context.Context) (*Token, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	start := time.Now()
	tok, err := checkFetched(c.src.Token(ctx))
	c.opts.Observer.TokenFetched(time.Since(start), tok, err)
	return tok, err
}

// checkFetched passes on a source's answer if its token is usable, and
// otherwise an error saying why not.
func checkFetched(tok *Token, err error) (*Token, error) {
	if err != nil {
		return tok, err
	}
	switch {
	case tok == nil || strings.TrimSpace(tok.Value) == "":
		return nil, errNoValue
	case hasControl(tok.Value) || hasControl(tok.Label):
		// No header could carry it: every request would fail until expiry.
		return nil, errors.New("tokens: provider returned a token with control characters")
	case !tok.Expiry.After(time.Now()):
		return nil, fmt.Errorf("tokens: provider returned a token that expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	return tok, nil
}

// publish records a fetch's outcome and wakes every waiter.
func (c *Cache) publish(tok *Token, err error, wait time.Duration) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetching = false
	if tok != nil {
		if old := c.cur.Load(); old != nil && old.accepted.Load() {
			c.unaccepted = 0 // the upstream accepts tokens again
		}
		c.cur.Store(&entry{tok: tok, staleAt: staleAt(tok, now)})
		c.lastErr = nil
	} else {
		c.lastErr = err
	}
	c.nextAttempt = now.Add(wait)
	close(c.fetched)
	c.fetched = make(chan struct{})
}

// staleAt is when a token stops being handed out: 10s before its expiry, or a
// quarter of its lifetime before it for tokens shorter than 40s, so that a
// request given the token still reaches the upstream before it expires.
func staleAt(tok *Token, now time.Time) time.Time {
	margin := min(10*time.Second, tok.Expiry.Sub(now)/4)
	return tok.Expiry.Add(-margin)
}

// renewIn is how long to wait before renewing tok: RenewAt of its lifetime,
// less up to 5% jitter so that a fleet of sidecars does not renew in step,
// and never later than the moment the token goes stale.
func (c *Cache) renewIn(tok *Token, now time.Time) time.Duration {
	return renewIn(tok, now, c.opts.RenewAt)
}

// renewIn is Cache.renewIn with the fraction given, for a KeyedCache too.
func renewIn(tok *Token, now time.Time, renewAt float64) time.Duration {
	life := tok.Expiry.Sub(now)
	d := time.Duration(float64(life) * renewAt * (1 - 0.05*jitter()))
	return max(0, min(d, staleAt(tok, now).Sub(now)))
}

// backoff is the wait after the n-th consecutive failure: MinBackoff doubled
// n-1 times, capped at limit, with "equal jitter" (half fixed, half random);
// a longer Retry-After from the provider wins, up to 10 minutes.
func (c *Cache) backoff(n int, err error, limit time.Duration) time.Duration {
	return backoff(n, err, c.opts.MinBackoff, limit)
}

// backoff is Cache.backoff from the least wait given, for a KeyedCache too.
func backoff(n int, err error, least, limit time.Duration) time.Duration {
	d := least
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	d = d/2 + time.Duration(float64(d/2)*jitter())
	var re *RetrieveError
	if errors.As(err, &re) && re.RetryAfter > d {
		d = min(re.RetryAfter, maxRetryAfter)
	}
	return d
}

type nopObserver struct{}

func (nopObserver) TokenFetched(time.Duration, *Token, error) {}
func (nopObserver) TokenForcedRefresh()                       {}

// within reports whether t is set and less than d before now.
func within(t, now time.Time, d time.Duration) bool {
	return !t.IsZero() && now.Sub(t) < d
}
