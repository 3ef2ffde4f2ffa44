package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
)

// The tenant header of the tests below, and their two merchants' tenant
// names (the header's values) and merchant ids (their settings'
// MERCHANT_ID).
const tenantHeader = "X-Merchant"

var (
	modeTenants    = []string{"m1", "m2"}
	modeMerchantID = map[string]string{"m1": "merchant_one", "m2": "merchant_two"}
)

// otherTenant is the other one of modeTenants.
func otherTenant(name string) string {
	if name == "m1" {
		return "m2"
	}
	return "m1"
}

// writeTenant writes tenant name's directory under root, its files by name
// and its settings file of KEY=value lines (none if settings is empty). It
// is written beside root and renamed into place, as the kubelet swaps a
// projected volume: a watching sidecar never sees it half written.
func writeTenant(t *testing.T, root, name string, files map[string]string, settings ...string) {
	t.Helper()
	tmp := filepath.Join(root, "."+name+".tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if len(settings) > 0 {
		files = maps.Clone(files)
		if files == nil {
			files = map[string]string{}
		}
		files["settings"] = strings.Join(settings, "\n") + "\n"
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(tmp, f), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(root, name)); err != nil {
		t.Fatal(err)
	}
}

// headerSpy wraps a fake and counts the requests that reached it carrying
// the tenant header: the sidecar must never forward it.
type headerSpy struct {
	mu            sync.Mutex
	total, leaked int
}

func (s *headerSpy) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.total++
		if len(r.Header.Values(tenantHeader)) > 0 {
			s.leaked++
		}
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// check fails the test if a request carried the tenant header, or if none
// arrived at all (the check would prove nothing).
func (s *headerSpy) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total == 0 {
		t.Errorf("the provider got no request: the tenant header check saw nothing")
	}
	if s.leaked != 0 {
		t.Errorf("the provider got %d of %d requests with %s, want none: the tenant header is never forwarded", s.leaked, s.total, tenantHeader)
	}
}

// errorCode is the "error" of the sidecar's JSON error body, "" if r is not
// one.
func errorCode(r result) string {
	var e sidecarError
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error
}

// juspayTenants is two merchants' Juspay accounts behind one server, and
// the tenants directory holding their API keys and merchant ids.
type juspayTenants struct {
	keys    map[string]string       // API keys, by tenant
	juspays map[string]*fake.Juspay // by tenant
	root    string
	srv     *httptest.Server
	spy     *headerSpy
	env     map[string]string // the sidecar's settings for them

	mu sync.Mutex
	// merchantHeaders are the x-merchantid values of the calls to the API
	// that takes a clientAuthToken, by the tenant the call was for.
	merchantHeaders map[string][]string
}

// newJuspayTenants serves m1's and m2's Juspay accounts, each knowing
// customers, until the test ends. The Customers API answers as the account
// x-merchantid names (each fake checks its own API key); the API that takes
// a clientAuthToken answers as the merchant the test's ?merchant= names, so
// that a token of the other merchant's is refused.
func newJuspayTenants(t *testing.T, customers ...string) *juspayTenants {
	t.Helper()
	jt := &juspayTenants{
		keys:            map[string]string{"m1": "juspay-api-key-of-m1-Zq81Lx0", "m2": "juspay-api-key-of-m2-Pw47Ny3"},
		juspays:         map[string]*fake.Juspay{},
		root:            t.TempDir(),
		spy:             &headerSpy{},
		merchantHeaders: map[string][]string{},
	}
	customersAPI := map[string]http.Handler{} // by merchant id
	for _, n := range modeTenants {
		j := fake.NewJuspay(jt.keys[n], modeMerchantID[n], 15*time.Minute)
		for _, c := range customers {
			j.AddCustomer(c)
		}
		jt.juspays[n], customersAPI[modeMerchantID[n]] = j, j.Handler()
		writeTenant(t, jt.root, n, map[string]string{"api_key": jt.keys[n] + "\n"}, "MERCHANT_ID="+modeMerchantID[n])
	}
	trackSecrets(t, func() map[string]string {
		out := map[string]string{}
		for n, j := range jt.juspays {
			out["Juspay API key of "+n] = jt.keys[n]
			out["Juspay API key of "+n+", as HTTP Basic credentials"] = base64.StdEncoding.EncodeToString([]byte(jt.keys[n] + ":"))
			for i, tok := range j.Tokens() {
				out[fmt.Sprintf("clientAuthToken #%d issued by %s's Juspay", i+1, n)] = tok
			}
		}
		return out
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/customers/", func(w http.ResponseWriter, r *http.Request) {
		h, ok := customersAPI[r.Header.Get("x-merchantid")]
		if !ok {
			http.Error(w, `{"status":"error","error_code":"access_denied"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("merchant")
		j, ok := jt.juspays[n]
		if !ok {
			http.Error(w, "test: no ?merchant=", http.StatusBadRequest)
			return
		}
		jt.mu.Lock()
		jt.merchantHeaders[n] = append(jt.merchantHeaders[n], r.Header.Get("x-merchantid"))
		jt.mu.Unlock()
		j.UpstreamHandler().ServeHTTP(w, r)
	})
	jt.srv = httptest.NewServer(jt.spy.wrap(mux))
	t.Cleanup(jt.srv.Close)
	jt.env = map[string]string{
		"PROVIDER":      "juspay",
		"UPSTREAM_URL":  jt.srv.URL,
		"TOKEN_SOURCE":  "juspay-customer",
		"TENANT_HEADER": tenantHeader,
		"TENANTS_DIR":   jt.root,
	}
	return jt
}

// checkMerchantHeaders fails the test unless every call of a tenant reached
// Juspay with its own x-merchantid (the juspay preset's MERCHANT_ID_HEADER,
// with the tenant's MERCHANT_ID), and at least one call did.
func (jt *juspayTenants) checkMerchantHeaders(t *testing.T) {
	t.Helper()
	jt.mu.Lock()
	defer jt.mu.Unlock()
	if len(jt.merchantHeaders) == 0 {
		t.Errorf("no call of a tenant reached Juspay")
	}
	for n, values := range jt.merchantHeaders {
		for _, v := range values {
			if v != modeMerchantID[n] {
				t.Errorf("a call of %s reached Juspay with x-merchantid %q, want its own %q", n, v, modeMerchantID[n])
				break
			}
		}
	}
}

// TestTenantsJuspayCustomers: two merchants, each with its own Juspay API
// key and merchant id, behind one route with tokens per customer. The same
// customer id under each tenant is two customers with two tokens, each
// fetched once from its own merchant's account however many requests
// wait; every body reaches Juspay with its own tenant's token.
func TestTenantsJuspayCustomers(t *testing.T) {
	customers := []string{"cust-1", "cust-2"}
	jt := newJuspayTenants(t, customers...)
	juspays, keys, env, spy := jt.juspays, jt.keys, jt.env, jt.spy
	// A customer only m1's account knows.
	juspays["m1"].AddCustomer("only-m1")
	s := startSidecar(t, env)
	c := newClient(t)

	// 2 tenants × 2 customers × 10 requests at once.
	var wg sync.WaitGroup
	bad := make(chan string, 40)
	for _, n := range modeTenants {
		for _, cust := range customers {
			for range 10 {
				wg.Go(func() {
					if r := call(c, http.MethodPost, s.URL+"/v4/sdk?merchant="+n, initiate(cust), tenantHeader, n); r.status != http.StatusOK {
						bad <- fmt.Sprintf("%s/%s: %v", n, cust, r)
					}
				})
			}
		}
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("request %s, want 200: Juspay accepted the body's token", b)
	}
	for _, n := range modeTenants {
		for _, cust := range customers {
			if got := juspays[n].Fetches(cust); got != 1 {
				t.Errorf("token fetches of %s's %s at its Juspay account = %d, want 1", n, cust, got)
			}
		}
		if seen := juspays[n].Seen(); len(seen) != 20 {
			t.Errorf("%s's Juspay saw %d calls, want 20", n, len(seen))
		}
	}

	// The client auth token endpoint answers each tenant's customer: the
	// token the bodies carried, no new fetch.
	tokenOf := func(tenant, customer string) string {
		t.Helper()
		r := call(c, http.MethodPost, s.URL+"/juspay/client-auth-token", []byte(`{"customerId":"`+customer+`"}`), tenantHeader, tenant)
		var got struct{ ClientAuthToken string }
		if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.ClientAuthToken == "" {
			t.Fatalf("client auth token of %s's %s = %v, want 200 with a clientAuthToken", tenant, customer, r)
		}
		return got.ClientAuthToken
	}
	tokens := map[string]string{} // by tenant/customer
	for _, n := range modeTenants {
		for _, cust := range customers {
			tok := tokenOf(n, cust)
			tokens[n+"/"+cust] = tok
			if !juspays[n].Valid(cust, tok) {
				t.Errorf("the token answered for %s's %s is not one %s's Juspay accepts for %s", n, cust, n, cust)
			}
			if juspays[otherTenant(n)].Valid(cust, tok) {
				t.Errorf("the token answered for %s's %s is valid at %s's Juspay", n, cust, otherTenant(n))
			}
			for _, seen := range juspays[n].Seen() {
				if seen.CustomerID == cust && (!seen.OK || seen.Token != tok) {
					t.Errorf("%s's Juspay got a body for %s with another token than the one fetched for %s/%s (accepted: %v)", n, cust, n, cust, seen.OK)
				}
			}
		}
	}
	if tokens["m1/cust-1"] == tokens["m2/cust-1"] {
		t.Errorf("cust-1 of m1 and of m2 got the same token, want one each: the cache key is tenant/customer")
	}
	for _, n := range modeTenants {
		if got := juspays[n].TotalFetches(); got != 2 {
			t.Errorf("%s's Juspay got %d token fetches after the endpoint's answers, want still 2", n, got)
		}
	}

	// A customer only m1 knows is unknown under m2.
	tokenOf("m1", "only-m1")
	r := call(c, http.MethodPost, s.URL+"/juspay/client-auth-token", []byte(`{"customerId":"only-m1"}`), tenantHeader, "m2")
	if r.status != http.StatusNotFound || errorCode(r) != "unknown_customer" {
		t.Errorf("m2's token of a customer only m1 has = %v, want 404 unknown_customer", r)
	}

	// Without the tenant header: refused, nothing fetched or sent.
	fetches, calls := juspays["m1"].TotalFetches()+juspays["m2"].TotalFetches(), len(juspays["m1"].Seen())+len(juspays["m2"].Seen())
	if r := call(c, http.MethodPost, s.URL+"/juspay/client-auth-token", []byte(`{"customerId":"cust-1"}`)); r.status != http.StatusBadRequest || errorCode(r) != "no_tenant" {
		t.Errorf("client auth token without %s = %v, want 400 no_tenant", tenantHeader, r)
	}
	if r := call(c, http.MethodPost, s.URL+"/v4/sdk?merchant=m1", initiate("cust-1")); r.status != http.StatusBadRequest || errorCode(r) != "no_tenant" {
		t.Errorf("request without %s = %v, want 400 no_tenant", tenantHeader, r)
	}
	if f, n := juspays["m1"].TotalFetches()+juspays["m2"].TotalFetches(), len(juspays["m1"].Seen())+len(juspays["m2"].Seen()); f != fetches || n != calls {
		t.Errorf("requests without a tenant made %d token fetches and %d calls to Juspay, want none", f-fetches, n-calls)
	}
	spy.check(t)
	jt.checkMerchantHeaders(t)

	// Requests without a tenant cannot take the route's credentials with
	// tokens per customer: refused at start, though the route's own
	// credentials are complete.
	routeKey := filepath.Join(t.TempDir(), "api_key")
	if err := os.WriteFile(routeKey, []byte("juspay-api-key-of-the-route-Kd52Rv8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["API_KEY_FILE"], env["MERCHANT_ID"], env["TENANT_DEFAULT"] = routeKey, "stock", "route"
	env["LISTEN_ADDR"], env["ADMIN_ADDR"] = heldAddr(t), heldAddr(t)
	code, stdout, stderr := runToExit(t, env)
	var problems []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "  AUTHSIDECAR_") {
			problems = append(problems, strings.TrimSpace(l))
		}
	}
	if code == 0 || len(problems) != 1 || !strings.HasPrefix(problems[0], "AUTHSIDECAR_TENANT_DEFAULT:") {
		t.Errorf("TENANT_DEFAULT=route with juspay-customer: exit %d, stderr:\n%s\nwant non-zero, one problem, naming AUTHSIDECAR_TENANT_DEFAULT", code, stderr)
	}
	for n, k := range keys {
		if strings.Contains(stdout+stderr, k) {
			t.Errorf("the refusal at start shows %s's API key", n)
		}
	}
	if strings.Contains(stdout+stderr, "juspay-api-key-of-the-route") {
		t.Errorf("the refusal at start shows the route's API key")
	}
}

// signingTenant is one tenant of TestTenantsSignature: its key and the
// settings it is configured with.
type signingTenant struct {
	key        *rsa.PrivateKey
	keyID      string
	merchantID string
}

// pemOf is k in PKCS#8 PEM.
func pemOf(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// trackKey makes every line of k's PEM a secret of the scan.
func trackKey(t *testing.T, what string, k *rsa.PrivateKey) {
	pemText := pemOf(t, k)
	trackSecrets(t, func() map[string]string {
		out := map[string]string{}
		for i, line := range strings.Split(pemText, "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
				out[fmt.Sprintf("line %d of %s", i+1, what)] = line
			}
		}
		return out
	})
}

// signedBy checks a signed outer payload as Juspay would with tenant st's
// public key, and returns what is wrong with it ("" if nothing): the
// signature over the exact signaturePayload string, merchantKeyId, and
// merchant_id and customer_id inside the signed payload.
func signedBy(body []byte, st signingTenant, customer string) string {
	var doc struct {
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "not JSON: " + err.Error()
	}
	spText, _ := doc.Payload["signaturePayload"].(string)
	sigText, _ := doc.Payload["signature"].(string)
	sig, err := base64.StdEncoding.DecodeString(sigText)
	digest := sha256.Sum256([]byte(spText))
	if err != nil || rsa.VerifyPKCS1v15(&st.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		return "the signature does not verify with the public key"
	}
	var sp map[string]string
	if err := json.Unmarshal([]byte(spText), &sp); err != nil {
		return "signaturePayload is not a JSON object of strings"
	}
	if doc.Payload["merchantKeyId"] != st.keyID || sp["merchant_id"] != st.merchantID || sp["customer_id"] != customer {
		return fmt.Sprintf("merchantKeyId %v, signed merchant_id %q and customer_id %q, want %q, %q and %q",
			doc.Payload["merchantKeyId"], sp["merchant_id"], sp["customer_id"], st.keyID, st.merchantID, customer)
	}
	return ""
}

// TestTenantsSignature: two merchants, each signing with its own RSA key,
// key id and merchant id, behind one route: Juspay verifies every request
// with its tenant's public key (and never with the other's), and the
// signing endpoint signs with the named tenant's key. A tenant without its
// key stops the sidecar at start; one added later without it is refused
// while the others keep working.
func TestTenantsSignature(t *testing.T) {
	st := map[string]signingTenant{}
	root := t.TempDir()
	for _, n := range modeTenants {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		st[n] = signingTenant{key: k, keyID: "key-of-" + n, merchantID: modeMerchantID[n]}
		writeTenant(t, root, n, map[string]string{"signing_key.pem": pemOf(t, k)},
			"MERCHANT_ID="+modeMerchantID[n], "SIGNING_KEY_ID=key-of-"+n)
	}
	for n, s := range st {
		trackKey(t, n+"'s signing key", s.key)
	}

	// Juspay: a request for /{tenant}/… is accepted if it verifies with
	// that tenant's public key, refused 401 if not.
	type seen struct {
		tenant, customer string
		body             []byte
	}
	var mu sync.Mutex
	var got []seen
	spy := &headerSpy{}
	up := httptest.NewServer(spy.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		customer := r.URL.Query().Get("customer")
		mu.Lock()
		got = append(got, seen{tenant, customer, body})
		mu.Unlock()
		if s, ok := st[tenant]; !ok || signedBy(body, s, customer) != "" {
			http.Error(w, `{"status":"error","error_code":"access_denied"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})))
	t.Cleanup(up.Close)
	env := map[string]string{
		"PROVIDER":      "juspay",
		"UPSTREAM_URL":  up.URL,
		"INJECT":        "signature",
		"SIGN_PATH":     "/v1/sign",
		"TENANT_HEADER": tenantHeader,
		"TENANTS_DIR":   root,
	}
	s := startSidecar(t, env)
	c := newClient(t)

	var wg sync.WaitGroup
	bad := make(chan string, 40)
	for _, n := range modeTenants {
		for i := range 20 {
			wg.Go(func() {
				cust := fmt.Sprintf("cust-%d", i%4)
				body := []byte(`{"payload":{"action":"initiate","customerId":"` + cust + `"}}`)
				if r := call(c, http.MethodPost, s.URL+"/"+n+"/v1/initiate?customer="+cust, body, tenantHeader, n); r.status != http.StatusOK {
					bad <- fmt.Sprintf("%s/%s: %v", n, cust, r)
				}
			})
		}
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("signed request %s, want 200: Juspay verified it with its tenant's key", b)
	}
	mu.Lock()
	if len(got) != 40 {
		t.Errorf("Juspay got %d requests, want 40", len(got))
	}
	for _, g := range got {
		if why := signedBy(g.body, st[g.tenant], g.customer); why != "" {
			t.Errorf("a request of %s: %s", g.tenant, why)
		}
		if signedBy(g.body, st[otherTenant(g.tenant)], g.customer) == "" {
			t.Errorf("a request of %s verifies as %s's", g.tenant, otherTenant(g.tenant))
		}
		if strings.Contains(string(g.body), st[otherTenant(g.tenant)].keyID) || strings.Contains(string(g.body), st[otherTenant(g.tenant)].merchantID) {
			t.Errorf("a request of %s names %s's key id or merchant id: %s", g.tenant, otherTenant(g.tenant), g.body)
		}
	}
	mu.Unlock()

	// The signing endpoint signs with the tenant's key.
	for _, n := range modeTenants {
		r := call(c, http.MethodPost, s.URL+"/v1/sign", []byte(`{"payload":{"action":"updateAuth","customer_id":"c-42"}}`), tenantHeader, n)
		if r.status != http.StatusOK {
			t.Fatalf("POST /v1/sign for %s = %v, want 200", n, r)
		}
		if why := signedBy(r.body, st[n], "c-42"); why != "" {
			t.Errorf("/v1/sign for %s: %s", n, why)
		}
		if signedBy(r.body, st[otherTenant(n)], "c-42") == "" {
			t.Errorf("/v1/sign for %s verifies as %s's", n, otherTenant(n))
		}
	}
	if r := call(c, http.MethodPost, s.URL+"/v1/sign", []byte(`{"payload":{"customer_id":"c-42"}}`)); r.status != http.StatusBadRequest || errorCode(r) != "no_tenant" {
		t.Errorf("POST /v1/sign without %s = %v, want 400 no_tenant", tenantHeader, r)
	}

	// m3 appears without its signing key: its requests are refused and
	// nothing is sent; m1 and m2 are served as before.
	writeTenant(t, root, "m3", nil, "MERCHANT_ID=merchant_three", "SIGNING_KEY_ID=key-of-m3")
	var r3 result
	waitUntil(t, 15*time.Second, func() bool {
		r3 = call(c, http.MethodPost, s.URL+"/m3/v1/initiate?customer=cust-0", []byte(`{"payload":{"customerId":"cust-0"}}`), tenantHeader, "m3")
		return errorCode(r3) != "unknown_tenant"
	}, "m3 known to the sidecar after its directory appeared")
	mu.Lock()
	before := len(got)
	mu.Unlock()
	if r3.status != http.StatusInternalServerError || errorCode(r3) != "incomplete_tenant" || !strings.Contains(string(r3.body), "m3") {
		t.Errorf("request of m3, which has no signing_key.pem = %v, want 500 incomplete_tenant naming m3", r3)
	}
	if r := call(c, http.MethodPost, s.URL+"/v1/sign", []byte(`{"payload":{"customer_id":"c-42"}}`), tenantHeader, "m3"); r.status != http.StatusInternalServerError || errorCode(r) != "incomplete_tenant" {
		t.Errorf("POST /v1/sign for m3, which has no signing_key.pem = %v, want 500 incomplete_tenant", r)
	}
	for _, n := range modeTenants {
		if r := call(c, http.MethodPost, s.URL+"/"+n+"/v1/initiate?customer=cust-0", []byte(`{"payload":{"customerId":"cust-0"}}`), tenantHeader, n); r.status != http.StatusOK {
			t.Errorf("request of %s after m3 appeared = %v, want 200", n, r)
		}
	}
	mu.Lock()
	if n := len(got) - before; n != 2 {
		t.Errorf("Juspay got %d requests after m3 appeared, want m1's and m2's 2", n)
	}
	for _, g := range got {
		if g.tenant == "m3" {
			t.Errorf("Juspay got a request of m3: %s", g.body)
		}
	}
	mu.Unlock()
	spy.check(t)

	// A directory holding m3 stops the sidecar before it listens, naming
	// the tenant and the file; -check likewise.
	env["LISTEN_ADDR"], env["ADMIN_ADDR"] = heldAddr(t), heldAddr(t)
	for _, args := range [][]string{{"-check"}, nil} {
		code, stdout, stderr := runToExit(t, env, args...)
		if code == 0 || !strings.Contains(stderr, "AUTHSIDECAR_TENANTS_DIR") || !strings.Contains(stderr, "tenant m3") || !strings.Contains(stderr, "signing_key.pem") {
			t.Errorf("authsidecar %v with m3 lacking its key: exit %d, stderr:\n%s\nwant non-zero, naming AUTHSIDECAR_TENANTS_DIR, tenant m3 and signing_key.pem", args, code, stderr)
		}
		for n, s := range st {
			if body := strings.Split(pemOf(t, s.key), "\n")[1]; strings.Contains(stdout+stderr, body) {
				t.Errorf("authsidecar %v shows %s's key", args, n)
			}
		}
		if strings.Contains(stdout, "configuration OK") {
			t.Errorf("authsidecar %v says the configuration is OK", args)
		}
	}
}

// paygateTenant is one merchant of TestTenantsPaygate: its fake Paygate
// account and passwords.
type paygateTenant struct {
	p          *fake.Paygate
	cipher     paygate.Cipher
	key, hmac  string
	merchantID string
}

// TestTenantsPaygate: two Axepta merchants, each with its own Paygate
// passwords, behind one route. Paygate opens each call with its merchant's
// password and the app reads the plain answer; the codec and the SDK
// authentication endpoint work for the tenant named, with its passwords
// only.
func TestTenantsPaygate(t *testing.T) {
	pt := map[string]*paygateTenant{}
	byMerchantID := map[string]http.Handler{}
	root := t.TempDir()
	for i, n := range modeTenants {
		key := fmt.Sprintf("bf-password-of-%s-%d1x", n, i)
		hmacKey := fmt.Sprintf("hmac-password-of-%s-%d7q", n, i)
		ci, err := paygate.NewBlowfish([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		p := fake.NewPaygate(modeMerchantID[n], ci, []byte(hmacKey))
		trackPaygate(t, p)
		pt[n] = &paygateTenant{p: p, cipher: ci, key: key, hmac: hmacKey, merchantID: modeMerchantID[n]}
		byMerchantID[modeMerchantID[n]] = p.Handler()
		writeTenant(t, root, n, map[string]string{"paygate_key": key + "\n", "paygate_hmac_key": hmacKey + "\n"}, "MERCHANT_ID="+modeMerchantID[n])
	}
	trackSecrets(t, func() map[string]string {
		out := map[string]string{}
		for n, m := range pt {
			out["Paygate password of "+n] = m.key
			out["Paygate HMAC password of "+n] = m.hmac
		}
		return out
	})
	// One Paygate for both merchants, each call answered by the account its
	// plain MerchantID (in the query or the form) names.
	spy := &headerSpy{}
	srv := httptest.NewServer(spy.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mid := form.Get("MerchantID")
		if mid == "" {
			mid = r.URL.Query().Get("MerchantID")
		}
		h, ok := byMerchantID[mid]
		if !ok {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			io.WriteString(w, "Status=FAILED&Code="+fake.PaygateCodeUnknownMerchant+"&Description=Unknown+MerchantID")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":   srv.URL,
		"TOKEN_SOURCE":   "none",
		"INJECT":         "paygate",
		"PAYGATE_CIPHER": "blowfish",
		"PAYGATE_PATH":   "/paygate",
		"SDK_AUTH_PATH":  "/axepta/sdk-auth",
		"SDK_AUTH_URL":   srv.URL + fake.PaygateAuthTokenPath,
		"TENANT_HEADER":  tenantHeader,
		"TENANTS_DIR":    root,
	})
	c := newClient(t)

	// 10 captures per merchant at once, and a credit each.
	var wg sync.WaitGroup
	bad := make(chan string, 20)
	for _, n := range modeTenants {
		for i := range 10 {
			wg.Go(func() {
				trans := fmt.Sprintf("%s-order-%d", n, i)
				r := call(c, http.MethodPost, s.URL+fake.PaygateCapturePath, []byte("PayID=0123456789ABCDEF0123456789ABCDEF&TransID="+trans+"&Amount=1000&Currency=EUR"),
					"Content-Type", "application/x-www-form-urlencoded", tenantHeader, n)
				v, err := url.ParseQuery(string(r.body))
				if r.status != http.StatusOK || err != nil || v.Get("Status") != "OK" || v.Get("Code") != fake.PaygateCodeOK || v.Get("TransID") != trans || v.Has("Data") {
					bad <- fmt.Sprintf("capture %s of %s: %v", trans, n, r)
				}
			})
		}
	}
	wg.Wait()
	close(bad)
	for b := range bad {
		t.Errorf("%s, want 200 Status=OK in plain", b)
	}
	for _, n := range modeTenants {
		credit := call(c, http.MethodGet, s.URL+fake.PaygateCreditPath+"?PayID=0123456789ABCDEF0123456789ABCDEF&TransID=refund-"+n+"&Amount=250&Currency=EUR", nil, tenantHeader, n)
		if got := formOf(t, credit); credit.status != http.StatusOK || got.Get("Status") != "OK" || got.Get("TransID") != "refund-"+n {
			t.Errorf("credit of %s = %v, want 200 Status=OK TransID=refund-%s", n, credit, n)
		}
		if got := pt[n].p.Calls(); got != 11 {
			t.Errorf("%s's Paygate got %d calls, want its own 11", n, got)
		}
	}

	// The codec: /paygate/encrypt seals for the tenant named, with its
	// passwords only; its Paygate accepts the result, and /paygate/decrypt
	// opens the answer for that tenant only.
	for _, n := range modeTenants {
		other := pt[otherTenant(n)]
		enc := call(c, http.MethodPost, s.URL+"/paygate/encrypt", []byte("PayID=0123456789ABCDEF0123456789ABCDEF&TransID=page-"+n+"&Amount=990&Currency=EUR"),
			"Content-Type", "application/x-www-form-urlencoded", tenantHeader, n)
		sealed := formOf(t, enc)
		if enc.status != http.StatusOK || sealed.Get("MerchantID") != pt[n].merchantID {
			t.Fatalf("encrypt for %s = %v, want 200 MerchantID=%s", n, enc, pt[n].merchantID)
		}
		params, err := paygate.Open(pt[n].cipher, sealed.Get("Len"), sealed.Get("Data"))
		if trans, _ := params.Get("TransID"); err != nil || trans != "page-"+n {
			t.Errorf("the Data encrypted for %s, opened with its password: TransID %q, %v; want page-%s", n, trans, err, n)
		}
		if params, err := paygate.Open(other.cipher, sealed.Get("Len"), sealed.Get("Data")); err == nil {
			if trans, _ := params.Get("TransID"); trans == "page-"+n {
				t.Errorf("the Data encrypted for %s opens with %s's password", n, otherTenant(n))
			}
		}
		answer := call(c, http.MethodPost, srv.URL+fake.PaygateCapturePath, enc.body, "Content-Type", "application/x-www-form-urlencoded")
		if answer.status != http.StatusOK || formOf(t, answer).Get("mid") != pt[n].merchantID {
			t.Fatalf("%s's Paygate's answer to the sealed call = %v", n, answer)
		}
		dec := call(c, http.MethodPost, s.URL+"/paygate/decrypt", answer.body, "Content-Type", "application/x-www-form-urlencoded", tenantHeader, n)
		if got := formOf(t, dec); dec.status != http.StatusOK || got.Get("Status") != "OK" || got.Get("TransID") != "page-"+n {
			t.Errorf("decrypt of %s's answer for %s = %v, want 200 Status=OK TransID=page-%s", n, n, dec, n)
		}
		wrong := call(c, http.MethodPost, s.URL+"/paygate/decrypt", answer.body, "Content-Type", "application/x-www-form-urlencoded", tenantHeader, otherTenant(n))
		if wrong.status != http.StatusBadRequest || strings.Contains(string(wrong.body), "page-"+n) {
			t.Errorf("decrypt of %s's answer for %s = %v, want 400 and nothing of the answer", n, otherTenant(n), wrong)
		}
	}

	// SDK authentication registers at the tenant's merchant's account; a
	// request naming the other merchant is refused.
	for _, n := range modeTenants {
		other := pt[otherTenant(n)]
		before := other.p.Registrations()
		r := call(c, http.MethodPost, s.URL+"/axepta/sdk-auth", []byte(`{"merchantID":"`+pt[n].merchantID+`"}`), tenantHeader, n)
		var a sdkAnswer
		if r.status != http.StatusOK || json.Unmarshal(r.body, &a) != nil || a.Status != "OK" {
			t.Fatalf("SDK authentication for %s = %v, want 200 Status OK", n, r)
		}
		if label, _, ok := pt[n].p.Registered(a.AuthToken); !ok || label != a.AuthLabel {
			t.Errorf("SDK authentication for %s: the AuthToken is not registered at %s's Paygate with its label", n, n)
		}
		if _, _, ok := other.p.Registered(a.AuthToken); ok || other.p.Registrations() != before {
			t.Errorf("SDK authentication for %s registered at %s's Paygate", n, otherTenant(n))
		}
		mine := pt[n].p.Registrations()
		wrong := call(c, http.MethodPost, s.URL+"/axepta/sdk-auth", []byte(`{"merchantID":"`+other.merchantID+`"}`), tenantHeader, n)
		if wrong.status != http.StatusBadRequest {
			t.Errorf("SDK authentication for %s naming %s's merchant id = %v, want 400", n, otherTenant(n), wrong)
		}
		if pt[n].p.Registrations() != mine || other.p.Registrations() != before {
			t.Errorf("a refused SDK authentication registered an AuthToken")
		}
	}
	calls := pt["m1"].p.Calls() + pt["m2"].p.Calls()
	for _, path := range []string{"/axepta/sdk-auth", "/paygate/encrypt", fake.PaygateCapturePath} {
		if r := call(c, http.MethodPost, s.URL+path, []byte("TransID=x"), "Content-Type", "application/x-www-form-urlencoded"); r.status != http.StatusBadRequest || errorCode(r) != "no_tenant" {
			t.Errorf("POST %s without %s = %v, want 400 no_tenant", path, tenantHeader, r)
		}
	}
	if n := pt["m1"].p.Calls() + pt["m2"].p.Calls() - calls; n != 0 {
		t.Errorf("requests without a tenant made %d calls to Paygate, want 0", n)
	}
	spy.check(t)
}

// The tests below found bugs of 2b95085, since fixed.

// TestTenantsJuspayRouteMerchantID: a route MERCHANT_ID beside the tenants
// is never a tenant's: each tenant's call reaches Juspay with its own
// x-merchantid (the preset's MERCHANT_ID_HEADER). The route's went out on
// every tenant's call, as a SET_HEADERS the preset made of it.
func TestTenantsJuspayRouteMerchantID(t *testing.T) {
	jt := newJuspayTenants(t, "cust-1")
	jt.env["MERCHANT_ID"] = "stock"
	s := startSidecar(t, jt.env)
	c := newClient(t)
	for _, n := range modeTenants {
		if r := call(c, http.MethodPost, s.URL+"/v4/sdk?merchant="+n, initiate("cust-1"), tenantHeader, n); r.status != http.StatusOK {
			t.Errorf("request of %s = %v, want 200", n, r)
		}
	}
	jt.checkMerchantHeaders(t)
	jt.spy.check(t)
}

// TestTenantsSignatureIncompleteAtRuntime: a tenant that appears without
// its signing_key.pem (INJECT=signature) is refused 500 incomplete_tenant
// naming the tenant's missing file, as the check at start does, and logged
// once however many of its requests are refused. The answer named the
// route's AUTHSIDECAR_SIGNING_KEY_FILE, and nothing was logged.
func TestTenantsSignatureIncompleteAtRuntime(t *testing.T) {
	root := t.TempDir()
	trackKey(t, "m1's signing key", e2eSigningKey())
	writeTenant(t, root, "m1", map[string]string{"signing_key.pem": pemOf(t, e2eSigningKey())}, "MERCHANT_ID=merchant_one", "SIGNING_KEY_ID=key-of-m1")
	up := newRecordingUpstream(t, nil)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":  up.URL,
		"TOKEN_SOURCE":  "none",
		"INJECT":        "signature",
		"TENANT_HEADER": tenantHeader,
		"TENANTS_DIR":   root,
	})
	c := newClient(t)
	writeTenant(t, root, "m3", nil, "MERCHANT_ID=merchant_three", "SIGNING_KEY_ID=key-of-m3")
	var r result
	waitUntil(t, 15*time.Second, func() bool {
		r = call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(`{"payload":{"customerId":"cust-0"}}`), tenantHeader, "m3")
		return errorCode(r) != "unknown_tenant"
	}, "m3 known to the sidecar after its directory appeared")
	if r.status != http.StatusInternalServerError || errorCode(r) != "incomplete_tenant" {
		t.Fatalf("request of m3, which has no signing_key.pem = %v, want 500 incomplete_tenant", r)
	}
	if !strings.Contains(string(r.body), "signing_key.pem") || strings.Contains(string(r.body), "AUTHSIDECAR_SIGNING_KEY_FILE") {
		t.Errorf("request of m3, which has no signing_key.pem = %v, want the answer to name the tenant's missing file signing_key.pem, not the route's AUTHSIDECAR_SIGNING_KEY_FILE", r)
	}
	for range 3 {
		if r := call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(`{"payload":{"customerId":"cust-0"}}`), tenantHeader, "m3"); errorCode(r) != "incomplete_tenant" {
			t.Errorf("request of m3 again = %v, want 500 incomplete_tenant", r)
		}
	}
	// The refusal is logged when the tenant is built, before it is
	// answered. A line logged after the requests, once read, says every
	// line before it was read too.
	writeTenant(t, root, "m4", map[string]string{"signing_key.pem": pemOf(t, e2eSigningKey())}, "MERCHANT_ID=merchant_four", "SIGNING_KEY_ID=key-of-m4")
	waitUntil(t, 15*time.Second, func() bool { return strings.Contains(s.output(), `"m4"`) }, "m4's arrival logged")
	logged := 0
	for _, l := range strings.Split(s.output(), "\n") {
		if strings.Contains(l, "m3") && strings.Contains(l, "signing_key.pem") {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("%d log lines name m3 and its missing signing_key.pem after 4 refused requests, want 1:\n%s", logged, s.output())
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests of m3, want 0", n)
	}
}
