package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// projectedTenants lays out dir as the kubelet leaves one projected volume
// of several Secrets: each tenant's files in a new ..<timestamp> directory,
// ..data swapped to it by a rename, each tenant a symlink through ..data,
// the tenants no longer there and the previous directory removed.
type projectedTenants struct {
	dir   string
	n     int
	shown map[string]bool // the top-level symlinks made
}

func (p *projectedTenants) write(t *testing.T, tenants map[string]string) {
	t.Helper()
	p.n++
	ts := fmt.Sprintf("..2026_12_05_10_00_%02d.%d", p.n, p.n)
	for name, secret := range tenants {
		d := filepath.Join(p.dir, ts, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for f, v := range map[string]string{"client_id": name, "client_secret": secret} {
			if err := os.WriteFile(filepath.Join(d, f), []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := os.Readlink(filepath.Join(p.dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(p.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(p.dir, "..data_tmp"), filepath.Join(p.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range tenants {
		if !p.shown[name] {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(p.dir, name)); err != nil {
				t.Fatal(err)
			}
			p.shown[name] = true
		}
	}
	for name := range p.shown {
		if _, ok := tenants[name]; !ok {
			if err := os.Remove(filepath.Join(p.dir, name)); err != nil {
				t.Fatal(err)
			}
			delete(p.shown, name)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(p.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTenantsKubeletSwap: the tenants directory is one projected volume the
// kubelet updates by its atomic symlink swap. A merchant added is served
// within 5 s, without a restart; removed, it is refused with 403 within
// 5 s; the others are served throughout.
func TestTenantsKubeletSwap(t *testing.T) {
	m := newMerchants(t)
	secrets := map[string]string{"merchant-a": "secret-of-merchant-a-0123456789", "merchant-b": "secret-of-merchant-b-0123456789"}
	m.mu.Lock()
	for n, s := range secrets {
		m.secrets[n] = s
	}
	m.mu.Unlock()
	p := &projectedTenants{dir: t.TempDir(), shown: map[string]bool{}}
	p.write(t, map[string]string{"merchant-a": secrets["merchant-a"]})
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":  m.URL,
		"TOKEN_SOURCE":  "json",
		"TOKEN_URL":     m.URL + "/token",
		"TENANT_HEADER": "X-Merchant",
		"TENANTS_DIR":   p.dir,
	})
	c := newClient(t)
	status := func(merchant string) int {
		return call(c, http.MethodGet, s.URL+"/pay?merchant="+merchant, nil, "X-Merchant", merchant).status
	}
	if got := status("merchant-a"); got != http.StatusOK {
		t.Fatalf("merchant-a = %d, want 200", got)
	}
	if r := call(c, http.MethodGet, s.URL+"/pay", nil, "X-Merchant", "merchant-b"); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "unknown_tenant") {
		t.Fatalf("merchant-b before it is added = %v, want 403 unknown_tenant", r)
	}

	p.write(t, secrets)
	waitUntil(t, 5*time.Second, func() bool { return status("merchant-b") == http.StatusOK }, "merchant-b served within 5 s of the swap that added it")
	if got := status("merchant-a"); got != http.StatusOK {
		t.Errorf("merchant-a after the swap = %d, want 200", got)
	}

	p.write(t, map[string]string{"merchant-a": secrets["merchant-a"]})
	waitUntil(t, 5*time.Second, func() bool { return status("merchant-b") == http.StatusForbidden }, "merchant-b refused with 403 within 5 s of the swap that removed it")
	if got := status("merchant-a"); got != http.StatusOK {
		t.Errorf("merchant-a after merchant-b left = %d, want 200", got)
	}
	if s.cmd.ProcessState != nil {
		t.Errorf("the sidecar exited: %v", s.cmd.ProcessState)
	}
}
