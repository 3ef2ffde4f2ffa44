package deploy

import (
	"bytes"
	"fmt"
	"net"
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
	listen, admin := freeAddr(), freeAddr()
	cmd := exec.Command(binary)
	cmd.Env = []string{
		"AUTHSIDECAR_UPSTREAM_URL=" + provider.URL,
		"AUTHSIDECAR_TOKEN_SOURCE=json",
		"AUTHSIDECAR_TOKEN_URL=" + provider.URL + fake.AuthenticatePath,
		"AUTHSIDECAR_CLIENT_ID=deploy-test",
		"AUTHSIDECAR_CLIENT_SECRET=deploy-test-secret",
		"AUTHSIDECAR_LISTEN_ADDR=" + listen,
		"AUTHSIDECAR_ADMIN_ADDR=" + admin,
		"AUTHSIDECAR_FORCED_REFRESH_INTERVAL=1ms",
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	ready := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get("http://" + admin + "/readyz"); err == nil {
			r.Body.Close()
			ready = r.StatusCode == http.StatusOK
		}
	}
	if !ready {
		return nil, fmt.Errorf("authsidecar not ready in 15s:\n%s", logs.String())
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

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
