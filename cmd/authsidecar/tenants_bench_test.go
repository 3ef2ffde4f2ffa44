package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/tenants"
)

// BenchmarkTenantsMemory measures what 10,000 tenants with a token each
// hold in memory: the directory's index, each tenant's built source and its
// token in the keyed cache. Run it once:
//
//	go test -run '^$' -bench TenantsMemory -benchtime 1x ./cmd/authsidecar/
func BenchmarkTenantsMemory(b *testing.B) {
	const n = 10_000
	root := b.TempDir()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("merchant-%05d", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		for f, v := range map[string]string{"client_id": fmt.Sprintf("client-%05d", i), "client_secret": fmt.Sprintf("secret-%05d-0123456789", i)} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			ClientID string `json:"client_id"`
		}
		json.NewDecoder(r.Body).Decode(&c)
		json.NewEncoder(w).Encode(map[string]any{"access_token": "eyJ.token-of-" + c.ClientID + ".0123456789abcdef0123456789abcdef", "expires_in": 3600})
	}))
	defer provider.Close()
	cfg, err := loadConfig(minimal("json", map[string]string{"TOKEN_URL": provider.URL, "TENANT_HEADER": "X-Merchant", "TENANTS_DIR": root, "CLIENT_ID": unset, "CLIENT_SECRET": unset}))
	if err != nil {
		b.Fatal(err)
	}
	kind, _ := lookupSource(cfg.TokenSource)
	log := slog.New(slog.DiscardHandler)
	for b.Loop() {
		before := heapInUse()
		d, err := tenants.Open(tenants.Config{Dir: root, Optional: tenantFileNames(), Settings: tenantSettings})
		if err != nil {
			b.Fatal(err)
		}
		src := &tenantSources{dir: d, kind: kind, cfg: cfg, client: provider.Client(), log: log}
		cache := tokens.NewKeyedCache(src, tokens.KeyedCacheOptions{Size: n})
		for i := range n {
			if _, err := cache.Token(context.Background(), fmt.Sprintf("merchant-%05d", i)); err != nil {
				b.Fatal(err)
			}
		}
		provider.Client().CloseIdleConnections()
		after := heapInUse()
		b.ReportMetric(float64(after-before)/(1<<20), "MiB")
		b.ReportMetric(float64(after-before)/n, "B/tenant")
		runtime.KeepAlive(cache)
		runtime.KeepAlive(d)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // the first cycle's finalizers and sweeps done
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
