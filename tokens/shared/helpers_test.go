package shared_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/authsidecar/authsidecar/test/redistest"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// closed client must leave nothing running.
func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // go-redis' own messages: the tests read the Source's
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// fleetKey is the fleet's AES key in these tests.
var fleetKey = bytes.Repeat([]byte{7}, shared.KeySize)

const (
	clientID = "client-id-Zq81Lp"
	tokenURL = "https://provider.example/oauth/token"
)

var identity = []string{"oauth2", tokenURL, clientID, "payments"}

// provider is a token source that counts its fetches, like a provider
// counting issuance. Tokens are "secret-token-N" with label "secret-label-N".
type provider struct {
	name  string // tokens are name-N; "secret-token" if empty
	life  time.Duration
	delay time.Duration
	now   func() time.Time // dates the tokens
	calls atomic.Int64
	fail  atomic.Pointer[error]
	hook  func() // called during each fetch, if set
}

func newProvider(life time.Duration) *provider {
	return &provider{life: life, now: time.Now}
}

func (p *provider) Token(ctx context.Context) (*tokens.Token, error) {
	n := p.calls.Add(1)
	if p.hook != nil {
		p.hook()
	}
	if p.delay > 0 {
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := p.fail.Load(); err != nil {
		return nil, *err
	}
	return &tokens.Token{
		Value:  fmt.Sprintf("%s-%d", cmp.Or(p.name, "secret-token"), n),
		Label:  fmt.Sprintf("secret-label-%d", n),
		Extra:  map[string]string{"Code": fmt.Sprintf("secret-extra-%d", n)},
		Expiry: p.now().Add(p.life),
	}, nil
}

func (p *provider) setFail(err error) {
	if err == nil {
		p.fail.Store(nil)
		return
	}
	p.fail.Store(&err)
}

// observer records what a Source reports.
type observer struct {
	waiting chan struct{} // gets a value, if there is room, at each lock wait

	mu      sync.Mutex
	lookups map[string]int
	waits   int
}

func (o *observer) SharedCacheLookup(r string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lookups == nil {
		o.lookups = map[string]int{}
	}
	o.lookups[r]++
}

func (o *observer) SharedCacheLockWait() {
	o.mu.Lock()
	o.waits++
	o.mu.Unlock()
	select {
	case o.waiting <- struct{}{}:
	default:
	}
}

func (o *observer) counts() (hits, misses, fallbacks, waits int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lookups[shared.ResultHit], o.lookups[shared.ResultMiss], o.lookups[shared.ResultFallback], o.waits
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// sidecar is one Source with its own Redis connection, as one pod has.
type sidecar struct {
	*shared.Source
	obs *observer
	log *logBuffer
}

// newSidecar returns a Source over p sharing through the Redis at url;
// cfg's Client, Key, Identity, Observer and Logger are filled in if unset.
func newSidecar(t *testing.T, url string, p tokens.Source, cfg shared.Config) *sidecar {
	t.Helper()
	if cfg.Client == nil {
		client, err := shared.NewClient(shared.ClientConfig{URL: url, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		cfg.Client = client
	}
	if cfg.Key == nil {
		cfg.Key = fleetKey
	}
	if cfg.Identity == nil {
		cfg.Identity = identity
	}
	sc := &sidecar{obs: &observer{waiting: make(chan struct{}, 1)}, log: &logBuffer{}}
	cfg.Observer = sc.obs
	cfg.Logger = slog.New(slog.NewTextHandler(sc.log, nil))
	s, err := shared.New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc.Source = s
	return sc
}

func (s *sidecar) token(t *testing.T) *tokens.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := s.Token(ctx)
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	return tok
}

// rawClient is a plain client for looking into Redis.
func rawClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// keys lists Redis' keys matching pattern.
func keys(t *testing.T, c *redis.Client, pattern string) []string {
	t.Helper()
	ks, err := c.Keys(context.Background(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// onlyKey is the one key matching pattern.
func onlyKey(t *testing.T, c *redis.Client, pattern string) string {
	t.Helper()
	ks := keys(t, c, pattern)
	if len(ks) != 1 {
		t.Fatalf("keys %q = %q, want one", pattern, ks)
	}
	return ks[0]
}

// lockKey is the fleet's lock key, learnt from the entry a's first token
// leaves in Redis.
func lockKey(t *testing.T, c *redis.Client, a *sidecar) string {
	t.Helper()
	a.token(t)
	return strings.Replace(onlyKey(t, c, "authsidecar:token:*"), ":token:", ":lock:", 1)
}

var errProvider = errors.New("provider says no")

// fakeClock is a settable clock, for shared.SetNow: the tests that use it
// talk to a real Redis, which testing/synctest cannot fake.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// dialHook signals each dial that reached Redis on its channel, without
// waiting: one signal is kept until received.
type dialHook struct{ dialed chan<- struct{} }

func (h dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			select {
			case h.dialed <- struct{}{}:
			default:
			}
		}
		return conn, err
	}
}

func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
