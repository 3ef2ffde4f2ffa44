package proxy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/tokens"
)

// testTenants are tenants by name; a name it does not hold is unknown, and
// "broken" fails with an error that is not a *proxy.TenantError.
type testTenants map[string]*proxy.Tenant

func (tt testTenants) Tenant(name string) (*proxy.Tenant, error) {
	switch t, ok := tt[name]; {
	case ok:
		return t, nil
	case name == "broken":
		return nil, errors.New("the tenant's files could not be read")
	}
	return nil, &proxy.TenantError{Status: http.StatusForbidden, Code: "unknown_tenant", Message: "no tenant " + name}
}

// asked is the keys whose tokens were asked for, in order.
func (s *keyedTokens) asked() []string {
	var keys []string
	for _, c := range s.calls() {
		if k, ok := strings.CutPrefix(c, "Token "); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestTenantRefusals: a request whose tenant cannot be served is answered
// by the sidecar, for the API and for its local endpoints alike, and
// nothing is sent upstream.
func TestTenantRefusals(t *testing.T) {
	up := newUpstream(t, nil)
	keyed := newKeyedTokens()
	srv := startProxy(t, proxy.Config{
		Upstream:     up.base(t, ""),
		Injector:     proxy.Bearer(),
		Tenants:      testTenants{"a": {Key: "a", Tokens: proxy.BindKey(keyed, "a")}},
		TenantHeader: "x-merchant",
		HandoffPath:  "/token",
		SignPath:     "/sign",
	})
	tests := []struct {
		name       string
		path       string
		tenants    []string
		status     int
		code       string
		connection string
	}{
		{"no tenant", "/v1/pay", nil, 400, "no_tenant", ""},
		// ReverseProxy drops what Connection names before the transport
		// reads the tenant: the request would go out as no one's.
		{"tenant header named in Connection", "/v1/pay", []string{"a"}, 400, "bad_tenant", "keep-alive, x-merchant"},
		{"two tenants", "/v1/pay", []string{"a", "a"}, 400, "bad_tenant", ""},
		{"unknown tenant", "/v1/pay", []string{"zz"}, 403, "unknown_tenant", ""},
		{"broken tenant", "/v1/pay", []string{"broken"}, 500, "tenant_error", ""},
		{"hand-off without a tenant", "/token", nil, 400, "no_tenant", ""},
		{"hand-off for an unknown tenant", "/token", []string{"zz"}, 403, "unknown_tenant", ""},
		{"signing for a tenant without a key", "/sign", []string{"a"}, 500, "incomplete_tenant", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, strings.NewReader(`{"payload":{"customerId":"c"}}`))
			req.Header["X-Merchant"] = tc.tenants
			if tc.connection != "" {
				req.Header.Set("Connection", tc.connection)
			}
			resp, body := do(t, srv.Client(), req)
			checkSidecarError(t, resp, body, tc.status, tc.code)
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d requests, want none", n)
	}
	if k := keyed.asked(); len(k) != 0 {
		t.Errorf("tokens asked for %q, want none", k)
	}
}

// TestTenantTokens: each request carries its own tenant's token, never the
// route's, and the tenant header is never forwarded; with TenantDefault, a
// request without the header gets the route's.
func TestTenantTokens(t *testing.T) {
	up := newUpstream(t, nil)
	keyed := newKeyedTokens()
	route := &tokenSource{}
	srv := startProxy(t, proxy.Config{
		Upstream: up.base(t, ""),
		Tokens:   startCache(t, route, tokens.CacheOptions{}),
		Tenants: testTenants{
			"a": {Key: "a", Tokens: proxy.BindKey(keyed, "a")},
			"b": {Key: "b", Tokens: proxy.BindKey(keyed, "b")},
		},
		TenantHeader:  "X-Merchant",
		TenantDefault: true,
		HandoffPath:   "/token",
	})
	for _, tc := range []struct{ tenant, want string }{{"a", "Bearer tok-a-1"}, {"b", "Bearer tok-b-1"}, {"", "Bearer tok-1"}} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/status", nil)
		if tc.tenant != "" {
			req.Header.Set("X-Merchant", tc.tenant)
		}
		if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %q: status = %d %q, want 200", tc.tenant, resp.StatusCode, body)
		}
		got := up.requests()[len(up.requests())-1]
		if a := got.Header.Get("Authorization"); a != tc.want {
			t.Errorf("tenant %q: upstream Authorization = %q, want %q", tc.tenant, a, tc.want)
		}
		if v, ok := got.Header["X-Merchant"]; ok {
			t.Errorf("tenant %q: upstream got X-Merchant %q, want none", tc.tenant, v)
		}

		// The hand-off endpoint answers the same token.
		req, _ = http.NewRequest(http.MethodGet, srv.URL+"/token", nil)
		if tc.tenant != "" {
			req.Header.Set("X-Merchant", tc.tenant)
		}
		resp, body := do(t, srv.Client(), req)
		var answer struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || resp.StatusCode != http.StatusOK || "Bearer "+answer.AccessToken != tc.want {
			t.Errorf("tenant %q: hand-off = %d %q, want the token of %q", tc.tenant, resp.StatusCode, body, tc.want)
		}
	}
}

// TestTenantCustomers: with tokens per customer, a tenant's customer is
// its own key, tenant/customer, in requests' bodies and at the client auth
// token endpoint.
func TestTenantCustomers(t *testing.T) {
	up := newBodyUpstream(t, nil)
	keyed := newKeyedTokens()
	srv := startProxy(t, proxy.Config{
		Upstream:            up.base(t, ""),
		KeyedTokens:         keyed,
		ClientAuthTokens:    keyed,
		ClientAuthTokenPath: "/client-auth-token",
		Injector:            proxy.JSONBody("payload.clientAuthToken", ""),
		Tenants:             testTenants{"a": {Key: "a"}, "b": {Key: "b"}},
		TenantHeader:        "X-Merchant",
		MaxReplayBody:       1 << 10,
	})
	for _, tenant := range []string{"a", "b"} {
		req := bodyRequest(t, http.MethodPost, srv.URL+"/v1/orders", []byte(`{"payload":{"customerId":"cust-1"}}`), false)
		req.Header.Set("X-Merchant", tenant)
		if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %s: status = %d %q, want 200", tenant, resp.StatusCode, body)
		}
		got := up.requests()[len(up.requests())-1]
		if want := `"clientAuthToken":"tok-` + tenant + `/cust-1-1"`; !bytes.Contains(got.Body, []byte(want)) {
			t.Errorf("tenant %s: upstream body %s, want %s", tenant, got.Body, want)
		}

		req = bodyRequest(t, http.MethodPost, srv.URL+"/client-auth-token", []byte(`{"customerId":"cust-1"}`), false)
		req.Header.Set("X-Merchant", tenant)
		resp, body := do(t, srv.Client(), req)
		if want := `"clientAuthToken":"tok-` + tenant + `/cust-1-1"`; resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(want)) {
			t.Errorf("tenant %s: client auth token = %d %s, want %s", tenant, resp.StatusCode, body, want)
		}
	}
	if got, want := strings.Join(keyed.asked(), " "), "a/cust-1 a/cust-1 b/cust-1 b/cust-1"; got != want {
		t.Errorf("keys asked = %q, want %q", got, want)
	}
}

// TestTenantSigners: with INJECT=signature per tenant, each body is signed
// with its tenant's key (the route's injector sends bodies untouched), at
// SignPath too; a tenant without a key is refused.
func TestTenantSigners(t *testing.T) {
	keys := testKeys()
	signers := make([]*proxy.Signer, 2)
	for i, key := range keys {
		kf, _ := keyFile(t, keyPEM(t, key, false), nil)
		signers[i] = newSigner(t, proxy.SignerConfig{Key: kf})
	}
	up := newBodyUpstream(t, nil)
	srv := startProxy(t, proxy.Config{
		Upstream: up.base(t, ""),
		Injector: proxy.None(),
		Tenants: testTenants{
			"a":     {Key: "a", Injector: signers[0], Signer: signers[0]},
			"b":     {Key: "b", Injector: signers[1], Signer: signers[1]},
			"nokey": {Key: "nokey"},
		},
		TenantHeader:  "X-Merchant",
		SignPath:      "/sign",
		MaxReplayBody: 1 << 10,
	})
	for i, tenant := range []string{"a", "b"} {
		req := bodyRequest(t, http.MethodPost, srv.URL+"/v1/orders", []byte(initiate), false)
		req.Header.Set("X-Merchant", tenant)
		if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %s: status = %d %q, want 200", tenant, resp.StatusCode, body)
		}
		sent := up.requests()[len(up.requests())-1].Body
		mustVerify(t, sent, &keys[i].PublicKey)
		if _, err := verifySigned(sent, &keys[1-i].PublicKey); err == nil {
			t.Errorf("tenant %s: the body verifies with the other tenant's key", tenant)
		}

		req = bodyRequest(t, http.MethodPost, srv.URL+"/sign", []byte(initiate), false)
		req.Header.Set("X-Merchant", tenant)
		resp, body := do(t, srv.Client(), req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %s: sign = %d %q, want 200", tenant, resp.StatusCode, body)
		}
		mustVerify(t, body, &keys[i].PublicKey)
	}
	req := bodyRequest(t, http.MethodPost, srv.URL+"/sign", []byte(initiate), false)
	req.Header.Set("X-Merchant", "nokey")
	resp, body := do(t, srv.Client(), req)
	checkSidecarError(t, resp, body, http.StatusInternalServerError, "incomplete_tenant")
	if !strings.Contains(string(body), "nokey") {
		t.Errorf("body %q does not name the tenant", body)
	}
}

// TestTenantPaygate: with INJECT=paygate per tenant, each call is sealed
// with its tenant's passwords (the fake Paygate knows only tenant a's
// merchant), and the codec encrypts with them; the route has none.
func TestTenantPaygate(t *testing.T) {
	ciphers := pgCiphers(t, false)
	other := pgCiphers(t, true)
	a := paygate.NewMerchant(pgMerchantID, ciphers[1].c, pgHMACKey)
	b := paygate.NewMerchant("another-merchant", other[1].c, []byte("another-hmac"))
	pg := fake.NewPaygate(pgMerchantID, ciphers[1].c, pgHMACKey)
	srv := startProxy(t, proxy.Config{
		Upstream: serveFake(t, pg),
		Injector: proxy.None(),
		Tenants: testTenants{
			"a": {Key: "a", Injector: proxy.Paygate(fixed(a)), PaygateMerchant: fixed(a)},
			"b": {Key: "b", Injector: proxy.Paygate(fixed(b)), PaygateMerchant: fixed(b)},
		},
		TenantHeader:  "X-Merchant",
		PaygatePath:   pgPath,
		MaxReplayBody: pgMaxBody,
	})
	req := pgRequest(t, srv, http.MethodPost, fake.PaygateCapturePath, captureForm)
	req.Header.Set("X-Merchant", "a")
	resp, body := do(t, srv.Client(), req)
	if v := checkForm(t, resp, body); v.Get("Status") != "OK" {
		t.Errorf("tenant a's capture answered %q, want Status=OK", body)
	}
	if n := pg.Calls(); n != 1 {
		t.Errorf("fake Paygate calls = %d, want 1", n)
	}

	// Tenant b's call is sealed with b's passwords, which this Paygate
	// (a's merchant) refuses.
	req = pgRequest(t, srv, http.MethodPost, fake.PaygateCapturePath, captureForm)
	req.Header.Set("X-Merchant", "b")
	resp, body = do(t, srv.Client(), req)
	if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "Status=OK") {
		t.Errorf("tenant b's capture answered %d %q by a's merchant, want a refusal", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		tenant string
		m      *paygate.Merchant
	}{{"a", a}, {"b", b}} {
		req := pgRequest(t, srv, http.MethodPost, pgPath+"/encrypt", captureForm)
		req.Header.Set("X-Merchant", tc.tenant)
		resp, body := do(t, srv.Client(), req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %s: encrypt = %d %q, want 200", tc.tenant, resp.StatusCode, body)
		}
		v, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatal(err)
		}
		if v.Get("MerchantID") != tc.m.ID {
			t.Errorf("tenant %s: MerchantID = %q, want %q", tc.tenant, v.Get("MerchantID"), tc.m.ID)
		}
		n, _ := strconv.Atoi(v.Get("Len"))
		if plain, err := tc.m.Cipher.Decrypt(v.Get("Data"), n); err != nil || !strings.Contains(string(plain), "TransID="+pgTransID) {
			t.Errorf("tenant %s: its own password opens the encrypted call as %q, %v, want the call", tc.tenant, plain, err)
		}
	}
}
