package fake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testJuspayKey      = "6D4C3B2A1F0E9D8C7B6A5F4E3D2C1B0A"
	testJuspayMerchant = "stock"
)

// juspayGet asks srv for customer id (path-escaped) with the given headers
// (a nil value: not sent) and returns the status and the decoded body.
func juspayGet(t *testing.T, srv *httptest.Server, id string, withToken bool, headers map[string]string) (int, map[string]any) {
	t.Helper()
	u := srv.URL + "/customers/" + url.PathEscape(id)
	if withToken {
		u += "?options.get_client_auth_token=true"
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("answer is not a JSON object: %v", err)
	}
	return resp.StatusCode, body
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// goodHeaders are the headers Juspay documents for customer id.
func goodHeaders(id string) map[string]string {
	return map[string]string{"Authorization": basic(testJuspayKey, ""), "x-merchantid": testJuspayMerchant, "x-routing-id": id}
}

func without(h map[string]string, name string) map[string]string {
	delete(h, name)
	return h
}

func with(h map[string]string, name, value string) map[string]string {
	h[name] = value
	return h
}

func TestJuspayCustomers(t *testing.T) {
	known := []string{"cust-0001", "a/b", "a b", "ünïcødé-客户"}
	tests := []struct {
		name       string
		id         string
		withToken  bool
		headers    map[string]string
		wantStatus int
		wantCode   string // error_code of an error answer
		wantInfo   string // error_info.code of an error answer
	}{
		{"token", "cust-0001", true, goodHeaders("cust-0001"), 200, "", ""},
		{"no token asked", "cust-0001", false, goodHeaders("cust-0001"), 200, "", ""},
		{"no x-routing-id", "cust-0001", true, without(goodHeaders("cust-0001"), "x-routing-id"), 200, "", ""},
		{"slash in id", "a/b", true, goodHeaders("a/b"), 200, "", ""},
		{"space in id", "a b", true, goodHeaders("a b"), 200, "", ""},
		{"unicode id", "ünïcødé-客户", true, goodHeaders("ünïcødé-客户"), 200, "", ""},
		{"unknown customer", "nobody-01", true, goodHeaders("nobody-01"), 404, "object_not_found", "RESOURCE_NOT_FOUND"},
		{"no Authorization", "cust-0001", true, without(goodHeaders("cust-0001"), "Authorization"), 401, "access_denied", "UNAUTHORIZED"},
		{"wrong key", "cust-0001", true, with(goodHeaders("cust-0001"), "Authorization", basic("wrong", "")), 401, "access_denied", "UNAUTHORIZED"},
		{"password not empty", "cust-0001", true, with(goodHeaders("cust-0001"), "Authorization", basic(testJuspayKey, "x")), 401, "access_denied", "UNAUTHORIZED"},
		{"Bearer", "cust-0001", true, with(goodHeaders("cust-0001"), "Authorization", "Bearer "+testJuspayKey), 401, "access_denied", "UNAUTHORIZED"},
		{"no x-merchantid", "cust-0001", true, without(goodHeaders("cust-0001"), "x-merchantid"), 400, "Invalid Request", "MISSING_MANDATORY_PARAMETER"},
		{"other merchant", "cust-0001", true, with(goodHeaders("cust-0001"), "x-merchantid", "other"), 401, "access_denied", "UNAUTHORIZED"},
		{"x-routing-id of another customer", "cust-0001", true, with(goodHeaders("cust-0001"), "x-routing-id", "cust-0002"), 400, "Invalid Request", "INVALID_INPUT"},
		{"unknown customer, wrong key", "nobody-01", true, with(goodHeaders("nobody-01"), "Authorization", basic("wrong", "")), 401, "access_denied", "UNAUTHORIZED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJuspay(testJuspayKey, testJuspayMerchant, 0)
			for _, id := range known {
				j.AddCustomer(id)
			}
			srv := httptest.NewServer(j.Handler())
			defer srv.Close()
			before := time.Now()
			status, body := juspayGet(t, srv, tc.id, tc.withToken, tc.headers)
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%v), want %d", status, body, tc.wantStatus)
			}
			if tc.withToken {
				if got := j.Fetches(tc.id); got != 1 {
					t.Errorf("Fetches(%q) = %d, want 1", tc.id, got)
				}
			}
			if status != 200 {
				info, _ := body["error_info"].(map[string]any)
				if body["error_code"] != tc.wantCode || info["code"] != tc.wantInfo || info["developer_message"] == "" {
					t.Errorf("answer = %v, want error_code %q and error_info.code %q", body, tc.wantCode, tc.wantInfo)
				}
				if len(j.Tokens()) != 0 {
					t.Errorf("Tokens() = %q after a refusal, want none", j.Tokens())
				}
				return
			}
			if body["object"] != "customer" || body["object_reference_id"] != tc.id || !strings.HasPrefix(body["id"].(string), "cst_") {
				t.Errorf("customer = %v, want object customer, object_reference_id %q and a cst_ id", body, tc.id)
			}
			jp, hasJuspay := body["juspay"].(map[string]any)
			if !tc.withToken {
				if hasJuspay || len(j.Tokens()) != 0 {
					t.Errorf("answer = %v without options.get_client_auth_token, want no juspay object", body)
				}
				return
			}
			tok, _ := jp["client_auth_token"].(string)
			exp, err := time.Parse(time.RFC3339, fmt.Sprint(jp["client_auth_token_expiry"]))
			if !strings.HasPrefix(tok, "tkn_") || err != nil {
				t.Fatalf("juspay = %v, want a tkn_ token and an RFC 3339 expiry", jp)
			}
			if min, max := before.Add(15*time.Minute-time.Second), time.Now().Add(15*time.Minute); exp.Before(min) || exp.After(max) {
				t.Errorf("client_auth_token_expiry = %s, want 15 minutes from now", exp)
			}
			if !j.Valid(tc.id, tok) || !j.Valid(body["id"].(string), tok) {
				t.Errorf("Valid(%q, token) = false, want true (by either id)", tc.id)
			}
			if got := j.Tokens(); len(got) != 1 || got[0] != tok {
				t.Errorf("Tokens() = %q, want [%q]", got, tok)
			}
		})
	}
}

func TestJuspayCustomerByJuspayID(t *testing.T) {
	j := NewJuspay(testJuspayKey, testJuspayMerchant, time.Minute)
	j.AddCustomer("cust-0001")
	srv := httptest.NewServer(j.Handler())
	defer srv.Close()
	_, c := juspayGet(t, srv, "cust-0001", false, goodHeaders("cust-0001"))
	cst := c["id"].(string)
	status, body := juspayGet(t, srv, cst, true, goodHeaders(cst))
	if status != 200 || body["object_reference_id"] != "cust-0001" {
		t.Fatalf("GET /customers/%s = %d %v, want customer cust-0001", cst, status, body)
	}
	tok := body["juspay"].(map[string]any)["client_auth_token"].(string)
	if !j.Valid("cust-0001", tok) {
		t.Errorf("Valid(cust-0001, token fetched by %s) = false, want true", cst)
	}
}

// fetchToken asks srv for a token for id and returns it.
func fetchToken(t *testing.T, srv *httptest.Server, id string) string {
	t.Helper()
	status, body := juspayGet(t, srv, id, true, goodHeaders(id))
	if status != 200 {
		t.Fatalf("GET /customers/%s = %d %v, want 200", id, status, body)
	}
	return body["juspay"].(map[string]any)["client_auth_token"].(string)
}

func TestJuspayTokenLife(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	j := NewJuspay(testJuspayKey, testJuspayMerchant, 15*time.Minute)
	j.SetClock(clock)
	j.AddCustomer("alice-0001")
	j.AddCustomer("bob-00001")
	srv := httptest.NewServer(j.Handler())
	defer srv.Close()

	a1, b1 := fetchToken(t, srv, "alice-0001"), fetchToken(t, srv, "bob-00001")
	if a1 == b1 {
		t.Fatalf("alice and bob got the same token %q", a1)
	}
	if j.Valid("bob-00001", a1) || j.Valid("nobody", a1) || j.Valid("alice-0001", "tkn_forged") {
		t.Error("Valid() = true for another customer's, an unknown customer's or a forged token, want false")
	}

	j.Revoke("alice-0001")
	if j.Valid("alice-0001", a1) {
		t.Error("Valid(alice, revoked token) = true, want false")
	}
	if !j.Valid("bob-00001", b1) {
		t.Error("Valid(bob) = false after alice's revocation, want true")
	}
	a2 := fetchToken(t, srv, "alice-0001")
	if !j.Valid("alice-0001", a2) {
		t.Error("Valid(alice, token issued after the revocation) = false, want true")
	}

	// The expiry is in whole seconds, truncated: the token is valid until
	// the second it names, and no longer.
	advance(15*time.Minute - 600*time.Millisecond - time.Nanosecond)
	if !j.Valid("bob-00001", b1) {
		t.Error("Valid(bob) = false just before the expiry given, want true")
	}
	advance(time.Nanosecond)
	if j.Valid("bob-00001", b1) || j.Valid("alice-0001", a2) {
		t.Error("Valid() = true at the expiry given, want false")
	}

	if got := j.Fetches("alice-0001"); got != 2 {
		t.Errorf("Fetches(alice) = %d, want 2", got)
	}
	if got := j.TotalFetches(); got != 3 {
		t.Errorf("TotalFetches() = %d, want 3", got)
	}
	if got := j.Tokens(); len(got) != 3 || got[0] != a1 || got[1] != b1 || got[2] != a2 {
		t.Errorf("Tokens() = %q, want [%q %q %q]", got, a1, b1, a2)
	}
}

func TestJuspayUpstream(t *testing.T) {
	j := NewJuspay(testJuspayKey, testJuspayMerchant, 0)
	j.AddCustomer("alice-0001")
	j.AddCustomer("bob-00001")
	api := httptest.NewServer(j.Handler())
	defer api.Close()
	alice := fetchToken(t, api, "alice-0001")
	up := httptest.NewServer(j.UpstreamHandler())
	defer up.Close()

	body := func(customer, token string) string {
		return fmt.Sprintf(`{"requestId":"abcd-12345","service":"in.juspay.hyperapi","payload":{"action":"initiate","customerId":%q,"clientAuthToken":%q}}`, customer, token)
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantSeen   *SeenCall // nil: not recorded
	}{
		{"valid", body("alice-0001", alice), 200, &SeenCall{"alice-0001", alice, true}},
		{"another customer's token", body("bob-00001", alice), 401, &SeenCall{"bob-00001", alice, false}},
		{"forged token", body("alice-0001", "tkn_forged"), 401, &SeenCall{"alice-0001", "tkn_forged", false}},
		{"no token", `{"payload":{"customerId":"alice-0001"}}`, 401, &SeenCall{"alice-0001", "", false}},
		{"no payload", `{}`, 401, &SeenCall{}},
		{"not JSON", `customerId=alice`, 400, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(j.Seen())
			resp, err := http.Post(up.URL+"/v2/anything", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			var answer map[string]any
			json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d (%v), want %d", resp.StatusCode, answer, tc.wantStatus)
			}
			if tc.wantStatus == 401 && answer["error_code"] != "access_denied" {
				t.Errorf("401 answer = %v, want Juspay's access_denied", answer)
			}
			seen := j.Seen()[n:]
			switch {
			case tc.wantSeen == nil && len(seen) != 0:
				t.Errorf("Seen() gained %v, want nothing", seen)
			case tc.wantSeen != nil && (len(seen) != 1 || seen[0] != *tc.wantSeen):
				t.Errorf("Seen() gained %v, want [%v]", seen, *tc.wantSeen)
			}
		})
	}
}

// TestJuspayConcurrent: many customers fetched, checked and revoked at
// once, for the race detector. Odd customers revoke their own tokens, which
// makes the token each fetched invalid; even customers' tokens stay valid.
func TestJuspayConcurrent(t *testing.T) {
	j := NewJuspay(testJuspayKey, testJuspayMerchant, 0)
	srv := httptest.NewServer(j.Handler())
	defer srv.Close()
	const customers, each = 8, 5
	for c := range customers {
		j.AddCustomer(fmt.Sprintf("customer-%d", c))
	}
	var wg sync.WaitGroup
	errs := make(chan error, customers*each)
	for c := range customers {
		for range each {
			wg.Go(func() {
				id := fmt.Sprintf("customer-%d", c)
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/customers/"+id+"?options.get_client_auth_token=true", nil)
				for k, v := range goodHeaders(id) {
					req.Header.Set(k, v)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				var body struct {
					Juspay struct {
						Token string `json:"client_auth_token"`
					} `json:"juspay"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
					errs <- fmt.Errorf("customer %s: %v", id, err)
					return
				}
				if c%2 == 1 {
					j.Revoke(id)
				}
				if got, want := j.Valid(id, body.Juspay.Token), c%2 == 0; got != want {
					errs <- fmt.Errorf("Valid(%s, its token) = %t, want %t", id, got, want)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := j.TotalFetches(); got != customers*each {
		t.Errorf("TotalFetches() = %d, want %d", got, customers*each)
	}
	if got := len(j.Tokens()); got != customers*each {
		t.Errorf("len(Tokens()) = %d, want %d", got, customers*each)
	}
	for c := range customers {
		if got := j.Fetches(fmt.Sprintf("customer-%d", c)); got != each {
			t.Errorf("Fetches(customer-%d) = %d, want %d", c, got, each)
		}
	}
}
