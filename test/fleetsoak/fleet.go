package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/test/probe"
	"github.com/authsidecar/authsidecar/test/redistest"
)

type config struct {
	binary                     string
	n, rate                    int
	duration, ttl, revokeEvery time.Duration
	outage                     time.Duration
}

// sample is one sidecar's /metrics, by series ("name{labels}").
type sample map[string]float64

type report struct {
	requests, ok, failed      int64
	failures                  []string // the first 20
	expiredSent               int64    // expired tokens that reached the upstream
	revocations, revokedDown  int      // revokedDown: within the outage window, ±1s
	fetches, apiCalls, reject int
	steady, last, end         []sample // per sidecar: at 30s and at the end under load; after the load
	unusableLogs              int      // "shared cache unusable" lines in the sidecars' logs
	outageFrom, outageTo      time.Duration
	elapsed                   time.Duration
}

const clientID, clientSecret = "fleet-client", "fleet-secret-8d2a7c"

type sidecar struct {
	listen, admin string
	cmd           *exec.Cmd
	logs          probe.Logs
}

func run(cfg config, logw io.Writer) (*report, error) {
	dir, err := os.MkdirTemp("", "fleetsoak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rs, err := redistest.Run(dir, false)
	if err != nil {
		return nil, err
	}
	defer rs.Kill()
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(dir, "fleet.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		return nil, err
	}
	p := fake.NewTezPay(clientID, clientSecret, cfg.ttl)
	rep := &report{}
	provider := httptest.NewServer(probe.CountExpired(p.Handler(), &rep.expiredSent))
	defer provider.Close()

	fleet := make([]*sidecar, cfg.n)
	for i := range fleet {
		s := &sidecar{cmd: exec.Command(cfg.binary)}
		s.cmd.Env = []string{
			"AUTHSIDECAR_UPSTREAM_URL=" + provider.URL, "AUTHSIDECAR_TOKEN_SOURCE=json",
			"AUTHSIDECAR_TOKEN_URL=" + provider.URL + fake.AuthenticatePath,
			"AUTHSIDECAR_CLIENT_ID=" + clientID, "AUTHSIDECAR_CLIENT_SECRET=" + clientSecret,
			"AUTHSIDECAR_TOKEN_WAIT=1s", "AUTHSIDECAR_FORCED_REFRESH_INTERVAL=1s",
			"AUTHSIDECAR_SHARED_CACHE=" + rs.URL(), "AUTHSIDECAR_SHARED_CACHE_KEY_FILE=" + keyFile,
		}
		var err error
		s.listen, s.admin, err = probe.Start(s.cmd, &s.logs, 20*time.Second)
		if s.cmd.Process != nil {
			defer func() { s.cmd.Process.Kill(); s.cmd.Wait() }()
		}
		if err == nil {
			err = probe.Ready(s.admin, 20*time.Second)
		}
		if err != nil {
			return nil, fmt.Errorf("sidecar %d: start %s: %w (run make build first)\n%s", i, cfg.binary, err, s.logs.String())
		}
		fleet[i] = s
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	rep.outageFrom = (cfg.duration - cfg.outage) / 2
	rep.outageTo = rep.outageFrom + cfg.outage
	scrapeAll := func() []sample {
		out := make([]sample, len(fleet))
		for i, s := range fleet {
			out[i], _ = probe.Metrics(s.admin) // nil if the sidecar is gone: a problem
		}
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	body := []byte(`{"payment_method":"IMPS_IN","transaction_amount":500,"merchant_reference":"FLEET"}`)
	fail := func(i int, what string) {
		atomic.AddInt64(&rep.failed, 1)
		mu.Lock()
		if len(rep.failures) < 20 {
			rep.failures = append(rep.failures, fmt.Sprintf("at %s via sidecar %d: %s", time.Since(start).Round(time.Millisecond), i, what))
		}
		mu.Unlock()
	}
	send := func(i int) {
		defer wg.Done()
		defer func() { <-sem }()
		atomic.AddInt64(&rep.requests, 1)
		resp, err := client.Post("http://"+fleet[i].listen+fake.ProcessPaymentPath, "application/json", bytes.NewReader(body))
		if err != nil {
			fail(i, err.Error())
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fail(i, fmt.Sprintf("status %d %.100s", resp.StatusCode, b))
			return
		}
		atomic.AddInt64(&rep.ok, 1)
	}

	tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
	defer tick.Stop()
	revoke := time.NewTicker(cfg.revokeEvery)
	defer revoke.Stop()
	sampleTick := time.NewTicker(5 * time.Second)
	defer sampleTick.Stop()
	var outageStart, outageEnd <-chan time.Time // nil: no outage
	if cfg.outage > 0 {
		outageStart, outageEnd = time.After(rep.outageFrom), time.After(rep.outageTo)
	}
	fmt.Fprintf(logw, "fleetsoak: %d sidecars, %s at %d req/s, %s tokens, revocations every %s, Redis down %s–%s\n",
		cfg.n, cfg.duration, cfg.rate, cfg.ttl, cfg.revokeEvery, rep.outageFrom, rep.outageTo)
	for next := 0; ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-tick.C:
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go send(next % cfg.n)
			default: // 512 in flight: the fleet is stuck
				atomic.AddInt64(&rep.requests, 1)
				fail(next%cfg.n, "not sent: 512 requests in flight")
			}
			next++
		case <-revoke.C:
			p.RevokeAll()
			rep.revocations++
			if at := time.Since(start); cfg.outage > 0 && at >= rep.outageFrom-time.Second && at <= rep.outageTo+time.Second {
				rep.revokedDown++
			}
		case <-outageStart:
			rs.Kill()
			fmt.Fprintf(logw, "fleetsoak: Redis killed at %s\n", time.Since(start).Round(time.Second))
		case <-outageEnd:
			if err := rs.Restart(); err != nil {
				return nil, err
			}
			fmt.Fprintf(logw, "fleetsoak: Redis back at %s\n", time.Since(start).Round(time.Second))
		case <-sampleTick.C:
			rep.last = scrapeAll()
			if rep.steady == nil && time.Since(start) >= 30*time.Second {
				rep.steady = rep.last
			}
			fmt.Fprintf(logw, "fleetsoak: %s requests %d ok %d failed %d tokens issued %d\n", time.Since(start).Round(time.Second),
				atomic.LoadInt64(&rep.requests), atomic.LoadInt64(&rep.ok), atomic.LoadInt64(&rep.failed), p.Fetches())
		}
	}
	rep.last = scrapeAll() // the last under load, comparable with steady
	if rep.steady == nil { // a run shorter than 30s
		rep.steady = rep.last
	}
	wg.Wait()
	rep.elapsed = time.Since(start)
	rep.fetches = p.Fetches()
	rep.apiCalls, rep.reject = p.Calls()
	rep.end = scrapeAll()
	for _, s := range fleet {
		s.cmd.Process.Kill()
		s.cmd.Wait() // and its output copied: the logs are complete
		rep.unusableLogs += strings.Count(s.logs.String(), "shared cache unusable")
	}
	return rep, nil
}
