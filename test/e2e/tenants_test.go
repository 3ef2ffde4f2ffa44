package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// merchants is a token endpoint for many clients: POST
// {"client_id","client_secret"} with a known pair answers a token of that
// client; a revoked client is refused. It also stands for the API, which
// records each request's Authorization.
type merchants struct {
	*httptest.Server
	mu      sync.Mutex
	secrets map[string]string // client id → secret
	revoked map[string]bool
	fetches map[string]int
	tokens  map[string]string // token → client id
	seen    []string          // Authorization of each API request
}

func newMerchants(t *testing.T) *merchants {
	m := &merchants{secrets: map[string]string{}, revoked: map[string]bool{}, fetches: map[string]int{}, tokens: map[string]string{}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	trackSecrets(t, func() map[string]string {
		m.mu.Lock()
		defer m.mu.Unlock()
		out := map[string]string{}
		for id, s := range m.secrets {
			out["client secret of merchant "+id] = s
		}
		for tok := range m.tokens {
			out["token "+tok] = tok
		}
		return out
	})
	return m
}

func (m *merchants) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.URL.Path == "/token" {
		var c struct{ ClientID, ClientSecret string }
		json.NewDecoder(r.Body).Decode(&struct {
			ClientID     *string `json:"client_id"`
			ClientSecret *string `json:"client_secret"`
		}{&c.ClientID, &c.ClientSecret})
		if s, ok := m.secrets[c.ClientID]; !ok || s != c.ClientSecret || m.revoked[c.ClientID] {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		m.fetches[c.ClientID]++
		tok := fmt.Sprintf("tok-%s-%d-0123456789", c.ClientID, m.fetches[c.ClientID])
		m.tokens[tok] = c.ClientID
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3600})
		return
	}
	auth := r.Header.Get("Authorization")
	m.seen = append(m.seen, auth+" for "+r.URL.Query().Get("merchant"))
	client, ok := m.tokens[strings.TrimPrefix(auth, "Bearer ")]
	if !ok || m.revoked[client] {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	fmt.Fprint(w, "ok "+client)
}

// tenantDir writes a tenant's directory: its client id and secret.
func tenantDir(t *testing.T, root, name, secret string) {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"client_id": name, "client_secret": secret} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTenants: 3 merchants behind one route, 30 concurrent requests each:
// 3 token fetches, and every request reaches the API with its own merchant's
// token; one merchant revoked keeps the others working; a merchant added to
// the directory is served without a restart; bad, unknown and missing
// tenants are refused before anything is sent.
func TestTenants(t *testing.T) {
	m := newMerchants(t)
	root := t.TempDir()
	names := []string{"merchant-a", "merchant-b", "merchant-c"}
	for _, n := range names {
		m.secrets[n] = "secret-of-" + n + "-0123456789"
		tenantDir(t, root, n, m.secrets[n])
	}
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":  m.URL,
		"TOKEN_SOURCE":  "json",
		"TOKEN_URL":     m.URL + "/token",
		"TENANT_HEADER": "X-Merchant",
		"TENANTS_DIR":   root,
	})
	c := newClient(t)
	var wg sync.WaitGroup
	results := make(chan string, 90)
	for _, n := range names {
		for range 30 {
			wg.Go(func() {
				r := call(c, http.MethodGet, s.URL+"/pay?merchant="+n, nil, "X-Merchant", n)
				if r.status != http.StatusOK || string(r.body) != "ok "+n {
					results <- fmt.Sprintf("%s: %v", n, r)
				}
			})
		}
	}
	wg.Wait()
	close(results)
	for bad := range results {
		t.Errorf("request = %s, want 200 answered for its own merchant", bad)
	}
	m.mu.Lock()
	for _, n := range names {
		if m.fetches[n] != 1 {
			t.Errorf("token fetches of %s = %d, want 1", n, m.fetches[n])
		}
	}
	m.mu.Unlock()

	// 3,000 more, 30 at a time, the merchants interleaved: none carries
	// another merchant's token, and no token is fetched again.
	work := make(chan string)
	var workers sync.WaitGroup
	failures := make(chan string, 3000)
	for range 30 {
		workers.Go(func() {
			for n := range work {
				if r := call(c, http.MethodGet, s.URL+"/pay?merchant="+n, nil, "X-Merchant", n); r.status != http.StatusOK || string(r.body) != "ok "+n {
					failures <- fmt.Sprintf("%s: %v", n, r)
				}
			}
		})
	}
	for i := range 3000 {
		work <- names[i%len(names)]
	}
	close(work)
	workers.Wait()
	close(failures)
	for bad := range failures {
		t.Errorf("request = %s, want 200 answered for its own merchant", bad)
	}
	m.mu.Lock()
	if len(m.seen) != 3090 {
		t.Errorf("the API got %d requests, want 3,090", len(m.seen))
	}
	for _, line := range m.seen {
		auth, forMerchant, _ := strings.Cut(line, " for ")
		if !strings.Contains(auth, "tok-"+forMerchant+"-") {
			t.Errorf("the API got %q for merchant %s: another merchant's credential", auth, forMerchant)
		}
	}
	for _, n := range names {
		if m.fetches[n] != 1 {
			t.Errorf("token fetches of %s after 3,090 requests = %d, want 1", n, m.fetches[n])
		}
	}
	m.revoked["merchant-b"] = true
	m.mu.Unlock()

	if r := call(c, http.MethodGet, s.URL+"/pay?merchant=merchant-b", nil, "X-Merchant", "merchant-b"); r.status == http.StatusOK {
		t.Errorf("revoked merchant-b = %v, want the provider's refusal", r)
	}
	// Its token dropped and no new one to be had: 503 naming the tenant.
	if r := call(c, http.MethodGet, s.URL+"/pay?merchant=merchant-b", nil, "X-Merchant", "merchant-b"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "token_unavailable") || !strings.Contains(string(r.body), "merchant-b") {
		t.Errorf("revoked merchant-b again = %v, want 503 token_unavailable naming merchant-b", r)
	}
	for _, n := range []string{"merchant-a", "merchant-c"} {
		if r := call(c, http.MethodGet, s.URL+"/pay?merchant="+n, nil, "X-Merchant", n); r.status != http.StatusOK {
			t.Errorf("%s after merchant-b's revocation = %v, want 200", n, r)
		}
	}

	// A merchant added without a restart.
	m.mu.Lock()
	m.secrets["merchant-d"] = "secret-of-merchant-d-0123456789"
	m.mu.Unlock()
	tmp := filepath.Join(root, ".tmp-d")
	tenantDir(t, root, ".tmp-d", "secret-of-merchant-d-0123456789")
	if err := os.WriteFile(filepath.Join(tmp, "client_id"), []byte("merchant-d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "merchant-d")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() bool {
		return call(c, http.MethodGet, s.URL+"/pay?merchant=merchant-d", nil, "X-Merchant", "merchant-d").status == http.StatusOK
	}, "merchant-d served after its directory appeared")

	exposition := s.metrics()
	if v, _ := metric(exposition, `authsidecar_tenants{route="default",state="known"}`); v != 4 {
		t.Errorf(`authsidecar_tenants{state="known"} = %v, want 4`, v)
	}
	if v, _ := metric(exposition, `authsidecar_tenants{route="default",state="with_token"}`); v < 3 {
		t.Errorf(`authsidecar_tenants{state="with_token"} = %v, want at least 3`, v)
	}
	// a, b, c, then d: four tenants' fetches, counted apart from the
	// route's single token; the revoked merchant's refusals as errors.
	if v, _ := metric(exposition, `authsidecar_tenant_token_fetches_total{result="success",route="default"}`); v != 4 {
		t.Errorf(`authsidecar_tenant_token_fetches_total{result="success"} = %v, want 4`, v)
	}
	if v, _ := metric(exposition, `authsidecar_tenant_token_fetches_total{result="error",route="default"}`); v < 1 {
		t.Errorf(`authsidecar_tenant_token_fetches_total{result="error"} = %v, want at least 1 (the revoked merchant)`, v)
	}
	if v, _ := metric(exposition, `authsidecar_token_fetches_total{result="success",route="default"}`); v != 0 {
		t.Errorf(`authsidecar_token_fetches_total{result="success"} = %v, want 0: the route has no token of its own`, v)
	}
	if strings.Contains(exposition, "merchant-") {
		t.Errorf("/metrics names a tenant: per-request series must not carry one")
	}
	m.mu.Lock()
	before := len(m.seen)
	m.mu.Unlock()
	for _, tc := range []struct {
		name, header string
		status       int
		code         string
	}{
		{"unknown", "merchant-z", http.StatusForbidden, "unknown_tenant"},
		{"path", "../merchant-a", http.StatusBadRequest, "bad_tenant"},
		{"escaped", "%2e%2e", http.StatusBadRequest, "bad_tenant"},
		{"long", strings.Repeat("m", 10<<10), http.StatusBadRequest, "bad_tenant"},
		{"missing", "", http.StatusBadRequest, "no_tenant"},
	} {
		var r result
		if tc.header == "" {
			r = call(c, http.MethodGet, s.URL+"/pay", nil)
		} else {
			r = call(c, http.MethodGet, s.URL+"/pay", nil, "X-Merchant", tc.header)
		}
		if r.status != tc.status || !strings.Contains(string(r.body), `"`+tc.code+`"`) {
			t.Errorf("%s tenant = %v, want %d %s", tc.name, r, tc.status, tc.code)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.seen) - before; n != 0 {
		t.Errorf("the API got %d requests for refused tenants, want 0", n)
	}
}

// TestTenantsBasic: merchants whose credential is an API key sent with HTTP
// Basic (Juspay's server API): each request carries its own merchant's key,
// and the tenant header never reaches the provider.
func TestTenantsBasic(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization")+" for "+r.URL.Query().Get("merchant")+" header "+r.Header.Get("X-Merchant"))
		mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(up.Close)
	root := t.TempDir()
	keys := map[string]string{"shop-1": "api-key-of-shop-1-0123456789", "shop-2": "api-key-of-shop-2-0123456789"}
	trackSecrets(t, func() map[string]string {
		out := map[string]string{}
		for n, k := range keys {
			out["API key of "+n] = k
		}
		return out
	})
	for n, k := range keys {
		if err := os.MkdirAll(filepath.Join(root, n), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, n, "api_key"), []byte(k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":  up.URL,
		"TOKEN_SOURCE":  "none",
		"INJECT":        "basic",
		"TENANT_HEADER": "X-Merchant",
		"TENANTS_DIR":   root,
	})
	c := newClient(t)
	var wg sync.WaitGroup
	for n := range keys {
		for range 20 {
			wg.Go(func() {
				if r := call(c, http.MethodGet, s.URL+"/orders?merchant="+n, nil, "X-Merchant", n, "Authorization", "Basic bm90LW1pbmU6"); r.status != http.StatusOK {
					t.Errorf("%s: %v, want 200", n, r)
				}
			})
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 40 {
		t.Fatalf("the provider got %d requests, want 40", len(seen))
	}
	for _, line := range seen {
		auth, rest, _ := strings.Cut(line, " for ")
		merchant, header, _ := strings.Cut(rest, " header ")
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(keys[merchant]+":"))
		if auth != want || header != "" {
			t.Errorf("the provider got Authorization %q and X-Merchant %q for %s, want %q and no tenant header", auth, header, merchant, want)
		}
	}
}
