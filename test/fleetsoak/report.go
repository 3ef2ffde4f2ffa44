package main

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

// goroutineSlack is how many more goroutines a sidecar may run at the end
// than at the steady point, both under the same load: a few more connections
// (one goroutine each from the app, two each to the upstream) are not a leak.
const goroutineSlack = 10

// period is how long a renewal round lasts (see the package comment).
func period(ttl time.Duration) time.Duration {
	return min(ttl*76/100, ttl-min(10*time.Second, ttl/4))
}

func rounds(d, ttl time.Duration) int { return int(math.Ceil(float64(d) / float64(period(ttl)))) }

// bound returns the fetches expected, the most allowed, and what the fleet
// would have fetched without the cache.
func (r *report) bound(cfg config) (expected, limit, noCache int) {
	up := rounds(cfg.duration-cfg.outage, cfg.ttl) + 1 + r.revocations - r.revokedDown
	down := 0
	if cfg.outage > 0 {
		down = cfg.n * (rounds(cfg.outage, cfg.ttl) + 1 + r.revokedDown)
	}
	expected = up + down
	return expected, expected*3/2 + cfg.n, cfg.n * (rounds(cfg.duration, cfg.ttl) + 1 + r.revocations)
}

func (r *report) sum(series string) float64 {
	var t float64
	for _, s := range r.end {
		t += s[series]
	}
	return t
}

// lookup is the series of the shared cache's lookups with result: the
// sidecars of the fleet have one route, the default.
func lookup(result string) string {
	return `authsidecar_shared_cache_lookups_total{result="` + result + `",route="default"}`
}

func (r *report) problems(cfg config) []string {
	var p []string
	if r.failed > 0 {
		p = append(p, fmt.Sprintf("%d failed requests: %s", r.failed, strings.Join(r.failures, "; ")))
	}
	if r.expiredSent > 0 {
		p = append(p, fmt.Sprintf("%d expired tokens reached the upstream", r.expiredSent))
	}
	if _, limit, _ := r.bound(cfg); r.fetches > limit {
		p = append(p, fmt.Sprintf("%d token fetches, more than the bound %d", r.fetches, limit))
	}
	for i := range cfg.n {
		first, last := r.steady[i], r.last[i]
		switch {
		case first == nil || last == nil || r.end[i] == nil:
			p = append(p, fmt.Sprintf("sidecar %d: /metrics unreachable", i))
		case last["go_goroutines"] > first["go_goroutines"]+goroutineSlack:
			p = append(p, fmt.Sprintf("sidecar %d: goroutines grew from %.0f to %.0f", i, first["go_goroutines"], last["go_goroutines"]))
		case last["process_resident_memory_bytes"] > first["process_resident_memory_bytes"]*1.5+4<<20:
			p = append(p, fmt.Sprintf("sidecar %d: RSS grew from %.1f to %.1f MiB", i, first["process_resident_memory_bytes"]/(1<<20), last["process_resident_memory_bytes"]/(1<<20)))
		}
	}
	return p
}

func (r *report) markdown(cfg config) string {
	var b strings.Builder
	expected, limit, noCache := r.bound(cfg)
	fmt.Fprintf(&b, "### Fleet soak run, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "`go run ./test/fleetsoak -n %d -duration %s -rate %d -ttl %s -revoke-every %s -redis-outage %s` (%s, %d CPUs)\n\n",
		cfg.n, cfg.duration, cfg.rate, cfg.ttl, cfg.revokeEvery, cfg.outage, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(&b, "| figure | value |\n| --- | --- |\n")
	outage := "no Redis outage"
	if cfg.outage > 0 {
		outage = fmt.Sprintf("Redis killed from %s to %s (restarted empty)", r.outageFrom, r.outageTo)
	}
	fmt.Fprintf(&b, "| run | %s, %d sidecars sharing one Redis, %s |\n", r.elapsed.Round(time.Second), cfg.n, outage)
	fmt.Fprintf(&b, "| requests | %d (%d OK) |\n", r.requests, r.ok)
	fmt.Fprintf(&b, "| failed requests | %d |\n", r.failed)
	fmt.Fprintf(&b, "| expired tokens sent upstream | %d |\n", r.expiredSent)
	fmt.Fprintf(&b, "| revocations | %d, %d of them with Redis down (upstream 401s: %d of %d calls, each replayed) |\n", r.revocations, r.revokedDown, r.reject, r.apiCalls)
	fmt.Fprintf(&b, "| token fetches (provider) | %d: expected about %d, bound %d (renewal round %s) |\n", r.fetches, expected, limit, period(cfg.ttl))
	fmt.Fprintf(&b, "| the same fleet without the cache | about %d fetches: %.0f%% of them made |\n", noCache, 100*float64(r.fetches)/float64(noCache))
	fmt.Fprintf(&b, "| shared cache lookups, fleet-wide | %.0f hits, %.0f misses, %.0f fallbacks; %.0f lock waits |\n",
		r.sum(lookup("hit")), r.sum(lookup("miss")), r.sum(lookup("fallback")), r.sum(`authsidecar_shared_cache_lock_waits_total{route="default"}`))
	fmt.Fprintf(&b, "| renewals counted by the sidecars (`authsidecar_token_fetches_total`, hits included) | %.0f |\n", r.sum(`authsidecar_token_fetches_total{result="success",route="default"}`))
	fmt.Fprintf(&b, "| \"shared cache unusable\" logged | %d times |\n", r.unusableLogs)
	fmt.Fprintf(&b, "\n| sidecar | goroutines at 30s / end | RSS at 30s / end (MiB) | hits / misses / fallbacks |\n| --- | --- | --- | --- |\n")
	for i := range cfg.n {
		first, last, end := r.steady[i], r.last[i], r.end[i]
		fmt.Fprintf(&b, "| %d | %.0f / %.0f | %.1f / %.1f | %.0f / %.0f / %.0f |\n", i, first["go_goroutines"], last["go_goroutines"],
			first["process_resident_memory_bytes"]/(1<<20), last["process_resident_memory_bytes"]/(1<<20),
			end[lookup("hit")], end[lookup("miss")], end[lookup("fallback")])
	}
	if p := r.problems(cfg); len(p) > 0 {
		fmt.Fprintf(&b, "\n**FAILED:** %s\n", strings.Join(p, "; "))
	} else {
		fmt.Fprintf(&b, "\nAll rules held: no failed request (Redis crash included), no expired token upstream, fetches within the bound, goroutines and memory flat in every sidecar.\n")
	}
	return b.String()
}
