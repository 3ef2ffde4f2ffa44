package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/tokens"
)

// keyedTokens is a fake KeyedTokenSource: fetch n of key k issues
// "tok-k-n", valid for an hour; Token returns k's current token, fetching
// one if k has none, or fails with errs[k] when set. Invalidate of k's
// current token drops it. Every call is recorded, as "Token k",
// "Invalidate k tok-k-1", "Accepted k tok-k-1", "Replayed k tok-k-2 true".
type keyedTokens struct {
	errs map[string]error // set before use

	mu      sync.Mutex
	current map[string]*tokens.Token
	issued  map[string]int
	log     []string
}

func newKeyedTokens() *keyedTokens {
	return &keyedTokens{errs: map[string]error{}, current: map[string]*tokens.Token{}, issued: map[string]int{}}
}

func (s *keyedTokens) Token(_ context.Context, key string) (*tokens.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, "Token "+key)
	if err := s.errs[key]; err != nil {
		return nil, err
	}
	if tok := s.current[key]; tok != nil {
		return tok, nil
	}
	s.issued[key]++
	tok := &tokens.Token{Value: fmt.Sprintf("tok-%s-%d", key, s.issued[key]), Expiry: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	s.current[key] = tok
	return tok, nil
}

func (s *keyedTokens) Invalidate(key string, tok *tokens.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, "Invalidate "+key+" "+tok.Value)
	if s.current[key] == tok {
		delete(s.current, key)
	}
	return true
}

func (s *keyedTokens) Accepted(key string, tok *tokens.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, "Accepted "+key+" "+tok.Value)
}

func (s *keyedTokens) Replayed(key string, tok *tokens.Token, accepted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, fmt.Sprintf("Replayed %s %s %t", key, tok.Value, accepted))
}

// calls returns every call so far, oldest first.
func (s *keyedTokens) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// tokenOf is key's current token, nil if none.
func (s *keyedTokens) tokenOf(key string) *tokens.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[key]
}

// keyedProxy starts a json-body proxy writing payload.clientAuthToken and
// payload.authExpiry, with src as its KeyedTokens.
func keyedProxy(t *testing.T, up *bodyUpstream, src proxy.KeyedTokenSource, customerField string, maxBody int64) *proxyWithMetrics {
	t.Helper()
	reg, m := newMetrics()
	srv := startProxy(t, proxy.Config{
		Upstream:      up.base(t, "/api"),
		KeyedTokens:   src,
		CustomerField: customerField,
		Injector:      proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"),
		MaxReplayBody: maxBody,
		Metrics:       m,
	})
	return &proxyWithMetrics{Server: srv, reg: reg, m: m}
}

// checkCustomerBody checks that an upstream body is want with key's token
// and its expiry written at payload.clientAuthToken and payload.authExpiry
// ({{tok}} and {{exp}} in want).
func checkCustomerBody(t *testing.T, got []byte, want string, tok *tokens.Token) {
	t.Helper()
	exp := tok.Expiry.UTC().Format("2006-01-02T15:04:05.000Z")
	want = strings.NewReplacer("{{tok}}", tok.Value, "{{exp}}", exp).Replace(want)
	if g, w := decodeJSON(t, got), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("upstream body = %s\nwant %s", got, want)
	}
	if gotExp, _ := at(decodeJSON(t, got), "payload.authExpiry").(string); !expiryFormat.MatchString(gotExp) {
		t.Errorf("payload.authExpiry = %q, want RFC 3339 UTC with milliseconds", gotExp)
	}
}

func TestKeyedJSONBody(t *testing.T) {
	const limit = 1 << 10
	unknown := fmt.Errorf("%w: %w", tokens.ErrNoToken, &tokens.UnknownCustomerError{Message: "Cannot find what you are looking for"})
	tests := []struct {
		name  string
		field string // Config.CustomerField
		body  string
		errs  map[string]error // the source's errors by key
		// On success: the key whose token the body carries, and the body
		// the upstream gets ({{tok}}, {{exp}} as in checkCustomerBody).
		key  string
		want string
		// On refusal: the status and error code the app gets, the
		// rejected_bodies reason if any, and words of the message.
		status            int
		code, reason, msg string
	}{
		{
			name: "payload.customerId",
			body: `{"requestId":"r-1","payload":{"action":"initiate","customerId":"cust-a","amount":12345678901234567890,"fee":1.10}}`,
			key:  "cust-a",
			want: `{"requestId":"r-1","payload":{"action":"initiate","customerId":"cust-a","amount":12345678901234567890,"fee":1.10,"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "payload.customer_id",
			body: `{"payload":{"action":"process","customer_id":"cust-b"}}`,
			key:  "cust-b",
			want: `{"payload":{"action":"process","customer_id":"cust-b","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "customerId before customer_id",
			body: `{"payload":{"customer_id":"cust-b","customerId":"cust-a"}}`,
			key:  "cust-a",
			want: `{"payload":{"customer_id":"cust-b","customerId":"cust-a","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "empty customerId: customer_id",
			body: `{"payload":{"customerId":"","customer_id":"cust-b"}}`,
			key:  "cust-b",
			want: `{"payload":{"customerId":"","customer_id":"cust-b","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "number id, as written",
			body: `{"payload":{"customerId":12345678901234567890}}`,
			key:  "12345678901234567890",
			want: `{"payload":{"customerId":12345678901234567890,"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name:  "CustomerField path",
			field: "order.customer.id",
			body:  `{"order":{"customer":{"id":"cust-c"}},"payload":{"customerId":"cust-a"}}`,
			key:   "cust-c",
			want:  `{"order":{"customer":{"id":"cust-c"}},"payload":{"customerId":"cust-a","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name:  "CustomerField path to a number",
			field: "customer",
			body:  `{"customer":42}`,
			key:   "42",
			want:  `{"customer":42,"payload":{"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "customer id too long", body: `{"payload":{"customerId":"` + strings.Repeat("c", 257) + `"}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "over 256 bytes",
		},
		{
			name: "customer id a path step", body: `{"payload":{"customerId":".."}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "may not be",
		},
		{
			name: "customer id with a control character", body: `{"payload":{"customerId":"a\tb"}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "control character",
		},
		{
			name: "no customer id", body: `{"payload":{"action":"initiate"}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "customerId",
		},
		{
			name: "no payload", body: `{"customerId":"cust-a"}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "customerId",
		},
		{
			name: "empty customer ids", body: `{"payload":{"customerId":"","customer_id":""}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "customerId",
		},
		{
			name: "customer id neither string nor number", body: `{"payload":{"customerId":{"id":"cust-a"},"customer_id":true}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "customerId",
		},
		{
			name: "nothing at CustomerField", field: "order.customer.id", body: `{"order":"cust-c","payload":{"customerId":"cust-a"}}`,
			status: http.StatusBadRequest, code: "no_customer_id", reason: "no_customer_id", msg: "order.customer.id",
		},
		{
			name: "not JSON", body: `customerId=cust-a`,
			status: http.StatusBadRequest, code: "bad_request", reason: "not_json_object", msg: "JSON object",
		},
		{
			name: "body too large", body: `{"payload":{"customerId":"cust-a","blob":"` + strings.Repeat("x", limit) + `"}}`,
			status: http.StatusRequestEntityTooLarge, code: "body_too_large", reason: "too_large", msg: "over",
		},
		{
			name: "unknown customer", body: `{"payload":{"customerId":"nobody"}}`, errs: map[string]error{"nobody": unknown},
			status: http.StatusNotFound, code: "unknown_customer", msg: "Cannot find what you are looking for",
		},
		{
			name: "no token", body: `{"payload":{"customerId":"cust-a"}}`, errs: map[string]error{"cust-a": fmt.Errorf("%w: provider down", tokens.ErrNoToken)},
			status: http.StatusServiceUnavailable, code: "token_unavailable", msg: "provider down",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			src := newKeyedTokens()
			src.errs = tc.errs
			srv := keyedProxy(t, up, src, tc.field, limit)
			req := bodyRequest(t, http.MethodPost, srv.URL+"/v4/sdk", []byte(tc.body), false)
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, srv.Client(), req)
			got := up.requests()

			if tc.status != 0 {
				checkSidecarError(t, resp, body, tc.status, tc.code)
				if !strings.Contains(string(body), tc.msg) {
					t.Errorf("body = %s, want a message containing %q", body, tc.msg)
				}
				if len(got) != 0 {
					t.Errorf("upstream got %d requests, want none", len(got))
				}
				if tc.reason != "" {
					if v := toFloat64(t, srv.m.RejectedBodies.WithLabelValues(tc.reason)); v != 1 {
						t.Errorf("authsidecar_rejected_bodies_total{reason=%q} = %v, want 1", tc.reason, v)
					}
					if calls := src.calls(); len(calls) != 0 {
						t.Errorf("source calls = %q, want none for a refused body", calls)
					}
				}
				return
			}

			if resp.StatusCode != http.StatusOK {
				t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
			}
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			tok := src.tokenOf(tc.key)
			if tok == nil {
				t.Fatalf("no token issued for %q; source calls = %q", tc.key, src.calls())
			}
			checkCustomerBody(t, got[0].Body, tc.want, tok)
			if want := []string{"Token " + tc.key, "Accepted " + tc.key + " " + tok.Value}; !slices.Equal(src.calls(), want) {
				t.Errorf("source calls = %q, want %q", src.calls(), want)
			}
			up.checkLengths(t)
		})
	}
}

// TestKeyedJSONBodyCustomersInterleaved sends several customers' bodies at
// once through one proxy: each reaches the upstream with its own customer's
// token.
func TestKeyedJSONBodyCustomersInterleaved(t *testing.T) {
	up := newBodyUpstream(t, nil)
	src := newKeyedTokens()
	srv := keyedProxy(t, up, src, "", 64<<10)
	customers := []string{"cust-a", "cust-b", "cust-c", "cust-d"}
	errs := make(chan error, 10*len(customers))
	var wg sync.WaitGroup
	for range 10 {
		for _, c := range customers {
			wg.Go(func() {
				status, body, err := postJSON(srv.Client(), srv.URL+"/v4/sdk", initiateFor(c))
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("customer %s: response = %d %q, want 200", c, status, body)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := up.requests()
	if len(got) != 10*len(customers) {
		t.Fatalf("upstream got %d requests, want %d", len(got), 10*len(customers))
	}
	perCustomer := map[string]int{}
	for _, r := range got {
		doc := decodeJSON(t, r.Body)
		c, _ := at(doc, "payload.customerId").(string)
		perCustomer[c]++
		tok := src.tokenOf(c)
		if tok == nil {
			t.Fatalf("upstream body %s names customer %q, who has no token", r.Body, c)
		}
		if v := at(doc, "payload.clientAuthToken"); v != tok.Value {
			t.Errorf("customer %s's body carries token %v, want %q", c, v, tok.Value)
		}
		if v := at(doc, "payload.authExpiry"); v != tok.Expiry.UTC().Format("2006-01-02T15:04:05.000Z") {
			t.Errorf("customer %s's body carries authExpiry %v, want its token's", c, v)
		}
	}
	for _, c := range customers {
		if perCustomer[c] != 10 {
			t.Errorf("upstream got %d bodies of %s, want 10", perCustomer[c], c)
		}
	}
}

// initiateFor is an SDK initiate body for customer, as test/e2e's
// juspayInitiate.
func initiateFor(customer string) []byte {
	return []byte(`{"payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"` +
		customer + `","amount":12345678901234567890,"fee":1.10}}`)
}

// postJSON sends body to url with client, without failing the test, so that it
// may run in goroutines of its own.
func postJSON(client *http.Client, url string, body []byte) (int, []byte, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestKeyedReplayIsPerCustomer has the upstream reject customer A's first
// token once: A's token alone is invalidated and A's request replayed with
// A's fresh token; B's token and calls are untouched.
func TestKeyedReplayIsPerCustomer(t *testing.T) {
	up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if bytes.Contains(got.Body, []byte(`"tok-A-1"`)) {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"status":"error","error_code":"access_denied"}`)
			return
		}
		io.WriteString(w, "accepted")
	})
	src := newKeyedTokens()
	srv := keyedProxy(t, up, src, "", 64<<10)

	for _, c := range []string{"A", "B", "A"} {
		status, body, err := postJSON(srv.Client(), srv.URL+"/v4/sdk", initiateFor(c))
		if err != nil || status != http.StatusOK || string(body) != "accepted" {
			t.Fatalf("customer %s: response = %d %q (%v), want 200 %q", c, status, body, err, "accepted")
		}
	}
	want := []string{
		"Token A", "Invalidate A tok-A-1", "Token A", "Replayed A tok-A-2 true",
		"Token B", "Accepted B tok-B-1",
		"Token A", "Accepted A tok-A-2",
	}
	if got := src.calls(); !slices.Equal(got, want) {
		t.Errorf("source calls =\n%q\nwant\n%q", got, want)
	}
	got := up.requests()
	wantTokens := []string{"tok-A-1", "tok-A-2", "tok-B-1", "tok-A-2"}
	if len(got) != len(wantTokens) {
		t.Fatalf("upstream got %d requests, want %d", len(got), len(wantTokens))
	}
	for i, r := range got {
		doc := decodeJSON(t, r.Body)
		if v := at(doc, "payload.clientAuthToken"); v != wantTokens[i] {
			t.Errorf("request %d carries %v, want %q", i+1, v, wantTokens[i])
		}
		if !bytes.Contains(r.Body, []byte(`"amount":12345678901234567890`)) || !bytes.Contains(r.Body, []byte(`"fee":1.10`)) {
			t.Errorf("request %d body = %s, want the app's numbers as written", i+1, r.Body)
		}
	}
	up.checkLengths(t)
	if v := toFloat64(t, srv.m.Replays.WithLabelValues("success")); v != 1 {
		t.Errorf(`authsidecar_replays_total{result="success"} = %v, want 1`, v)
	}
}

// TestKeyedReplayRejectedAgain has the upstream reject every token of A:
// the replay's rejection is reported for A's fresh token, and B is
// untouched.
func TestKeyedReplayRejectedAgain(t *testing.T) {
	up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if bytes.Contains(got.Body, []byte(`"tok-A-`)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "accepted")
	})
	src := newKeyedTokens()
	srv := keyedProxy(t, up, src, "", 64<<10)
	if status, body, err := postJSON(srv.Client(), srv.URL+"/v4/sdk", initiateFor("A")); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("customer A: response = %d %q (%v), want the upstream's 401", status, body, err)
	}
	if status, body, err := postJSON(srv.Client(), srv.URL+"/v4/sdk", initiateFor("B")); err != nil || status != http.StatusOK {
		t.Fatalf("customer B: response = %d %q (%v), want 200", status, body, err)
	}
	want := []string{"Token A", "Invalidate A tok-A-1", "Token A", "Replayed A tok-A-2 false", "Token B", "Accepted B tok-B-1"}
	if got := src.calls(); !slices.Equal(got, want) {
		t.Errorf("source calls =\n%q\nwant\n%q", got, want)
	}
}

// juspayServer serves a fake Juspay: the Customers API under /customers/
// and, everywhere else, the API that takes a clientAuthToken in a body.
func juspayServer(t *testing.T, apiKey string, customers ...string) (*fake.Juspay, *httptest.Server) {
	t.Helper()
	j := fake.NewJuspay(apiKey, "stock", 0)
	for _, c := range customers {
		j.AddCustomer(c)
	}
	mux := http.NewServeMux()
	mux.Handle("/customers/", j.Handler())
	mux.Handle("/", j.UpstreamHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return j, srv
}

// juspayCache is a real KeyedCache over Juspay's Customers API at srv.
func juspayCache(srv *httptest.Server, apiKey string) *tokens.KeyedCache {
	return tokens.NewKeyedCache(tokens.NewJuspayCustomerSource(tokens.JuspayConfig{
		URL: srv.URL, APIKey: tokens.Literal(apiKey), MerchantID: "stock", Client: srv.Client(),
	}), tokens.KeyedCacheOptions{})
}

// TestKeyedJuspayCustomers runs a real KeyedCache over the Juspay source
// against the fake Juspay: 3 customers × 20 concurrent requests cost 3
// token fetches, and each body carries its own customer's token; a revoked
// token costs one fetch for its customer only.
func TestKeyedJuspayCustomers(t *testing.T) {
	customers := []string{"cust-a", "cust-b", "cust-c"}
	j, js := juspayServer(t, "key_test_123", customers...)
	upstream, err := url.Parse(js.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := startProxy(t, proxy.Config{
		Upstream:      upstream,
		KeyedTokens:   juspayCache(js, "key_test_123"),
		Injector:      proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"),
		MaxReplayBody: 64 << 10,
	})

	burst := func() {
		t.Helper()
		type result struct {
			customer string
			status   int
			body     []byte
			err      error
		}
		results := make(chan result, 20*len(customers))
		var wg sync.WaitGroup
		for _, c := range customers {
			for range 20 {
				wg.Go(func() {
					status, body, err := postJSON(srv.Client(), srv.URL+"/v4/sdk", initiateFor(c))
					results <- result{c, status, body, err}
				})
			}
		}
		wg.Wait()
		close(results)
		for r := range results {
			var answer struct{ Status, CustomerID string }
			if r.err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &answer) != nil || answer.CustomerID != r.customer {
				t.Errorf("customer %s: response = %d %q (%v), want 200 for that customer", r.customer, r.status, r.body, r.err)
			}
		}
	}

	burst()
	for _, c := range customers {
		if n := j.Fetches(c); n != 1 {
			t.Errorf("token fetches for %s = %d, want 1", c, n)
		}
	}
	seen := j.Seen()
	if len(seen) != 20*len(customers) {
		t.Fatalf("Juspay got %d calls, want %d", len(seen), 20*len(customers))
	}
	tokenOf := map[string]string{}
	for _, s := range seen {
		if !s.OK {
			t.Errorf("Juspay refused %s's call with token %.8q…", s.CustomerID, s.Token)
		}
		if prev, ok := tokenOf[s.CustomerID]; ok && prev != s.Token {
			t.Errorf("%s's calls carried two tokens, want the one fetched", s.CustomerID)
		}
		tokenOf[s.CustomerID] = s.Token
	}
	if len(tokenOf) != len(customers) || tokenOf["cust-a"] == tokenOf["cust-b"] || tokenOf["cust-b"] == tokenOf["cust-c"] || tokenOf["cust-a"] == tokenOf["cust-c"] {
		t.Errorf("customers' tokens are not distinct (%d customers seen)", len(tokenOf))
	}

	j.Revoke("cust-b")
	burst()
	want := map[string]int{"cust-a": 1, "cust-b": 2, "cust-c": 1}
	for _, c := range customers {
		if n := j.Fetches(c); n != want[c] {
			t.Errorf("token fetches for %s after cust-b's revocation = %d, want %d", c, n, want[c])
		}
	}
	if n := j.TotalFetches(); n != 4 {
		t.Errorf("token fetches in all = %d, want 4", n)
	}
	for _, s := range j.Seen()[len(seen):] {
		if !s.OK && s.CustomerID != "cust-b" {
			t.Errorf("Juspay refused %s's call after cust-b's revocation, want only cust-b's revoked token refused", s.CustomerID)
		}
	}
}
