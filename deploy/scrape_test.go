package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/authsidecar/authsidecar/test/fake"
)

var (
	scrapeOnce sync.Once
	scraped    map[string]bool
	scrapeErr  error
)

// exported is the set of series names a running authsidecar exports, read
// from its /metrics after it served a payment, replayed a request whose
// token was revoked and refused a bad request, so that every family the
// dashboard and alerts use has a series. Histograms give their _bucket,
// _sum and _count names.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	scrapeOnce.Do(func() { scraped, scrapeErr = scrape() })
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	return scraped
}

func scrape() (map[string]bool, error) {
	p := fake.NewTezPay("deploy-test", "deploy-test-secret", time.Hour)
	provider := httptest.NewServer(p.Handler())
	defer provider.Close()
	cmd := exec.Command(binary)
	cmd.Env = []string{
		"AUTHSIDECAR_UPSTREAM_URL=" + provider.URL,
		"AUTHSIDECAR_TOKEN_SOURCE=json",
		"AUTHSIDECAR_TOKEN_URL=" + provider.URL + fake.AuthenticatePath,
		"AUTHSIDECAR_CLIENT_ID=deploy-test",
		"AUTHSIDECAR_CLIENT_SECRET=deploy-test-secret",
		// Port 0: the addresses come from the start-up log line. (Two
		// spellings, as the two must differ.)
		"AUTHSIDECAR_LISTEN_ADDR=127.0.0.1:0",
		"AUTHSIDECAR_ADMIN_ADDR=localhost:0",
		"AUTHSIDECAR_FORCED_REFRESH_INTERVAL=1ms",
	}
	logs := &startLog{started: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() { cmd.Process.Kill(); <-exited }()

	select {
	case <-logs.started:
	case <-exited:
		return nil, fmt.Errorf("authsidecar exited before it listened:\n%s", logs)
	case <-time.After(15 * time.Second):
		return nil, fmt.Errorf("authsidecar not started in 15s:\n%s", logs)
	}
	listen, admin := logs.listen, logs.admin
	if !ready(admin, 15*time.Second) {
		return nil, fmt.Errorf("authsidecar not ready in 15s:\n%s", logs)
	}
	pay := func() error {
		r, err := http.Post("http://"+listen+"/api/v1/tezpay/process-payment", "application/json",
			strings.NewReader(`{"payment_method":"IMPS_IN","transaction_amount":500,"merchant_reference":"PAY1"}`))
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("payment through the sidecar: %s", r.Status)
		}
		return nil
	}
	if err := pay(); err != nil {
		return nil, err
	}
	p.RevokeAll()
	if err := pay(); err != nil { // replayed with a new token
		return nil, err
	}
	if r, err := http.Get("http://" + listen + "/a/../b"); err == nil { // refused: 400
		r.Body.Close()
	}

	r, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		names[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name+"_sum"], names[name+"_count"] = true, true
		}
	}
	return names, nil
}

// ready polls the admin server at admin until /readyz answers 200, for up
// to d.
func ready(admin string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ; time.Now().Before(deadline); <-tick.C {
		if r, err := http.Get("http://" + admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// startLog keeps a process's output and reads the proxy's and the admin
// server's addresses from its "authsidecar started" log line; started is
// closed once they are known.
type startLog struct {
	mu            sync.Mutex
	buf           bytes.Buffer
	scanned       int // bytes of buf already looked at for the line
	listen, admin string
	started       chan struct{}
}

func (l *startLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for l.listen == "" {
		rest := l.buf.Bytes()[l.scanned:]
		line, _, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			break
		}
		l.scanned += len(line) + 1
		var entry struct{ Msg, Listen, Admin string }
		if json.Unmarshal(line, &entry) == nil && entry.Msg == "authsidecar started" && entry.Listen != "" && entry.Admin != "" {
			l.listen, l.admin = entry.Listen, entry.Admin
			close(l.started)
		}
	}
	return len(p), nil
}

func (l *startLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
