package shared_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/test/redistest"
	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// fleet starts n sidecars over one provider and one Redis.
func fleet(t *testing.T, url string, p tokens.Source, n int) []*sidecar {
	t.Helper()
	out := make([]*sidecar, n)
	for i := range out {
		out[i] = newSidecar(t, url, p, shared.Config{})
	}
	return out
}

// tokensOf calls Token on every sidecar at once and returns the values.
func tokensOf(t *testing.T, sidecars []*sidecar) []string {
	t.Helper()
	vals := make([]string, len(sidecars))
	var wg sync.WaitGroup
	for i, s := range sidecars {
		wg.Go(func() { vals[i] = s.token(t).Value })
	}
	wg.Wait()
	return vals
}

func allEqual(vals []string, want string) bool {
	for _, v := range vals {
		if v != want {
			return false
		}
	}
	return true
}

func sum(sidecars []*sidecar) (hits, misses, fallbacks, waits int) {
	for _, s := range sidecars {
		h, m, f, w := s.obs.counts()
		hits, misses, fallbacks, waits = hits+h, misses+m, fallbacks+f, waits+w
	}
	return
}

func TestFleetStartingTogetherFetchesOnce(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	p.delay = 200 * time.Millisecond // the others find the lock taken
	sidecars := fleet(t, srv.URL(), p, 20)

	vals := tokensOf(t, sidecars)
	if got := p.calls.Load(); got != 1 {
		t.Errorf("provider fetches = %d, want 1", got)
	}
	if !allEqual(vals, "secret-token-1") {
		t.Errorf("tokens = %q, want secret-token-1 everywhere", vals)
	}
	hits, misses, fallbacks, waits := sum(sidecars)
	if hits != 19 || misses != 1 || fallbacks != 0 {
		t.Errorf("hits, misses, fallbacks = %d, %d, %d; want 19, 1, 0", hits, misses, fallbacks)
	}
	if waits == 0 {
		t.Errorf("lock waits = 0, want the sidecars that found the lock taken counted")
	}
}

func TestRenewalFetchesOnceForTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	sidecars := fleet(t, srv.URL(), p, 5)
	tokensOf(t, sidecars)

	// Each sidecar renews in turn, as their jittered timers fire: the first
	// finds its own token in Redis and fetches; the others take its token.
	var vals []string
	for _, s := range sidecars {
		vals = append(vals, s.token(t).Value)
	}
	if got := p.calls.Load(); got != 2 {
		t.Errorf("provider fetches after one renewal round = %d, want 2", got)
	}
	if !allEqual(vals, "secret-token-2") {
		t.Errorf("renewed tokens = %q, want secret-token-2 everywhere", vals)
	}
}

func TestRevocationSeenByAllFetchesOnce(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	sidecars := fleet(t, srv.URL(), p, 20)
	first := make([]*tokens.Token, len(sidecars))
	for i, s := range sidecars {
		first[i] = s.token(t)
	}

	// Every sidecar's request is rejected; each Cache tells its Source and
	// renews at once.
	for i, s := range sidecars {
		s.Rejected(first[i])
	}
	vals := tokensOf(t, sidecars)
	if got := p.calls.Load(); got != 2 {
		t.Errorf("provider fetches = %d, want 2: one at the start, one after the revocation", got)
	}
	if !allEqual(vals, "secret-token-2") {
		t.Errorf("tokens after the revocation = %q, want secret-token-2 everywhere", vals)
	}
}

func TestRejectedDoesNotDeleteANewerToken(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	a, b := newSidecar(t, srv.URL(), p, shared.Config{}), newSidecar(t, srv.URL(), p, shared.Config{})
	t1a, t1b := a.token(t), b.token(t)

	a.Rejected(t1a)
	if got := a.token(t).Value; got != "secret-token-2" {
		t.Fatalf("a's token after rejection = %q, want secret-token-2", got)
	}
	// b's rejection of the same, old token must leave secret-token-2 alone.
	b.Rejected(t1b)
	if got := b.token(t).Value; got != "secret-token-2" {
		t.Errorf("b's token after rejection = %q, want secret-token-2 (shared)", got)
	}
	c := newSidecar(t, srv.URL(), p, shared.Config{})
	if got := c.token(t).Value; got != "secret-token-2" {
		t.Errorf("a new sidecar's token = %q, want secret-token-2 still in Redis", got)
	}
	if got := p.calls.Load(); got != 2 {
		t.Errorf("provider fetches = %d, want 2", got)
	}
}

func TestRejectedOfATokenNotFromThisSourceIsIgnored(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	rc := rawClient(t, srv)
	a.token(t)
	entry := onlyKey(t, rc, "authsidecar:token:*")
	a.Rejected(&tokens.Token{Value: "secret-token-1", Expiry: time.Now().Add(time.Hour)}) // same value, other token
	// a's next renewal must find the entry still there (and, being its own
	// token, fetch a new one).
	var existed int64 = -1
	p.hook = func() { existed, _ = rc.Exists(context.Background(), entry).Result() }
	a.token(t)
	if existed != 1 {
		t.Errorf("the entry was deleted for a token a never gave out (exists = %d)", existed)
	}
}

func TestProviderErrorIsReturnedAndReleasesTheLock(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	p.setFail(errProvider)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	_, err := a.Token(context.Background())
	if !errors.Is(err, errProvider) {
		t.Fatalf("Token() error = %v, want the provider's", err)
	}
	if ks := keys(t, rc, "*"); len(ks) != 0 {
		t.Errorf("keys after a failed fetch = %q, want none: no lock left, nothing stored", ks)
	}
	if _, _, fallbacks, _ := a.obs.counts(); fallbacks != 0 {
		t.Errorf("fallbacks = %d, want 0: a provider error is not Redis' fault", fallbacks)
	}
	p.setFail(nil)
	if got := a.token(t).Value; got != "secret-token-2" {
		t.Errorf("token after the provider healed = %q, want secret-token-2", got)
	}
}

func TestWaitsForAHolderThatDiedUntilItsLeaseEnds(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	lock := lockKey(t, rc, a)
	rc.FlushAll(context.Background())

	// A sidecar took the lock and died: its lease runs out after 300ms.
	rc.Set(context.Background(), lock, "dead-sidecar", 300*time.Millisecond)
	b := newSidecar(t, srv.URL(), p, shared.Config{})
	if got := b.token(t).Value; got != "secret-token-2" {
		t.Errorf("token = %q, want secret-token-2", got)
	}
	hits, misses, fallbacks, waits := b.obs.counts()
	if waits != 1 || misses != 1 || hits != 0 || fallbacks != 0 {
		t.Errorf("waits, misses, hits, fallbacks = %d, %d, %d, %d; want 1, 1, 0, 0", waits, misses, hits, fallbacks)
	}
}

func TestWaitsForASlowHolderUntilTheDeadline(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	lock := lockKey(t, rc, a)
	rc.FlushAll(context.Background())

	// A sidecar holds the lock and its fetch hangs: b does not ask the
	// provider too, it fails this renewal (the Cache retries it).
	rc.Set(context.Background(), lock, "slow-sidecar", time.Minute)
	b := newSidecar(t, srv.URL(), p, shared.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := b.Token(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "another sidecar's fetch") {
		t.Errorf("Token() error = %v, want the wait for another sidecar's fetch timed out", err)
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("provider fetches = %d, want 1 (a's only)", n)
	}
	if hits, misses, fallbacks, waits := b.obs.counts(); hits+misses+fallbacks != 0 || waits != 1 {
		t.Errorf("hits, misses, fallbacks, waits = %d, %d, %d, %d; want 0, 0, 0, 1", hits, misses, fallbacks, waits)
	}
	if strings.Contains(b.log.String(), "unusable") {
		t.Errorf("a slow fetch elsewhere was logged as Redis unusable: %s", b.log)
	}
	if owner, _ := rc.Get(context.Background(), lock).Result(); owner != "slow-sidecar" {
		t.Errorf("lock owner = %q, want slow-sidecar's lock untouched", owner)
	}
}

// TestAWaitThatEndsDuringARedisCommandSaysSo: the deadline of a wait for
// another sidecar's fetch may fall during one of the wait's looks at Redis
// (here Redis stops answering once b waits): the error still says that the
// wait ended, not that Redis failed.
func TestAWaitThatEndsDuringARedisCommandSaysSo(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	fp, err := fake.NewFaultProxy(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	lock := lockKey(t, rc, a)
	rc.FlushAll(context.Background())
	rc.Set(context.Background(), lock, "slow-sidecar", time.Minute)

	b := newSidecar(t, "redis://"+fp.Addr(), p, shared.Config{OpTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := b.Token(ctx)
		done <- err
	}()
	select {
	case <-b.obs.waiting:
	case err := <-done:
		t.Fatalf("Token() = %v before waiting for the lock", err)
	}
	fp.Set(fake.Blackhole) // b's next look at Redis lasts until its deadline
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for another sidecar's fetch") {
		t.Errorf("Token() error = %v, want the wait for another sidecar's fetch timed out", err)
	}
	if strings.Contains(b.log.String(), "unusable") {
		t.Errorf("the wait's end was logged as Redis unusable: %s", b.log)
	}
}

func TestASlowProviderIsAskedOnceByTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	p.delay = 700 * time.Millisecond // most of each sidecar's 1s fetch deadline
	sidecars := fleet(t, srv.URL(), p, 10)
	errs := make([]error, len(sidecars))
	var wg sync.WaitGroup
	for i, s := range sidecars {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, errs[i] = s.Token(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sidecar %d: Token() error = %v", i, err)
		}
	}
	if n := p.calls.Load(); n != 1 {
		t.Errorf("provider fetches = %d, want 1", n)
	}
}

func TestALostLockReplyStillTakesTheLock(t *testing.T) {
	srv := redistest.Start(t)
	client, err := shared.NewClient(shared.ClientConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// The first SET NX runs on Redis but its reply is lost, and go-redis
	// sends it again: the retry answers "not set", the lock being ours.
	client.AddHook(&lostFirstSet{})
	p := newProvider(time.Hour)
	a := newSidecar(t, "", p, shared.Config{Client: client})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tok, err := a.Token(ctx)
	if err != nil {
		t.Fatalf("Token() error = %v, want the token fetched under a's own lock", err)
	}
	if hits, misses, fallbacks, waits := a.obs.counts(); tok.Value != "secret-token-1" || misses != 1 || waits != 0 || hits+fallbacks != 0 {
		t.Errorf("token %q; hits, misses, fallbacks, waits = %d, %d, %d, %d; want secret-token-1, 0, 1, 0, 0", tok.Value, hits, misses, fallbacks, waits)
	}
}

// lostFirstSet runs the first SET twice, as go-redis does when a reply is lost.
type lostFirstSet struct{ done atomic.Bool }

func (*lostFirstSet) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lostFirstSet) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "set" && !h.done.Swap(true) {
			if err := next(ctx, cmd); err != nil {
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (*lostFirstSet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestALockTakenOverIsNotReleasedByItsFormerOwner(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	lock := lockKey(t, rc, a)

	// During a's next fetch its lease runs out and another sidecar takes
	// the lock.
	p.hook = func() { rc.Set(context.Background(), lock, "next-owner", time.Minute) }
	a.token(t)
	if owner, _ := rc.Get(context.Background(), lock).Result(); owner != "next-owner" {
		t.Errorf("lock owner after a's fetch = %q, want next-owner's lock kept", owner)
	}
}

func TestTheStoredEntryIsEncrypted(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	tok := a.token(t)

	ks := keys(t, rc, "*")
	if len(ks) != 1 {
		t.Fatalf("keys = %q, want the token entry alone (the lock released)", ks)
	}
	raw, err := rc.Get(context.Background(), ks[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{tok.Value, tok.Label, tok.Extra["Code"], "secret-", clientID, tokenURL, "provider.example"} {
		if strings.Contains(string(raw), secret) || strings.Contains(ks[0], secret) {
			t.Errorf("Redis shows %q in the clear: key %q, value %q", secret, ks[0], raw)
		}
	}
	ttl, err := rc.PTTL(context.Background(), ks[0]).Result()
	if err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("entry TTL = %v (%v), want the token's remaining hour", ttl, err)
	}
	// A sidecar of the fleet reads it back whole.
	b := newSidecar(t, srv.URL(), p, shared.Config{})
	got := b.token(t)
	if got.Value != tok.Value || got.Label != tok.Label || got.Extra["Code"] != tok.Extra["Code"] ||
		got.Expiry.Sub(tok.Expiry).Abs() >= time.Millisecond {
		t.Errorf("shared token = %+v, want %+v", got, tok)
	}
}

func TestSidecarsWithAnotherKeyOrIdentityDoNotShare(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	newSidecar(t, srv.URL(), p, shared.Config{}).token(t)
	otherKey := make([]byte, shared.KeySize)
	newSidecar(t, srv.URL(), p, shared.Config{Key: otherKey}).token(t)
	newSidecar(t, srv.URL(), p, shared.Config{Identity: []string{"oauth2", tokenURL, "another-client", "payments"}}).token(t)
	if got := p.calls.Load(); got != 3 {
		t.Errorf("provider fetches = %d, want 3: one per key and identity", got)
	}
	if got := keys(t, rawClient(t, srv), "authsidecar:token:*"); len(got) != 3 {
		t.Errorf("entries = %q, want 3", got)
	}
}

func TestAnUnreadableEntryIsReplaced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(key string, blob []byte) (string, []byte)
	}{
		{"garbage", func(k string, _ []byte) (string, []byte) { return k, []byte("not an entry") }},
		{"bit flipped", func(k string, b []byte) (string, []byte) { b[len(b)-1] ^= 1; return k, b }},
		{"truncated", func(k string, b []byte) (string, []byte) { return k, b[:len(b)/2] }},
		{"another version", func(k string, b []byte) (string, []byte) { b[0] = 9; return k, b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			rc := rawClient(t, srv)
			p := newProvider(time.Hour)
			newSidecar(t, srv.URL(), p, shared.Config{}).token(t)
			key := onlyKey(t, rc, "authsidecar:token:*")
			blob, _ := rc.Get(context.Background(), key).Bytes()
			k, b := tc.tamper(key, blob)
			rc.Set(context.Background(), k, b, time.Hour)

			c := newSidecar(t, srv.URL(), p, shared.Config{})
			if got := c.token(t).Value; got != "secret-token-2" {
				t.Errorf("token = %q, want secret-token-2 fetched anew", got)
			}
			if !strings.Contains(c.log.String(), "cannot be read") {
				t.Errorf("log = %q, want the unreadable entry reported", c.log.String())
			}
			if got := newSidecar(t, srv.URL(), p, shared.Config{}).token(t).Value; got != "secret-token-2" {
				t.Errorf("next sidecar's token = %q, want secret-token-2: the entry replaced", got)
			}
		})
	}
}

func TestAnEntryCopiedUnderAnotherNameIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	p := newProvider(time.Hour)
	newSidecar(t, srv.URL(), p, shared.Config{}).token(t)
	key := onlyKey(t, rc, "authsidecar:token:*")
	blob, _ := rc.Get(context.Background(), key).Bytes()

	other := []string{"oauth2", tokenURL, "another-client", "payments"}
	o := newSidecar(t, srv.URL(), p, shared.Config{Identity: other})
	o.token(t) // secret-token-2, under the other name
	otherKey := ""
	for _, k := range keys(t, rc, "authsidecar:token:*") {
		if k != key {
			otherKey = k
		}
	}
	rc.Set(context.Background(), otherKey, blob, time.Hour) // client 1's token where client 2's is read

	if got := newSidecar(t, srv.URL(), p, shared.Config{Identity: other}).token(t).Value; got == "secret-token-1" {
		t.Errorf("another client's sidecar took the copied token %q", got)
	}
}

func TestAStoredTokenIsTakenOnlyBeforeItIsDueForRenewal(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	srv := redistest.Start(t)
	p := newProvider(100 * time.Second)
	p.now = clock.Now
	cfg := shared.Config{RenewAt: 0.8}
	sidecar := func() *sidecar {
		s := newSidecar(t, srv.URL(), p, cfg)
		shared.SetNow(s.Source, clock.Now)
		return s
	}
	sidecar().token(t)

	clock.Advance(79 * time.Second)
	if got := sidecar().token(t).Value; got != "secret-token-1" {
		t.Errorf("at 79%% of its life: token = %q, want the shared secret-token-1", got)
	}
	clock.Advance(2 * time.Second)
	if got := sidecar().token(t).Value; got != "secret-token-2" {
		t.Errorf("at 81%% of its life: token = %q, want secret-token-2 fetched anew", got)
	}
}

func TestAStoredTokenOlderThanTheOneHeldIsNotTaken(t *testing.T) {
	srv := redistest.Start(t)
	rc := rawClient(t, srv)
	long, short := newProvider(time.Hour), newProvider(time.Minute)
	short.name = "secret-short"
	a := newSidecar(t, srv.URL(), long, shared.Config{})
	held := a.token(t) // an hour left

	// The entry is replaced by a token with a minute left (stored by a
	// sidecar that fetched alone while Redis was being restarted).
	rc.FlushAll(context.Background())
	newSidecar(t, srv.URL(), short, shared.Config{}).token(t)

	// At a's renewal the stored token is newer than nothing a holds, but it
	// expires before a's: a fetches rather than go back.
	got := a.token(t)
	if got.Value == "secret-short-1" {
		t.Errorf("renewal took the stored token expiring at %v, before the held one's %v", got.Expiry, held.Expiry)
	}
	if n := long.calls.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
}

func TestRedisDownFallsBackAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	client, err := shared.NewClient(shared.ClientConfig{URL: srv.URL(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	dialed := make(chan struct{}, 1)
	client.AddHook(dialHook{dialed})
	a := newSidecar(t, "", p, shared.Config{Client: client})
	a.token(t)

	srv.Kill()
	select { // the dial before the outage
	case <-dialed:
	default:
	}
	for i := range 3 {
		tok := a.token(t)
		if want := "secret-token-" + string(rune('2'+i)); tok.Value != want {
			t.Errorf("token %d with Redis down = %q, want %s fetched here", i, tok.Value, want)
		}
	}
	if _, _, fallbacks, _ := a.obs.counts(); fallbacks != 3 {
		t.Errorf("fallbacks = %d, want 3", fallbacks)
	}
	if n := strings.Count(a.log.String(), "shared cache unusable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, a.log)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// go-redis finds Redis back within a second or so (after failed dials it
	// probes once a second): until then a keeps fetching alone. Once one of
	// a's dials has reached Redis, its next command or the one after uses it.
	var last *tokens.Token
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	reached := false
	for !strings.Contains(a.log.String(), "usable again") {
		if reached {
			select {
			case <-deadline.C:
				t.Fatalf("Redis dialled again, but a did not use it within 10s:\n%s", a.log)
			default:
			}
		} else if last != nil {
			select {
			case <-dialed:
				reached = true
			case <-deadline.C:
				t.Fatalf("a did not dial Redis again within 10s of its restart:\n%s", a.log)
			}
		}
		last = a.token(t)
	}
	b := newSidecar(t, srv.URL(), p, shared.Config{})
	if got := b.token(t).Value; got != last.Value {
		t.Errorf("after the restart: b's token = %q, want %s stored by a", got, last.Value)
	}
	if n := strings.Count(a.log.String(), "usable again"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, a.log)
	}
}

func TestUnresponsiveRedisFallsBackWithinTheTimeout(t *testing.T) {
	srv := redistest.Start(t)
	fp, err := fake.NewFaultProxy(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	fp.Set(fake.Blackhole)
	p := newProvider(time.Hour)
	p.delay = 10 * time.Millisecond // honours the deadline
	a := newSidecar(t, "redis://"+fp.Addr(), p, shared.Config{OpTimeout: 200 * time.Millisecond})

	// Each command gives up after 200ms, well within the fetch's 2s.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	tok, err := a.Token(ctx)
	if err != nil {
		t.Fatalf("Token() with Redis unresponsive: error = %v, want a token fetched here", err)
	}
	if tok.Value != "secret-token-1" {
		t.Errorf("token = %q, want secret-token-1", tok.Value)
	}
	if _, _, fallbacks, _ := a.obs.counts(); fallbacks != 1 {
		t.Errorf("fallbacks = %d, want 1", fallbacks)
	}
}

func TestTLSWithAnACLUserAndAPasswordFile(t *testing.T) {
	srv := redistest.StartTLS(t)
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	trusted := &tls.Config{RootCAs: roots}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, TLSConfig: trusted, DisableIdentity: true})
	defer admin.Close()
	// The least a sidecar needs, as the README's ACL line grants it.
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "authsidecar", "on", ">redis-pass-Wq3",
		"resetkeys", "~authsidecar:*", "-@all", "+get", "+set", "+del", "+eval", "+evalsha").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("redis-pass-Wq3\n"), 0o600)
	os.WriteFile(bad, []byte("not-the-password\n"), 0o600)
	client := func(password string, tlsConfig *tls.Config) *redis.Client {
		c, err := shared.NewClient(shared.ClientConfig{
			URL: "rediss://authsidecar@" + srv.Addr, Password: tokens.File(password), TLS: tlsConfig,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	p := newProvider(time.Hour)
	a := newSidecar(t, "", p, shared.Config{Client: client(good, trusted)})
	b := newSidecar(t, "", p, shared.Config{Client: client(good, trusted)})
	a.token(t)
	b.token(t)
	if n := p.calls.Load(); n != 1 {
		t.Errorf("provider fetches = %d, want 1: shared over TLS", n)
	}
	a.Rejected(a.token(t)) // and a rejection's compare-and-delete is allowed too
	a.token(t)
	if _, _, fallbacks, _ := a.obs.counts(); fallbacks != 0 {
		t.Errorf("fallbacks = %d, want 0: the ACL allows every command used\n%s", fallbacks, a.log)
	}

	for name, c := range map[string]*redis.Client{
		"wrong password":      client(bad, trusted),
		"untrusted server":    client(good, nil),
		"password unreadable": client(filepath.Join(dir, "missing"), trusted),
	} {
		s := newSidecar(t, "", p, shared.Config{Client: c})
		s.token(t)
		if _, _, fallbacks, _ := s.obs.counts(); fallbacks != 1 {
			t.Errorf("%s: fallbacks = %d, want 1", name, fallbacks)
		}
		if strings.Contains(s.log.String(), "redis-pass") || strings.Contains(s.log.String(), "not-the-password") {
			t.Errorf("%s: the log shows a password: %s", name, s.log)
		}
	}
}

// TestARedisThatReadsButDoesNotWriteIsLoggedOnce: a read-only replica
// after a failover, or an ACL without +set, is one outage in the log, not a
// flapping "unusable" / "usable again" at every renewal.
func TestARedisThatReadsButDoesNotWriteIsLoggedOnce(t *testing.T) {
	srv := redistest.Start(t)
	if err := rawClient(t, srv).Do(context.Background(), "ACL", "SETUSER", "reader", "on", ">pw-Reader-1",
		"resetkeys", "~authsidecar:*", "-@all", "+get").Err(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("pw-Reader-1"), 0o600)
	client, err := shared.NewClient(shared.ClientConfig{URL: "redis://reader@" + srv.Addr, Password: tokens.File(pw)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p := newProvider(time.Hour)
	a := newSidecar(t, "", p, shared.Config{Client: client})
	for range 4 {
		a.token(t)
	}
	log := a.log.String()
	if n, m := strings.Count(log, "unusable"), strings.Count(log, "usable again"); n != 1 || m != 0 {
		t.Errorf("log has %d 'unusable' and %d 'usable again' lines, want 1 and 0:\n%s", n, m, log)
	}
	if _, _, fallbacks, _ := a.obs.counts(); fallbacks != 4 {
		t.Errorf("fallbacks = %d, want 4", fallbacks)
	}
}

// TestATokenRevokedWithTheOneItReplacedIsDroppedAtOnce: the upstream
// revokes every token just after a renews for the fleet. b, still on the
// old token, takes a's after its 401; that one is rejected too, and b's
// Cache drops it at once although forced refreshes are rate-limited, because
// another sidecar fetched it.
func TestATokenRevokedWithTheOneItReplacedIsDroppedAtOnce(t *testing.T) {
	srv := redistest.Start(t)
	p := newProvider(time.Hour)
	a := newSidecar(t, srv.URL(), p, shared.Config{})
	b := newSidecar(t, srv.URL(), p, shared.Config{})
	cache := tokens.NewCache(b.Source, tokens.CacheOptions{ForcedRefreshInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { cache.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	token := func() *tokens.Token {
		t.Helper()
		tok, err := cache.Token(context.Background())
		if err != nil {
			t.Fatalf("cache.Token() error = %v", err)
		}
		return tok
	}

	a.token(t) // secret-token-1, for the fleet
	t1 := token()
	a.token(t) // a renews: secret-token-2; b still holds secret-token-1
	if !cache.Invalidate(t1) {
		t.Fatalf("Invalidate(secret-token-1) = false, want true")
	}
	t2 := token()
	if t2.Value != "secret-token-2" {
		t.Fatalf("b's token after the 401 = %q, want the fleet's secret-token-2", t2.Value)
	}
	if !cache.Invalidate(t2) {
		t.Errorf("Invalidate(secret-token-2) = false: b keeps a revoked token for the whole interval")
	}
	if t3 := token(); t3.Value != "secret-token-3" {
		t.Errorf("b's token after its replay was rejected = %q, want secret-token-3", t3.Value)
	}
}
