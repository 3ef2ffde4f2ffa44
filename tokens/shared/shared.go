// Package shared lets a fleet of sidecars share one provider token through
// Redis, so that 500 replicas fetch one token instead of 500.
//
// A [Source] wraps the provider's tokens.Source and is itself wrapped by the
// sidecar's tokens.Cache, which keeps serving requests from memory: only
// renewals talk to Redis. When the Cache renews, the Source
//
//  1. reads the fleet's entry and returns its token if another sidecar has
//     already renewed (a hit);
//  2. otherwise takes the fleet's lock (SET NX PX, a lease released only by
//     its owner), fetches from the provider and stores the new token (a
//     miss), while the other sidecars wait and then read it;
//  3. when Redis cannot be used, fetches from the provider itself (a
//     fallback), so that no request ever fails because of the cache.
//
// Entries are encrypted with AES-256-GCM and named by an HMAC of what makes
// tokens interchangeable, so Redis holds no token, no client id and no URL in
// the clear. A token the upstream rejected is deleted from Redis only if the
// entry still holds it, so one revocation costs one fetch fleet-wide.
package shared

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/authsidecar/authsidecar/tokens"
)

// Lookup results, the values of authsidecar_shared_cache_lookups_total's
// result label.
const (
	ResultHit      = "hit"      // a token another sidecar fetched
	ResultMiss     = "miss"     // fetched from the provider by this sidecar, for the fleet
	ResultFallback = "fallback" // fetched from the provider by this sidecar alone: Redis could not be used
)

// Observer is told what a Source does, for metrics.
type Observer interface {
	// SharedCacheLookup reports where a token came from: ResultHit,
	// ResultMiss or ResultFallback.
	SharedCacheLookup(result string)
	// SharedCacheLockWait reports that another sidecar held the fleet's lock.
	SharedCacheLockWait()
}

// Config configures a Source. Client, Key and Identity are required.
type Config struct {
	// Client is the Redis connection; see NewClient.
	Client *redis.Client
	// Key is the fleet's 32-byte key (see LoadKey).
	Key []byte
	// Identity lists everything that makes two sidecars' tokens
	// interchangeable: source kind, token URL, client id, scopes, parameters.
	// Never a secret: it is hashed into the entry's name, not encrypted.
	Identity []string
	// RenewAt is the fraction of a token's lifetime after which the sidecars
	// renew it; a stored token past it is not handed to a sidecar that starts
	// late. Zero means 0.8.
	RenewAt float64
	// LockTTL is the lease of the fleet's lock: longer than a fetch can take.
	// A sidecar that dies while fetching holds the others up at most this
	// long. Zero means 15s.
	LockTTL time.Duration
	// OpTimeout bounds each Redis command: a slow Redis is an unusable one.
	// Zero means 500ms.
	OpTimeout time.Duration
	// PollInterval is how often a sidecar waiting for another's fetch looks
	// for the new token. Zero means 50ms.
	PollInterval time.Duration
	// Logger receives the Source's events. If nil, nothing is logged.
	Logger *slog.Logger
	// Observer receives events for metrics. If nil, none are sent.
	Observer Observer
}

// Source shares the tokens of another Source through Redis. It implements
// tokens.Source and tokens.Rejecter.
type Source struct {
	inner             tokens.Source
	cfg               Config
	sealer            sealer
	entryKey, lockKey string           // the Redis keys of the entry and of its lock
	now               func() time.Time // time.Now; tests of entries' ages change it

	mu       sync.Mutex
	last     *tokens.Token // the token last returned
	lastBlob []byte        // last as stored in Redis; nil if it is not there
	lastHit  bool          // last was fetched by another sidecar
	rejected []byte        // an entry to delete at the next Token, if Redis still holds it
	down     bool          // the last Redis command failed
}

// New returns a Source that shares inner's tokens as cfg says.
func New(inner tokens.Source, cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("shared: no Redis client")
	}
	if len(cfg.Identity) == 0 {
		return nil, errors.New("shared: no identity")
	}
	sealKey, nameKey, err := subkeys(cfg.Key)
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(sealKey)
	if err != nil {
		return nil, err
	}
	if cfg.RenewAt <= 0 || cfg.RenewAt >= 1 {
		cfg.RenewAt = 0.8
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 15 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 500 * time.Millisecond
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	s := &Source{inner: inner, cfg: cfg, sealer: sl, now: time.Now}
	s.entryKey, s.lockKey = keyNames(nameKey, cfg.Identity)
	return s, nil
}

// redisError is a Redis command that failed: the cache is unusable, not the
// provider.
type redisError struct {
	op  string
	err error
}

func (e *redisError) Error() string { return fmt.Sprintf("shared cache: %s: %v", e.op, e.err) }
func (e *redisError) Unwrap() error { return e.err }

// Token returns the fleet's token if it is newer than the one this Source
// last returned; otherwise it fetches one for the fleet, or waits for the
// sidecar that is fetching. When Redis cannot be used it fetches from the
// provider directly.
func (s *Source) Token(ctx context.Context) (*tokens.Token, error) {
	s.mu.Lock()
	last, rejected := s.last, s.rejected
	s.mu.Unlock()

	tok, blob, hit, err := s.shared(ctx, last, rejected)
	var re *redisError
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, err // out of time, or shutting down: not Redis' fault
	case errors.As(err, &re):
		s.setDown(re)
		// Alone, and without storing: Redis failed a moment ago, and the
		// next renewal after it is back fetches for the fleet again.
		if tok, err = s.inner.Token(ctx); err != nil {
			return nil, err
		}
		s.cfg.Observer.SharedCacheLookup(ResultFallback)
		blob, hit = nil, false
	case err != nil:
		return nil, err // the provider's
	case blob != nil:
		s.setUp()
	}
	s.mu.Lock()
	s.last, s.lastBlob, s.lastHit = tok, blob, hit
	s.mu.Unlock()
	return tok, nil
}

// Rejected implements tokens.Rejecter: the upstream rejected tok, so the
// next Token deletes it from Redis if the fleet's entry still holds it. It
// does no I/O, so it may be called from a request.
func (s *Source) Rejected(tok *tokens.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.last && s.lastBlob != nil {
		s.rejected = s.lastBlob
	}
}

// Shared implements tokens.Rejecter: whether tok is the token this Source
// last returned and another sidecar fetched it.
func (s *Source) Shared(tok *tokens.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tok == s.last && s.lastHit
}

// shared gets a token through Redis. Errors from Redis are *redisError.
// While another sidecar holds the lock it waits, until ctx is done: a slow
// provider is asked once, not once per sidecar.
// hit is true for a token another sidecar fetched.
func (s *Source) shared(ctx context.Context, last *tokens.Token, rejected []byte) (tok *tokens.Token, blob []byte, hit bool, err error) {
	if rejected != nil {
		if _, err := s.compareAndDelete(ctx, s.entryKey, rejected); err != nil {
			return nil, nil, false, &redisError{"delete the rejected token", err}
		}
		s.mu.Lock()
		if bytes.Equal(s.rejected, rejected) { // kept until done, for the next Token if Redis failed
			s.rejected = nil
		}
		s.mu.Unlock()
	}
	waited := false
	for {
		tok, blob, err := s.read(ctx, last)
		if err != nil && waited && ctx.Err() != nil {
			return nil, nil, false, errWaitEnded(ctx) // ended during the read, not the timer
		}
		if err != nil || tok != nil {
			return tok, blob, tok != nil, err
		}
		owner := uuid.NewString()
		ok, err := s.lock(ctx, owner)
		if err != nil && waited && ctx.Err() != nil {
			return nil, nil, false, errWaitEnded(ctx)
		}
		if err != nil {
			return nil, nil, false, &redisError{"take the lock", err}
		}
		if ok {
			return s.fetchLocked(ctx, last, owner)
		}
		if !waited {
			waited = true
			s.cfg.Observer.SharedCacheLockWait()
		}
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, false, errWaitEnded(ctx)
		case <-t.C:
		}
	}
}

// errWaitEnded is the error of a wait for another sidecar's fetch that ctx
// ended, whether between two looks at Redis or during one.
func errWaitEnded(ctx context.Context) error {
	return fmt.Errorf("shared cache: waiting for another sidecar's fetch: %w", ctx.Err())
}

// read returns the fleet's token if this sidecar should take it: it is not
// last, it expires no earlier than last, and it is not yet due for renewal.
// A missing, unreadable or unsuitable entry is (nil, nil, nil).
func (s *Source) read(ctx context.Context, last *tokens.Token) (*tokens.Token, []byte, error) {
	blob, err := s.get(ctx, s.entryKey)
	if errors.Is(err, redis.Nil) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, &redisError{"read", err}
	}
	tok, issued, err := s.sealer.open(s.entryKey, blob)
	if err != nil {
		s.cfg.Logger.Warn("shared cache: stored entry cannot be read (another format or key, or tampered with): replacing it")
		return nil, nil, nil
	}
	if !s.usable(tok, issued, last) {
		return nil, nil, nil
	}
	s.cfg.Observer.SharedCacheLookup(ResultHit)
	s.cfg.Logger.Debug("shared cache: took the fleet's token", "token", tok)
	return tok, blob, nil
}

func (s *Source) usable(tok *tokens.Token, issued time.Time, last *tokens.Token) bool {
	if last != nil && (tok.Value == last.Value || tok.Expiry.Before(last.Expiry)) {
		return false
	}
	life := tok.Expiry.Sub(issued)
	renewAt := issued.Add(time.Duration(float64(life) * s.cfg.RenewAt))
	return s.now().Before(renewAt)
}

// fetchLocked fetches for the fleet while holding the lock as owner.
func (s *Source) fetchLocked(ctx context.Context, last *tokens.Token, owner string) (*tokens.Token, []byte, bool, error) {
	defer func() {
		// Released even when ctx is done; only if still ours, if the lease
		// ran out during a slow fetch and another sidecar took it.
		if _, err := s.compareAndDelete(context.WithoutCancel(ctx), s.lockKey, []byte(owner)); err != nil {
			s.cfg.Logger.Warn("shared cache: cannot release the lock: it expires by itself", "error", err)
		}
	}()
	// Another sidecar may have stored a token between our read and our lock.
	if tok, blob, err := s.read(ctx, last); err != nil || tok != nil {
		return tok, blob, tok != nil, err
	}
	tok, err := s.inner.Token(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	s.cfg.Observer.SharedCacheLookup(ResultMiss)
	s.cfg.Logger.Debug("shared cache: fetched for the fleet", "token", tok)
	blob, err := s.store(ctx, tok)
	if err != nil {
		s.setDown(&redisError{"store", err})
		return tok, nil, false, nil // the token is good; only the sharing failed
	}
	return tok, blob, false, nil
}

// store writes tok to the fleet's entry, to expire from Redis with the token.
// A fetch that used up most of ctx's time still gets OpTimeout to store.
func (s *Source) store(ctx context.Context, tok *tokens.Token) ([]byte, error) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	blob, err := s.sealer.seal(s.entryKey, tok, now)
	if err != nil {
		return nil, err
	}
	ttl := tok.Expiry.Sub(now)
	if ttl < time.Millisecond {
		return nil, errors.New("token already expired")
	}
	if err := s.set(ctx, blob, ttl); err != nil {
		return nil, err
	}
	return blob, nil
}

// compareAndDeleteScript deletes KEYS[1] only if it holds ARGV[1]: the
// release of a lock by its owner, and the removal of a rejected token that no
// other sidecar has replaced yet.
var compareAndDeleteScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// The Redis commands, each bounded by OpTimeout.

func (s *Source) compareAndDelete(ctx context.Context, key string, value []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	n, err := compareAndDeleteScript.Run(ctx, s.cfg.Client, []string{key}, value).Int()
	return n == 1, err
}

func (s *Source) get(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	return s.cfg.Client.Get(ctx, key).Bytes()
}

// lock takes the fleet's lock for owner. A SET whose reply was lost is
// retried by go-redis and answered "taken": the lock's value tells.
func (s *Source) lock(ctx context.Context, owner string) (bool, error) {
	c, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	ok, err := s.cfg.Client.SetNX(c, s.lockKey, owner, s.cfg.LockTTL).Result()
	if err != nil || ok {
		return ok, err
	}
	holder, err := s.get(ctx, s.lockKey)
	if errors.Is(err, redis.Nil) {
		return false, nil // released meanwhile: the next round takes it
	}
	return string(holder) == owner, err
}

func (s *Source) set(ctx context.Context, blob []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	return s.cfg.Client.Set(ctx, s.entryKey, blob, ttl).Err()
}

// setDown logs, once per outage, that Redis cannot be used.
func (s *Source) setDown(err error) {
	s.mu.Lock()
	was := s.down
	s.down = true
	s.mu.Unlock()
	if !was {
		s.cfg.Logger.Warn("shared cache unusable: fetching tokens from the provider directly until it is back", "error", err)
	}
}

// setUp logs, once, that Redis can be used again.
func (s *Source) setUp() {
	s.mu.Lock()
	was := s.down
	s.down = false
	s.mu.Unlock()
	if was {
		s.cfg.Logger.Info("shared cache usable again: sharing tokens with the fleet")
	}
}

type nopObserver struct{}

func (nopObserver) SharedCacheLookup(string) {}
func (nopObserver) SharedCacheLockWait()     {}
