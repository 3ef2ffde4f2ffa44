// Command soak runs authsidecar for a long time against the fake TezPay at a
// steady request rate, with short-lived tokens, periodic revocations and a
// token-endpoint outage in the middle, and reports what happened: requests,
// failures (none are allowed outside the outage's no-valid-token window),
// token fetches, expired tokens sent upstream (none allowed), and the
// sidecar's goroutines and memory at the start and the end (which must be
// flat). It exits 1 when a rule is broken. `make soak` runs it for 10 minutes.
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
	flag.DurationVar(&cfg.duration, "duration", 10*time.Minute, "length of the run")
	flag.IntVar(&cfg.rate, "rate", 200, "requests per second")
	flag.DurationVar(&cfg.ttl, "ttl", 2*time.Second, "lifetime of the provider's tokens")
	flag.DurationVar(&cfg.revokeEvery, "revoke-every", 30*time.Second, "revoke every token this often")
	flag.DurationVar(&cfg.outage, "outage", 30*time.Second, "token endpoint outage, in the middle of the run")
	flag.DurationVar(&cfg.settle, "settle", 95*time.Second, "wait after the load before counting goroutines (the upstream idle-connection timeout is 90s)")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	flag.Parse()

	rep, err := soak(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	probe.Finish("soak", rep.markdown(cfg), *out, rep.problems())
}
