package proxy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

const clientAuthTokenPath = "/juspay/client-auth-token"

// clientAuthTokenAnswer is the endpoint's answer.
type clientAuthTokenAnswer struct {
	ClientAuthToken string `json:"clientAuthToken"`
	AuthExpiry      string `json:"authExpiry"`
}

// checkClientAuthToken checks a 200 answer of the endpoint: no-store JSON
// holding exactly tok and its expiry, RFC 3339 UTC with milliseconds.
func checkClientAuthToken(t *testing.T, resp *http.Response, body []byte, tok *tokens.Token) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want %q", got, "no-store")
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want %q", got, "application/json")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var a clientAuthTokenAnswer
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("body %q is not {\"clientAuthToken\",\"authExpiry\"}: %v", body, err)
	}
	if a.ClientAuthToken != tok.Value {
		t.Errorf("clientAuthToken = %q, want %q", a.ClientAuthToken, tok.Value)
	}
	if !expiryFormat.MatchString(a.AuthExpiry) {
		t.Errorf("authExpiry = %q, want RFC 3339 UTC with milliseconds", a.AuthExpiry)
	}
	if when, err := time.Parse(time.RFC3339Nano, a.AuthExpiry); err != nil || !when.Equal(tok.Expiry.Truncate(time.Millisecond)) {
		t.Errorf("authExpiry = %q (%v), want the token's expiry %v", a.AuthExpiry, err, tok.Expiry)
	}
}

// clientAuthTokenProxy starts a proxy serving the client auth token endpoint
// from src, with c's other settings.
func clientAuthTokenProxy(t *testing.T, up *upstream, src proxy.KeyedTokenSource, c proxy.Config) *proxyWithMetrics {
	t.Helper()
	reg, m := newMetrics()
	c.Upstream = up.base(t, "/api")
	c.KeyedTokens, c.ClientAuthTokens = src, src
	c.ClientAuthTokenPath = clientAuthTokenPath
	c.Injector = proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry")
	c.MaxReplayBody = 64 << 10
	c.Metrics = m
	return &proxyWithMetrics{Server: startProxy(t, c), reg: reg, m: m}
}

func TestClientAuthToken(t *testing.T) {
	unknown := fmt.Errorf("%w: %w", tokens.ErrNoToken, &tokens.UnknownCustomerError{Message: "Cannot find what you are looking for"})
	tests := []struct {
		name   string
		method string // POST if empty
		body   string
		errs   map[string]error
		key    string // on success, the customer whose token is answered
		// On refusal: status, error code and words of the message.
		status    int
		code, msg string
	}{
		{name: "customerId", body: `{"customerId":"cust-a"}`, key: "cust-a"},
		{name: "customer_id", body: `{"customer_id":"cust-b"}`, key: "cust-b"},
		{name: "customerId before customer_id", body: `{"customer_id":"cust-b","customerId":"cust-a"}`, key: "cust-a"},
		{name: "empty customerId: customer_id", body: `{"customerId":"","customer_id":"cust-b"}`, key: "cust-b"},
		{name: "number id, as written, as json-body takes it", body: `{"customerId":12345678901234567890}`, key: "12345678901234567890"},
		{name: "other fields ignored", body: `{"customerId":"cust-a","action":"updateAuth"}`, key: "cust-a"},
		{name: "missing", body: `{}`, status: http.StatusBadRequest, code: "no_customer_id", msg: "customerId"},
		{name: "null", body: `{"customerId":null}`, status: http.StatusBadRequest, code: "no_customer_id", msg: "customerId"},
		{name: "empty string", body: `{"customerId":""}`, status: http.StatusBadRequest, code: "no_customer_id", msg: "customerId"},
		{name: "not JSON", body: `customerId=cust-a`, status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "array", body: `["cust-a"]`, status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "two objects", body: `{"customerId":"cust-a"}{"customerId":"cust-b"}`, status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "invalid UTF-8, which decoding would change", body: "{\"customerId\":\"caf\xe9\"}", status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "empty body", body: ``, status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "too large", body: `{"customerId":"cust-a","pad":"` + strings.Repeat("x", 64<<10) + `"}`, status: http.StatusBadRequest, code: "bad_request", msg: "JSON object"},
		{name: "GET", method: http.MethodGet, status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "POST"},
		{name: "PUT", method: http.MethodPut, body: `{"customerId":"cust-a"}`, status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "POST"},
		{
			name: "unknown customer", body: `{"customerId":"nobody"}`, errs: map[string]error{"nobody": unknown},
			status: http.StatusNotFound, code: "unknown_customer", msg: "Cannot find what you are looking for",
		},
		{
			name: "no token", body: `{"customerId":"cust-a"}`, errs: map[string]error{"cust-a": fmt.Errorf("%w: provider down", tokens.ErrNoToken)},
			status: http.StatusServiceUnavailable, code: "token_unavailable", msg: "provider down",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			src := newKeyedTokens()
			src.errs = tc.errs
			srv := clientAuthTokenProxy(t, up, src, proxy.Config{})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			var body []byte
			if tc.body != "" || method == http.MethodPost {
				body = []byte(tc.body)
			}
			resp, got := do(t, srv.Client(), bodyRequest(t, method, srv.URL+clientAuthTokenPath, body, false))
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests, want none: the endpoint is answered locally", n)
			}
			if tc.status != 0 {
				checkSidecarError(t, resp, got, tc.status, tc.code)
				if !strings.Contains(string(got), tc.msg) {
					t.Errorf("body = %s, want a message containing %q", got, tc.msg)
				}
				if tc.status == http.StatusMethodNotAllowed {
					if allow := resp.Header.Get("Allow"); allow != http.MethodPost {
						t.Errorf("Allow = %q, want %q", allow, http.MethodPost)
					}
				}
				if tc.errs == nil && len(src.calls()) != 0 {
					t.Errorf("source calls = %q, want none for a refused request", src.calls())
				}
				return
			}
			tok := src.tokenOf(tc.key)
			if tok == nil {
				t.Fatalf("no token issued for %q; source calls = %q", tc.key, src.calls())
			}
			checkClientAuthToken(t, resp, got, tok)
			if want := []string{"Token " + tc.key}; !slices.Equal(src.calls(), want) {
				t.Errorf("source calls = %q, want %q", src.calls(), want)
			}
		})
	}
}

// TestClientAuthTokenRequireHeader: the endpoint is refused, like any
// request, without RequireHeader's header, and the header is all it takes.
func TestClientAuthTokenRequireHeader(t *testing.T) {
	up := newUpstream(t, nil)
	src := newKeyedTokens()
	srv := clientAuthTokenProxy(t, up, src, proxy.Config{RequireHeader: "X-Sidecar-Caller"})

	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+clientAuthTokenPath, []byte(`{"customerId":"cust-a"}`), false))
	checkSidecarError(t, resp, body, http.StatusForbidden, "forbidden")
	if strings.Contains(string(body), "tok-") {
		t.Errorf("body = %s, holds a token", body)
	}
	if calls := src.calls(); len(calls) != 0 {
		t.Errorf("source calls = %q, want none without the header", calls)
	}

	req := bodyRequest(t, http.MethodPost, srv.URL+clientAuthTokenPath, []byte(`{"customerId":"cust-a"}`), false)
	req.Header.Set("X-Sidecar-Caller", "app")
	resp, body = do(t, srv.Client(), req)
	checkClientAuthToken(t, resp, body, src.tokenOf("cust-a"))
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
}

// TestClientAuthTokenOnlyWithKeyedTokens: without ClientAuthTokens the path is
// not served locally but forwarded like any other.
func TestClientAuthTokenOnlyWithKeyedTokens(t *testing.T) {
	up := newUpstream(t, nil)
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), ClientAuthTokenPath: clientAuthTokenPath})
	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+clientAuthTokenPath, []byte(`{"customerId":"cust-a"}`), false))
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("response = %d %q, want the upstream's 200 %q", resp.StatusCode, body, "ok")
	}
	if got := up.requests(); len(got) != 1 || got[0].RequestURI != "/api"+clientAuthTokenPath {
		t.Errorf("upstream got %d requests, want 1 for /api%s", len(got), clientAuthTokenPath)
	}
}

// TestClientAuthTokenJuspay serves the endpoint from a real KeyedCache over
// the Juspay source, against the fake Juspay: a known customer gets the
// token Juspay issued, an unknown one 404 unknown_customer with Juspay's
// message, and a wrong API key 503; no answer holds the API key.
func TestClientAuthTokenJuspay(t *testing.T) {
	const apiKey = "key_test_123"
	j, js := juspayServer(t, apiKey, "cust-a")
	up := newUpstream(t, nil)
	srv := clientAuthTokenProxy(t, up, juspayCache(js, apiKey), proxy.Config{})
	ask := func(t *testing.T, srv *proxyWithMetrics, customer string) (*http.Response, []byte) {
		t.Helper()
		return do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+clientAuthTokenPath, []byte(`{"customerId":"`+customer+`"}`), false))
	}

	t.Run("known", func(t *testing.T) {
		resp, body := ask(t, srv, "cust-a")
		issued := j.Tokens()
		if len(issued) != 1 {
			t.Fatalf("Juspay issued %d tokens, want 1", len(issued))
		}
		var a clientAuthTokenAnswer
		if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("response = %d %q (%v), want 200 JSON", resp.StatusCode, body, err)
		}
		if a.ClientAuthToken != issued[0] || !j.Valid("cust-a", a.ClientAuthToken) {
			t.Errorf("clientAuthToken = %q, want the token Juspay issued for cust-a", a.ClientAuthToken)
		}
		exp, err := time.Parse(time.RFC3339Nano, a.AuthExpiry)
		if err != nil || !expiryFormat.MatchString(a.AuthExpiry) || exp.Before(time.Now().Add(14*time.Minute)) || exp.After(time.Now().Add(15*time.Minute)) {
			t.Errorf("authExpiry = %q, want Juspay's expiry 15 minutes on, RFC 3339 UTC with milliseconds", a.AuthExpiry)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control = %q, want %q", got, "no-store")
		}
		// Asked again: the cached token, no second fetch.
		if _, body := ask(t, srv, "cust-a"); !strings.Contains(string(body), issued[0]) || j.Fetches("cust-a") != 1 {
			t.Errorf("second answer = %s after %d fetches, want the same token from 1 fetch", body, j.Fetches("cust-a"))
		}
	})

	t.Run("unknown", func(t *testing.T) {
		resp, body := ask(t, srv, "nobody")
		checkSidecarError(t, resp, body, http.StatusNotFound, "unknown_customer")
		if !strings.Contains(string(body), "Cannot find what you are looking for") {
			t.Errorf("body = %s, want Juspay's message", body)
		}
		checkNoAPIKey(t, body, apiKey)
		if v := toFloat64(t, srv.m.Errors.WithLabelValues("unknown_customer")); v != 1 {
			t.Errorf(`authsidecar_errors_total{reason="unknown_customer"} = %v, want 1`, v)
		}
	})

	t.Run("unknown, Juspay echoing the key", func(t *testing.T) {
		// A Juspay that quotes the credential it was sent in its 404.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{
				"status": "invalid_request_error", "error_code": "object_not_found",
				"error_message": "No customer for key " + apiKey + " (" + r.Header.Get("Authorization") + ")",
			})
		}))
		t.Cleanup(echo.Close)
		srv := clientAuthTokenProxy(t, up, juspayCache(echo, apiKey), proxy.Config{})
		resp, body := ask(t, srv, "nobody")
		checkSidecarError(t, resp, body, http.StatusNotFound, "unknown_customer")
		if !strings.Contains(string(body), "No customer for key") {
			t.Errorf("body = %s, want Juspay's message", body)
		}
		checkNoAPIKey(t, body, apiKey)
	})

	t.Run("wrong API key", func(t *testing.T) {
		srv := clientAuthTokenProxy(t, up, juspayCache(js, "key_wrong_456"), proxy.Config{})
		resp, body := ask(t, srv, "cust-a")
		checkSidecarError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
		checkNoAPIKey(t, body, "key_wrong_456")
	})

	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
}

// checkNoAPIKey fails if body holds key as it is or in its Basic forms.
func checkNoAPIKey(t *testing.T, body []byte, key string) {
	t.Helper()
	for _, form := range []string{key, base64.StdEncoding.EncodeToString([]byte(key + ":")), base64.StdEncoding.EncodeToString([]byte(key))} {
		if strings.Contains(string(body), form) {
			t.Errorf("body = %s, holds the API key (%q)", body, form)
		}
	}
}

// TestClientAuthTokenWithoutKeyedRequests: the endpoint serves a customer's
// token while requests go out with no customer's token (Juspay's server API
// with HTTP Basic): a GET needs no body naming a customer.
func TestClientAuthTokenWithoutKeyedRequests(t *testing.T) {
	up := newUpstream(t, nil)
	src := newKeyedTokens()
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), ClientAuthTokens: src, ClientAuthTokenPath: clientAuthTokenPath, Injector: proxy.None()})
	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+clientAuthTokenPath, []byte(`{"customerId":"cust-a"}`), false))
	checkClientAuthToken(t, resp, body, src.tokenOf("cust-a"))
	if resp, body := get(t, srv, "/orders/1"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /orders/1 = %d %q, want the upstream's 200: requests need no customer", resp.StatusCode, body)
	}
}
