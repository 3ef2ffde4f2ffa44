package e2e

import (
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

	"github.com/authsidecar/authsidecar/test/fake"
)

const (
	juspayAPIKey     = "juspay-api-key-e2e-0123456789"
	juspayMerchantID = "stock"
)

// juspayFake serves a fake Juspay, its Customers API and an API that takes
// a clientAuthToken in the body, until the test ends, and the sidecar
// settings for it with per-customer tokens (the juspay preset).
func juspayFake(t *testing.T, ttl time.Duration, customers ...string) (*fake.Juspay, map[string]string) {
	t.Helper()
	return juspayFakeWrapped(t, ttl, nil, customers...)
}

// juspayFakeWrapped is juspayFake with wrap, if not nil, around the fake's
// handlers.
func juspayFakeWrapped(t *testing.T, ttl time.Duration, wrap func(http.Handler) http.Handler, customers ...string) (*fake.Juspay, map[string]string) {
	t.Helper()
	j := fake.NewJuspay(juspayAPIKey, juspayMerchantID, ttl)
	for _, c := range customers {
		j.AddCustomer(c)
	}
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, tok := range j.Tokens() {
			m[fmt.Sprintf("clientAuthToken #%d issued by the fake Juspay", i+1)] = tok
		}
		return m
	})
	mux := http.NewServeMux()
	mux.Handle("/customers/", j.Handler())
	mux.Handle("/", j.UpstreamHandler())
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "api_key")
	if err := os.WriteFile(keyFile, []byte(juspayAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return j, map[string]string{
		"PROVIDER":     "juspay",
		"UPSTREAM_URL": srv.URL,
		"TOKEN_SOURCE": "juspay-customer",
		"API_KEY_FILE": keyFile,
		"MERCHANT_ID":  juspayMerchantID,
	}
}

// initiate is an SDK initiate payload for customer, as the app sends it.
func initiate(customer string) []byte {
	return []byte(`{"requestId":"r-1","service":"in.juspay.hyperapi","payload":{"action":"initiate","merchantId":"stock","customerId":"` + customer + `"}}`)
}

// TestJuspayTokensPerCustomer: 3 customers × 20 concurrent requests cost 3
// token fetches, and every body reaches Juspay with its own customer's
// token; one customer's revoked token costs one fetch for that customer
// only.
func TestJuspayTokensPerCustomer(t *testing.T) {
	customers := []string{"cust-a", "cust-b", "cust-c"}
	j, env := juspayFake(t, 15*time.Minute, customers...)
	s := startSidecar(t, env)
	c := newClient(t)

	var wg sync.WaitGroup
	results := make(chan result, 60)
	for _, cust := range customers {
		for range 20 {
			wg.Go(func() { results <- call(c, http.MethodPost, s.URL+"/v4/sdk", initiate(cust)) })
		}
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("request = %v, want 200", r)
		}
	}
	if n := j.TotalFetches(); n != 3 {
		t.Errorf("token fetches = %d, want 3 (one per customer)", n)
	}
	seen := j.Seen()
	if len(seen) != 60 {
		t.Fatalf("Juspay saw %d calls, want 60", len(seen))
	}
	for _, call := range seen {
		if !call.OK || !strings.HasPrefix(call.Token, "tkn_") {
			t.Errorf("Juspay saw customer %s with a token it refused", call.CustomerID)
		}
	}

	// cust-b's tokens are revoked: its next request is refused, replayed
	// with a fresh token, and accepted; the others fetch nothing.
	j.Revoke("cust-b")
	if r := call(c, http.MethodPost, s.URL+"/v4/sdk", initiate("cust-b")); r.status != http.StatusOK {
		t.Fatalf("request after revocation = %v, want 200 after a replay", r)
	}
	for _, cust := range []string{"cust-a", "cust-c"} {
		if r := call(c, http.MethodPost, s.URL+"/v4/sdk", initiate(cust)); r.status != http.StatusOK {
			t.Fatalf("request for %s = %v, want 200", cust, r)
		}
	}
	if got := [3]int{j.Fetches("cust-a"), j.Fetches("cust-b"), j.Fetches("cust-c")}; got != [3]int{1, 2, 1} {
		t.Errorf("fetches per customer after cust-b's revocation = %v, want [1 2 1]", got)
	}

	// A body without a customer is refused, and nothing reaches Juspay.
	before := len(j.Seen())
	if r := call(c, http.MethodPost, s.URL+"/v4/sdk", []byte(`{"payload":{"action":"initiate"}}`)); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "customerId") {
		t.Errorf("body without a customer = %v, want 400 naming customerId", r)
	}
	if n := len(j.Seen()) - before; n != 0 {
		t.Errorf("Juspay saw %d calls for a body without a customer, want 0", n)
	}
}

// TestJuspayTokenExpiry: a token is fetched again once it nears its expiry.
func TestJuspayTokenExpiry(t *testing.T) {
	j, env := juspayFake(t, 2*time.Second, "cust-a")
	s := startSidecar(t, env)
	c := newClient(t)
	waitUntil(t, 15*time.Second, func() bool {
		r := call(c, http.MethodPost, s.URL+"/v4/sdk", initiate("cust-a"))
		return r.status == http.StatusOK && j.Fetches("cust-a") >= 2
	}, "a second token for cust-a as the first nears its 2 s expiry")
	for _, call := range j.Seen() {
		if !call.OK {
			t.Errorf("Juspay refused a call of customer %s: an expired token was sent", call.CustomerID)
		}
	}
}

// TestJuspayClientAuthTokenEndpoint: the app asks for a customer's token
// for the SDK's initiate, process or updateAuth.
func TestJuspayClientAuthTokenEndpoint(t *testing.T) {
	j, env := juspayFake(t, 15*time.Minute, "cust-a")
	s := startSidecar(t, env)
	c := newClient(t)
	url := s.URL + "/juspay/client-auth-token"

	r := call(c, http.MethodPost, url, []byte(`{"customerId":"cust-a"}`))
	var got struct{ ClientAuthToken, AuthExpiry string }
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		t.Fatalf("client auth token for cust-a = %v, want 200 JSON", r)
	}
	if !j.Valid("cust-a", got.ClientAuthToken) {
		t.Errorf("clientAuthToken for cust-a is not one Juspay accepts for cust-a")
	}
	if exp, err := time.Parse("2006-01-02T15:04:05.000Z", got.AuthExpiry); err != nil || time.Until(exp) < 14*time.Minute {
		t.Errorf("authExpiry = %q, want RFC 3339 UTC with milliseconds, about 15 minutes ahead", got.AuthExpiry)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if r := call(c, http.MethodPost, url, []byte(`{"customerId":"nobody"}`)); r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"unknown_customer"`) {
		t.Errorf("client auth token for an unknown customer = %v, want 404 unknown_customer", r)
	}
	if r := call(c, http.MethodPost, url, []byte(`{}`)); r.status != http.StatusBadRequest {
		t.Errorf("client auth token without a customer = %v, want 400", r)
	}
	if n := len(j.Seen()); n != 0 {
		t.Errorf("the endpoint reached the upstream %d times, want 0", n)
	}
}
