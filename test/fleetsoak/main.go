// Command fleetsoak runs a fleet of authsidecar processes sharing one token
// through one redis-server (AUTHSIDECAR_SHARED_CACHE), against the fake
// TezPay, for a long time: short-lived tokens renewed round after round,
// periodic revocations, and a Redis crash in the middle. The provider never
// goes down, so no request may fail, not even while Redis is down. It reports
// requests, failures, expired tokens sent upstream, the provider's token
// fetches against a bound, the shared cache's hits, misses and fallbacks, and
// each sidecar's goroutines and memory, and exits 1 when a rule is broken.
// `make soak-fleet` runs it for 5 minutes with 10 sidecars.
//
// The bound on token fetches. A token is renewed at 80% of its life less up
// to 5% jitter, but never after it goes stale (a quarter of its life before
// expiry for tokens under 40s), so a renewal round lasts
// period = min(0.76·ttl, ttl − min(10s, ttl/4)): 7.5s for 10s tokens. With
// Redis up the fleet makes one fetch per round and one per revocation; with
// Redis down each sidecar fetches alone, N per round and per revocation. The
// outage window is widened by 1s at each end (go-redis finds a Redis that is
// back within a second), and gets one round more for the rounds straddling
// its edges:
//
//	expected = ⌈(duration−outage)/period⌉ + 1 + revocations_up
//	         + N·(⌈outage/period⌉ + 1 + revocations_down)
//	bound    = 1.5·expected + N
//
// The ×1.5 + N slack covers two timers firing together, and a revocation
// racing a renewal. Without the cache N sidecars would fetch
// N·(⌈duration/period⌉ + 1 + revocations).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/authsidecar/authsidecar/test/probe"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.binary, "sidecar", "bin/authsidecar", "the authsidecar binary")
	flag.IntVar(&cfg.n, "n", 10, "number of sidecars")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Minute, "length of the run")
	flag.IntVar(&cfg.rate, "rate", 100, "requests per second, in total, round-robin over the sidecars")
	flag.DurationVar(&cfg.ttl, "ttl", 10*time.Second, "lifetime of the provider's tokens")
	flag.DurationVar(&cfg.revokeEvery, "revoke-every", 47*time.Second, "revoke every token this often")
	flag.DurationVar(&cfg.outage, "redis-outage", 30*time.Second, "Redis killed for this long, in the middle of the run")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	flag.Parse()

	rep, err := run(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetsoak:", err)
		os.Exit(1)
	}
	probe.Finish("fleetsoak", rep.markdown(cfg), *out, rep.problems(cfg))
}
