package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/test/probe"
)

type config struct {
	binary      string
	duration    time.Duration
	rate        int
	ttl         time.Duration
	revokeEvery time.Duration
	outage      time.Duration
	settle      time.Duration
}

// sample is the sidecar's state at one moment, from its /metrics.
type sample struct {
	at         time.Duration
	goroutines float64
	rssBytes   float64
}

type report struct {
	requests, ok         int64
	outageFailures       int64 // 503 token_unavailable, or a revoked token's 401, while no valid token could be had
	unexpected           []string
	unexpectedCount      int64
	fetches              int
	revocations          int
	expiredSent          int64 // expired tokens that reached the upstream
	rejected, apiCalls   int
	samples              []sample // under load
	idleBefore           sample   // ready, before any load
	idleAfter            sample   // after the load, once idle connections timed out
	outageFrom, outageTo time.Duration
	elapsed              time.Duration
}

const (
	clientID     = "soak-client"
	clientSecret = "soak-secret-4f1c9e"
	// failureGrace is how long after the outage ends 503s are still
	// expected: the sidecar's next retry may be up to 30s of backoff away.
	failureGrace = 32 * time.Second
)

func soak(cfg config, logw io.Writer) (*report, error) {
	p := fake.NewTezPay(clientID, clientSecret, cfg.ttl)
	rep := &report{}
	provider := httptest.NewServer(probe.CountExpired(p.Handler(), &rep.expiredSent))
	defer provider.Close()

	cmd := exec.Command(cfg.binary)
	cmd.Env = []string{
		"AUTHSIDECAR_UPSTREAM_URL=" + provider.URL,
		"AUTHSIDECAR_TOKEN_SOURCE=json",
		"AUTHSIDECAR_TOKEN_URL=" + provider.URL + fake.AuthenticatePath,
		"AUTHSIDECAR_CLIENT_ID=" + clientID,
		"AUTHSIDECAR_CLIENT_SECRET=" + clientSecret,
		"AUTHSIDECAR_TOKEN_WAIT=1s",
		"AUTHSIDECAR_FORCED_REFRESH_INTERVAL=1s",
	}
	var logs probe.Logs
	listen, admin, err := probe.Start(cmd, &logs, 15*time.Second)
	if cmd.Process != nil {
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w (run make build first)\n%s", cfg.binary, err, logs.String())
	}
	if err := probe.Ready(admin, 15*time.Second); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, logs.String())
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}, Timeout: 30 * time.Second}
	rep.outageFrom = (cfg.duration - cfg.outage) / 2
	rep.outageTo = rep.outageFrom + cfg.outage
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512)
	body := []byte(`{"payment_method":"IMPS_IN","transaction_amount":500,"merchant_reference":"SOAK"}`)
	send := func() {
		defer wg.Done()
		defer func() { <-sem }()
		sent := time.Since(start)
		status, errCode, err := post(client, "http://"+listen+fake.ProcessPaymentPath, body)
		atomic.AddInt64(&rep.requests, 1)
		switch {
		case err == nil && status == http.StatusOK:
			atomic.AddInt64(&rep.ok, 1)
		case err == nil && sent >= rep.outageFrom && sent < rep.outageTo+failureGrace &&
			((status == http.StatusServiceUnavailable && errCode == "token_unavailable") ||
				status == http.StatusUnauthorized): // revoked while no new token could be had
			atomic.AddInt64(&rep.outageFailures, 1)
		default:
			atomic.AddInt64(&rep.unexpectedCount, 1)
			mu.Lock()
			if len(rep.unexpected) < 20 {
				rep.unexpected = append(rep.unexpected, fmt.Sprintf("at %s: status %d %s %v", sent.Round(time.Millisecond), status, errCode, err))
			}
			mu.Unlock()
		}
	}

	tick := time.NewTicker(time.Second / time.Duration(cfg.rate))
	defer tick.Stop()
	revoke := time.NewTicker(cfg.revokeEvery)
	defer revoke.Stop()
	sampleTick := time.NewTicker(5 * time.Second)
	defer sampleTick.Stop()
	var outageStart, outageEnd <-chan time.Time // nil: no outage
	if cfg.outage > 0 {
		outageStart = time.After(rep.outageFrom)
		outageEnd = time.After(rep.outageTo)
	}
	takeSample := func() {
		if s, err := scrape(admin); err == nil {
			s.at = time.Since(start).Round(time.Second)
			rep.samples = append(rep.samples, s)
		}
	}
	rep.idleBefore, _ = scrape(admin)
	fmt.Fprintf(logw, "soak: %s at %d req/s, %s tokens, revocations every %s, outage %s–%s\n",
		cfg.duration, cfg.rate, cfg.ttl, cfg.revokeEvery, rep.outageFrom, rep.outageTo)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go send()
			default: // more than 512 in flight: the sidecar is stuck
				atomic.AddInt64(&rep.unexpectedCount, 1)
			}
		case <-revoke.C:
			p.RevokeAll()
			rep.revocations++
		case <-outageStart:
			outageStart = nil
			p.SetDown(true)
			fmt.Fprintf(logw, "soak: token endpoint down at %s\n", time.Since(start).Round(time.Second))
		case <-outageEnd:
			p.SetDown(false)
			fmt.Fprintf(logw, "soak: token endpoint back at %s\n", time.Since(start).Round(time.Second))
		case <-sampleTick.C:
			takeSample()
			fmt.Fprintf(logw, "soak: %s requests %d ok %d unexpected failures %d tokens issued %d\n", time.Since(start).Round(time.Second),
				atomic.LoadInt64(&rep.requests), atomic.LoadInt64(&rep.ok), atomic.LoadInt64(&rep.unexpectedCount), p.Fetches())
		}
	}
	takeSample() // the last one under load, comparable with the first
	wg.Wait()
	rep.elapsed = time.Since(start)
	rep.fetches = p.Fetches()
	rep.apiCalls, rep.rejected = p.Calls()
	// Idle again: the app's connections closed, the sidecar's upstream
	// connections past their idle timeout. Only leaked goroutines remain.
	client.CloseIdleConnections()
	fmt.Fprintf(logw, "soak: load stopped; waiting %s for idle connections to time out\n", cfg.settle)
	time.Sleep(cfg.settle)
	rep.idleAfter, _ = scrape(admin)
	return rep, nil
}

// post sends one payment and returns the status and, for sidecar-made
// errors, their "error" code.
func post(c *http.Client, url string, body []byte) (int, string, error) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	var e struct {
		Error string `json:"error"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error, err
}

// scrape reads the sidecar's goroutines and memory.
func scrape(admin string) (sample, error) {
	m, err := probe.Metrics(admin)
	return sample{goroutines: m["go_goroutines"], rssBytes: m["process_resident_memory_bytes"]}, err
}
