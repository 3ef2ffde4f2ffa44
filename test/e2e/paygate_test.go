package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
)

// The fake Axepta merchant's Paygate passwords.
const (
	paygateMerchantID = "axepta_e2e"
	paygateBlowfish   = "bf-password-e2e-17"
	paygateAES        = "aes-password-of-32-bytes-e2e-ok!"
	paygateHMAC       = "hmac-password-e2e"
)

// paygateMerchant is a fake Paygate, served until the test ends, and the
// sidecar settings for its merchant with cipher ("blowfish" or "aes").
func paygateMerchant(t *testing.T, cipher string, extra ...string) (*fake.Paygate, *httptest.Server, map[string]string) {
	t.Helper()
	key := paygateBlowfish
	newCipher := paygate.NewBlowfish
	if cipher == "aes" {
		key, newCipher = paygateAES, paygate.NewAES
	}
	c, err := newCipher([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	p := fake.NewPaygate(paygateMerchantID, c, []byte(paygateHMAC))
	trackPaygate(t, p)
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	keyFile, hmacFile := filepath.Join(dir, "paygate_key"), filepath.Join(dir, "paygate_hmac_key")
	// A trailing newline, as a Secret written by hand often has.
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hmacFile, []byte(paygateHMAC+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"UPSTREAM_URL":          srv.URL,
		"TOKEN_SOURCE":          "none",
		"INJECT":                "paygate",
		"MERCHANT_ID":           paygateMerchantID,
		"PAYGATE_CIPHER":        cipher,
		"PAYGATE_KEY_FILE":      keyFile,
		"PAYGATE_HMAC_KEY_FILE": hmacFile,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return p, srv, env
}

// postForm sends a form body as the app would.
func postForm(c *http.Client, url, form string) result {
	return call(c, http.MethodPost, url, []byte(form), "Content-Type", "application/x-www-form-urlencoded")
}

// formOf reads a form answer; a test fails if it is not one.
func formOf(t *testing.T, r result) url.Values {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Fatalf("answer = %v with Content-Type %q, want a form", r, ct)
	}
	v, err := url.ParseQuery(string(r.body))
	if err != nil {
		t.Fatalf("answer %q is not a form: %v", r.body, err)
	}
	return v
}

// TestPaygateCallsThroughTheSidecar: a legacy app sends a capture and a
// credit in plain to the sidecar; the fake Paygate, which decrypts with the
// merchant's password and checks the MAC, accepts them, and the app reads
// the plain answer. With each cipher.
func TestPaygateCallsThroughTheSidecar(t *testing.T) {
	for _, cipher := range []string{"blowfish", "aes"} {
		t.Run(cipher, func(t *testing.T) {
			p, _, env := paygateMerchant(t, cipher)
			s := startSidecar(t, env)
			c := newClient(t)

			capture := postForm(c, s.URL+fake.PaygateCapturePath, "PayID=0123456789ABCDEF0123456789ABCDEF&TransID=order-1&Amount=1000&Currency=EUR&RefNr=caf%C3%A9+1")
			if capture.status != http.StatusOK {
				t.Fatalf("capture = %v, want 200", capture)
			}
			got := formOf(t, capture)
			if got.Get("Status") != "OK" || got.Get("Code") != fake.PaygateCodeOK || got.Get("TransID") != "order-1" {
				t.Errorf("capture answer = %v, want Status=OK, Code=%s, TransID=order-1", got, fake.PaygateCodeOK)
			}
			if got.Has("Data") || got.Has("Len") {
				t.Errorf("capture answer = %v, want the plain parameters, not the envelope", got)
			}
			if n := capture.header.Get("Content-Length"); n != fmt.Sprint(len(capture.body)) {
				t.Errorf("Content-Length = %s, want %d", n, len(capture.body))
			}

			credit := call(c, http.MethodGet, s.URL+fake.PaygateCreditPath+"?PayID=0123456789ABCDEF0123456789ABCDEF&TransID=refund-1&Amount=250&Currency=EUR", nil)
			if got := formOf(t, credit); credit.status != http.StatusOK || got.Get("Status") != "OK" || got.Get("TransID") != "refund-1" {
				t.Errorf("credit = %v, want 200 Status=OK TransID=refund-1", credit)
			}

			// A call the fake refuses (a Currency that is no ISO code) comes
			// back as Paygate's own refusal, in plain, MAC verified.
			bad := postForm(c, s.URL+fake.PaygateCapturePath, "PayID=0123456789ABCDEF0123456789ABCDEF&TransID=order-2&Amount=1000&Currency=euro")
			if got := formOf(t, bad); bad.status != http.StatusOK || got.Get("Status") != "FAILED" || got.Get("Code") != fake.PaygateCodeFormat {
				t.Errorf("refused capture = %v, want 200 Status=FAILED Code=%s", bad, fake.PaygateCodeFormat)
			}
			if n := p.Calls(); n != 3 {
				t.Errorf("the fake Paygate got %d calls, want 3", n)
			}
		})
	}
}

// TestPaygateTamperedAnswer: an answer whose MAC does not verify is
// withheld: 502 bad_upstream_signature, and none of its parameters.
func TestPaygateTamperedAnswer(t *testing.T) {
	p, _, env := paygateMerchant(t, "blowfish")
	p.TamperResponseMAC(true)
	s := startSidecar(t, env)
	r := postForm(newClient(t), s.URL+fake.PaygateCapturePath, "PayID=0123456789ABCDEF0123456789ABCDEF&TransID=order-1&Amount=1000&Currency=EUR")
	if r.status != http.StatusBadGateway || !strings.Contains(string(r.body), `"bad_upstream_signature"`) {
		t.Fatalf("capture with a tampered answer = %v, want 502 bad_upstream_signature", r)
	}
	if strings.Contains(string(r.body), "order-1") || strings.Contains(string(r.body), "XID") {
		t.Errorf("body = %s, want none of the answer's parameters", r.body)
	}
}

// TestPaygateBadCallsNeverLeave: calls the sidecar cannot seal are refused
// with JSON, and nothing reaches Paygate.
func TestPaygateBadCallsNeverLeave(t *testing.T) {
	p, _, env := paygateMerchant(t, "blowfish", "MAX_REPLAY_BODY", "256")
	s := startSidecar(t, env)
	c := newClient(t)
	for _, tc := range []struct {
		name   string
		r      result
		status int
	}{
		{"JSON body", call(c, http.MethodPost, s.URL+fake.PaygateCapturePath, []byte(`{"Amount":1}`)), http.StatusBadRequest},
		{"an ampersand inside a value", postForm(c, s.URL+fake.PaygateCapturePath, "TransID=a%26b&Amount=1"), http.StatusBadRequest},
		{"another merchant", postForm(c, s.URL+fake.PaygateCapturePath, "MerchantID=someone_else&Amount=1"), http.StatusBadRequest},
		{"too large", postForm(c, s.URL+fake.PaygateCapturePath, "RefNr="+strings.Repeat("x", 300)), http.StatusRequestEntityTooLarge},
	} {
		if tc.r.status != tc.status || tc.r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %v, want %d with a JSON error", tc.name, tc.r, tc.status)
		}
	}
	if n := p.Calls(); n != 0 {
		t.Errorf("the fake Paygate got %d calls, want 0", n)
	}
}

// TestPaygateCodecRoundTrip: the payment page's parameters come from
// PAYGATE_PATH/encrypt, Paygate accepts them, and its encrypted answer (a
// notification, say) is read with PAYGATE_PATH/decrypt. Neither endpoint
// reaches the upstream.
func TestPaygateCodecRoundTrip(t *testing.T) {
	p, srv, env := paygateMerchant(t, "aes", "PAYGATE_PATH", "/paygate")
	s := startSidecar(t, env)
	c := newClient(t)

	enc := postForm(c, s.URL+"/paygate/encrypt", "PayID=0123456789ABCDEF0123456789ABCDEF&TransID=page-1&Amount=990&Currency=EUR")
	sealed := formOf(t, enc)
	if enc.status != http.StatusOK || sealed.Get("MerchantID") != paygateMerchantID || sealed.Get("Data") == "" {
		t.Fatalf("encrypt = %v, want 200 MerchantID=%s&Len=…&Data=…", enc, paygateMerchantID)
	}
	if p.Calls() != 0 {
		t.Fatalf("the encrypt endpoint reached Paygate")
	}
	// The browser's payment page call, made here directly to the fake.
	answer := postForm(c, srv.URL+fake.PaygateCapturePath, string(enc.body))
	if answer.status != http.StatusOK {
		t.Fatalf("Paygate's answer to the sealed call = %v", answer)
	}
	dec := postForm(c, s.URL+"/paygate/decrypt", string(answer.body))
	if got := formOf(t, dec); dec.status != http.StatusOK || got.Get("Status") != "OK" || got.Get("TransID") != "page-1" {
		t.Fatalf("decrypt = %v, want 200 Status=OK TransID=page-1", dec)
	}
	p.TamperResponseMAC(true)
	answer = postForm(c, srv.URL+fake.PaygateCapturePath, string(enc.body))
	if dec := postForm(c, s.URL+"/paygate/decrypt", string(answer.body)); dec.status != http.StatusBadRequest || !strings.Contains(string(dec.body), `"bad_signature"`) {
		t.Errorf("decrypt of a tampered notification = %v, want 400 bad_signature", dec)
	}
	if n := p.Calls(); n != 2 {
		t.Errorf("the fake Paygate got %d calls, want the test's own 2", n)
	}
}

// sdkAnswer is the object Axepta's mobile SDK expects, as the seed shows it.
type sdkAnswer struct {
	AuthToken, AuthLabel, ExpiryDate, Description, Status, Code string
}

// TestSDKAuthOneOffTokens: 50 mobile SDKs asking at once get 50 distinct
// pairs, each registered at Paygate, in the seed's field names and order.
func TestSDKAuthOneOffTokens(t *testing.T) {
	p, srv, env := paygateMerchant(t, "blowfish", "SDK_AUTH_PATH", "/axepta/sdk-auth", "SDK_AUTH_MAX_INFLIGHT", "64")
	env["SDK_AUTH_URL"] = srv.URL + fake.PaygateAuthTokenPath
	s := startSidecar(t, env)
	c := newClient(t)
	const n = 50
	answers := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i] = call(c, http.MethodPost, s.URL+"/axepta/sdk-auth", []byte(`{"merchantID":"`+paygateMerchantID+`"}`))
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, r := range answers {
		if r.status != http.StatusOK {
			t.Fatalf("SDK request %d = %v, want 200", i, r)
		}
		wantOrder := `{"AuthToken":`
		if !strings.HasPrefix(string(r.body), wantOrder) || !strings.Contains(string(r.body), `","Code":"`) {
			t.Errorf("SDK answer %s, want the seed's fields in its order", r.body)
		}
		var a sdkAnswer
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatal(err)
		}
		if seen[a.AuthToken] || seen[a.AuthLabel] {
			t.Fatalf("SDK answer %d repeats a pair handed out before", i)
		}
		seen[a.AuthToken], seen[a.AuthLabel] = true, true
		label, expiry, ok := p.Registered(a.AuthToken)
		if !ok || label != a.AuthLabel || a.Status != "OK" || a.Code != fake.PaygateCodeOK {
			t.Errorf("SDK answer %d = %+v: registered %v with label match %v, want OK and registered", i, a, ok, label == a.AuthLabel)
		}
		if a.ExpiryDate != expiry.UTC().Format("2006-01-02T15:04:05") {
			t.Errorf("ExpiryDate = %s, want the registered %s", a.ExpiryDate, expiry.UTC().Format("2006-01-02T15:04:05"))
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", r.header.Get("Cache-Control"))
		}
	}
	if got := p.Registrations(); got != n {
		t.Errorf("Paygate registered %d pairs, want %d", got, n)
	}
	if v, _ := metric(s.metrics(), `authsidecar_sdk_auth_total{result="ok",route="default"}`); v != n {
		t.Errorf(`authsidecar_sdk_auth_total{result="ok"} = %v, want %d`, v, n)
	}

	// A registration Paygate refuses: its clock is two days behind, so
	// the ExpiryDate asked for is more than 24 hours ahead.
	p.SetClock(func() time.Time { return time.Now().Add(-48 * time.Hour) })
	r := call(c, http.MethodPost, s.URL+"/axepta/sdk-auth", []byte(`{"merchantID":"`+paygateMerchantID+`"}`))
	var failed map[string]string
	json.Unmarshal(r.body, &failed)
	if r.status != http.StatusBadGateway || failed["Status"] != "FAILED" || failed["Code"] != fake.PaygateCodeFormat {
		t.Errorf("refused registration = %v, want 502 with Status FAILED and Code %s", r, fake.PaygateCodeFormat)
	}
	if _, ok := failed["AuthToken"]; ok {
		t.Errorf("refused registration = %s, want no AuthToken", r.body)
	}
	wrong := call(c, http.MethodPost, s.URL+"/axepta/sdk-auth", []byte(`{"merchantID":"someone_else"}`))
	if wrong.status != http.StatusBadRequest {
		t.Errorf("SDK request for another merchant = %v, want 400", wrong)
	}
}

// TestPaygateBadPassword: a password the cipher cannot take stops the
// sidecar at start, naming the variable and not the password.
func TestPaygateBadPassword(t *testing.T) {
	_, _, env := paygateMerchant(t, "aes")
	if err := os.WriteFile(env["PAYGATE_KEY_FILE"], []byte("only-17-bytes-pwd"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := tryStart(t, env)
	if err == nil {
		s.kill()
		t.Fatal("the sidecar started with a 17-byte AES password")
	}
	if !strings.Contains(err.Error(), "AUTHSIDECAR_PAYGATE_KEY_FILE") || strings.Contains(err.Error(), "only-17-bytes-pwd") {
		t.Errorf("start error = %v, want it to name AUTHSIDECAR_PAYGATE_KEY_FILE and not the password", err)
	}
}
