package tokens

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// KeyedCacheOptions tunes a KeyedCache. Every zero value means the default given.
type KeyedCacheOptions struct {
	// Size is the most keys held at once; a key beyond it evicts the least
	// recently used. The keys are spread by a hash over up to 64 shards, each
	// holding its share of Size (the shards are fewer for small sizes, so
	// that each holds at least 16 keys when Size allows) and evicting its own
	// least recently used key: a key may be evicted while the cache holds
	// fewer than Size keys, when its shard is full. Zero means 10000.
	Size int
	// RenewAt is the fraction of a token's lifetime after which a call to
	// Token that finds it starts a refresh in the background, less up to 5%
	// jitter; the token is still handed out until it goes stale. Zero means
	// 0.8.
	RenewAt float64
	// FetchTimeout bounds one fetch. Zero means 10s.
	FetchTimeout time.Duration
	// MaxWait bounds how long Token waits for a fetch when no valid token is
	// held for its key. Zero means 10s.
	MaxWait time.Duration
	// ForcedRefreshInterval caps the wait between two refreshes of one key
	// forced by Invalidate that do not help, as CacheOptions'
	// ForcedRefreshInterval does for a Cache. Zero means 10s.
	ForcedRefreshInterval time.Duration
	// Logger receives fetch results. No token is ever logged, and a key only
	// at debug level. If nil, nothing is logged.
	Logger *slog.Logger
	// Observer receives events for metrics. If nil, none are sent.
	Observer Observer
}

const (
	defaultKeyedSize = 10000
	maxKeyedShards   = 64
	minKeysPerShard  = 16

	// keyedMinBackoff and keyedMaxBackoff bound how long a key whose fetch
	// failed is refused at once, without a fetch: the wait doubles from
	// keyedMinBackoff with each failure in a row, with jitter, and a longer
	// Retry-After from the provider wins (up to maxRetryAfter).
	keyedMinBackoff = 500 * time.Millisecond
	keyedMaxBackoff = 5 * time.Second

	// keyedMinRenewInterval is the least time from a successful fetch's start
	// to a background refresh of the same key: a provider handing out tokens
	// that live a few milliseconds cannot cause a storm of refreshes.
	keyedMinRenewInterval = 250 * time.Millisecond
)

// KeyedCache holds one token per key (a customer, a tenant) from a
// KeyedSource. It is safe for concurrent use.
//
// A token is handed out until it goes stale, shortly before its expiry (see
// Cache). After RenewAt of its lifetime, the first call to find it starts
// one refresh in the background and is handed the current token at once.
// Without a valid token, callers wait for a fetch, at most MaxWait; however
// many wait, one fetch per key is made at a time, and callers of other keys
// never wait on it. A key whose fetch failed is refused at once for a short,
// growing while (half a second doubled up to 5s, or the provider's
// Retry-After), so that a failing key is not hammered.
//
// Nothing runs in the background between fetches: each fetch is one
// goroutine that ends with it (at most FetchTimeout), and there is no timer
// per key. A hit costs no allocation and locks one shard of the keys, never
// a lock that all keys share. An evicted key's state is gone with it.
type KeyedCache struct {
	src    KeyedSource
	opts   KeyedCacheOptions
	seed   maphash.Seed
	shards []keyedShard // a power of two of them
}

// keyedShard is one share of the keys, padded so that two shards' locks do
// not share a cache line.
type keyedShard struct {
	keyedShardState
	_ [128 - unsafe.Sizeof(keyedShardState{})%128]byte
}

type keyedShardState struct {
	mu         sync.Mutex
	m          map[string]*keyedEntry
	head, tail *keyedEntry // LRU list: head most recently used
	size       int         // most keys held
}

// keyedEntry is one key's state. Every field but key is guarded by its
// shard's mutex.
type keyedEntry struct {
	key        string
	prev, next *keyedEntry

	tok      *Token
	staleAt  time.Time // tok is handed out before it
	renewAt  time.Time // the first hit from it starts a refresh
	accepted bool      // the upstream accepted tok at least once

	fetched     chan struct{} // non-nil while a fetch is in flight; closed when it ends
	lastErr     error         // the last fetch's error; nil after a success
	failures    int           // failed fetches in a row
	nextAttempt time.Time     // after a failure, no fetch before it

	// Forced refreshes, as in Cache.
	lastForced     time.Time
	unaccepted     int
	replayFailures int
	acceptedFrom   time.Time
	acceptedDrops  int
}

// NewKeyedCache returns a KeyedCache over src. Nothing is fetched until Token
// is called.
func NewKeyedCache(src KeyedSource, o KeyedCacheOptions) *KeyedCache {
	if o.Size <= 0 {
		o.Size = defaultKeyedSize
	}
	sharedDefaults{&o.RenewAt, &o.FetchTimeout, &o.MaxWait, &o.ForcedRefreshInterval, &o.Logger, &o.Observer}.fill()
	n := 1
	for n < maxKeyedShards && o.Size/(2*n) >= minKeysPerShard {
		n *= 2
	}
	c := &KeyedCache{src: src, opts: o, seed: maphash.MakeSeed(), shards: make([]keyedShard, n)}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*keyedEntry)
		s.size = o.Size / n
		if i < o.Size%n {
			s.size++
		}
	}
	return c
}

func (c *KeyedCache) shard(key string) *keyedShard {
	return &c.shards[maphash.String(c.seed, key)&uint64(len(c.shards)-1)]
}

// Token returns key's token. While none is valid it waits for a fetch, at
// most MaxWait or until ctx is done, and fails with an error wrapping
// ErrNoToken (and the fetch's error, if any). A key whose last fetch failed
// fails at once, until its backoff is over. The fetch is not bound to ctx:
// it keeps ctx's values, and goes on for other callers when ctx is done.
func (c *KeyedCache) Token(ctx context.Context, key string) (*Token, error) {
	return c.tokenAt(ctx, key, time.Now())
}

// tokenAt is Token at now; apart, so that a benchmark can tell the cost of
// reading the clock from the rest.
func (c *KeyedCache) tokenAt(ctx context.Context, key string, now time.Time) (*Token, error) {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		e = s.addLocked(key)
	} else {
		s.touchLocked(e)
		if e.tok != nil && now.Before(e.staleAt) {
			tok := e.tok
			if !now.Before(e.renewAt) && e.fetched == nil && !now.Before(e.nextAttempt) {
				c.fetchLocked(ctx, s, e)
			}
			s.mu.Unlock()
			return tok, nil
		}
	}
	return c.waitLocked(ctx, s, e, now)
}

// waitLocked waits for e's next token; s.mu is held on entry and released.
func (c *KeyedCache) waitLocked(ctx context.Context, s *keyedShard, e *keyedEntry, now time.Time) (*Token, error) {
	deadline := now.Add(c.opts.MaxWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var timeout <-chan time.Time
	for {
		if e.tok != nil && now.Before(e.staleAt) {
			tok := e.tok
			s.mu.Unlock()
			return tok, nil
		}
		if e.fetched == nil {
			if e.lastErr != nil && now.Before(e.nextAttempt) {
				err := e.lastErr
				s.mu.Unlock()
				return nil, fmt.Errorf("%w: %w", ErrNoToken, err)
			}
			c.fetchLocked(ctx, s, e)
		}
		fetched := e.fetched
		s.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(deadline.Sub(now))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-fetched:
		case <-timeout:
			return nil, c.noToken(s, e, errors.New("timed out waiting for a token"))
		case <-ctx.Done():
			return nil, c.noToken(s, e, ctx.Err())
		}
		now = time.Now()
		s.mu.Lock()
	}
}

func (c *KeyedCache) noToken(s *keyedShard, e *keyedEntry, cause error) error {
	s.mu.Lock()
	lastErr := e.lastErr
	s.mu.Unlock()
	if lastErr != nil {
		return fmt.Errorf("%w: %w (last fetch: %w)", ErrNoToken, cause, lastErr)
	}
	return fmt.Errorf("%w: %w", ErrNoToken, cause)
}

// fetchLocked starts a fetch of e's token in a goroutine of its own, which
// ends with the fetch.
func (c *KeyedCache) fetchLocked(ctx context.Context, s *keyedShard, e *keyedEntry) {
	e.fetched = make(chan struct{})
	go c.fetch(context.WithoutCancel(ctx), s, e)
}

// fetch gets one token for e's key, records the outcome in e, which may have
// been evicted meanwhile, and wakes e's waiters.
func (c *KeyedCache) fetch(ctx context.Context, s *keyedShard, e *keyedEntry) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	start := time.Now()
	tok, err := checkFetched(c.src.Token(ctx, e.key))
	now := time.Now()
	c.opts.Observer.TokenFetched(now.Sub(start), tok, err)

	s.mu.Lock()
	var wait time.Duration
	if err == nil {
		if e.tok != nil && e.accepted {
			e.unaccepted = 0 // the upstream accepts tokens again
		}
		e.tok, e.accepted = tok, false
		e.staleAt = staleAt(tok, now)
		e.renewAt = now.Add(renewIn(tok, now, c.opts.RenewAt))
		if earliest := start.Add(keyedMinRenewInterval); e.renewAt.Before(earliest) {
			e.renewAt = earliest
		}
		e.lastErr, e.failures, e.nextAttempt = nil, 0, time.Time{}
	} else {
		e.failures++
		wait = backoff(e.failures, err, keyedMinBackoff, keyedMaxBackoff)
		e.lastErr, e.nextAttempt = err, now.Add(wait)
	}
	failures := e.failures
	done := e.fetched
	e.fetched = nil
	s.mu.Unlock()
	// The waiters wake once the fetch is logged, so that what they answer
	// never comes before the log line that explains it.
	defer close(done)

	log := c.opts.Logger
	if err == nil {
		log.Debug("keyed token fetched", "key", e.key, "token", tok)
		return
	}
	// The error may quote the key (a URL's path): only at debug level.
	log.Debug("keyed token fetch failed", "key", e.key, "error", err, "failures", failures, "retry_in", wait.Round(time.Millisecond).String())
	attrs := []any{"failures", failures, "retry_in", wait.Round(time.Millisecond).String()}
	var re *RetrieveError
	if errors.As(err, &re) {
		attrs = append(attrs, "status", re.Status)
	}
	log.Warn("keyed token fetch failed", attrs...)
}

// Accepted reports that the upstream accepted tok for key: if tok is still
// key's token, a later rejection of it is taken for a revocation and
// refreshed at once (see Invalidate). It is meant for every answer the
// upstream did not reject; it locks key's shard and allocates nothing.
func (c *KeyedCache) Accepted(key string, tok *Token) {
	if tok == nil {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if e := s.m[key]; e != nil && e.tok == tok {
		e.accepted = true
	}
	s.mu.Unlock()
}

// Invalidate reports that the upstream rejected tok for key. If tok is still
// key's token it is dropped, for that key only, and the next call to Token
// fetches a new one: at once if the upstream had accepted tok (it was
// revoked), up to 3 times within ForcedRefreshInterval; forced refreshes
// that do not help are spaced from 1s doubling up to ForcedRefreshInterval,
// per key, as Cache.Invalidate does. It returns whether a call to Token may
// now yield a different token, that is whether a replay is worth it.
func (c *KeyedCache) Invalidate(key string, tok *Token) bool {
	if tok == nil {
		return true
	}
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	if e == nil || e.tok != tok {
		s.mu.Unlock()
		return true // already replaced, being replaced, or evicted
	}
	now := time.Now()
	accepted := e.accepted
	var dropped bool
	if !accepted {
		dropped = c.dropLocked(e, now, max(e.unaccepted, e.replayFailures))
	} else {
		e.unaccepted = 0
		if !within(e.acceptedFrom, now, c.opts.ForcedRefreshInterval) {
			e.acceptedFrom, e.acceptedDrops = now, 0
		}
		fruitless := e.replayFailures
		if over := e.acceptedDrops - acceptedBudget + 1; over > 0 {
			fruitless = max(fruitless, over) // revoked again and again: spaced too
		}
		if dropped = c.dropLocked(e, now, fruitless); dropped {
			e.acceptedDrops++
		}
	}
	s.mu.Unlock()
	if dropped {
		c.dropped(key, accepted)
	}
	return dropped
}

// Replayed reports how the upstream answered a request for key that was
// rejected, then replayed with tok, as Cache.Replayed does: a rejected
// replay spaces key's forced refreshes until one is accepted again.
func (c *KeyedCache) Replayed(key string, tok *Token, accepted bool) {
	if tok == nil {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		s.mu.Unlock()
		return
	}
	if accepted {
		if e.tok == tok {
			e.accepted = true
		}
		e.replayFailures = 0
		s.mu.Unlock()
		return
	}
	e.replayFailures++
	wasAccepted := e.accepted
	dropped := e.tok == tok && c.dropLocked(e, time.Now(), e.replayFailures)
	s.mu.Unlock()
	if dropped {
		c.dropped(key, wasAccepted)
	}
}

// dropLocked drops e's token, unless the last forced refresh of e was less
// than forcedWait(fruitless) ago.
func (c *KeyedCache) dropLocked(e *keyedEntry, now time.Time, fruitless int) bool {
	if within(e.lastForced, now, forcedWait(fruitless, c.opts.ForcedRefreshInterval)) {
		return false
	}
	if !e.accepted {
		e.unaccepted++
	}
	e.lastForced = now
	e.tok, e.accepted = nil, false
	e.nextAttempt = time.Time{} // a forced refresh does not wait out a refresh's backoff
	return true
}

func (c *KeyedCache) dropped(key string, accepted bool) {
	c.opts.Observer.TokenForcedRefresh()
	c.opts.Logger.Debug("keyed token rejected by upstream: dropped", "key", key, "accepted_before", accepted)
}

// Len returns how many keys are held.
func (c *KeyedCache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// addLocked adds an entry for key, most recently used, evicting the least
// recently used one if the shard is full. A fetch in flight for the evicted
// key goes on for its waiters, but its result is not kept.
func (s *keyedShard) addLocked(key string) *keyedEntry {
	if len(s.m) >= s.size {
		old := s.tail
		s.unlinkLocked(old)
		delete(s.m, old.key)
	}
	// A copy, so that a key cut from a larger string (a request body) does
	// not keep that string alive.
	e := &keyedEntry{key: strings.Clone(key)}
	s.m[e.key] = e
	s.pushFrontLocked(e)
	return e
}

// touchLocked marks e most recently used.
func (s *keyedShard) touchLocked(e *keyedEntry) {
	if s.head != e {
		s.unlinkLocked(e)
		s.pushFrontLocked(e)
	}
}

func (s *keyedShard) pushFrontLocked(e *keyedEntry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	} else {
		s.tail = e
	}
	s.head = e
}

func (s *keyedShard) unlinkLocked(e *keyedEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
