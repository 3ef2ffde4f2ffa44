package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
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
)

// fleetSize is how many sidecar processes share one Redis.
const fleetSize = 20

// startFleet starts n sidecars with env at once and waits until each is ready.
func startFleet(t *testing.T, n int, env map[string]string) []*sidecar {
	t.Helper()
	fleet := make([]*sidecar, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range fleet {
		wg.Go(func() { fleet[i], errs[i] = tryStart(t, env) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start sidecar %d: %v", i, err)
		}
	}
	for _, s := range fleet {
		s.waitReady(20 * time.Second)
	}
	return fleet
}

// payAll makes one payment through every sidecar at once and fails the
// test for any answer but 200.
func payAll(t *testing.T, c *http.Client, fleet []*sidecar, ref string) {
	t.Helper()
	results := make([]result, len(fleet))
	var wg sync.WaitGroup
	for i, s := range fleet {
		wg.Go(func() {
			results[i] = call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment(fmt.Sprintf("%s-%d", ref, i)))
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("%s: payment through sidecar %d = %v, want 200", ref, i, r)
		}
	}
}

// lookups sums the fleet's shared-cache lookups by result.
func lookups(t *testing.T, fleet []*sidecar) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range fleet {
		m := s.metrics()
		for _, r := range []string{"hit", "miss", "fallback"} {
			v, _ := metric(m, `authsidecar_shared_cache_lookups_total{result="`+r+`",route="default"}`)
			out[r] += v
		}
	}
	return out
}

func writeFleetKey(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	path := filepath.Join(t.TempDir(), "fleet.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSharedCacheFleet runs 20 sidecar processes over one Redis through
// their whole story: a start together, a revocation, a Redis crash under
// load, and its return.
func TestSharedCacheFleet(t *testing.T) {
	rs := redistest.Start(t)
	p, srv := newTezPay(t, time.Hour, nil)
	env := tezPayEnv(srv.URL,
		"SHARED_CACHE", rs.URL(),
		"SHARED_CACHE_KEY_FILE", writeFleetKey(t),
		"FORCED_REFRESH_INTERVAL", "500ms", // the phases below follow each other closely
		"LOG_LEVEL", "info",
	)
	fleet := startFleet(t, fleetSize, env)
	c := newClient(t)

	// 1. Twenty sidecars start together: one token fetch.
	payAll(t, c, fleet, "START")
	if n := p.Fetches(); n != 1 {
		t.Errorf("start: token fetches = %d, want 1 for %d sidecars", n, fleetSize)
	}
	if got := lookups(t, fleet); got["miss"] != 1 || got["hit"] != fleetSize-1 || got["fallback"] != 0 {
		t.Errorf("start: lookups = %v, want 1 miss and %d hits", got, fleetSize-1)
	}
	checkRedisHoldsNoSecret(t, rs, p)

	// 2. The provider revokes the token; every sidecar meets a 401, replays:
	// one more fetch for the fleet. (No refresh was forced yet, so
	// FORCED_REFRESH_INTERVAL does not hold one back.)
	p.RevokeAll()
	payAll(t, c, fleet, "REVOKED")
	if n := p.Fetches(); n != 2 {
		t.Errorf("revocation: token fetches = %d, want 2: one more for the whole fleet", n)
	}

	// 3. Redis dies while the app keeps paying, and the provider revokes
	// again: every sidecar fetches alone, and no request fails.
	var failed atomic.Int64
	var failures sync.Map
	answered := make([]atomic.Int64, len(fleet)) // load requests each sidecar answered
	// each waits until every sidecar has answered k more load requests.
	each := func(k int64, when string) {
		t.Helper()
		base := make([]int64, len(fleet))
		for i := range answered {
			base[i] = answered[i].Load()
		}
		if !eventually(10*time.Second, func() bool {
			for i := range answered {
				if answered[i].Load()-base[i] < k {
					return false
				}
			}
			return true
		}) {
			t.Errorf("%s: not every sidecar answered %d load requests within 10s", when, k)
		}
	}
	stop := make(chan struct{})
	var load sync.WaitGroup
	for i, s := range fleet {
		load.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if r := call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment(fmt.Sprintf("LOAD-%d-%d", i, n))); r.status != http.StatusOK {
					failed.Add(1)
					failures.Store(fmt.Sprintf("sidecar %d request %d", i, n), r.String())
				}
				answered[i].Add(1)
			}
		})
	}
	each(1, "load with Redis up")
	rs.Kill()
	// Each sidecar's last forced refresh (phase 2) must be older than
	// FORCED_REFRESH_INTERVAL (500ms), or the revocation below would find
	// it rate-limited.
	lastForced := time.Time{}
	for i, s := range fleet {
		forced := s.logged(msgForcedRefresh)
		if len(forced) == 0 {
			t.Fatalf("sidecar %d logged no %q after the revocation", i, msgForcedRefresh)
		}
		if at := forced[len(forced)-1].at; at.After(lastForced) {
			lastForced = at
		}
	}
	waitUntil(t, 5*time.Second, func() bool { return time.Since(lastForced) > 500*time.Millisecond },
		"FORCED_REFRESH_INTERVAL since the last forced refresh")
	before := p.Fetches()
	p.RevokeAll()
	if !eventually(10*time.Second, func() bool { return p.Fetches()-before >= fleetSize }) {
		t.Errorf("Redis down: %d fetches after the revocation, want %d: each sidecar alone", p.Fetches()-before, fleetSize)
	}
	each(2, "load after the fetches with Redis down") // the second began after the fetches
	close(stop)
	load.Wait()
	if n := failed.Load(); n > 0 {
		failures.Range(func(k, v any) bool { t.Errorf("with Redis down: %s = %s", k, v); return true })
		t.Errorf("with Redis down: %d requests failed, want none", n)
	}
	if n := p.Fetches() - before; n != fleetSize {
		t.Errorf("Redis down: token fetches after the revocation = %d, want %d", n, fleetSize)
	}
	if got := lookups(t, fleet); got["fallback"] != fleetSize {
		t.Errorf("Redis down: fallbacks = %v, want %d", got["fallback"], fleetSize)
	}
	for i, s := range fleet {
		if n := strings.Count(s.output(), "shared cache unusable"); n != 1 {
			t.Errorf("sidecar %d logged the outage %d times, want once", i, n)
		}
	}

	// 4. Redis is back (empty): the next revocation costs one fetch again.
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	// Restart returns once Redis answers, and each sidecar's client dials
	// it at its next command: nothing to wait for. (go-redis stops dialling
	// and probes every second only after PoolSize (4) failed dials; each
	// sidecar made 2 above, one command and its retry. A client that had
	// stopped would fetch alone, and the count below would show it.)
	before = p.Fetches()
	p.RevokeAll()
	payAll(t, c, fleet, "BACK")
	if n := p.Fetches() - before; n != 1 {
		t.Errorf("Redis back: token fetches after a revocation = %d, want 1", n)
	}
	for i, s := range fleet {
		if !strings.Contains(s.output(), "shared cache usable again") {
			t.Errorf("sidecar %d did not log that sharing resumed", i)
		}
	}
	t.Logf("FIGURE: %d sidecars: %d token fetches over start, revocation, a Redis crash (%d alone) and a second revocation",
		fleetSize, p.Fetches(), fleetSize)
}

// checkRedisHoldsNoSecret fails the test if Redis shows an issued token,
// the client id or secret, or the provider's address.
func checkRedisHoldsNoSecret(t *testing.T, rs *redistest.Server, p *fake.TezPay) {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr, DisableIdentity: true})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("Redis keys = %q, %v; want the fleet's entry", keys, err)
	}
	secrets := append(p.Issued(), clientID, clientSecret, "127.0.0.1")
	for _, k := range keys {
		v, err := rc.Get(ctx, k).Result()
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		for _, s := range secrets {
			if strings.Contains(k, s) || strings.Contains(v, s) {
				t.Errorf("Redis key %q shows %q in the clear", k, s)
			}
		}
	}
}

// TestSharedCacheUnreachableAtStart: a sidecar whose Redis is not there
// starts, fetches alone, and serves.
func TestSharedCacheUnreachableAtStart(t *testing.T) {
	p, srv := newTezPay(t, time.Hour, nil)
	s := startSidecar(t, tezPayEnv(srv.URL,
		"SHARED_CACHE", "redis://"+unusedAddr(t),
		"SHARED_CACHE_KEY_FILE", writeFleetKey(t),
	))
	s.waitReady(10 * time.Second)
	if r := call(newClient(t), http.MethodPost, s.URL+fake.ProcessPaymentPath, payment("NO-REDIS")); r.status != http.StatusOK {
		t.Errorf("payment = %v, want 200", r)
	}
	if n := p.Fetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1", n)
	}
	if v, _ := metric(s.metrics(), `authsidecar_shared_cache_lookups_total{result="fallback",route="default"}`); v != 1 {
		t.Errorf("fallbacks = %v, want 1", v)
	}
}

// TestSharedCacheRefusesToStartWithoutAKey: the key is required.
func TestSharedCacheRefusesToStartWithoutAKey(t *testing.T) {
	code, _, stderr := runToExit(t, map[string]string{
		"UPSTREAM_URL": "http://127.0.0.1:1", "TOKEN_SOURCE": "json", "TOKEN_URL": "http://127.0.0.1:1/token",
		"CLIENT_ID": clientID, "CLIENT_SECRET": clientSecret, "SHARED_CACHE": "redis://127.0.0.1:6379",
	})
	if code != 2 || !strings.Contains(stderr, "AUTHSIDECAR_SHARED_CACHE_KEY_FILE: required") {
		t.Errorf("exit code %d, stderr %q; want 2 and the missing key named", code, stderr)
	}
}

// TestSharedCacheOverTLSWithAPassword: rediss://, a user's password from a
// file and a private CA, through the binary's settings.
func TestSharedCacheOverTLSWithAPassword(t *testing.T) {
	rs := redistest.StartTLS(t)
	pem, err := os.ReadFile(rs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, TLSConfig: &tls.Config{RootCAs: roots}, DisableIdentity: true})
	defer admin.Close()
	const password = "redis-password-e2e-Jh6Ts"
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "authsidecar", "on", ">"+password,
		"resetkeys", "~authsidecar:*", "-@all", "+get", "+set", "+del", "+eval", "+evalsha").Err(); err != nil {
		t.Fatal(err)
	}
	passwordFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(passwordFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, srv := newTezPay(t, time.Hour, nil)
	env := tezPayEnv(srv.URL,
		"SHARED_CACHE", "rediss://authsidecar@"+rs.Addr,
		"SHARED_CACHE_PASSWORD_FILE", passwordFile,
		"SHARED_CACHE_CA_FILE", rs.CAFile,
		"SHARED_CACHE_KEY_FILE", writeFleetKey(t),
	)
	fleet := startFleet(t, 2, env)
	payAll(t, newClient(t), fleet, "TLS")
	if n := p.Fetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1 for 2 sidecars", n)
	}
	if got := lookups(t, fleet); got["hit"] != 1 || got["fallback"] != 0 {
		t.Errorf("lookups = %v, want 1 hit and no fallback", got)
	}
}

// TestSharedCacheRenewalRounds: with short tokens the fleet renews on its
// own timers, several rounds in a row; each round costs about one fetch,
// not one per sidecar, and no request fails.
func TestSharedCacheRenewalRounds(t *testing.T) {
	const n, ttl, run = 5, 5 * time.Second, 12 * time.Second
	rs := redistest.Start(t)
	p, srv := newTezPay(t, ttl, nil)
	fleet := startFleet(t, n, tezPayEnv(srv.URL,
		"SHARED_CACHE", rs.URL(),
		"SHARED_CACHE_KEY_FILE", writeFleetKey(t),
		"LOG_LEVEL", "info",
	))
	c := newClient(t)
	start := p.Fetches()
	tick := time.NewTicker(250 * time.Millisecond) // a payment round at a steady pace
	defer tick.Stop()
	for i := 0; time.Duration(i)*250*time.Millisecond < run; i++ {
		payAll(t, c, fleet, fmt.Sprintf("ROUND-%d", i))
		<-tick.C
	}
	// Renewal at 80% of 5s, so about 3 rounds in 12s: one fetch each, and
	// at worst one more when two timers fire together.
	rounds := int(run / (ttl * 4 / 5))
	fetches := p.Fetches() - start
	if fetches > rounds+2 || fetches < 1 {
		t.Errorf("token fetches in %s = %d, want about %d (one per renewal round, not %d)", run, fetches, rounds, rounds*n)
	}
	if got := lookups(t, fleet); got["fallback"] != 0 || got["hit"] < float64((n-1)*rounds) {
		t.Errorf("lookups = %v, want no fallback and at least %d hits", got, (n-1)*rounds)
	}
	t.Logf("FIGURE: %d sidecars renewing %s tokens for %s: %d token fetches", n, ttl, run, fetches)
}
