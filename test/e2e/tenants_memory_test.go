package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// BenchmarkTenantsRSS measures what 10,000 tenants with a token each cost
// the real binary in resident memory: the RSS of a sidecar that served one
// request for each of them, less that of an idle sidecar of one merchant
// that served one request. Run it with
//
//	go test -run '^$' -bench TenantsRSS -benchtime 1x ./test/e2e/
func BenchmarkTenantsRSS(b *testing.B) {
	// An opaque token (OAuth2 providers), and one the size of a JWT
	// (TezPay's).
	for _, size := range []int{40, 600} {
		b.Run(fmt.Sprintf("token=%dB", size), func(b *testing.B) { benchmarkTenantsRSS(b, size) })
	}
}

func benchmarkTenantsRSS(b *testing.B, tokenSize int) {
	const tenants = 10000
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" {
			fmt.Fprint(w, "ok")
			return
		}
		var c struct {
			ClientID string `json:"client_id"`
		}
		json.NewDecoder(r.Body).Decode(&c)
		tok := "tok-" + c.ClientID + "-"
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok + strings.Repeat("x", max(tokenSize-len(tok), 0)), "expires_in": 3600})
	}))
	b.Cleanup(provider.Close)

	root := b.TempDir()
	for i := range tenants {
		dir := filepath.Join(root, fmt.Sprintf("merchant-%d", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		for f, v := range map[string]string{"client_id": filepath.Base(dir), "client_secret": "secret-of-" + filepath.Base(dir)} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	base := map[string]string{
		"UPSTREAM_URL": provider.URL,
		"TOKEN_SOURCE": "json",
		"TOKEN_URL":    provider.URL + "/token",
		"LOG_LEVEL":    "info",
	}
	with := func(extra map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(c.CloseIdleConnections)

	idle := startSidecar(b, with(map[string]string{"CLIENT_ID": "merchant-0", "CLIENT_SECRET": "secret-of-merchant-0"}))
	if r := call(c, http.MethodGet, idle.URL+"/pay", nil); r.status != http.StatusOK {
		b.Fatalf("idle sidecar: %v", r)
	}
	idle.metrics() // as the other is scraped before its measure
	idleRSS := rss(b, idle)

	// The keyed cache's 64 shards each hold their share of its size: 20%
	// above the tenants keeps every tenant's token (the README says so).
	s := startSidecar(b, with(map[string]string{"TENANT_HEADER": "X-Merchant", "TENANTS_DIR": root, "TOKEN_CACHE_SIZE": strconv.Itoa(tenants * 12 / 10)}))
	var wg sync.WaitGroup
	work := make(chan int)
	failed := make(chan string, 1)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("merchant-%d", i)
				if r := call(c, http.MethodGet, s.URL+"/pay", nil, "X-Merchant", name); r.status != http.StatusOK {
					select {
					case failed <- fmt.Sprintf("%s: %v", name, r):
					default:
					}
				}
			}
		})
	}
	for i := range tenants {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case f := <-failed:
		b.Fatalf("request failed: %s", f)
	default:
	}
	if v, _ := metric(s.metrics(), `authsidecar_tenants{route="default",state="with_token"}`); v != tenants {
		b.Fatalf("tenants with a token = %v, want %d", v, tenants)
	}
	tenantsRSS := rss(b, s)
	heap, _ := metric(s.metrics(), "go_memstats_heap_inuse_bytes")
	for b.Loop() {
	}
	b.ReportMetric(float64(idleRSS)/(1<<20), "MiB-idle")
	b.ReportMetric(float64(tenantsRSS-idleRSS)/(1<<20), "MiB-over-idle")
	b.ReportMetric(heap/(1<<20), "MiB-heap-in-use")
}

// rss is the resident set size of the sidecar's process, in bytes, from
// /proc (Linux).
func rss(tb testing.TB, s *sidecar) int64 {
	tb.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		tb.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", s.cmd.Process.Pid)
	return 0
}
