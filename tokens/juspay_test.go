package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

const (
	// juspayKey is shaped like Juspay's keys, with characters that JSON,
	// URL and HTML escaping each change, so that every echoed form differs.
	juspayKey      = `1D6A4C3B2+F0E/9D8"<&>=7B6A`
	juspayMerchant = "stock"
)

// juspayRequest is what the fake Juspay's front saw of one request.
type juspayRequest struct {
	RequestURI, Accept, MerchantID, RoutingID, Authorization string
}

// juspayServer is the fake Juspay on a real socket, behind a front that
// records each request.
type juspayServer struct {
	*fake.Juspay
	srv *httptest.Server

	mu   sync.Mutex
	reqs []juspayRequest
}

func newJuspayServer(t *testing.T, ttl time.Duration, customers ...string) *juspayServer {
	t.Helper()
	s := &juspayServer{Juspay: fake.NewJuspay(juspayKey, juspayMerchant, ttl)}
	for _, c := range customers {
		s.AddCustomer(c)
	}
	h := s.Handler()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, juspayRequest{r.RequestURI, r.Header.Get("Accept"), r.Header.Get("x-merchantid"),
			r.Header.Get("x-routing-id"), r.Header.Get("Authorization")})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *juspayServer) requests() []juspayRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]juspayRequest(nil), s.reqs...)
}

// source returns a source for the server with key; a nil Client, so that
// http.DefaultClient is used.
func (s *juspayServer) source(key Secret) KeyedSource {
	return NewJuspayCustomerSource(JuspayConfig{URL: s.srv.URL + "/", APIKey: key, MerchantID: juspayMerchant})
}

// juspayAnswer serves j in memory, for the endpoints of a bubble.
func juspayAnswer(j *fake.Juspay) answer {
	h := j.Handler()
	return func(w http.ResponseWriter, r *http.Request, n int) { h.ServeHTTP(w, r) }
}

func newJuspayTestSource(e *endpoint) KeyedSource {
	return NewJuspayCustomerSource(JuspayConfig{URL: e.base, APIKey: Literal(juspayKey), MerchantID: juspayMerchant, Client: e.client()})
}

// TestJuspayCustomerSource: a token per customer, with the fake's expiry to
// the second, asked for as Juspay documents it.
func TestJuspayCustomerSource(t *testing.T) {
	bubble(t, func(t *testing.T) {
		j := fake.NewJuspay(juspayKey, juspayMerchant, 10*time.Minute)
		j.AddCustomer("cust-0001")
		j.AddCustomer("cust-0002")
		e := newEndpoint(t, juspayAnswer(j))
		src := newJuspayTestSource(e)

		tok1, err := src.Token(context.Background(), "cust-0001")
		if err != nil {
			t.Fatalf("Token(cust-0001) error = %v", err)
		}
		if !strings.HasPrefix(tok1.Value, "tkn_") || !j.Valid("cust-0001", tok1.Value) {
			t.Errorf("Token(cust-0001) = %q, want a tkn_ token valid for cust-0001", tok1.Value)
		}
		if want := tezpayEpoch.Add(10 * time.Minute); !tok1.Expiry.Equal(want) {
			t.Errorf("Token(cust-0001).Expiry = %v, want %v", tok1.Expiry, want)
		}
		tok2, err := src.Token(context.Background(), "cust-0002")
		if err != nil {
			t.Fatalf("Token(cust-0002) error = %v", err)
		}
		if tok2.Value == tok1.Value || j.Valid("cust-0001", tok2.Value) || !j.Valid("cust-0002", tok2.Value) {
			t.Errorf("Token(cust-0002) = %q, want a token of cust-0002's own", tok2.Value)
		}
		if j.Fetches("cust-0001") != 1 || j.Fetches("cust-0002") != 1 || j.TotalFetches() != 2 {
			t.Errorf("Fetches = %d, %d of %d; want 1, 1 of 2", j.Fetches("cust-0001"), j.Fetches("cust-0002"), j.TotalFetches())
		}
		reqs := e.seen()
		wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(juspayKey+":"))
		if r := reqs[0]; r.Method != http.MethodGet || r.Path != "/customers/cust-0001" || r.Accept != "application/json" || r.Authorization != wantAuth || len(r.Body) != 0 {
			t.Errorf("request = %+v, want GET /customers/cust-0001, Accept application/json, %s and no body", r, wantAuth)
		}
	})
}

// TestJuspayCustomerIDs: odd customer ids are one path segment, escaped, and
// the x-routing-id as they are; the fake finds each and checks the routing
// id against the path.
func TestJuspayCustomerIDs(t *testing.T) {
	tests := []struct {
		id      string
		wantURI string
	}{
		{"cust-0001", "/customers/cust-0001?options.get_client_auth_token=true"},
		{"a/b", "/customers/a%2Fb?options.get_client_auth_token=true"},
		{"a b", "/customers/a%20b?options.get_client_auth_token=true"},
		{"ünïcødé-客户", "/customers/%C3%BCn%C3%AFc%C3%B8d%C3%A9-%E5%AE%A2%E6%88%B7?options.get_client_auth_token=true"},
		{"a?b#c", "/customers/a%3Fb%23c?options.get_client_auth_token=true"},
		{"a%2Fb", "/customers/a%252Fb?options.get_client_auth_token=true"},
		{"user@example.com", "/customers/user@example.com?options.get_client_auth_token=true"},
		{"...", "/customers/...?options.get_client_auth_token=true"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			s := newJuspayServer(t, 0, tc.id)
			tok, err := s.source(Literal(juspayKey)).Token(context.Background(), tc.id)
			if err != nil {
				t.Fatalf("Token(%q) error = %v", tc.id, err)
			}
			if !s.Valid(tc.id, tok.Value) {
				t.Errorf("Token(%q) = %q, not valid for the customer", tc.id, tok.Value)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("Juspay got %d requests, want 1", len(reqs))
			}
			want := juspayRequest{tc.wantURI, "application/json", juspayMerchant, tc.id, "Basic " + base64.StdEncoding.EncodeToString([]byte(juspayKey+":"))}
			if reqs[0] != want {
				t.Errorf("request = %+v, want %+v", reqs[0], want)
			}
		})
	}
}

// TestJuspayCustomerIDsRefused: ids that are no path segment or header are
// refused before any request.
func TestJuspayCustomerIDsRefused(t *testing.T) {
	s := newJuspayServer(t, 0)
	src := s.source(Literal(juspayKey))
	for _, id := range []string{"", "a\nb", "a\rb", "a\tb", "\x00", "a\x7fb", "a\u0085b", ".", "..", "a\xffb"} {
		tok, err := src.Token(context.Background(), id)
		if err == nil || !strings.HasPrefix(err.Error(), "tokens: ") {
			t.Errorf("Token(%q) = %v, %v; want a tokens: error", id, tok, err)
		}
	}
	if n := s.TotalFetches(); n != 0 {
		t.Errorf("Juspay got %d token requests, want none", n)
	}
}

// TestJuspayCustomerRefused: Juspay's refusals, from the fake.
func TestJuspayCustomerRefused(t *testing.T) {
	s := newJuspayServer(t, 0, "cust-0001")

	_, err := s.source(Literal(juspayKey)).Token(context.Background(), "nobody-0001")
	var uce *UnknownCustomerError
	if !errors.As(err, &uce) || uce.Message != "Cannot find what you are looking for" {
		t.Errorf("Token(unknown customer) error = %v, want an *UnknownCustomerError with Juspay's message", err)
	}

	_, err = s.source(Literal("wrong-key")).Token(context.Background(), "cust-0001")
	var re *RetrieveError
	if !errors.As(err, &re) || re.Status != 401 || re.Code != "access_denied" || re.Description != "Invalid API Key. Please pass a valid and active api key." {
		t.Errorf("Token(wrong key) error = %#v, want a 401 *RetrieveError access_denied with the developer_message", err)
	}
	if errors.As(err, &uce) {
		t.Errorf("Token(wrong key) error = %v, an *UnknownCustomerError", err)
	}

	other := NewJuspayCustomerSource(JuspayConfig{URL: s.srv.URL, APIKey: Literal(juspayKey), MerchantID: "other"})
	if _, err = other.Token(context.Background(), "cust-0001"); !errors.As(err, &re) || re.Status != 401 {
		t.Errorf("Token(other merchant) error = %v, want a 401 *RetrieveError", err)
	}
	if len(s.Tokens()) != 0 {
		t.Errorf("Juspay issued %d tokens, want none", len(s.Tokens()))
	}
}

// TestJuspayCustomerKeyFile: a key file is re-read at each fetch.
func TestJuspayCustomerKeyFile(t *testing.T) {
	s := newJuspayServer(t, 0, "cust-0001")
	path := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(path, []byte(juspayKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := s.source(File(path))
	if _, err := src.Token(context.Background(), "cust-0001"); err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	os.WriteFile(path, []byte("rotated-elsewhere"), 0o600)
	var re *RetrieveError
	if _, err := src.Token(context.Background(), "cust-0001"); !errors.As(err, &re) || re.Status != 401 {
		t.Errorf("Token() after the key changed = %v, want a 401 *RetrieveError", err)
	}
	for _, bad := range []string{"", "user:pass", "a\x00b"} {
		os.WriteFile(path, []byte(bad), 0o600)
		n := s.TotalFetches()
		if _, err := src.Token(context.Background(), "cust-0001"); err == nil || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("Token() with key %q = %v, want an error that does not quote it", bad, err)
		}
		if s.TotalFetches() != n {
			t.Errorf("Token() with key %q sent a request, want none", bad)
		}
	}
}

// TestJuspayCustomerAnswers: the parser on answers the fake does not give.
func TestJuspayCustomerAnswers(t *testing.T) {
	const tok = "tkn_2b94fd1556094cc49c6277870289cca9"
	body := func(expiry string) string {
		return `{"id":"cst_om2l6ctlptxwxuzj","object":"customer","object_reference_id":"cust-0001","juspay":{"client_auth_token":"` + tok + `"` + expiry + `}}`
	}
	now := tezpayEpoch // 2025-09-17T20:40:44Z
	tests := []struct {
		name       string
		answer     answer
		wantExpiry time.Time // zero: an error
		wantErr    string    // in the error
		wantStatus int       // of a *RetrieveError; -1: an *UnknownCustomerError
	}{
		{"expiry", reply(200, body(`,"client_auth_token_expiry":"2025-09-17T20:50:44Z"`)), now.Add(10 * time.Minute), "", 0},
		{"expiry with fraction and zone", reply(200, body(`,"client_auth_token_expiry":"2025-09-18T02:20:44.5+05:30"`)), now.Add(10*time.Minute + 500*time.Millisecond), "", 0},
		{"expiry as Juspay writes date_created", reply(200, body(`,"client_auth_token_expiry":"2025-09-17T20:50:44+0000"`)), now.Add(10 * time.Minute), "", 0},
		{"no expiry: 15 minutes", reply(200, body(``)), now.Add(15 * time.Minute), "", 0},
		{"null expiry: 15 minutes", reply(200, body(`,"client_auth_token_expiry":null`)), now.Add(15 * time.Minute), "", 0},
		{"empty expiry: 15 minutes", reply(200, body(`,"client_auth_token_expiry":""`)), now.Add(15 * time.Minute), "", 0},
		{"expiry in the past", reply(200, body(`,"client_auth_token_expiry":"2025-09-17T20:40:43Z"`)), time.Time{}, "not in the future", 0},
		{"expiry now", reply(200, body(`,"client_auth_token_expiry":"2025-09-17T20:40:44Z"`)), time.Time{}, "not in the future", 0},
		{"expiry not a time", reply(200, body(`,"client_auth_token_expiry":"in 15 minutes"`)), time.Time{}, `"in 15 minutes" is not an RFC 3339 time`, 0},
		{"expiry a number", reply(200, body(`,"client_auth_token_expiry":900`)), time.Time{}, "not a string", 0},
		{"malformed JSON", reply(200, `{"juspay":{"client_auth_token":"`+tok+`"`), time.Time{}, "malformed customer response", 0},
		{"two objects", reply(200, body(``)+body(``)), time.Time{}, "malformed customer response", 0},
		{"not an object", reply(200, `["`+tok+`"]`), time.Time{}, "malformed customer response", 0},
		{"no juspay object", reply(200, `{"id":"cst_om2l6ctlptxwxuzj","object":"customer"}`), time.Time{}, "no juspay.client_auth_token", 0},
		{"empty token", reply(200, `{"juspay":{"client_auth_token":" ","client_auth_token_expiry":"2025-09-17T20:50:44Z"}}`), time.Time{}, "no juspay.client_auth_token", 0},
		{"token not a string", reply(200, `{"juspay":{"client_auth_token":42}}`), time.Time{}, "no juspay.client_auth_token", 0},
		{"token with a newline", reply(200, `{"juspay":{"client_auth_token":"tkn_a\nb"}}`), time.Time{}, "control character", 0},
		{"404 from Juspay", reply(404, `{"error_message":"Cannot find what you are looking for","status":"invalid_request_error","error_code":"object_not_found"}`),
			time.Time{}, "does not know the customer: Cannot find what you are looking for", -1},
		{"404 with developer_message only", reply(404, `{"status":"error","error_info":{"developer_message":"Customer account not found.","code":"RESOURCE_NOT_FOUND"}}`),
			time.Time{}, "does not know the customer: Customer account not found.", -1},
		{"not found with a 400", reply(400, `{"status":"invalid_request_error","error_code":"object_not_found","error_message":"gone"}`), time.Time{}, "does not know the customer: gone", -1},
		{"not found with a 200", reply(200, `{"status":"error","error_info":{"code":"resource_not_found","user_message":"No such customer."}}`), time.Time{}, "No such customer.", -1},
		{"404 not from Juspay", reply(404, `<html>Not Found</html>`, "Content-Type", "text/html"), time.Time{}, "status 404: <html>Not Found</html>", 404},
		{"404 empty", reply(404, ``), time.Time{}, "status 404", 404},
		{"IP not whitelisted", reply(403, `{"error":true,"error_message":"Internal Server error.","user_message":"Bad Origin.","error_info":{"code":"BAD_ORIGIN","category":"USER_ERROR","developer_message":"IP Verification Failed"}}`),
			time.Time{}, "status 403: Internal Server error.", 403},
		{"error object with a 200", reply(200, `{"status":"error","error_code":"access_denied","error_info":{"developer_message":"Invalid API Key."}}`), time.Time{}, "status 200: access_denied: Invalid API Key.", 200},
		{"unavailable", reply(503, `upstream connect error`, "Retry-After", "7"), time.Time{}, "status 503: upstream connect error", 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, tc.answer)
				got, err := newJuspayTestSource(e).Token(context.Background(), "cust-0001")
				if !tc.wantExpiry.IsZero() {
					if err != nil || got.Value != tok || !got.Expiry.Equal(tc.wantExpiry) {
						t.Fatalf("Token() = %v (expiry %v), %v; want %s, expiry %v", got, got.LogValue(), err, tok, tc.wantExpiry)
					}
					return
				}
				if err == nil || got != nil {
					t.Fatalf("Token() = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "tokens: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Token() error = %q, want a tokens: error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), tok) {
					t.Errorf("Token() error = %q, which quotes the token", err)
				}
				var re *RetrieveError
				var uce *UnknownCustomerError
				switch {
				case tc.wantStatus == -1 && !errors.As(err, &uce):
					t.Errorf("Token() error = %#v, want an *UnknownCustomerError", err)
				case tc.wantStatus > 0 && (!errors.As(err, &re) || re.Status != tc.wantStatus):
					t.Errorf("Token() error = %#v, want a *RetrieveError with status %d", err, tc.wantStatus)
				case tc.wantStatus == 0 && (errors.As(err, &re) || errors.As(err, &uce)):
					t.Errorf("Token() error = %#v, want neither a refusal nor an unknown customer", err)
				}
				if tc.wantStatus == 503 && re.RetryAfter != 7*time.Second {
					t.Errorf("RetryAfter = %v, want 7s", re.RetryAfter)
				}
			})
		})
	}
}

// TestJuspayCustomerTimeout: the context's deadline ends a fetch that
// Juspay does not answer.
func TestJuspayCustomerTimeout(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, nil)
		e.setAnswer(e.hang())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := newJuspayTestSource(e).Token(ctx, "cust-0001")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Errorf("Token() = %v after %v, want context.DeadlineExceeded after 5s", err, time.Since(start))
		}
	})
}

// TestJuspayKeyNeverInErrors: Juspay echoing the API key, in any form the
// request carried it, does not bring it into an error.
func TestJuspayKeyNeverInErrors(t *testing.T) {
	withColon := base64.StdEncoding.EncodeToString([]byte(juspayKey + ":"))
	bare := base64.StdEncoding.EncodeToString([]byte(juspayKey))
	forms := []string{juspayKey, withColon, bare, jsonString(juspayKey, true), jsonString(juspayKey, false),
		url.QueryEscape(juspayKey), url.PathEscape(juspayKey), "Basic " + withColon}
	echoAll := func(status int, field string) answer {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			msg := "you sent " + strings.Join(forms[1:], " and ") + " as Authorization: " + r.Header.Get("Authorization")
			body := `{"status":"error","error_code":"` + jsonString(juspayKey, true) + `","` + field + `":"` + jsonString(msg, true) + ` key ` + jsonString(juspayKey, false) + `"}`
			reply(status, body)(w, r, n)
		}
	}
	tests := []struct {
		name   string
		answer answer
	}{
		{"401 error_message", echoAll(401, "error_message")},
		{"404 error_message", echoAll(404, "error_message")},
		{"500 user_message", echoAll(500, "user_message")},
		{"200 error object", echoAll(200, "error_message")},
		{"401 not JSON", func(w http.ResponseWriter, r *http.Request, n int) {
			reply(401, "bad key "+juspayKey+" in "+r.Header.Get("Authorization")+" ("+bare+")", "Content-Type", "text/plain")(w, r, n)
		}},
		{"expiry echoes the key", reply(200, `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"`+jsonString(juspayKey, true)+`"}}`)},
		{"expiry echoes the Basic credential", reply(200, `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"Basic `+withColon+`"}}`)},
		{"dropped connection", dropConnection},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			_, err := newJuspayTestSource(e).Token(context.Background(), "cust-0001")
			if err == nil {
				t.Fatal("Token() error = nil, want one")
			}
			for _, f := range forms {
				if strings.Contains(err.Error(), f) {
					t.Errorf("Token() error = %q, which holds the API key as %q", err, f)
				}
			}
			var re *RetrieveError
			if errors.As(err, &re) && !strings.Contains(re.Code+re.Description, "[redacted]") {
				t.Errorf("Token() error = %q, want the echoed key shown as [redacted]", err)
			}
		})
	}
}

func TestJuspayConfigCheck(t *testing.T) {
	key := File("/run/secrets/juspay-api-key")
	tests := []struct {
		name string
		c    JuspayConfig
		want []string
	}{
		{"valid", JuspayConfig{URL: "https://api.juspay.in", APIKey: key, MerchantID: "stock"}, nil},
		{"valid sandbox, trailing slash", JuspayConfig{URL: "https://sandbox.juspay.in/", APIKey: Literal("k"), MerchantID: "stock"}, nil},
		{"empty", JuspayConfig{}, []string{"URL", "APIKey", "MerchantID"}},
		{"not http", JuspayConfig{URL: "ftp://api.juspay.in", APIKey: key, MerchantID: "stock"}, []string{"URL"}},
		{"query", JuspayConfig{URL: "https://api.juspay.in/?x=1", APIKey: key, MerchantID: "stock"}, []string{"URL"}},
		{"fragment", JuspayConfig{URL: "https://api.juspay.in/#x", APIKey: key, MerchantID: "stock"}, []string{"URL"}},
		{"merchant with a newline", JuspayConfig{URL: "https://api.juspay.in", APIKey: key, MerchantID: "stock\nx-evil: 1"}, []string{"MerchantID"}},
		{"merchant with spaces around", JuspayConfig{URL: "https://api.juspay.in", APIKey: key, MerchantID: " stock"}, []string{"MerchantID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fieldsOf(t, tc.c.Check()); !slices.Equal(got, tc.want) {
				t.Errorf("Check() fields = %q, want %q", got, tc.want)
			}
		})
	}
}
