package fake

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

const testPaygateMerchant = "Generic3DSTest"

var testPaygateHMAC = []byte("s3cr3t-hmac-key")

func testCiphers(t *testing.T) map[string]paygate.Cipher {
	t.Helper()
	bf, err := paygate.NewBlowfish([]byte("Xp9$eK2!rT7q"))
	if err != nil {
		t.Fatal(err)
	}
	aes, err := paygate.NewAES([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]paygate.Cipher{"blowfish": bf, "aes": aes}
}

// postPaygate posts form to path and returns the answer's outer form.
func postPaygate(t *testing.T, srv *httptest.Server, path string, form string) (int, url.Values) {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", ct)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return resp.StatusCode, v
}

// tryPaygate is callPaygate for goroutines other than the test's: it
// returns errors rather than failing the test.
func tryPaygate(srv *httptest.Server, path string, c paygate.Cipher, params paygate.Params) (paygate.Params, error) {
	env, err := paygate.Seal(c, testPaygateMerchant, params)
	if err != nil {
		return nil, err
	}
	resp, err := http.Post(srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(env.Encode()))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	return paygate.Open(c, v.Get("Len"), v.Get("Data"))
}

// callPaygate seals params for merchant with c, posts them and opens the
// answer.
func callPaygate(t *testing.T, srv *httptest.Server, path string, c paygate.Cipher, merchant string, params paygate.Params) paygate.Params {
	t.Helper()
	env, err := paygate.Seal(c, merchant, params)
	if err != nil {
		t.Fatal(err)
	}
	return openAnswer(t, srv, path, c, env.Encode())
}

func openAnswer(t *testing.T, srv *httptest.Server, path string, c paygate.Cipher, form string) paygate.Params {
	t.Helper()
	status, v := postPaygate(t, srv, path, form)
	if status != http.StatusOK {
		t.Fatalf("HTTP status = %d, want 200", status)
	}
	if got := v.Get("mid"); got != testPaygateMerchant {
		t.Errorf("mid = %q, want %q", got, testPaygateMerchant)
	}
	answer, err := paygate.Open(c, v.Get("Len"), v.Get("Data"))
	if err != nil {
		t.Fatalf("Open(answer) = %v", err)
	}
	return answer
}

func get(p paygate.Params, name string) string {
	v, _ := p.Get(name)
	return v
}

func paymentParams(mac string) paygate.Params {
	return paygate.Params{
		{Key: "PayID", Value: "0123456789ABCDEF0123456789ABCDEF"},
		{Key: "TransID", Value: "order-42"},
		{Key: "Amount", Value: "1250"},
		{Key: "Currency", Value: "EUR"},
		{Key: "MAC", Value: mac},
	}
}

func goodMAC() string {
	return paygate.RequestMAC(testPaygateHMAC, "0123456789ABCDEF0123456789ABCDEF", "order-42", testPaygateMerchant, "1250", "EUR")
}

func TestPaygatePayment(t *testing.T) {
	for name, c := range testCiphers(t) {
		for _, path := range []string{PaygateCapturePath, PaygateCreditPath} {
			t.Run(name+path, func(t *testing.T) {
				pg := NewPaygate(testPaygateMerchant, c, testPaygateHMAC)
				srv := httptest.NewServer(pg.Handler())
				defer srv.Close()

				a := callPaygate(t, srv, path, c, testPaygateMerchant, paymentParams(goodMAC()))
				if get(a, "Status") != "OK" || get(a, "Code") != PaygateCodeOK || get(a, "Description") != "success" {
					t.Fatalf("answer = %v, want Status=OK Code=%s", a, PaygateCodeOK)
				}
				for _, k := range []string{"mid", "PayID", "XID", "TransID", "MAC"} {
					if get(a, k) == "" {
						t.Errorf("answer has no %s: %v", k, a)
					}
				}
				want := paygate.ResponseMAC(testPaygateHMAC, get(a, "PayID"), get(a, "TransID"), testPaygateMerchant, "OK", PaygateCodeOK)
				if !paygate.VerifyMAC(get(a, "MAC"), want) {
					t.Errorf("answer MAC = %q, want %q", get(a, "MAC"), want)
				}
				if pg.Calls() != 1 {
					t.Errorf("Calls() = %d, want 1", pg.Calls())
				}
			})
		}
	}
}

func TestPaygateRefusals(t *testing.T) {
	c := testCiphers(t)["blowfish"]
	other, err := paygate.NewBlowfish([]byte("another-password"))
	if err != nil {
		t.Fatal(err)
	}
	seal := func(c paygate.Cipher, params paygate.Params) paygate.Envelope {
		env, err := paygate.Seal(c, testPaygateMerchant, params)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	good := seal(c, paymentParams(goodMAC()))
	tooLong := good
	tooLong.Len = "500"
	badHex := good
	badHex.Data = "ZZ" + good.Data[2:]
	// Data says another merchant while the plain MerchantID is ours.
	inner := paygate.Params{{Key: "MerchantID", Value: "SomeoneElse"}}
	innerEnv, err := paygate.Seal(c, "SomeoneElse", append(inner, paymentParams(goodMAC())...))
	if err != nil {
		t.Fatal(err)
	}
	innerEnv.MerchantID = testPaygateMerchant

	tests := []struct {
		name string
		form string
		code string
	}{
		{"wrong request MAC", seal(c, paymentParams(strings.Repeat("A", 64))).Encode(), PaygateCodeMAC},
		{"missing MAC", seal(c, paymentParams("")).Encode(), PaygateCodeMAC},
		{"bad currency", seal(c, paygate.Params{
			{Key: "PayID", Value: "AB"}, {Key: "TransID", Value: "t"}, {Key: "Amount", Value: "1"}, {Key: "Currency", Value: "eur"},
		}).Encode(), PaygateCodeFormat},
		{"Data under another merchant's password", seal(other, paymentParams(goodMAC())).Encode(), ""},
		{"MerchantID in Data differs", innerEnv.Encode(), PaygateCodeMerchantMismatch},
		{"undecryptable Data", badHex.Encode(), PaygateCodeEnvelope},
		{"Len too large", tooLong.Encode(), PaygateCodeEnvelope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(NewPaygate(testPaygateMerchant, c, testPaygateHMAC).Handler())
			defer srv.Close()
			a := openAnswer(t, srv, PaygateCapturePath, c, tc.form)
			if get(a, "Status") != "FAILED" {
				t.Fatalf("Status = %q, want FAILED (answer %v)", get(a, "Status"), a)
			}
			// Garbage from the wrong password fails at decryption, parsing
			// or the MerchantID check, depending on the bytes.
			if tc.code != "" && get(a, "Code") != tc.code {
				t.Errorf("Code = %q, want %q", get(a, "Code"), tc.code)
			}
			if tc.code == "" && get(a, "Code") == PaygateCodeOK {
				t.Errorf("Code = %q, want a refusal", get(a, "Code"))
			}
			if get(a, "Description") == "" {
				t.Errorf("answer has no Description: %v", a)
			}
		})
	}
}

func TestPaygateUnknownMerchantIsPlain(t *testing.T) {
	c := testCiphers(t)["aes"]
	srv := httptest.NewServer(NewPaygate(testPaygateMerchant, c, testPaygateHMAC).Handler())
	defer srv.Close()
	env, err := paygate.Seal(c, "SomeoneElse", paymentParams(goodMAC()))
	if err != nil {
		t.Fatal(err)
	}
	status, v := postPaygate(t, srv, PaygateCapturePath, env.Encode())
	if status != http.StatusOK || v.Get("Status") != "FAILED" || v.Get("Code") != PaygateCodeUnknownMerchant || v.Get("Description") == "" {
		t.Errorf("answer = %d %v, want 200 Status=FAILED Code=%s", status, v, PaygateCodeUnknownMerchant)
	}
	if v.Has("Data") {
		t.Errorf("answer holds Data, want it plain: %v", v)
	}
}

func TestPaygateTamperResponseMAC(t *testing.T) {
	c := testCiphers(t)["aes"]
	pg := NewPaygate(testPaygateMerchant, c, testPaygateHMAC)
	pg.TamperResponseMAC(true)
	srv := httptest.NewServer(pg.Handler())
	defer srv.Close()
	a := callPaygate(t, srv, PaygateCreditPath, c, testPaygateMerchant, paymentParams(goodMAC()))
	want := paygate.ResponseMAC(testPaygateHMAC, get(a, "PayID"), get(a, "TransID"), testPaygateMerchant, get(a, "Status"), get(a, "Code"))
	if get(a, "Status") != "OK" || paygate.VerifyMAC(get(a, "MAC"), want) {
		t.Errorf("answer = %v, want Status=OK with a MAC that fails VerifyMAC", a)
	}
}

func TestPaygateDown(t *testing.T) {
	c := testCiphers(t)["aes"]
	pg := NewPaygate(testPaygateMerchant, c, testPaygateHMAC)
	pg.SetDown(true)
	srv := httptest.NewServer(pg.Handler())
	defer srv.Close()
	env, err := paygate.Seal(c, testPaygateMerchant, paymentParams(goodMAC()))
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := postPaygate(t, srv, PaygateCapturePath, env.Encode()); status != http.StatusServiceUnavailable {
		t.Errorf("HTTP status = %d, want 503", status)
	}
}

const (
	testAuthToken = "tok0123456789ABCDEF"
	testAuthLabel = "label0123456789abcdef0123456789ABCDEF"
)

func TestPaygateAuthToken(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	reg := func(token, label, expiry string) paygate.Params {
		p := paygate.Params{{Key: "AuthToken", Value: token}, {Key: "AuthLabel", Value: label}}
		if expiry != "" {
			p = append(p, paygate.Param{Key: "ExpiryDate", Value: expiry})
		}
		return p
	}
	tests := []struct {
		name       string
		first      paygate.Params // registered before, if not nil
		params     paygate.Params
		code       string
		wantExpiry string
	}{
		{"default expiry", nil, reg(testAuthToken, testAuthLabel, ""), PaygateCodeOK, "2026-12-05T12:15:00"},
		{"given expiry", nil, reg(testAuthToken, testAuthLabel, "2026-12-06T11:00:00"), PaygateCodeOK, "2026-12-06T11:00:00"},
		{"duplicate AuthToken", reg(testAuthToken, testAuthLabel, ""), reg(testAuthToken, testAuthLabel+"x", ""), PaygateCodeDuplicate, ""},
		{"expiry over 24 h", nil, reg(testAuthToken, testAuthLabel, "2026-12-06T12:00:01"), PaygateCodeFormat, ""},
		{"expiry in the past", nil, reg(testAuthToken, testAuthLabel, "2026-12-05T11:59:59"), PaygateCodeFormat, ""},
		{"expiry with a zone", nil, reg(testAuthToken, testAuthLabel, "2026-12-05T13:00:00Z"), PaygateCodeFormat, ""},
		{"AuthLabel too short", nil, reg(testAuthToken, "short0123456789", ""), PaygateCodeFormat, ""},
		{"AuthLabel not alphanumeric", nil, reg(testAuthToken, testAuthLabel+"-", ""), PaygateCodeFormat, ""},
		{"AuthToken too short", nil, reg("tok", testAuthLabel, ""), PaygateCodeFormat, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testCiphers(t)["blowfish"]
			pg := NewPaygate(testPaygateMerchant, c, testPaygateHMAC)
			pg.SetClock(func() time.Time { return now })
			srv := httptest.NewServer(pg.Handler())
			defer srv.Close()
			if tc.first != nil {
				if a := callPaygate(t, srv, PaygateAuthTokenPath, c, testPaygateMerchant, tc.first); get(a, "Status") != "OK" {
					t.Fatalf("first registration = %v, want Status=OK", a)
				}
			}
			a := callPaygate(t, srv, PaygateAuthTokenPath, c, testPaygateMerchant, tc.params)
			if got := get(a, "Code"); got != tc.code {
				t.Fatalf("Code = %q, want %q (answer %v)", got, tc.code, a)
			}
			if get(a, "MID") != testPaygateMerchant || get(a, "Description") == "" {
				t.Errorf("answer = %v, want MID and Description", a)
			}
			if tc.code != PaygateCodeOK {
				if get(a, "Status") != "FAILED" {
					t.Errorf("Status = %q, want FAILED", get(a, "Status"))
				}
				if tc.first == nil && pg.Registrations() != 0 {
					t.Errorf("Registrations() = %d, want 0", pg.Registrations())
				}
				return
			}
			if get(a, "Status") != "OK" || get(a, "ExpiryDate") != tc.wantExpiry {
				t.Errorf("answer = %v, want Status=OK ExpiryDate=%s", a, tc.wantExpiry)
			}
			label, expiry, ok := pg.Registered(testAuthToken)
			if !ok || label != testAuthLabel || expiry.Format(axeptaDTTM) != tc.wantExpiry {
				t.Errorf("Registered() = %q, %v, %v, want %q, %s, true", label, expiry, ok, testAuthLabel, tc.wantExpiry)
			}
		})
	}
}

func TestPaygateConcurrentRegistrations(t *testing.T) {
	c := testCiphers(t)["aes"]
	pg := NewPaygate(testPaygateMerchant, c, testPaygateHMAC)
	srv := httptest.NewServer(pg.Handler())
	defer srv.Close()

	const n = 50
	token := func(i int) string { return fmt.Sprintf("token%016d", i) }
	label := func(i int) string { return fmt.Sprintf("label%032d", i) }
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := tryPaygate(srv, PaygateAuthTokenPath, c, paygate.Params{
				{Key: "AuthToken", Value: token(i)}, {Key: "AuthLabel", Value: label(i)},
			})
			if err != nil {
				t.Errorf("registration %d: %v", i, err)
			} else if get(a, "Status") != "OK" {
				t.Errorf("registration %d = %v, want Status=OK", i, a)
			}
		})
	}
	wg.Wait()
	if pg.Registrations() != n || pg.Calls() != n {
		t.Errorf("Registrations() = %d, Calls() = %d, want %d", pg.Registrations(), pg.Calls(), n)
	}
	for i := range n {
		if got, _, ok := pg.Registered(token(i)); !ok || got != label(i) {
			t.Errorf("Registered(%s) = %q, %v, want %q, true", token(i), got, ok, label(i))
		}
	}
}

func TestPaygateGETQuery(t *testing.T) {
	c := testCiphers(t)["blowfish"]
	srv := httptest.NewServer(NewPaygate(testPaygateMerchant, c, testPaygateHMAC).Handler())
	defer srv.Close()
	env, err := paygate.Seal(c, testPaygateMerchant, paymentParams(goodMAC()))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(srv.URL + PaygateCapturePath + "?" + env.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatal(err)
	}
	a, err := paygate.Open(c, v.Get("Len"), v.Get("Data"))
	if err != nil || get(a, "Status") != "OK" {
		t.Errorf("GET answer = %v, %v, want Status=OK", a, err)
	}
}
