package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// axeptaMID is the merchant the fake Axepta knows.
const axeptaMID = "sidecar-test-merchant"

// newAxepta starts the fake Axepta platform, knowing axeptaMID, behind a
// recording endpoint.
func newAxepta(t *testing.T) (*fake.Axepta, *endpoint) {
	t.Helper()
	ax := fake.NewAxepta(axeptaMID)
	h := ax.Handler()
	return ax, newEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { h.ServeHTTP(w, r) })
}

func registerURL(e *endpoint) string { return e.base + fake.AxeptaRegisterPath }

func newRegisteredSource(e *endpoint, ttl time.Duration) Source {
	return NewRegisteredSource(RegisteredConfig{
		URL: registerURL(e), MerchantID: axeptaMID, TTL: ttl, Client: e.client(),
	})
}

// sent returns the parameters of each registration the endpoint received.
func sent(t *testing.T, e *endpoint) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range e.seen() {
		var params map[string]any
		if err := json.Unmarshal(r.Body, &params); err != nil {
			t.Fatalf("request body %q is not a JSON object: %v", r.Body, err)
		}
		out = append(out, params)
	}
	return out
}

// checkNoMinted fails the test if err's text holds any AuthToken or
// AuthLabel the endpoint was sent.
func checkNoMinted(t *testing.T, err error, e *endpoint) {
	t.Helper()
	for _, p := range sent(t, e) {
		for _, k := range []string{"AuthToken", "AuthLabel"} {
			if v, _ := p[k].(string); v != "" && strings.Contains(err.Error(), v) {
				t.Errorf("Token() error = %q, which contains the %s", err, k)
			}
		}
	}
}

// registrationAnswer replies with status and the JSON object fn makes from
// the registration received.
func registrationAnswer(status int, fn func(reg Registration) map[string]any) answer {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		var reg Registration
		json.NewDecoder(r.Body).Decode(&reg)
		body, err := json.Marshal(fn(reg))
		if err != nil {
			panic(err)
		}
		reply(status, string(body))(w, r, n)
	}
}

// TestRegisteredSourceAxepta registers a token with the fake platform and
// checks the request against the document: a JSON POST of exactly
// MerchantID, AuthToken, AuthLabel and ExpiryDate.
func TestRegisteredSourceAxepta(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ax, e := newAxepta(t)
		tok, err := newRegisteredSource(e, 0).Token(context.Background())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if want := tezpayEpoch.Add(15 * time.Minute); !tok.Expiry.Equal(want) {
			t.Errorf("Token().Expiry = %v, want %v", tok.Expiry, want)
		}
		label, expiry, ok := ax.Registered(tok.Value)
		if !ok || label != tok.Label || !expiry.Equal(tok.Expiry) {
			t.Errorf("platform has Registered(Token().Value) = %q, %v, %v; want Token().Label, Token().Expiry, true", label, expiry, ok)
		}
		if n, refused := ax.Registrations(), ax.Refused(); n != 1 || refused != 0 {
			t.Errorf("platform registered %d and refused %d, want 1 and 0", n, refused)
		}

		reqs := e.seen()
		if len(reqs) != 1 {
			t.Fatalf("endpoint got %d requests, want 1", len(reqs))
		}
		if r := reqs[0]; r.Method != http.MethodPost || r.Path != fake.AxeptaRegisterPath || r.ContentType != "application/json" {
			t.Errorf("request = %s %s (Content-Type %q), want POST %s (application/json)", r.Method, r.Path, r.ContentType, fake.AxeptaRegisterPath)
		}
		got := sent(t, e)[0]
		want := map[string]any{"MerchantID": axeptaMID, "AuthToken": tok.Value, "AuthLabel": tok.Label, "ExpiryDate": "2025-09-17T20:55:44"}
		if len(got) != len(want) {
			t.Errorf("request parameters = %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("request %s = %v, want %v", k, got[k], v)
			}
		}
	})
}

// TestRegisteredSourceTTL: the ExpiryDate asked for is now+TTL in UTC, to the
// second below; 15 minutes when TTL is zero; never more than 24 hours.
func TestRegisteredSourceTTL(t *testing.T) {
	tests := []struct {
		name       string
		start      time.Time
		ttl        time.Duration
		wantDate   string
		wantExpiry time.Time
	}{
		{"zero: 15 minutes", tezpayEpoch, 0, "2025-09-17T20:55:44", tezpayEpoch.Add(15 * time.Minute)},
		{"negative: 15 minutes", tezpayEpoch, -time.Hour, "2025-09-17T20:55:44", tezpayEpoch.Add(15 * time.Minute)},
		{"5 seconds", tezpayEpoch, 5 * time.Second, "2025-09-17T20:40:49", tezpayEpoch.Add(5 * time.Second)},
		{"1 hour", tezpayEpoch, time.Hour, "2025-09-17T21:40:44", tezpayEpoch.Add(time.Hour)},
		{"24 hours", tezpayEpoch, 24 * time.Hour, "2025-09-18T20:40:44", tezpayEpoch.Add(24 * time.Hour)},
		{"48 hours: 24", tezpayEpoch, 48 * time.Hour, "2025-09-18T20:40:44", tezpayEpoch.Add(24 * time.Hour)},
		{"300ms: a second", tezpayEpoch, 300 * time.Millisecond, "2025-09-17T20:40:45", tezpayEpoch.Add(time.Second)},
		{"clock between seconds: truncated", tezpayEpoch.Add(700 * time.Millisecond), 15 * time.Minute, "2025-09-17T20:55:44", tezpayEpoch.Add(15 * time.Minute)},
		{"local clock: sent in UTC", tezpayEpoch.In(time.FixedZone("CEST", 2*3600)), time.Hour, "2025-09-17T21:40:44", tezpayEpoch.Add(time.Hour)},
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
				ax, e := newAxepta(t)
				tok, err := newRegisteredSource(e, tc.ttl).Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if got := sent(t, e)[0]["ExpiryDate"]; got != tc.wantDate {
					t.Errorf("request ExpiryDate = %v, want %q", got, tc.wantDate)
				}
				if !tok.Expiry.Equal(tc.wantExpiry) {
					t.Errorf("Token().Expiry = %v, want %v", tok.Expiry, tc.wantExpiry)
				}
				if _, expiry, ok := ax.Registered(tok.Value); !ok || !expiry.Equal(tc.wantExpiry) {
					t.Errorf("platform has the token expiring %v (registered %v), want %v", expiry, ok, tc.wantExpiry)
				}
			})
		})
	}
}

var (
	authTokenRE = regexp.MustCompile(`^[0-9A-Za-z]{16,56}$`)
	authLabelRE = regexp.MustCompile(`^[0-9A-Za-z]{32,64}$`)
)

// TestRegisteredSourceMintedValues: from concurrent calls, every AuthToken
// and AuthLabel is alphanumeric of the length chosen, within the document's
// an16..56 and an32..64, and none repeats.
func TestRegisteredSourceMintedValues(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ax, e := newAxepta(t)
		src := newRegisteredSource(e, time.Hour)
		const workers, calls = 8, 25
		toks := make([]*Token, workers*calls)
		errs := make([]error, workers*calls)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range calls {
					toks[w*calls+i], errs[w*calls+i] = src.Token(context.Background())
				}
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		used := map[rune]bool{}
		for i, tok := range toks {
			if errs[i] != nil {
				t.Fatalf("Token() error = %v", errs[i])
			}
			if len(tok.Value) != authTokenLen || !authTokenRE.MatchString(tok.Value) {
				t.Errorf("Token().Value = %q, want %d alphanumeric characters", tok.Value, authTokenLen)
			}
			if len(tok.Label) != authLabelLen || !authLabelRE.MatchString(tok.Label) {
				t.Errorf("Token().Label = %q, want %d alphanumeric characters", tok.Label, authLabelLen)
			}
			for _, v := range []string{tok.Value, tok.Label} {
				if seen[v] {
					t.Errorf("value %q minted twice", v)
				}
				seen[v] = true
				for _, c := range v {
					used[c] = true
				}
			}
		}
		if len(used) != len(alnum) {
			t.Errorf("minted values use %d characters, want all %d of %q", len(used), len(alnum), alnum)
		}
		if n, refused := ax.Registrations(), ax.Refused(); n != len(toks) || refused != 0 {
			t.Errorf("platform registered %d and refused %d, want %d and 0", n, refused, len(toks))
		}
	})
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

// TestRegisteredSourceAnswers: parameter names in upper, lower or mixed case;
// the token expires at the answer's ExpiryDate (UTC without an offset), or at
// the one requested when the answer gives none that parses.
func TestRegisteredSourceAnswers(t *testing.T) {
	requested := tezpayEpoch.Add(15 * time.Minute)
	tests := []struct {
		name string
		body string
		want time.Time
	}{
		{"lower case", `{"mid":"` + axeptaMID + `","status":"OK","description":"ok","code":"00000000","expirydate":"2025-09-17T20:50:44"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"upper case", `{"MID":"` + axeptaMID + `","STATUS":"OK","DESCRIPTION":"ok","CODE":"00000000","EXPIRYDATE":"2025-09-17T20:50:44"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"as documented", `{"MID":"` + axeptaMID + `","Status":"OK","Description":"ok","Code":"00000000","ExpiryDate":"2025-09-17T20:50:44"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"mixed case", `{"mId":"` + axeptaMID + `","sTaTuS":"ok","Code":0,"expiryDATE":"2025-09-17T20:50:44"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"padded values", `{"mid":" ` + axeptaMID + ` ","status":" OK\n","expirydate":" 2025-09-17T20:50:44 "}`, tezpayEpoch.Add(10 * time.Minute)},
		{"other parameters ignored", `{"mid":"` + axeptaMID + `","status":"OK","extra":{"status":"FAILED"},"list":[1,2],"expirydate":"2025-09-17T20:50:44"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"expiry later than asked: capped at the request", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":"2025-09-17T22:40:44"}`, tezpayEpoch.Add(15 * time.Minute)},
		{"expiry with Z", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":"2025-09-17T20:50:44Z"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"expiry with an offset", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":"2025-09-17T22:50:44+02:00"}`, tezpayEpoch.Add(10 * time.Minute)},
		{"expiry with a fraction", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":"2025-09-17T20:50:44.5"}`, tezpayEpoch.Add(10*time.Minute + 500*time.Millisecond)},
		{"no expiry: the one asked for", `{"mid":"` + axeptaMID + `","status":"OK"}`, requested},
		{"null expiry: the one asked for", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":null}`, requested},
		{"unparsable expiry: the one asked for", `{"mid":"` + axeptaMID + `","status":"OK","expirydate":"17.09.2025 20:50"}`, requested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(http.StatusOK, tc.body))
				tok, err := newRegisteredSource(e, 15*time.Minute).Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if !tok.Expiry.Equal(tc.want) {
					t.Errorf("Token().Expiry = %v, want %v", tok.Expiry, tc.want)
				}
				p := sent(t, e)[0]
				if tok.Value != p["AuthToken"] || tok.Label != p["AuthLabel"] {
					t.Errorf("Token() = %q/%q, want the AuthToken/AuthLabel registered, %v/%v", tok.Value, tok.Label, p["AuthToken"], p["AuthLabel"])
				}
			})
		})
	}
}

// TestRegisteredSourceRefusal: Status other than OK, or a non-2xx answer, is
// a *RetrieveError with the HTTP status, the platform's Code and its
// Description, from which any echoed AuthToken or AuthLabel is removed.
func TestRegisteredSourceRefusal(t *testing.T) {
	echo := func(status string) func(Registration) map[string]any {
		return func(reg Registration) map[string]any {
			return map[string]any{"mid": reg.MerchantID, "status": status, "code": reg.AuthLabel,
				"description": "token " + reg.AuthToken + " with label " + reg.AuthLabel + " refused"}
		}
	}
	tests := []struct {
		name     string
		merchant string
		down     bool
		answer   answer // if nil, the fake platform answers
		want     RetrieveError
	}{
		{name: "unknown merchant", merchant: "someone-else",
			want: RetrieveError{Status: 200, Code: fake.AxeptaCodeUnknownMerchant, Description: "Unknown MerchantID"}},
		{name: "platform down", down: true,
			want: RetrieveError{Status: 503, Code: fake.AxeptaCodeUnavailable, Description: "Service temporarily unavailable"}},
		{name: "FAILED in upper case", answer: reply(200, `{"MID":"`+axeptaMID+`","STATUS":"FAILED","CODE":"21500985","DESCRIPTION":"Merchant not allowed"}`),
			want: RetrieveError{Status: 200, Code: "21500985", Description: "Merchant not allowed"}},
		{name: "failed in lower case", answer: reply(200, `{"mid":"`+axeptaMID+`","status":"failed","code":21500985,"description":"no"}`),
			want: RetrieveError{Status: 200, Code: "21500985", Description: "no"}},
		{name: "neither OK nor FAILED", answer: reply(200, `{"mid":"`+axeptaMID+`","status":"PENDING"}`),
			want: RetrieveError{Status: 200}},
		{name: "FAILED for another merchant", answer: reply(200, `{"mid":"other","status":"FAILED","code":"21500985"}`),
			want: RetrieveError{Status: 200, Code: "21500985"}},
		{name: "token and label echoed", answer: registrationAnswer(200, echo("FAILED")),
			want: RetrieveError{Status: 200, Code: "[redacted]", Description: "token [redacted] with label [redacted] refused"}},
		{name: "token echoed in a non-2xx answer", answer: registrationAnswer(400, echo("FAILED")),
			want: RetrieveError{Status: 400, Code: "[redacted]", Description: "token [redacted] with label [redacted] refused"}},
		{name: "non-2xx, plain text", answer: reply(500, "Internal Server Error\n", "Content-Type", "text/plain"),
			want: RetrieveError{Status: 500, Description: "Internal Server Error"}},
		{name: "non-2xx, platform parameters", answer: reply(401, `{"Code":"20000001","Description":"denied"}`),
			want: RetrieveError{Status: 401, Code: "20000001", Description: "denied"}},
		{name: "non-2xx with status OK", answer: reply(502, `{"mid":"`+axeptaMID+`","status":"OK"}`),
			want: RetrieveError{Status: 502}},
		{name: "Retry-After", answer: reply(429, `{"status":"FAILED","description":"slow down"}`, "Retry-After", "30"),
			want: RetrieveError{Status: 429, Description: "slow down", RetryAfter: 30 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				ax, e := newAxepta(t)
				ax.SetDown(tc.down)
				if tc.answer != nil {
					e.setAnswer(tc.answer)
				}
				merchant := axeptaMID
				if tc.merchant != "" {
					merchant = tc.merchant
				}
				src := NewRegisteredSource(RegisteredConfig{URL: registerURL(e), MerchantID: merchant, Client: e.client()})
				tok, err := src.Token(context.Background())
				var re *RetrieveError
				if !errors.As(err, &re) {
					t.Fatalf("Token() = %v, %v; want a *RetrieveError", tok, err)
				}
				if tok != nil {
					t.Errorf("Token() = %v with error %v, want nil", tok, err)
				}
				if re.Status != tc.want.Status || re.Code != tc.want.Code || re.Description != tc.want.Description || re.RetryAfter != tc.want.RetryAfter {
					t.Errorf("Token() error = %+v, want %+v", *re, tc.want)
				}
				checkNoMinted(t, err, e)
				if ax.Registrations() != 0 {
					t.Errorf("platform registered %d tokens, want 0", ax.Registrations())
				}
			})
		})
	}
}

// TestRegisteredSourceBadAnswers: an answer that cannot be read, lacks Status
// or MID, names another merchant or gives an expiry already past is an error,
// but not a refusal, and never shows the minted values.
func TestRegisteredSourceBadAnswers(t *testing.T) {
	ok := `"mid":"` + axeptaMID + `","status":"OK"`
	tests := []struct {
		name    string
		answer  answer
		wantErr string
	}{
		{"malformed JSON", reply(200, `{"mid":`), "malformed registration answer"},
		{"empty", reply(200, ``), "not a JSON object"},
		{"HTML page", reply(200, `<html>maintenance</html>`), "not a JSON object"},
		{"JSON array", reply(200, `[{`+ok+`}]`), "not a JSON object"},
		{"JSON null", reply(200, `null`), "not a JSON object"},
		{"data after the object", reply(200, `{`+ok+`}{"status":"FAILED"}`), "data after the JSON object"},
		{"no status", reply(200, `{"mid":"`+axeptaMID+`","code":"00000000"}`), "no Status"},
		{"blank status", reply(200, `{"mid":"`+axeptaMID+`","status":"  "}`), "no Status"},
		{"status an object", reply(200, `{"mid":"`+axeptaMID+`","status":{"value":"OK"}}`), "status is not a string"},
		{"status a boolean", reply(200, `{"mid":"`+axeptaMID+`","status":true}`), "status is not a string"},
		{"status given twice", reply(200, `{`+ok+`,"STATUS":"FAILED"}`), "status twice"},
		{"no MID", reply(200, `{"status":"OK"}`), "no MID"},
		{"wrong MID", reply(200, `{"mid":"someone-else","status":"OK"}`), `for merchant "someone-else", not "` + axeptaMID + `"`},
		{"wrong MID echoing the token", registrationAnswer(200, func(reg Registration) map[string]any {
			return map[string]any{"mid": reg.AuthToken, "status": "OK"}
		}), `for merchant "[redacted]"`},
		{"expiry past", reply(200, `{`+ok+`,"expirydate":"2025-09-17T20:40:43"}`), "ExpiryDate 2025-09-17T20:40:43Z is not in the future"},
		{"expiry now", reply(200, `{`+ok+`,"expirydate":"2025-09-17T20:40:44"}`), "is not in the future"},
		{"expiry past by its offset", reply(200, `{`+ok+`,"expirydate":"2025-09-17T21:40:44+02:00"}`), "is not in the future"},
		{"over 1 MiB", reply(200, `{`+ok+`,"pad":"`+strings.Repeat("x", maxRead)+`"}`), "larger than 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, tc.answer)
				tok, err := newRegisteredSource(e, 0).Token(context.Background())
				checkMalformed(t, tok, err, tc.wantErr)
				checkNoMinted(t, err, e)
			})
		})
	}
}

// TestJSONRegistrationEncoder: the request is the documented JSON object;
// ExpiryDate, optional, is left out when empty.
func TestJSONRegistrationEncoder(t *testing.T) {
	tests := []struct {
		reg  Registration
		want string
	}{
		{Registration{"m", "t", "l", "2025-09-17T20:55:44"}, `{"MerchantID":"m","AuthToken":"t","AuthLabel":"l","ExpiryDate":"2025-09-17T20:55:44"}`},
		{Registration{MerchantID: "m", AuthToken: "t", AuthLabel: "l"}, `{"MerchantID":"m","AuthToken":"t","AuthLabel":"l"}`},
		{Registration{MerchantID: `a"<b`}, `{"MerchantID":"a\"\u003cb","AuthToken":"","AuthLabel":""}`},
	}
	for _, tc := range tests {
		ct, body, err := JSONRegistrationEncoder.Encode(tc.reg)
		if err != nil || ct != "application/json" || string(body) != tc.want {
			t.Errorf("Encode(%+v) = %q, %s, %v; want %q, %s, nil", tc.reg, ct, body, err, "application/json", tc.want)
		}
	}
	got, err := JSONRegistrationEncoder.Decode([]byte(`{"MID":"m","status":"OK","Description":"d","CODE":12345678,"expiryDate":"x","other":1}`))
	if want := (RegistrationResult{MID: "m", Status: "OK", Description: "d", Code: "12345678", ExpiryDate: "x"}); err != nil || got != want {
		t.Errorf("Decode() = %+v, %v; want %+v, nil", got, err, want)
	}
	// A key outside ASCII is no parameter, even where Unicode folding would
	// make it one (ſ folds to s).
	got, err = JSONRegistrationEncoder.Decode([]byte(`{"ſtatus":"OK","status":"FAILED"}`))
	if err != nil || got.Status != "FAILED" {
		t.Errorf("Decode() with a non-ASCII key = %+v, %v; want Status FAILED", got, err)
	}
}

// formEncoder is a second wire format, as Axepta's encrypted Data one will
// be: form-encoded both ways.
type formEncoder struct{ err error }

func (f formEncoder) Encode(r Registration) (string, []byte, error) {
	if f.err != nil {
		return "", nil, f.err
	}
	v := url.Values{"MerchantID": {r.MerchantID}, "AuthToken": {r.AuthToken}, "AuthLabel": {r.AuthLabel}, "ExpiryDate": {r.ExpiryDate}}
	return "application/x-www-form-urlencoded", []byte(v.Encode()), nil
}

func (formEncoder) Decode(body []byte) (RegistrationResult, error) {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return RegistrationResult{}, fmt.Errorf("tokens: form answer: %w", err)
	}
	return RegistrationResult{MID: q.Get("MID"), Status: q.Get("Status"), Code: q.Get("Code"), Description: q.Get("Description"), ExpiryDate: q.Get("ExpiryDate")}, nil
}

// TestRegisteredSourceEncoder: another Encoder changes the wire format and
// nothing else.
func TestRegisteredSourceEncoder(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
			r.ParseForm()
			status := "OK"
			if n > 1 {
				status = "FAILED"
			}
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			io.WriteString(w, url.Values{"MID": {r.PostForm.Get("MerchantID")}, "Status": {status}, "Code": {"21500985"}, "ExpiryDate": {"2025-09-17T20:45:44"}}.Encode())
		})
		src := NewRegisteredSource(RegisteredConfig{URL: registerURL(e), MerchantID: axeptaMID, Encoder: formEncoder{}, Client: e.client()})
		tok, err := src.Token(context.Background())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		r := e.seen()[0]
		q, _ := url.ParseQuery(string(r.Body))
		if r.ContentType != "application/x-www-form-urlencoded" || q.Get("AuthToken") != tok.Value || q.Get("AuthLabel") != tok.Label || q.Get("ExpiryDate") != "2025-09-17T20:55:44" {
			t.Errorf("request = %q (%s), want the form of Token()'s value and label, expiring 2025-09-17T20:55:44", r.Body, r.ContentType)
		}
		if want := tezpayEpoch.Add(5 * time.Minute); !tok.Expiry.Equal(want) {
			t.Errorf("Token().Expiry = %v, want %v", tok.Expiry, want)
		}
		var re *RetrieveError
		if _, err := src.Token(context.Background()); !errors.As(err, &re) || re.Code != "21500985" {
			t.Errorf("Token() of a FAILED form answer: error = %v, want a *RetrieveError with Code 21500985", err)
		}

		encErr := errors.New("tokens: cannot encrypt")
		src = NewRegisteredSource(RegisteredConfig{URL: registerURL(e), MerchantID: axeptaMID, Encoder: formEncoder{err: encErr}, Client: e.client()})
		if _, err := src.Token(context.Background()); !errors.Is(err, encErr) {
			t.Errorf("Token() with a failing Encode: error = %v, want %v", err, encErr)
		}
		if n := e.count(); n != 2 {
			t.Errorf("endpoint got %d requests, want 2 (none when Encode fails)", n)
		}
	})
}

func TestRegisteredSourceHangingEndpoint(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, nil)
		e.setAnswer(e.hang())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		tok, err := newRegisteredSource(e, 0).Token(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Token() = %v, %v; want an error wrapping context.DeadlineExceeded", tok, err)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("Token() returned after %v, want about 100ms", elapsed)
		}
		checkNoMinted(t, err, e)
	})
}

func TestRegisteredSourceNetworkError(t *testing.T) {
	e := newEndpoint(t, dropConnection)
	tok, err := newRegisteredSource(e, 0).Token(context.Background())
	var re *RetrieveError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("Token() = %v, %v; want a network error, not a refusal", tok, err)
	}
	if !strings.HasPrefix(err.Error(), "tokens: registration request: ") {
		t.Errorf("Token() error = %q, want it to start with %q", err, "tokens: registration request: ")
	}
	checkNoMinted(t, err, e)

	src := NewRegisteredSource(RegisteredConfig{URL: "http://example.invalid\x7f/", MerchantID: axeptaMID})
	if _, err := src.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "build request") {
		t.Errorf("Token() with a bad URL: error = %v, want a build request error", err)
	}
}

// TestRegisteredSourceDefaults: a nil Client means http.DefaultClient, and a
// nil Encoder JSON; the ExpiryDate is dated by the system clock.
func TestRegisteredSourceDefaults(t *testing.T) {
	ax := fake.NewAxepta(axeptaMID) // on the real clock
	h := ax.Handler()
	e := newTCPEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) { h.ServeHTTP(w, r) })
	before := time.Now().Add(15 * time.Minute).Truncate(time.Second)
	tok, err := NewRegisteredSource(RegisteredConfig{URL: registerURL(e), MerchantID: axeptaMID}).Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	if tok.Expiry.Before(before) || tok.Expiry.After(time.Now().Add(15*time.Minute)) {
		t.Errorf("Token().Expiry = %v, want 15 minutes from now", tok.Expiry)
	}
	if _, _, ok := ax.Registered(tok.Value); !ok {
		t.Errorf("Token().Value is not registered")
	}
	if ct := e.seen()[0].ContentType; ct != "application/json" {
		t.Errorf("request Content-Type = %q, want application/json", ct)
	}
}

// TestAxeptaFake checks the fake platform itself, so that the tests above
// can trust it to refuse what the document does not allow.
func TestAxeptaFake(t *testing.T) {
	const (
		token = "AbCdEfGh0123456789AbCdEfGh0123456789AbCd" // 40
		label = "AbCdEfGh0123456789AbCdEfGh0123456789AbCdEfGh0123"
	)
	params := func(kv ...string) string {
		m := map[string]string{"MerchantID": axeptaMID, "AuthToken": token, "AuthLabel": label, "ExpiryDate": "2025-09-17T21:40:44"}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name                 string
		contentType, body    string
		wantHTTP             int
		wantStatus, wantCode string
		wantExpiry           string
	}{
		{"valid", "application/json", params(), 200, "OK", fake.AxeptaCodeOK, "2025-09-17T21:40:44"},
		{"charset", "application/json; charset=utf-8", params(), 200, "OK", fake.AxeptaCodeOK, "2025-09-17T21:40:44"},
		{"no ExpiryDate: 15 minutes", "application/json", params("ExpiryDate", "-"), 200, "OK", fake.AxeptaCodeOK, "2025-09-17T20:55:44"},
		{"24 hours ahead", "application/json", params("ExpiryDate", "2025-09-18T20:40:44"), 200, "OK", fake.AxeptaCodeOK, "2025-09-18T20:40:44"},
		{"shortest token and label", "application/json", params("AuthToken", token[:16], "AuthLabel", label[:32]), 200, "OK", fake.AxeptaCodeOK, "2025-09-17T21:40:44"},
		{"longest token and label", "application/json", params("AuthToken", token+token[:16], "AuthLabel", label+label[:16]), 200, "OK", fake.AxeptaCodeOK, "2025-09-17T21:40:44"},
		{"unknown merchant", "application/json", params("MerchantID", "someone-else"), 200, "FAILED", fake.AxeptaCodeUnknownMerchant, ""},
		{"no merchant", "application/json", params("MerchantID", "-"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"token too short", "application/json", params("AuthToken", token[:15]), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"token too long", "application/json", params("AuthToken", token+token[:17]), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"token not alphanumeric", "application/json", params("AuthToken", token[:39]+"-"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"label too short", "application/json", params("AuthLabel", label[:31]), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"label too long", "application/json", params("AuthLabel", label+label[:17]), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"label not alphanumeric", "application/json", params("AuthLabel", label[:47]+"é"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"no label", "application/json", params("AuthLabel", "-"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"more than 24 hours ahead", "application/json", params("ExpiryDate", "2025-09-18T20:40:45"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"expiry now", "application/json", params("ExpiryDate", "2025-09-17T20:40:44"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"expiry with Z", "application/json", params("ExpiryDate", "2025-09-17T21:40:44Z"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"expiry with a fraction", "application/json", params("ExpiryDate", "2025-09-17T21:40:44.5"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"parameter name in another case", "application/json", params("MerchantID", "-", "merchantID", axeptaMID), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"unknown parameter", "application/json", params("Amount", "100"), 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"not JSON", "application/json", "MerchantID=" + axeptaMID, 200, "FAILED", fake.AxeptaCodeFormat, ""},
		{"not application/json", "application/x-www-form-urlencoded", params(), 200, "FAILED", fake.AxeptaCodeFormat, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				ax, e := newAxepta(t)
				resp, err := e.client().Post(registerURL(e), tc.contentType, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var got map[string]string
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					t.Fatalf("answer is not a JSON object of strings: %v", err)
				}
				for k := range got {
					if k != strings.ToLower(k) {
						t.Errorf("answer key %q is not lower case", k)
					}
				}
				if resp.StatusCode != tc.wantHTTP || got["status"] != tc.wantStatus || got["code"] != tc.wantCode || got["expirydate"] != tc.wantExpiry {
					t.Errorf("answer = %d %v, want %d status %s code %s expirydate %q", resp.StatusCode, got, tc.wantHTTP, tc.wantStatus, tc.wantCode, tc.wantExpiry)
				}
				if len(got["code"]) != 8 || got["description"] == "" {
					t.Errorf("answer = %v, want an 8-digit code and a description", got)
				}
				var m map[string]string
				json.Unmarshal([]byte(tc.body), &m)
				_, _, registered := ax.Registered(m["AuthToken"])
				if registered != (tc.wantStatus == "OK") || ax.Refused() != map[bool]int{true: 0, false: 1}[tc.wantStatus == "OK"] {
					t.Errorf("Registered() = %v, Refused() = %d after status %s", registered, ax.Refused(), got["status"])
				}
				if tc.wantStatus == "OK" && got["mid"] != axeptaMID {
					t.Errorf("answer mid = %q, want %q", got["mid"], axeptaMID)
				}
			})
		})
	}

	t.Run("token registered twice", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			ax, e := newAxepta(t)
			for i, want := range []string{"OK", "FAILED"} {
				resp, err := e.client().Post(registerURL(e), "application/json", strings.NewReader(params("AuthLabel", label[:40]+fmt.Sprint(10000000+i))))
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]string
				json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if got["status"] != want {
					t.Errorf("registration %d: status %q, want %q (%v)", i+1, got["status"], want, got)
				}
			}
			if got, _, _ := ax.Registered(token); got != label[:40]+"10000000" || ax.Registrations() != 1 {
				t.Errorf("Registered() label = %q with %d registrations, want the first registration's only", got, ax.Registrations())
			}
		})
	})

	t.Run("down", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			ax, e := newAxepta(t)
			ax.SetDown(true)
			resp, err := e.client().Post(registerURL(e), "application/json", strings.NewReader(params()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("answer while down = %d, want 503", resp.StatusCode)
			}
			ax.SetDown(false)
			resp, err = e.client().Post(registerURL(e), "application/json", strings.NewReader(params()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if _, _, ok := ax.Registered(token); resp.StatusCode != 200 || !ok {
				t.Errorf("answer once up = %d (registered %v), want 200 and the token registered", resp.StatusCode, ok)
			}
		})
	})
}

// TestRegisteredSourceWithCache runs a Cache over 5-second registered tokens
// for two minutes of fake time, with eight callers at every tenth of a
// second: every token handed out is registered at the platform, with its
// label and expiry, and unexpired at the moment it is handed out.
func TestRegisteredSourceWithCache(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ax, e := newAxepta(t)
		c := NewCache(newRegisteredSource(e, 5*time.Second), CacheOptions{})
		run(t, c)
		const (
			step    = 100 * time.Millisecond
			steps   = 1200
			callers = 8
		)
		handed := map[string]bool{}
		for range steps {
			now := time.Now()
			toks := make([]*Token, callers)
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() { toks[i], errs[i] = tokenWithin(c) })
			}
			wg.Wait()
			for i, tok := range toks {
				if errs[i] != nil {
					t.Fatalf("at %v: Token() error = %v", now.Sub(tezpayEpoch), errs[i])
				}
				label, expiry, ok := ax.Registered(tok.Value)
				switch {
				case !ok:
					t.Fatalf("at %v: Token() handed out a token the platform never registered", now.Sub(tezpayEpoch))
				case label != tok.Label || !expiry.Equal(tok.Expiry):
					t.Fatalf("at %v: Token() = label %q expiring %v, platform has %q expiring %v", now.Sub(tezpayEpoch), tok.Label, tok.Expiry, label, expiry)
				case !expiry.After(now):
					t.Fatalf("at %v: Token() handed out a token that expired at %v", now.Sub(tezpayEpoch), expiry.Sub(tezpayEpoch))
				}
				handed[tok.Value] = true
			}
			time.Sleep(step)
		}
		// 120s of tokens that live 4-5s (the ExpiryDate is to the second below)
		// and are renewed at 76-80% of that, at the next tenth of a second: about
		// 30 to 40 of them.
		if n := len(handed); n < 25 || n > 45 {
			t.Errorf("%d distinct tokens handed out in 120s of 5-second tokens, want 25 to 45", n)
		}
		if n := ax.Registrations(); n < len(handed) || n > len(handed)+1 {
			t.Errorf("platform registered %d tokens, %d handed out: want the same, or one more being renewed", n, len(handed))
		}
		if n := ax.Refused(); n != 0 {
			t.Errorf("platform refused %d registrations, want 0", n)
		}
		t.Logf("%d tokens handed out, %d registered", len(handed), ax.Registrations())
	})
}
