package tokens

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
)

// axeptaMID is the merchant the fake Paygate knows.
const axeptaMID = "sidecar-test-merchant"

// The merchant's passwords in these tests; the first two are those of
// test/fake's own tests.
var (
	testBlowfish = mustCipher(paygate.NewBlowfish([]byte("Xp9$eK2!rT7q")))
	testAES      = mustCipher(paygate.NewAES([]byte("0123456789abcdef0123456789abcdef")))
	otherCipher  = mustCipher(paygate.NewBlowfish([]byte("another-password")))
	otherAES     = mustCipher(paygate.NewAES([]byte("fedcba9876543210fedcba9876543210")))
	testHMACKey  = []byte("hmac-password-0123456789")
)

func mustCipher(c paygate.Cipher, err error) paygate.Cipher {
	if err != nil {
		panic(err)
	}
	return c
}

var (
	authTokenRE = regexp.MustCompile(`^[0-9A-Za-z]{16,56}$`)
	authLabelRE = regexp.MustCompile(`^[0-9A-Za-z]{32,64}$`)
)

// newPaygate starts the fake Paygate for axeptaMID, its Data encrypted with
// c, behind a recording in-memory endpoint (usable in a bubble).
func newPaygate(t *testing.T, c paygate.Cipher, hmacKey []byte) (*fake.Paygate, *endpoint) {
	t.Helper()
	pg := fake.NewPaygate(axeptaMID, c, hmacKey)
	h := pg.Handler()
	return pg, newEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { h.ServeHTTP(w, r) })
}

func authTokenURL(e *endpoint) string { return e.base + fake.PaygateAuthTokenPath }

func testMerchant(c paygate.Cipher, hmacKey []byte) *paygate.Merchant {
	return &paygate.Merchant{ID: axeptaMID, Cipher: c, HMACKey: hmacKey}
}

func newRegistrar(e *endpoint, m *paygate.Merchant, ttl time.Duration) *AxeptaRegistrar {
	return NewAxeptaRegistrar(AxeptaConfig{
		URL: authTokenURL(e), Merchant: func() *paygate.Merchant { return m }, TTL: ttl, Client: e.client(),
	})
}

// sentForm is one registration as the endpoint received it: its plain form
// and the parameters inside Data, opened with the merchant's cipher.
type sentForm struct {
	form   url.Values
	params paygate.Params
}

func (s sentForm) get(name string) string { v, _ := s.params.Get(name); return v }

// sentRegistrations opens every registration the endpoint received with c.
func sentRegistrations(t *testing.T, e *endpoint, c paygate.Cipher) []sentForm {
	t.Helper()
	var out []sentForm
	for _, r := range e.seen() {
		form, err := url.ParseQuery(string(r.Body))
		if err != nil {
			t.Fatalf("request body %q is not a form: %v", r.Body, err)
		}
		params, err := paygate.Open(c, form.Get("Len"), form.Get("Data"))
		if err != nil {
			t.Fatalf("request Data cannot be opened: %v", err)
		}
		out = append(out, sentForm{form, params})
	}
	return out
}

// checkNoSecrets fails the test if err's text holds an AuthToken or an
// AuthLabel the endpoint was sent (opened with c) or a password.
func checkNoSecrets(t *testing.T, err error, e *endpoint, c paygate.Cipher) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, s := range sentRegistrations(t, e, c) {
		for _, k := range []string{"AuthToken", "AuthLabel"} {
			if v := s.get(k); v != "" && strings.Contains(msg, v) {
				t.Errorf("Register() error = %q, which contains the %s", msg, k)
			}
		}
	}
	for _, pw := range []string{"Xp9$eK2!rT7q", "0123456789abcdef", "another-password", string(testHMACKey)} {
		if strings.Contains(msg, pw) {
			t.Errorf("Register() error = %q, which contains a password", msg)
		}
	}
}

// sealedReply answers a registration, opened with c, with the parameters fn
// makes from it, encrypted with c, as Paygate does: mid=…&Len=…&Data=….
func sealedReply(c paygate.Cipher, fn func(req paygate.Params) paygate.Params) answer {
	return sealedReplyStatus(http.StatusOK, c, fn)
}

func sealedReplyStatus(status int, c paygate.Cipher, fn func(req paygate.Params) paygate.Params) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		r.ParseForm()
		req, err := paygate.Open(c, r.PostForm.Get("Len"), r.PostForm.Get("Data"))
		if err != nil {
			http.Error(w, "test endpoint: cannot open the request", http.StatusTeapot)
			return
		}
		plain, err := paygate.Encode(fn(req))
		if err != nil {
			panic(err)
		}
		data, err := c.Encrypt([]byte(plain))
		if err != nil {
			panic(err)
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.WriteHeader(status)
		io.WriteString(w, "mid="+axeptaMID+"&Len="+strconv.Itoa(len(plain))+"&Data="+data)
	}
}

// p makes parameters from name, value pairs.
func p(kv ...string) paygate.Params {
	var out paygate.Params
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, paygate.Param{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// withMAC appends the answer's MAC, computed with key, as Paygate does.
func withMAC(key []byte, params paygate.Params) paygate.Params {
	status, _ := params.Get("Status")
	code, _ := params.Get("Code")
	return append(params, paygate.Param{Key: "MAC", Value: paygate.ResponseMAC(key, "", "", axeptaMID, status, code)})
}

// formReply answers with a plain form body.
func formReply(status int, body string, header ...string) answer {
	return reply(status, body, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
}

// TestAxeptaRegister registers with the fake Paygate, with each cipher, and
// checks the request against the document: a form of MerchantID in plain,
// Len and Data, Data holding exactly MerchantID, AuthToken, AuthLabel and
// ExpiryDate, and no MAC.
func TestAxeptaRegister(t *testing.T) {
	tests := []struct {
		name    string
		cipher  paygate.Cipher
		hmacKey []byte
	}{
		{"blowfish", testBlowfish, nil},
		{"aes", testAES, nil},
		{"blowfish with an hmac key", testBlowfish, testHMACKey},
		{"aes with an hmac key", testAES, testHMACKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				pg, e := newPaygate(t, tc.cipher, tc.hmacKey)
				auth, err := newRegistrar(e, testMerchant(tc.cipher, tc.hmacKey), 0).Register(context.Background())
				if err != nil {
					t.Fatalf("Register() error = %v", err)
				}
				want := AxeptaAuth{AuthToken: auth.AuthToken, AuthLabel: auth.AuthLabel, ExpiryDate: "2025-09-17T20:55:44",
					Description: "success", Status: "OK", Code: fake.PaygateCodeOK}
				if auth != want {
					t.Errorf("Register() = %+v, want %+v", auth, want)
				}
				if len(auth.AuthToken) != authTokenLen || !authTokenRE.MatchString(auth.AuthToken) {
					t.Errorf("Register().AuthToken = %q, want %d alphanumeric characters", auth.AuthToken, authTokenLen)
				}
				if len(auth.AuthLabel) != authLabelLen || !authLabelRE.MatchString(auth.AuthLabel) {
					t.Errorf("Register().AuthLabel = %q, want %d alphanumeric characters", auth.AuthLabel, authLabelLen)
				}
				label, expiry, ok := pg.Registered(auth.AuthToken)
				if !ok || label != auth.AuthLabel || !expiry.Equal(tezpayEpoch.Add(15*time.Minute)) {
					t.Errorf("Paygate has Registered(AuthToken) = %q, %v, %v; want the AuthLabel, %v, true", label, expiry, ok, tezpayEpoch.Add(15*time.Minute))
				}

				reqs := e.seen()
				if len(reqs) != 1 {
					t.Fatalf("Paygate got %d requests, want 1", len(reqs))
				}
				if r := reqs[0]; r.Method != http.MethodPost || r.Path != fake.PaygateAuthTokenPath || r.ContentType != "application/x-www-form-urlencoded" {
					t.Errorf("request = %s %s (%q), want POST %s (application/x-www-form-urlencoded)", r.Method, r.Path, r.ContentType, fake.PaygateAuthTokenPath)
				}
				for _, v := range []string{auth.AuthToken, auth.AuthLabel} {
					if bytes.Contains(reqs[0].Body, []byte(v)) {
						t.Errorf("request body %q carries a minted value in plain", reqs[0].Body)
					}
				}
				s := sentRegistrations(t, e, tc.cipher)[0]
				if keys := slices.Sorted(func(yield func(string) bool) {
					for k := range s.form {
						if !yield(k) {
							return
						}
					}
				}); !slices.Equal(keys, []string{"Data", "Len", "MerchantID"}) || s.form.Get("MerchantID") != axeptaMID {
					t.Errorf("request form = %v, want exactly MerchantID=%s, Len and Data", s.form, axeptaMID)
				}
				wantParams := p("MerchantID", axeptaMID, "AuthToken", auth.AuthToken, "AuthLabel", auth.AuthLabel, "ExpiryDate", "2025-09-17T20:55:44")
				if !slices.Equal(s.params, wantParams) {
					t.Errorf("request Data = %v, want %v", s.params, wantParams)
				}
			})
		})
	}
}

// TestAxeptaRegisterTTL: the ExpiryDate asked for is now+TTL in UTC, to the
// second below; 15 minutes when TTL is zero; never more than 24 hours.
func TestAxeptaRegisterTTL(t *testing.T) {
	tests := []struct {
		name     string
		start    time.Time
		ttl      time.Duration
		wantDate string
	}{
		{"zero: 15 minutes", tezpayEpoch, 0, "2025-09-17T20:55:44"},
		{"negative: 15 minutes", tezpayEpoch, -time.Hour, "2025-09-17T20:55:44"},
		{"5 seconds", tezpayEpoch, 5 * time.Second, "2025-09-17T20:40:49"},
		{"1 hour", tezpayEpoch, time.Hour, "2025-09-17T21:40:44"},
		{"24 hours", tezpayEpoch, 24 * time.Hour, "2025-09-18T20:40:44"},
		{"48 hours: 24", tezpayEpoch, 48 * time.Hour, "2025-09-18T20:40:44"},
		{"300ms: a second", tezpayEpoch, 300 * time.Millisecond, "2025-09-17T20:40:45"},
		{"clock between seconds: truncated", tezpayEpoch.Add(700 * time.Millisecond), 15 * time.Minute, "2025-09-17T20:55:44"},
		{"local clock: sent in UTC", tezpayEpoch.In(time.FixedZone("CEST", 2*3600)), time.Hour, "2025-09-17T21:40:44"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if loc := tc.start.Location(); loc != time.UTC {
				// time.Now reads in time.Local: set while no goroutine of
				// the test runs, put back once the bubble's have all ended.
				old := time.Local
				time.Local = loc
				t.Cleanup(func() { time.Local = old })
			}
			bubble(t, func(t *testing.T) {
				time.Sleep(time.Until(tc.start))
				pg, e := newPaygate(t, testBlowfish, nil)
				auth, err := newRegistrar(e, testMerchant(testBlowfish, nil), tc.ttl).Register(context.Background())
				if err != nil {
					t.Fatalf("Register() error = %v", err)
				}
				if got := sentRegistrations(t, e, testBlowfish)[0].get("ExpiryDate"); got != tc.wantDate {
					t.Errorf("request ExpiryDate = %q, want %q", got, tc.wantDate)
				}
				if auth.ExpiryDate != tc.wantDate {
					t.Errorf("Register().ExpiryDate = %q, want %q", auth.ExpiryDate, tc.wantDate)
				}
				if _, expiry, ok := pg.Registered(auth.AuthToken); !ok || expiry.Format(dttmLayout) != tc.wantDate {
					t.Errorf("Paygate has the token expiring %v (registered %v), want %s", expiry, ok, tc.wantDate)
				}
			})
		})
	}
}

// registerTwice passes each registration to the fake Paygate twice, and
// answers with the second answer: a duplicate AuthToken.
func registerTwice(h http.Handler) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		body, _ := io.ReadAll(r.Body)
		first := r.Clone(r.Context())
		first.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(httptest.NewRecorder(), first)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}
}

// TestAxeptaRegisterRefused: Status other than OK, or a non-2xx answer, is
// a *RetrieveError with the HTTP status, the platform's Code and its
// Description, from which any echoed AuthToken or AuthLabel is removed.
func TestAxeptaRegisterRefused(t *testing.T) {
	echoed := func(status string) answer {
		return sealedReply(testBlowfish, func(req paygate.Params) paygate.Params {
			token, _ := req.Get("AuthToken")
			label, _ := req.Get("AuthLabel")
			return p("MID", axeptaMID, "Status", status, "Code", label, "Description", "token "+token+" with label "+label+" refused")
		})
	}
	tests := []struct {
		name     string
		merchant string                              // if empty, axeptaMID
		setup    func(pg *fake.Paygate, e *endpoint) // if nil, the fake Paygate answers
		wantRegs int
		want     RetrieveError
	}{
		{name: "ExpiryDate refused: Paygate's clock an hour ahead",
			setup: func(pg *fake.Paygate, e *endpoint) {
				pg.SetClock(func() time.Time { return time.Now().Add(time.Hour) })
			},
			want: RetrieveError{Status: 200, Code: fake.PaygateCodeFormat, Description: "ExpiryDate is not within the next 24 hours"}},
		{name: "duplicate AuthToken",
			setup:    func(pg *fake.Paygate, e *endpoint) { e.setAnswer(registerTwice(pg.Handler())) },
			wantRegs: 1,
			want:     RetrieveError{Status: 200, Code: fake.PaygateCodeDuplicate, Description: "AuthToken is already registered"}},
		{name: "unknown merchant: answered in plain", merchant: "someone-else",
			want: RetrieveError{Status: 200, Code: fake.PaygateCodeUnknownMerchant, Description: "Unknown MerchantID"}},
		{name: "Paygate down", setup: func(pg *fake.Paygate, e *endpoint) { pg.SetDown(true) },
			want: RetrieveError{Status: 503, Code: fake.PaygateCodeUnavailable, Description: "Service temporarily unavailable"}},
		{name: "failed in lower case",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(sealedReply(testBlowfish, func(paygate.Params) paygate.Params {
					return p("mid", axeptaMID, "status", "failed", "code", "21500985", "description", "no")
				}))
			},
			want: RetrieveError{Status: 200, Code: "21500985", Description: "no"}},
		{name: "neither OK nor FAILED",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(sealedReply(testBlowfish, func(paygate.Params) paygate.Params { return p("MID", axeptaMID, "Status", "PENDING") }))
			},
			want: RetrieveError{Status: 200}},
		{name: "FAILED for another merchant",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(sealedReply(testBlowfish, func(paygate.Params) paygate.Params {
					return p("MID", "other", "Status", "FAILED", "Code", "21500985")
				}))
			},
			want: RetrieveError{Status: 200, Code: "21500985"}},
		{name: "token and label echoed", setup: func(pg *fake.Paygate, e *endpoint) { e.setAnswer(echoed("FAILED")) },
			want: RetrieveError{Status: 200, Code: "[redacted]", Description: "token [redacted] with label [redacted] refused"}},
		{name: "token echoed in a non-2xx answer",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(func(w http.ResponseWriter, r *http.Request, n int) {
					r.ParseForm()
					req, _ := paygate.Open(testBlowfish, r.PostForm.Get("Len"), r.PostForm.Get("Data"))
					token, _ := req.Get("AuthToken")
					formReply(400, "Status=FAILED&Code=20000001&Description="+url.QueryEscape("bad token "+token))(w, r, n)
				})
			},
			want: RetrieveError{Status: 400, Code: "20000001", Description: "bad token [redacted]"}},
		{name: "non-2xx, plain text",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(reply(500, "Internal Server Error\n", "Content-Type", "text/plain"))
			},
			want: RetrieveError{Status: 500, Description: "Internal Server Error"}},
		{name: "non-2xx, sealed OK",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(sealedReplyStatus(502, testBlowfish, func(paygate.Params) paygate.Params {
					return p("MID", axeptaMID, "Status", "OK", "Code", "00000000", "Description", "success")
				}))
			},
			want: RetrieveError{Status: 502, Code: "00000000", Description: "success"}},
		{name: "Retry-After",
			setup: func(pg *fake.Paygate, e *endpoint) {
				e.setAnswer(formReply(429, "Status=FAILED&Description=slow+down", "Retry-After", "30"))
			},
			want: RetrieveError{Status: 429, Description: "slow down", RetryAfter: 30 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				pg, e := newPaygate(t, testBlowfish, nil)
				if tc.setup != nil {
					tc.setup(pg, e)
				}
				m := testMerchant(testBlowfish, nil)
				if tc.merchant != "" {
					m.ID = tc.merchant
				}
				auth, err := newRegistrar(e, m, 0).Register(context.Background())
				var re *RetrieveError
				if !errors.As(err, &re) {
					t.Fatalf("Register() = %v, %v; want a *RetrieveError", auth, err)
				}
				if auth != (AxeptaAuth{}) {
					t.Errorf("Register() = %v with error %v, want a zero AxeptaAuth", auth, err)
				}
				if *re != tc.want {
					t.Errorf("Register() = %+v, want %+v", *re, tc.want)
				}
				checkNoSecrets(t, err, e, testBlowfish)
				if n := pg.Registrations(); n != tc.wantRegs {
					t.Errorf("Paygate registered %d tokens, want %d", n, tc.wantRegs)
				}
			})
		})
	}
}

// TestAxeptaRegisterAnswers: names in any case; the ExpiryDate is the
// answer's (in UTC, to the second) unless it is later than asked or does not
// parse; a MAC verifies or, without an HMAC key, is not looked at.
func TestAxeptaRegisterAnswers(t *testing.T) {
	const requested = "2025-09-17T20:55:44"
	tests := []struct {
		name       string
		hmacKey    []byte
		params     paygate.Params
		plainMID   string // the mid before Len and Data; "-" for none
		wantExpiry string
		wantStatus string
	}{
		{name: "as documented", params: p("MID", axeptaMID, "Status", "OK", "Description", "ok", "Code", "00000000", "ExpiryDate", "2025-09-17T20:50:44"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "lower case", params: p("mid", axeptaMID, "status", "OK", "description", "ok", "code", "00000000", "expirydate", "2025-09-17T20:50:44"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "upper case", params: p("MID", axeptaMID, "STATUS", "OK", "DESCRIPTION", "ok", "CODE", "00000000", "EXPIRYDATE", "2025-09-17T20:50:44"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "status in lower case, given as is", params: p("mId", axeptaMID, "sTaTuS", "ok", "expiryDATE", "2025-09-17T20:50:44"), wantExpiry: "2025-09-17T20:50:44", wantStatus: "ok"},
		{name: "padded values", params: p("mid", " "+axeptaMID+" ", "status", " OK ", "expirydate", " 2025-09-17T20:50:44 "), wantExpiry: "2025-09-17T20:50:44"},
		{name: "other parameters ignored", params: p("mid", axeptaMID, "status", "OK", "XID", "1", "PayID", "2"), wantExpiry: requested},
		{name: "expiry later than asked: the one asked for", params: p("mid", axeptaMID, "status", "OK", "expirydate", "2025-09-17T22:40:44"), wantExpiry: requested},
		{name: "expiry with Z", params: p("mid", axeptaMID, "status", "OK", "expirydate", "2025-09-17T20:50:44Z"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "expiry with an offset", params: p("mid", axeptaMID, "status", "OK", "expirydate", "2025-09-17T22:50:44+02:00"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "expiry with a fraction: to the second below", params: p("mid", axeptaMID, "status", "OK", "expirydate", "2025-09-17T20:50:44.9"), wantExpiry: "2025-09-17T20:50:44"},
		{name: "no expiry: the one asked for", params: p("mid", axeptaMID, "status", "OK"), wantExpiry: requested},
		{name: "unparsable expiry: the one asked for", params: p("mid", axeptaMID, "status", "OK", "expirydate", "17.09.2025 20:50"), wantExpiry: requested},
		{name: "MID only in plain", params: p("status", "OK"), wantExpiry: requested},
		{name: "no plain mid", params: p("MID", axeptaMID, "status", "OK"), plainMID: "-", wantExpiry: requested},
		{name: "MAC verified", hmacKey: testHMACKey, params: withMAC(testHMACKey, p("MID", axeptaMID, "Status", "OK", "Code", "00000000")), wantExpiry: requested},
		{name: "MAC in lower-case hex", hmacKey: testHMACKey, params: func() paygate.Params {
			ps := withMAC(testHMACKey, p("MID", axeptaMID, "Status", "OK", "Code", "00000000"))
			ps[len(ps)-1].Value = strings.ToLower(ps[len(ps)-1].Value)
			return ps
		}(), wantExpiry: requested},
		{name: "no MAC, with an hmac key: none required", hmacKey: testHMACKey, params: p("MID", axeptaMID, "Status", "OK"), wantExpiry: requested},
		{name: "MAC without an hmac key: not checked", params: p("MID", axeptaMID, "Status", "OK", "MAC", "00"), wantExpiry: requested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, nil)
				plain, err := paygate.Encode(tc.params)
				if err != nil {
					t.Fatal(err)
				}
				data, _ := testBlowfish.Encrypt([]byte(plain))
				body := "Len=" + strconv.Itoa(len(plain)) + "&Data=" + data
				if tc.plainMID != "-" {
					body = "mid=" + axeptaMID + "&" + body
				}
				e.setAnswer(formReply(200, body))
				auth, err := newRegistrar(e, testMerchant(testBlowfish, tc.hmacKey), 15*time.Minute).Register(context.Background())
				if err != nil {
					t.Fatalf("Register() error = %v", err)
				}
				if auth.ExpiryDate != tc.wantExpiry {
					t.Errorf("Register().ExpiryDate = %q, want %q", auth.ExpiryDate, tc.wantExpiry)
				}
				if want := cmp.Or(tc.wantStatus, "OK"); auth.Status != want {
					t.Errorf("Register().Status = %q, want %q", auth.Status, want)
				}
				s := sentRegistrations(t, e, testBlowfish)[0]
				if auth.AuthToken != s.get("AuthToken") || auth.AuthLabel != s.get("AuthLabel") {
					t.Errorf("Register() = %q/%q, want the AuthToken/AuthLabel registered, %q/%q", auth.AuthToken, auth.AuthLabel, s.get("AuthToken"), s.get("AuthLabel"))
				}
			})
		})
	}
}

// TestAxeptaRegisterBadAnswers: an answer that cannot be read or trusted is
// an error, but not a refusal, and never shows the minted values.
func TestAxeptaRegisterBadAnswers(t *testing.T) {
	sealed := func(params ...string) answer {
		return sealedReply(testBlowfish, func(paygate.Params) paygate.Params { return p(params...) })
	}
	ok := []string{"MID", axeptaMID, "Status", "OK", "Code", "00000000"}
	tests := []struct {
		name     string
		merchant *paygate.Merchant // if nil, blowfish without an hmac key
		answer   answer            // if nil, the fake Paygate (blowfish) answers
		wantErr  string
		wantIs   error
	}{
		{name: "wrong blowfish password", merchant: testMerchant(otherCipher, nil), wantErr: "registration answer"},
		{name: "wrong aes password", merchant: testMerchant(otherAES, nil), wantErr: "registration answer"},
		{name: "tampered MAC", merchant: testMerchant(testBlowfish, testHMACKey),
			answer: sealedReply(testBlowfish, func(paygate.Params) paygate.Params {
				ps := withMAC(testHMACKey, p(ok...))
				ps[2].Value = "00000001" // the Code, after the MAC was made
				return ps
			}), wantErr: "MAC does not verify", wantIs: paygate.ErrBadMAC},
		{name: "MAC made with another key", merchant: testMerchant(testBlowfish, testHMACKey),
			answer: sealed(append(ok, "MAC", paygate.ResponseMAC([]byte("other"), "", "", axeptaMID, "OK", "00000000"))...), wantErr: "MAC does not verify", wantIs: paygate.ErrBadMAC},
		{name: "tampered MAC on a FAILED answer", merchant: testMerchant(testBlowfish, testHMACKey),
			answer: sealed("MID", axeptaMID, "Status", "FAILED", "Code", "21500001", "MAC", "00"), wantErr: "MAC does not verify", wantIs: paygate.ErrBadMAC},
		{name: "OK in plain", answer: formReply(200, "mid="+axeptaMID+"&Status=OK&Code=00000000&ExpiryDate=2025-09-17T20:50:44"), wantErr: "OK without Data"},
		{name: "wrong MID", answer: sealed("MID", "someone-else", "Status", "OK"), wantErr: `for merchant "someone-else", not "` + axeptaMID + `"`},
		{name: "wrong MID echoing the token", answer: sealedReply(testBlowfish, func(req paygate.Params) paygate.Params {
			token, _ := req.Get("AuthToken")
			return p("MID", token, "Status", "OK")
		}), wantErr: `for merchant "[redacted]"`},
		{name: "plain mid differs from Data's", answer: func(w http.ResponseWriter, r *http.Request, n int) {
			rec := httptest.NewRecorder()
			sealed(ok...)(rec, r, n)
			formReply(200, strings.Replace(rec.Body.String(), "mid="+axeptaMID, "mid=someone-else", 1))(w, r, n)
		}, wantErr: `for merchant "someone-else"`},
		{name: "no MID", answer: func(w http.ResponseWriter, r *http.Request, n int) {
			rec := httptest.NewRecorder()
			sealed("Status", "OK")(rec, r, n)
			formReply(200, strings.Replace(rec.Body.String(), "mid="+axeptaMID+"&", "", 1))(w, r, n)
		}, wantErr: "no MID"},
		{name: "no Status", answer: sealed("MID", axeptaMID, "Code", "00000000"), wantErr: "no Status"},
		{name: "blank Status", answer: sealed("MID", axeptaMID, "Status", " "), wantErr: "no Status"},
		{name: "Status twice", answer: sealed("MID", axeptaMID, "Status", "OK", "STATUS", "FAILED"), wantErr: "status twice"},
		{name: "Data twice", answer: formReply(200, "Len=1&Data=00&data=00"), wantErr: "data twice"},
		{name: "bad Len", answer: formReply(200, "mid="+axeptaMID+"&Len=x&Data=0011223344556677"), wantErr: "malformed envelope", wantIs: paygate.ErrMalformed},
		{name: "Len past Data", answer: formReply(200, "mid="+axeptaMID+"&Len=99&Data=0011223344556677"), wantErr: "malformed envelope", wantIs: paygate.ErrMalformed},
		{name: "Data not hex", answer: formReply(200, "mid="+axeptaMID+"&Len=2&Data=zz"), wantErr: "malformed envelope", wantIs: paygate.ErrMalformed},
		{name: "not a form", answer: formReply(200, "%zz"), wantErr: "not a form"},
		{name: "HTML page", answer: reply(200, "<html>maintenance</html>", "Content-Type", "text/html"), wantErr: "no Status"},
		{name: "expiry past", answer: sealed("MID", axeptaMID, "Status", "OK", "ExpiryDate", "2025-09-17T20:40:43"), wantErr: "ExpiryDate 2025-09-17T20:40:43Z is not in the future"},
		{name: "expiry now", answer: sealed("MID", axeptaMID, "Status", "OK", "ExpiryDate", "2025-09-17T20:40:44"), wantErr: "is not in the future"},
		{name: "over 1 MiB", answer: formReply(200, "Status=FAILED&pad="+strings.Repeat("x", maxRead)), wantErr: "larger than 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				_, e := newPaygate(t, testBlowfish, nil)
				if tc.answer != nil {
					e.setAnswer(tc.answer)
				}
				m := cmp.Or(tc.merchant, testMerchant(testBlowfish, nil))
				auth, err := newRegistrar(e, m, 0).Register(context.Background())
				if err == nil {
					t.Fatalf("Register() = %v, nil; want an error containing %q", auth, tc.wantErr)
				}
				if auth != (AxeptaAuth{}) {
					t.Errorf("Register() = %v with error %v, want a zero AxeptaAuth", auth, err)
				}
				if !strings.HasPrefix(err.Error(), "tokens: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Register() = %q, want a tokens: error containing %q", err, tc.wantErr)
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("Register() = %v, want an error wrapping %v", err, tc.wantIs)
				}
				var re *RetrieveError
				if errors.As(err, &re) {
					t.Errorf("Register() = %v, a *RetrieveError for an answer that is no refusal", err)
				}
				checkNoSecrets(t, err, e, m.Cipher)
			})
		})
	}
}

// TestAxeptaRegisterTimeout: a Paygate that does not answer is given up at
// ctx's deadline, or the client's timeout, and the error says so to
// errors.Is and net.Error, which the proxy maps to 504.
func TestAxeptaRegisterTimeout(t *testing.T) {
	tests := []struct {
		name    string
		ctx     time.Duration // the context's timeout; zero for none
		client  time.Duration // the client's Timeout; zero for none
		checkIs func(error) bool
	}{
		{"context deadline", 100 * time.Millisecond, 0, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"client timeout", 0, time.Second, func(err error) bool {
			var ne net.Error
			return errors.As(err, &ne) && ne.Timeout()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, nil)
				e.setAnswer(e.hang())
				ctx := context.Background()
				if tc.ctx > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.ctx)
					defer cancel()
				}
				r := NewAxeptaRegistrar(AxeptaConfig{
					URL: authTokenURL(e), Merchant: func() *paygate.Merchant { return testMerchant(testBlowfish, nil) },
					Client: &http.Client{Transport: e.client().Transport, Timeout: tc.client},
				})
				start := time.Now()
				auth, err := r.Register(ctx)
				if !tc.checkIs(err) {
					t.Fatalf("Register() = %v, %v; want a timeout", auth, err)
				}
				if elapsed, want := time.Since(start), max(tc.ctx, tc.client); elapsed != want {
					t.Errorf("Register() returned after %v, want %v", elapsed, want)
				}
				checkNoSecrets(t, err, e, testBlowfish)
			})
		})
	}
}

// TestAxeptaRegisterRequestErrors: a dropped connection is a request error,
// not a refusal; a bad URL or no usable merchant fails before any request.
func TestAxeptaRegisterRequestErrors(t *testing.T) {
	e := newEndpoint(t, dropConnection)
	auth, err := newRegistrar(e, testMerchant(testBlowfish, nil), 0).Register(context.Background())
	var re *RetrieveError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("Register() = %v, %v; want a network error, not a refusal", auth, err)
	}
	if !strings.HasPrefix(err.Error(), "tokens: registration request: ") {
		t.Errorf("Register() = %q, want an error starting with %q", err, "tokens: registration request: ")
	}
	checkNoSecrets(t, err, e, testBlowfish)

	tests := []struct {
		name     string
		url      string
		merchant func() *paygate.Merchant
		wantErr  string
	}{
		{"bad URL", "http://example.invalid\x7f/", func() *paygate.Merchant { return testMerchant(testBlowfish, nil) }, "build request"},
		{"no Merchant", authTokenURL(e), nil, "no merchant"},
		{"Merchant gives none", authTokenURL(e), func() *paygate.Merchant { return nil }, "no merchant"},
		{"merchant without a cipher", authTokenURL(e), func() *paygate.Merchant { return &paygate.Merchant{ID: axeptaMID} }, "no merchant"},
		{"merchant id with '&'", authTokenURL(e), func() *paygate.Merchant { return &paygate.Merchant{ID: "a&b", Cipher: testBlowfish} }, "seal registration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count()
			r := NewAxeptaRegistrar(AxeptaConfig{URL: tc.url, Merchant: tc.merchant, Client: e.client()})
			if _, err := r.Register(context.Background()); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Register() = %v, want an error containing %q", err, tc.wantErr)
			}
			if n := e.count() - before; n != 0 {
				t.Errorf("Register() sent %d requests, want none", n)
			}
		})
	}
}

// TestAxeptaRegisterConcurrent: 50 registrations at once are 50 distinct
// pairs, each registered with its own label.
func TestAxeptaRegisterConcurrent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		pg, e := newPaygate(t, testAES, nil)
		r := newRegistrar(e, testMerchant(testAES, nil), time.Hour)
		const n = 50
		auths := make([]AxeptaAuth, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { auths[i], errs[i] = r.Register(context.Background()) })
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, a := range auths {
			if errs[i] != nil {
				t.Fatalf("Register() error = %v", errs[i])
			}
			for _, v := range []string{a.AuthToken, a.AuthLabel} {
				if seen[v] {
					t.Errorf("value %q minted twice", v)
				}
				seen[v] = true
			}
			if label, _, ok := pg.Registered(a.AuthToken); !ok || label != a.AuthLabel {
				t.Errorf("Paygate has Registered(AuthToken) = %q, %v; want the AuthLabel, true", label, ok)
			}
		}
		if got, calls := pg.Registrations(), pg.Calls(); got != n || calls != n {
			t.Errorf("Paygate registered %d tokens in %d calls, want %d in %d", got, calls, n, n)
		}
	})
}

// TestAxeptaRegisterRotatedPasswords: Merchant is asked at each
// registration, so that a new password takes effect without a new registrar.
func TestAxeptaRegisterRotatedPasswords(t *testing.T) {
	bubble(t, func(t *testing.T) {
		pg, e := newPaygate(t, testAES, nil) // the platform already has the new password
		var mu sync.Mutex
		cur := testMerchant(otherAES, nil)
		r := NewAxeptaRegistrar(AxeptaConfig{URL: authTokenURL(e), Client: e.client(), Merchant: func() *paygate.Merchant {
			mu.Lock()
			defer mu.Unlock()
			return cur
		}})
		if _, err := r.Register(context.Background()); err == nil {
			t.Fatalf("Register() with the old password = nil error, want one")
		}
		mu.Lock()
		cur = testMerchant(testAES, nil)
		mu.Unlock()
		auth, err := r.Register(context.Background())
		if err != nil {
			t.Fatalf("Register() with the new password error = %v", err)
		}
		if _, _, ok := pg.Registered(auth.AuthToken); !ok || pg.Registrations() != 1 {
			t.Errorf("Paygate has %d registrations, want the new password's one", pg.Registrations())
		}
	})
}

// TestAxeptaRegisterDefaults: a nil Client means http.DefaultClient; the
// ExpiryDate is dated by the system clock. On a real socket (httptest).
func TestAxeptaRegisterDefaults(t *testing.T) {
	pg := fake.NewPaygate(axeptaMID, testBlowfish, nil)
	srv := httptest.NewServer(pg.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	before := time.Now().Add(15 * time.Minute).UTC().Truncate(time.Second)
	auth, err := NewAxeptaRegistrar(AxeptaConfig{
		URL: srv.URL + fake.PaygateAuthTokenPath, Merchant: func() *paygate.Merchant { return testMerchant(testBlowfish, nil) },
	}).Register(context.Background())
	if err != nil {
		t.Fatalf("Register() error = %v", err)
	}
	after := time.Now().Add(15 * time.Minute).UTC()
	if exp, err := time.Parse(dttmLayout, auth.ExpiryDate); err != nil || exp.Before(before) || exp.After(after) {
		t.Errorf("Register().ExpiryDate = %q, want 15 minutes from now", auth.ExpiryDate)
	}
	if _, _, ok := pg.Registered(auth.AuthToken); !ok {
		t.Errorf("Register().AuthToken is not registered")
	}
}

// TestAxeptaAuthHidesSecrets: printed or logged, an AxeptaAuth shows neither
// the AuthToken nor the AuthLabel; its JSON is the SDK's object, in the
// document's order.
func TestAxeptaAuthHidesSecrets(t *testing.T) {
	a := AxeptaAuth{AuthToken: "TOKEN0123456789abcdef", AuthLabel: "LABEL0123456789abcdef0123456789ab",
		ExpiryDate: "2025-09-17T20:55:44", Description: "success", Status: "OK", Code: "00000000"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("registered", "auth", a)
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprintf("%v", &a), logged.String()} {
		if strings.Contains(out, a.AuthToken) || strings.Contains(out, a.AuthLabel) {
			t.Errorf("printed AxeptaAuth = %s, which shows a secret", out)
		}
		if !strings.Contains(out, "2025-09-17T20:55:44") {
			t.Errorf("printed AxeptaAuth = %s, want the expiry in it", out)
		}
	}
	got, err := json.Marshal(a)
	want := `{"AuthToken":"TOKEN0123456789abcdef","AuthLabel":"LABEL0123456789abcdef0123456789ab","ExpiryDate":"2025-09-17T20:55:44","Description":"success","Status":"OK","Code":"00000000"}`
	if err != nil || string(got) != want {
		t.Errorf("json.Marshal(AxeptaAuth) = %s, %v; want %s", got, err, want)
	}
}

// TestRandomAlnumUniform: each of the 62 characters is drawn about equally
// often. Taking a random byte modulo 62 without rejection would make the
// first 8 characters 25% more likely than the others: with 10,000 draws
// expected of each, that shows as a spread of about 1.25 against about 1.05.
func TestRandomAlnumUniform(t *testing.T) {
	const per = 10000
	s := randomAlnum(per * len(alnum))
	if len(s) != per*len(alnum) {
		t.Fatalf("randomAlnum(%d) has length %d", per*len(alnum), len(s))
	}
	counts := map[byte]int{}
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	if len(counts) != len(alnum) {
		t.Fatalf("randomAlnum() used %d distinct characters, want %d", len(counts), len(alnum))
	}
	lo, hi := per*10, 0
	for i := 0; i < len(alnum); i++ {
		n := counts[alnum[i]]
		lo, hi = min(lo, n), max(hi, n)
	}
	if float64(hi)/float64(lo) > 1.12 {
		t.Errorf("randomAlnum() character counts range from %d to %d, want them about equal", lo, hi)
	}
	if got := randomAlnum(0); got != "" {
		t.Errorf("randomAlnum(0) = %q, want empty", got)
	}
}

// TestPaygateAuthTokenFake checks the part of the fake Paygate these tests
// rely on to refuse: what the document does not allow in an AuthToken call.
func TestPaygateAuthTokenFake(t *testing.T) {
	const (
		token = "AbCdEfGh0123456789AbCdEfGh0123456789AbCd"
		label = "AbCdEfGh0123456789AbCdEfGh0123456789AbCdEfGh0123"
	)
	tests := []struct {
		name       string
		params     paygate.Params
		wantStatus string
		wantCode   string
	}{
		{"valid", p("AuthToken", token, "AuthLabel", label, "ExpiryDate", "2025-09-17T21:40:44"), "OK", fake.PaygateCodeOK},
		{"no ExpiryDate", p("AuthToken", token, "AuthLabel", label), "OK", fake.PaygateCodeOK},
		{"token too short", p("AuthToken", token[:15], "AuthLabel", label), "FAILED", fake.PaygateCodeFormat},
		{"label too long", p("AuthToken", token, "AuthLabel", label+label[:17]), "FAILED", fake.PaygateCodeFormat},
		{"more than 24 hours ahead", p("AuthToken", token, "AuthLabel", label, "ExpiryDate", "2025-09-18T20:40:45"), "FAILED", fake.PaygateCodeFormat},
		{"expiry with Z", p("AuthToken", token, "AuthLabel", label, "ExpiryDate", "2025-09-17T21:40:44Z"), "FAILED", fake.PaygateCodeFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				_, e := newPaygate(t, testBlowfish, nil)
				env, err := paygate.Seal(testBlowfish, axeptaMID, tc.params)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := e.client().Post(authTokenURL(e), "application/x-www-form-urlencoded", strings.NewReader(env.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				res, err := decodeAxeptaAnswer(testMerchant(testBlowfish, nil), raw)
				if err != nil || res.Status != tc.wantStatus || res.Code != tc.wantCode || !slices.Equal(res.MIDs, []string{axeptaMID, axeptaMID}) || !res.Sealed {
					t.Errorf("answer = %+v, %v; want a sealed Status %s, Code %s for %s", res, err, tc.wantStatus, tc.wantCode, axeptaMID)
				}
			})
		})
	}
}
