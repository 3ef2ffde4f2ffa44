package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/test/fake"
)

// juspayAPIKey is the API key the tests below configure: no problem may
// show it, in any form.
const juspayAPIKey = "key_live_juspay_7f3a"

// juspayVars is a valid TOKEN_SOURCE=juspay-customer configuration, its
// token URL tokenURL (a fake's, so that a fetch would be seen), overrides
// applied.
func juspayVars(tokenURL string, overrides map[string]string) map[string]string {
	vars := map[string]string{"TOKEN_URL": tokenURL, "API_KEY": juspayAPIKey, "MERCHANT_ID": "stock"}
	maps.Copy(vars, overrides)
	return minimal("juspay-customer", vars)
}

// newFakeJuspay serves a fake Juspay that knows customer c-1, and returns
// its URL.
func newFakeJuspay(t *testing.T) (*fake.Juspay, string) {
	t.Helper()
	j := fake.NewJuspay(juspayAPIKey, "stock", 0)
	j.AddCustomer("c-1")
	srv := httptest.NewServer(j.Handler())
	t.Cleanup(srv.Close)
	return j, srv.URL
}

func TestJuspayConfigValid(t *testing.T) {
	j, juspayURL := newFakeJuspay(t)
	keyFile := writeFile(t, t.TempDir(), "api_key", juspayAPIKey+"\n")
	tests := []struct {
		name     string
		env      map[string]string
		inject   string // INJECT as loaded
		endpoint string // CLIENT_AUTH_TOKEN_PATH as loaded
		field    string // BODY_CUSTOMER_FIELD as loaded
	}{
		{name: "API key", env: juspayVars(juspayURL, nil), inject: "json-body"},
		{name: "API key from a file", env: juspayVars(juspayURL, map[string]string{"API_KEY": unset, "API_KEY_FILE": keyFile}), inject: "json-body"},
		{name: "customer elsewhere in the body", env: juspayVars(juspayURL, map[string]string{"BODY_CUSTOMER_FIELD": "order.customer.id"}), inject: "json-body", field: "order.customer.id"},
		{name: "client auth token endpoint", env: juspayVars(juspayURL, map[string]string{"CLIENT_AUTH_TOKEN_PATH": "/juspay/client-auth-token"}), inject: "json-body", endpoint: "/juspay/client-auth-token"},
		{name: "Basic to the server API, tokens at the endpoint", env: juspayVars(juspayURL, map[string]string{"INJECT": "basic", "BASIC_USER": juspayAPIKey, "CLIENT_AUTH_TOKEN_PATH": "/juspay/client-auth-token"}), inject: "basic", endpoint: "/juspay/client-auth-token"},
		{name: "requests untouched, tokens at the endpoint", env: juspayVars(juspayURL, map[string]string{"INJECT": "none", "CLIENT_AUTH_TOKEN_PATH": "/cat"}), inject: "none", endpoint: "/cat"},
		{name: "the juspay preset", env: map[string]string{
			"AUTHSIDECAR_PROVIDER": "juspay", "AUTHSIDECAR_TOKEN_SOURCE": "juspay-customer", "AUTHSIDECAR_UPSTREAM_URL": juspayURL,
			"AUTHSIDECAR_API_KEY_FILE": keyFile, "AUTHSIDECAR_MERCHANT_ID": "stock",
		}, inject: "json-body", endpoint: "/juspay/client-auth-token"},
		{name: "the juspay preset, Basic to the server API", env: map[string]string{
			"AUTHSIDECAR_PROVIDER": "juspay", "AUTHSIDECAR_TOKEN_SOURCE": "juspay-customer", "AUTHSIDECAR_INJECT": "basic", "AUTHSIDECAR_UPSTREAM_URL": juspayURL,
			"AUTHSIDECAR_API_KEY_FILE": keyFile, "AUTHSIDECAR_MERCHANT_ID": "stock",
		}, inject: "basic", endpoint: "/juspay/client-auth-token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			if c.Inject != tc.inject || c.ClientAuthTokenPath != tc.endpoint || c.BodyCustomerField != tc.field {
				t.Errorf("INJECT, CLIENT_AUTH_TOKEN_PATH, BODY_CUSTOMER_FIELD = %q, %q, %q; want %q, %q, %q",
					c.Inject, c.ClientAuthTokenPath, c.BodyCustomerField, tc.inject, tc.endpoint, tc.field)
			}
			if c.TokenURL != juspayURL {
				t.Errorf("TOKEN_URL = %q, want %q", c.TokenURL, juspayURL)
			}
			s := built(t, c)
			if s.keyed == nil || s.proxy.ClientAuthTokens == nil {
				t.Fatalf("build() made no keyed cache (keyed %v, proxy.ClientAuthTokens %v)", s.keyed, s.proxy.ClientAuthTokens)
			}
			if s.cache != nil || s.source != nil || s.proxy.Tokens != nil {
				t.Errorf("build() made a single-token cache beside the keyed one: cache %v, source %v, proxy.Tokens %v", s.cache, s.source, s.proxy.Tokens)
			}
			if s.proxy.ClientAuthTokenPath != tc.endpoint || s.proxy.CustomerField != tc.field {
				t.Errorf("proxy ClientAuthTokenPath, CustomerField = %q, %q; want %q, %q", s.proxy.ClientAuthTokenPath, s.proxy.CustomerField, tc.endpoint, tc.field)
			}
			if got, want := s.proxy.KeyedTokens != nil, tc.inject == "json-body"; got != want {
				t.Errorf("proxy KeyedTokens set = %v, want %v with INJECT=%s: only json-body puts a customer's token on requests", got, want, tc.inject)
			}
			if len(s.background) != 0 {
				t.Errorf("build() started %d background tasks, want none: per-customer tokens are fetched on demand", len(s.background))
			}
			// Ready at once: no token is fetched before a customer asks.
			rec := httptest.NewRecorder()
			adminHandler(s.registry, (&app{routes: []*sidecar{s}}).readiness(), new(atomic.Bool), false).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("GET /readyz = %d %q, want 200", rec.Code, rec.Body)
			}
			if n := j.TotalFetches(); n != 0 {
				t.Errorf("Juspay saw %d token fetches, want none before a request", n)
			}
		})
	}
}

// With a mode that puts no token on requests, the customers' tokens are for
// CLIENT_AUTH_TOKEN_PATH alone: requests go out without naming a customer
// and without a fetch, and the endpoint answers a customer's token.
func TestJuspayTokenlessModes(t *testing.T) {
	j, juspayURL := newFakeJuspay(t)
	var gotAuth atomic.Value
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth.Store(r.Header.Get("Authorization"))
		io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(juspayAPIKey+":"))
	for _, tc := range []struct {
		inject, user, wantAuth string
	}{
		{"none", unset, "Bearer app"},
		{"basic", juspayAPIKey, basic},
	} {
		t.Run(tc.inject, func(t *testing.T) {
			c, err := loadConfig(juspayVars(juspayURL, map[string]string{
				"UPSTREAM_URL": upstream.URL, "INJECT": tc.inject, "BASIC_USER": tc.user, "CLIENT_AUTH_TOKEN_PATH": "/juspay/client-auth-token",
			}))
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			srv := httptest.NewServer(proxy.New(built(t, c).proxy))
			t.Cleanup(srv.Close)
			before := j.TotalFetches()

			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders/o-1", nil)
			req.Header.Set("Authorization", "Bearer app")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET /orders/o-1 = %d %q, want 200 from the upstream", resp.StatusCode, body)
			}
			if got := gotAuth.Load(); got != tc.wantAuth {
				t.Errorf("upstream Authorization = %q, want %q", got, tc.wantAuth)
			}
			if n := j.TotalFetches() - before; n != 0 {
				t.Errorf("a request naming no customer made %d token fetches, want 0", n)
			}

			resp, err = http.Post(srv.URL+"/juspay/client-auth-token", "application/json", strings.NewReader(`{"customerId":"c-1"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var answer struct{ ClientAuthToken, AuthExpiry string }
			if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("POST /juspay/client-auth-token = %d (%v), want 200", resp.StatusCode, err)
			}
			if !j.Valid("c-1", answer.ClientAuthToken) {
				t.Errorf("clientAuthToken %q is not one Juspay issued for c-1", answer.ClientAuthToken)
			}
			if _, err := time.Parse(time.RFC3339, answer.AuthExpiry); err != nil {
				t.Errorf("authExpiry %q: %v", answer.AuthExpiry, err)
			}
		})
	}
}

func TestJuspayConfigProblems(t *testing.T) {
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "api_key", juspayAPIKey+"\n")
	emptyKey := writeFile(t, dir, "empty_key", "\n")
	colonKey := writeFile(t, dir, "colon_key", juspayAPIKey+":x\n")
	fleetKey := writeFile(t, dir, "fleet_key", strings.Repeat("ab", 32))
	keys := writeKeyFiles(t)
	const url = "https://sandbox.juspay.in"
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		want     string
	}{
		// The source's own settings.
		{"no API key", juspayVars(url, map[string]string{"API_KEY": unset}), "API_KEY", "required (or AUTHSIDECAR_API_KEY_FILE)"},
		{"API key twice", juspayVars(url, map[string]string{"API_KEY_FILE": keyFile}), "API_KEY", "not both"},
		{"API key file missing", juspayVars(url, map[string]string{"API_KEY": unset, "API_KEY_FILE": dir + "/missing"}), "API_KEY_FILE", "no such file"},
		{"API key file empty", juspayVars(url, map[string]string{"API_KEY": unset, "API_KEY_FILE": emptyKey}), "API_KEY_FILE", "empty"},
		{"API key with a colon", juspayVars(url, map[string]string{"API_KEY": unset, "API_KEY_FILE": colonKey}), "API_KEY_FILE", "':'"},
		{"API key with a control character", juspayVars(url, map[string]string{"API_KEY": juspayAPIKey + "\n"}), "API_KEY", "control character"},
		{"no merchant", juspayVars(url, map[string]string{"MERCHANT_ID": unset}), "MERCHANT_ID", "required with AUTHSIDECAR_TOKEN_SOURCE=juspay-customer"},
		{"merchant with surrounding space", juspayVars(url, map[string]string{"MERCHANT_ID": "stock "}), "MERCHANT_ID", "surrounding space"},
		{"no token URL", juspayVars(url, map[string]string{"TOKEN_URL": unset}), "TOKEN_URL", "required with AUTHSIDECAR_TOKEN_SOURCE=juspay-customer"},
		{"token URL not http", juspayVars("ftp://sandbox.juspay.in", nil), "TOKEN_URL", "absolute http or https URL"},
		{"token URL relative", juspayVars("/customers", nil), "TOKEN_URL", "absolute http or https URL"},
		{"token URL with a query", juspayVars(url+"/?merchant=stock", nil), "TOKEN_URL", "without query or fragment"},

		// What the rest of the sidecar may do with tokens per customer.
		{"bearer", juspayVars(url, map[string]string{"INJECT": "bearer"}), "INJECT", "gives a token per customer"},
		{"header", juspayVars(url, map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Token"}), "INJECT", "gives a token per customer"},
		{"hand-off endpoint", juspayVars(url, map[string]string{"HANDOFF_PATH": "/token"}), "HANDOFF_PATH", "use AUTHSIDECAR_CLIENT_AUTH_TOKEN_PATH"},
		{"shared cache", juspayVars(url, map[string]string{"SHARED_CACHE": "redis://redis.example:6379", "SHARED_CACHE_KEY_FILE": fleetKey}), "SHARED_CACHE", `got "juspay-customer"`},
		{"Basic without the endpoint", juspayVars(url, map[string]string{"INJECT": "basic", "BASIC_USER": juspayAPIKey}), "CLIENT_AUTH_TOKEN_PATH", "required with AUTHSIDECAR_TOKEN_SOURCE=juspay-customer and AUTHSIDECAR_INJECT=basic"},
		{"none without the endpoint", juspayVars(url, map[string]string{"INJECT": "none"}), "CLIENT_AUTH_TOKEN_PATH", "required with AUTHSIDECAR_TOKEN_SOURCE=juspay-customer and AUTHSIDECAR_INJECT=none"},
		{"customer field with a mode that reads no body", juspayVars(url, map[string]string{"INJECT": "none", "CLIENT_AUTH_TOKEN_PATH": "/cat", "BODY_CUSTOMER_FIELD": "payload.customerId"}), "BODY_CUSTOMER_FIELD", "not used with AUTHSIDECAR_INJECT=none"},
		{"bodies not kept", juspayVars(url, map[string]string{"MAX_REPLAY_BODY": "0"}), "MAX_REPLAY_BODY", "must be positive"},

		// The cache and where the customer is.
		{"cache of none", juspayVars(url, map[string]string{"TOKEN_CACHE_SIZE": "0"}), "TOKEN_CACHE_SIZE", "at least 1, got 0"},
		{"cache negative", juspayVars(url, map[string]string{"TOKEN_CACHE_SIZE": "-5"}), "TOKEN_CACHE_SIZE", "at least 1, got -5"},
		{"cache not a number", juspayVars(url, map[string]string{"TOKEN_CACHE_SIZE": "10k"}), "TOKEN_CACHE_SIZE", "not a number"},
		{"customer field with an empty segment", juspayVars(url, map[string]string{"BODY_CUSTOMER_FIELD": "payload..customerId"}), "BODY_CUSTOMER_FIELD", "want a dotted path"},
		{"customer field ending in a dot", juspayVars(url, map[string]string{"BODY_CUSTOMER_FIELD": "payload."}), "BODY_CUSTOMER_FIELD", "want a dotted path"},
		{"customer field with a control character", juspayVars(url, map[string]string{"BODY_CUSTOMER_FIELD": "payload.customer\tId"}), "BODY_CUSTOMER_FIELD", "want a dotted path"},

		// The endpoint.
		{"endpoint not a path", juspayVars(url, map[string]string{"CLIENT_AUTH_TOKEN_PATH": "juspay/client-auth-token"}), "CLIENT_AUTH_TOKEN_PATH", "starting with /"},
		{"endpoint with a dot segment", juspayVars(url, map[string]string{"CLIENT_AUTH_TOKEN_PATH": "/juspay/../token"}), "CLIENT_AUTH_TOKEN_PATH", "without dot segments"},
		{"endpoint with a query", juspayVars(url, map[string]string{"CLIENT_AUTH_TOKEN_PATH": "/token?x=1"}), "CLIENT_AUTH_TOKEN_PATH", "without dot segments, ? or #"},
		{"endpoint on the signing path", juspayVars(url, map[string]string{"SIGN_PATH": "/juspay/sign", "CLIENT_AUTH_TOKEN_PATH": "/juspay/sign", "SIGNING_KEY_FILE": keys.pkcs1, "SIGNING_KEY_ID": "1234"}), "CLIENT_AUTH_TOKEN_PATH", "must differ from AUTHSIDECAR_SIGN_PATH (/juspay/sign)"},
		{"endpoint without a per-customer source", minimal("json", map[string]string{"CLIENT_AUTH_TOKEN_PATH": "/juspay/client-auth-token"}), "CLIENT_AUTH_TOKEN_PATH", "needs tokens per customer: AUTHSIDECAR_TOKEN_SOURCE=juspay-customer"},
		{"endpoint without any source", minimal("none", map[string]string{"CLIENT_AUTH_TOKEN_PATH": "/juspay/client-auth-token"}), "CLIENT_AUTH_TOKEN_PATH", "needs tokens per customer"},
		{"customer field without a per-customer source", minimal("oauth2", map[string]string{"BODY_CUSTOMER_FIELD": "payload.customerId"}), "BODY_CUSTOMER_FIELD", "needs tokens per customer"},

		// The preset fills in the URL and the endpoint, never the key.
		{"preset without a key", map[string]string{"AUTHSIDECAR_PROVIDER": "juspay", "AUTHSIDECAR_TOKEN_SOURCE": "juspay-customer", "AUTHSIDECAR_MERCHANT_ID": "stock"}, "API_KEY", "required"},
		{"preset with a bearer", map[string]string{"AUTHSIDECAR_PROVIDER": "juspay", "AUTHSIDECAR_TOKEN_SOURCE": "juspay-customer", "AUTHSIDECAR_INJECT": "bearer", "AUTHSIDECAR_API_KEY_FILE": keyFile, "AUTHSIDECAR_MERCHANT_ID": "stock"}, "INJECT", "gives a token per customer"},
	}
	encoded := base64.StdEncoding.EncodeToString([]byte(juspayAPIKey + ":"))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			lines := problemLines(err)
			if n := linesNaming(lines, envPrefix+tc.variable); n != 1 || len(lines) != 1 {
				t.Fatalf("loadConfig() problems = %q, want one, naming %s%s", lines, envPrefix, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig() error = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "key_live") || strings.Contains(err.Error(), encoded) {
				t.Errorf("loadConfig() error = %v, shows the API key", err)
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

// FuzzJuspayConfig feeds juspay-customer's own settings to loadConfig:
// whatever it accepts must build, with a key Juspay can be sent, an
// endpoint path the proxy serves and a cache that holds at least one
// customer; whatever it refuses is a list of problems that each name a
// variable, and none shows the API key.
func FuzzJuspayConfig(f *testing.F) {
	f.Add(juspayAPIKey, "stock", "https://sandbox.juspay.in", "payload.customerId", "/juspay/client-auth-token", "10000", "json-body")
	f.Add("key:with-colon", " stock", "https://sandbox.juspay.in/?a=b", "payload..customerId", "/juspay/../x", "0", "bearer")
	f.Add("key\twith-tab", "", "ftp://juspay", ".", "juspay", "-1", "basic")
	f.Add("", "stock\n", "", "", "", "1e4", "none")
	f.Fuzz(func(t *testing.T, apiKey, merchant, tokenURL, customerField, endpoint, cacheSize, inject string) {
		c, err := loadConfig(juspayVars(tokenURL, map[string]string{
			"API_KEY": apiKey, "MERCHANT_ID": merchant, "BODY_CUSTOMER_FIELD": customerField,
			"CLIENT_AUTH_TOKEN_PATH": endpoint, "TOKEN_CACHE_SIZE": cacheSize, "INJECT": inject,
			"BASIC_USER": "user-1",
		}))
		if err != nil {
			checkEveryLineNamesAVariable(t, err)
			if len(apiKey) >= 8 && strings.Contains(err.Error(), apiKey) {
				t.Errorf("loadConfig() error = %v, shows the API key %q", err, apiKey)
			}
			return
		}
		if proxy.CheckBasicUser(c.APIKey) != nil {
			t.Errorf("API_KEY %q accepted, but Juspay cannot be sent it as the Basic user name", apiKey)
		}
		if c.ClientAuthTokenPath != "" && proxy.CheckEndpointPath(c.ClientAuthTokenPath) != nil {
			t.Errorf("CLIENT_AUTH_TOKEN_PATH %q accepted", endpoint)
		}
		if c.TokenCacheSize < 1 {
			t.Errorf("TOKEN_CACHE_SIZE %q accepted as %d", cacheSize, c.TokenCacheSize)
		}
		if s := built(t, c); s.keyed == nil {
			t.Errorf("accepted, but build() made no keyed cache")
		}
	})
}
