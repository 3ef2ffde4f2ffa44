package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// steady is the first sample taken under load after the warm-up (30s), the
// baseline for "flat" goroutines and memory; the last sample is taken under
// the same load, just before it stops. Between them the sidecar's pools of
// connections and buffers are at the same size, so growth means a leak.
func (r *report) steady() sample {
	for _, s := range r.samples {
		if s.at >= 30*time.Second {
			return s
		}
	}
	return r.samples[0]
}

func (r *report) problems() []string {
	var p []string
	if r.unexpectedCount > 0 {
		p = append(p, fmt.Sprintf("%d failed requests outside the outage window: %s", r.unexpectedCount, strings.Join(r.unexpected, "; ")))
	}
	if r.expiredSent > 0 {
		p = append(p, fmt.Sprintf("%d expired tokens reached the upstream", r.expiredSent))
	}
	if r.idleAfter.goroutines > r.idleBefore.goroutines+2 {
		p = append(p, fmt.Sprintf("goroutines when idle grew from %.0f before the load to %.0f after it", r.idleBefore.goroutines, r.idleAfter.goroutines))
	}
	if len(r.samples) >= 2 {
		first, last := r.steady(), r.samples[len(r.samples)-1]
		if last.rssBytes > first.rssBytes*1.5+4<<20 {
			p = append(p, fmt.Sprintf("RSS grew from %.1f to %.1f MiB", first.rssBytes/(1<<20), last.rssBytes/(1<<20)))
		}
	}
	return p
}

func (r *report) markdown(cfg config) string {
	var b strings.Builder
	first, last := r.steady(), r.samples[len(r.samples)-1]
	fmt.Fprintf(&b, "### Soak run, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "`go run ./test/soak -duration %s -rate %d -ttl %s -revoke-every %s -outage %s` (%s, %d CPUs)\n\n",
		cfg.duration, cfg.rate, cfg.ttl, cfg.revokeEvery, cfg.outage, runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU())
	fmt.Fprintf(&b, "| figure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| run | %s, token endpoint down from %s to %s |\n", r.elapsed.Round(time.Second), r.outageFrom, r.outageTo)
	fmt.Fprintf(&b, "| requests | %d (%d OK) |\n", r.requests, r.ok)
	fmt.Fprintf(&b, "| failures outside the outage window | %d |\n", r.unexpectedCount)
	fmt.Fprintf(&b, "| failed during the outage while no valid token could be had (503 token_unavailable, or a revoked token's 401) | %d |\n", r.outageFailures)
	fmt.Fprintf(&b, "| expired tokens sent upstream | %d |\n", r.expiredSent)
	fmt.Fprintf(&b, "| revocations | %d (upstream 401s: %d of %d calls, each replayed) |\n", r.revocations, r.rejected, r.apiCalls)
	fmt.Fprintf(&b, "| tokens issued | %d (%s tokens renewed at 80%%: about %d expected, plus one per revocation) |\n",
		r.fetches, cfg.ttl, int(r.elapsed-cfg.outage)/int(cfg.ttl*8/10))
	fmt.Fprintf(&b, "| goroutines idle before the load / idle after it (%s later) | %.0f / %.0f |\n", cfg.settle, r.idleBefore.goroutines, r.idleAfter.goroutines)
	fmt.Fprintf(&b, "| goroutines under load at %s / at the end | %.0f / %.0f |\n", first.at, first.goroutines, last.goroutines)
	fmt.Fprintf(&b, "| RSS under load at %s / at the end | %.1f / %.1f MiB |\n", first.at, first.rssBytes/(1<<20), last.rssBytes/(1<<20))
	fmt.Fprintf(&b, "| RSS idle after the load | %.1f MiB |\n", r.idleAfter.rssBytes/(1<<20))
	if p := r.problems(); len(p) > 0 {
		fmt.Fprintf(&b, "\n**FAILED:** %s\n", strings.Join(p, "; "))
	} else {
		fmt.Fprintf(&b, "\nAll rules held: no failure outside the outage, no expired token upstream, goroutines back to their idle count, memory flat.\n")
	}
	return b.String()
}
