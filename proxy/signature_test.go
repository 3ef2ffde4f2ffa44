package proxy_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// The identities the test signer signs with.
const (
	testKeyID    = "key-1234"
	testMerchant = "stock"
	testService  = "in.juspay.hyperapi"
)

// testKeys are 2048-bit RSA keys, generated once for the package's tests.
var testKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// initiate is a Juspay initiate outer payload, as the app sends it: without
// requestId, service or signature.
const initiate = `{"payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"abcde12345","amount":12345678901234567890,"fee":1.10}}`

// keyPEM encodes key as PKCS#1 ("RSA PRIVATE KEY", RSA only) or PKCS#8
// ("PRIVATE KEY").
func keyPEM(t testing.TB, key crypto.Signer, pkcs8 bool) []byte {
	t.Helper()
	if !pkcs8 {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeKey replaces the file at path with data at once, as a Secret
// update does, so that a reader never sees it half written.
func writeKey(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// keyFile writes data to a new key file and loads it with log (nil: none).
func keyFile(t testing.TB, data []byte, log *slog.Logger) (*tokens.KeyFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.pem")
	writeKey(t, path, data)
	k, err := tokens.LoadKeyFile(path, log)
	if err != nil {
		t.Fatalf("LoadKeyFile() error = %v", err)
	}
	return k, path
}

// fixedNow is the signer's clock in tests that need an exact timestamp:
// Juspay's example timestamp.
func fixedNow() time.Time { return time.UnixMilli(1665996901100) }

// newSigner returns a signer with key 0 in PKCS#1, the test identities and a
// fixed clock, with c's non-zero fields in place of those.
func newSigner(t testing.TB, c proxy.SignerConfig) *proxy.Signer {
	t.Helper()
	if c.Key == nil {
		c.Key, _ = keyFile(t, keyPEM(t, testKeys()[0], false), nil)
	}
	if c.KeyID == "" {
		c.KeyID = testKeyID
	}
	if c.MerchantID == "" {
		c.MerchantID = testMerchant
	}
	if c.Now == nil {
		c.Now = fixedNow
	}
	return proxy.NewSigner(c)
}

// signedPayload is a signed outer payload, decoded.
type signedPayload struct {
	doc     map[string]any // the outer payload
	payload map[string]any // doc["payload"]
	spText  string         // payload.signaturePayload, the signed string
	sp      map[string]any // spText, decoded
}

// verifySigned decodes a signed outer payload and checks its signature over
// the exact signaturePayload string with pub, and its merchantKeyId.
func verifySigned(body []byte, pub *rsa.PublicKey) (signedPayload, error) {
	var s signedPayload
	doc, ok := decodeObjectUseNumber(body)
	if !ok {
		return s, fmt.Errorf("signed body %q is not a JSON object", body)
	}
	s.doc = doc
	if s.payload, ok = doc["payload"].(map[string]any); !ok {
		return s, fmt.Errorf("signed body %s has no payload object", body)
	}
	if s.spText, ok = s.payload["signaturePayload"].(string); !ok {
		return s, fmt.Errorf("payload.signaturePayload = %#v, want a string", s.payload["signaturePayload"])
	}
	sigText, ok := s.payload["signature"].(string)
	if !ok {
		return s, fmt.Errorf("payload.signature = %#v, want a string", s.payload["signature"])
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(sigText)
	if err != nil {
		return s, fmt.Errorf("payload.signature = %q, not standard base64: %v", sigText, err)
	}
	digest := sha256.Sum256([]byte(s.spText))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return s, fmt.Errorf("signature over %q does not verify: %v", s.spText, err)
	}
	if id := s.payload["merchantKeyId"]; id != testKeyID {
		return s, fmt.Errorf("payload.merchantKeyId = %#v, want %q", id, testKeyID)
	}
	if s.sp, ok = decodeObjectUseNumber([]byte(s.spText)); !ok {
		return s, fmt.Errorf("payload.signaturePayload %q is not a JSON object", s.spText)
	}
	return s, nil
}

// mustVerify is verifySigned failing the test.
func mustVerify(t testing.TB, body []byte, pub *rsa.PublicKey) signedPayload {
	t.Helper()
	s, err := verifySigned(body, pub)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeObjectUseNumber(b []byte) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if dec.Decode(&m) != nil || m == nil || dec.More() {
		return nil, false
	}
	return m, true
}

// checkUUIDv4 checks that s is a canonical version 4 UUID.
func checkUUIDv4(s any) error {
	str, _ := s.(string)
	u, err := uuid.Parse(str)
	if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 || u.String() != str {
		return fmt.Errorf("requestId = %#v, want a canonical uuid v4", s)
	}
	return nil
}

// checkSignaturePayload checks merchant_id, customer_id and timestamp.
func checkSignaturePayload(t testing.TB, s signedPayload, customer string, from, to int64) {
	t.Helper()
	if got := s.sp["merchant_id"]; got != testMerchant {
		t.Errorf("signaturePayload.merchant_id = %#v, want %q", got, testMerchant)
	}
	if got := s.sp["customer_id"]; got != customer {
		t.Errorf("signaturePayload.customer_id = %#v, want %q", got, customer)
	}
	ts, ok := s.sp["timestamp"].(string)
	ms, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || strconv.FormatInt(ms, 10) != ts {
		t.Fatalf("signaturePayload.timestamp = %#v, want milliseconds as a string", s.sp["timestamp"])
	}
	if ms < from || ms > to {
		t.Errorf("signaturePayload.timestamp = %d, want between %d and %d", ms, from, to)
	}
}

func TestSignerKeyFormats(t *testing.T) {
	for _, pkcs8 := range []bool{false, true} {
		t.Run(map[bool]string{false: "PKCS#1", true: "PKCS#8"}[pkcs8], func(t *testing.T) {
			key := testKeys()[1]
			k, _ := keyFile(t, keyPEM(t, key, pkcs8), nil)
			s := newSigner(t, proxy.SignerConfig{Key: k})
			if got := s.Body(); got != proxy.BodyOnce {
				t.Errorf("Body() = %v, want BodyOnce (%v)", got, proxy.BodyOnce)
			}
			out, err := s.Sign([]byte(initiate))
			if err != nil {
				t.Fatalf("Sign() error = %v", err)
			}
			got := mustVerify(t, out, &key.PublicKey)
			ms := fixedNow().UnixMilli()
			checkSignaturePayload(t, got, "abcde12345", ms, ms)
			if got.spText != `{"customer_id":"abcde12345","merchant_id":"stock","timestamp":"1665996901100"}` {
				t.Errorf("signaturePayload = %q, want the three fields and no others", got.spText)
			}
			if _, err := verifySigned(out, &testKeys()[0].PublicKey); err == nil {
				t.Errorf("the signature verifies with another key")
			}
		})
	}
}

// TestSignerDefaultClock checks that, without Now, the timestamp is the
// time of signing.
func TestSignerDefaultClock(t *testing.T) {
	k, _ := keyFile(t, keyPEM(t, testKeys()[0], true), nil)
	s := proxy.NewSigner(proxy.SignerConfig{Key: k, KeyID: testKeyID, MerchantID: testMerchant})
	from := time.Now().UnixMilli()
	out, err := s.Sign([]byte(initiate))
	to := time.Now().UnixMilli()
	if err != nil {
		t.Fatalf("Sign() error = %v", err)
	}
	checkSignaturePayload(t, mustVerify(t, out, &testKeys()[0].PublicKey), "abcde12345", from, to)
}

// TestSignedRequestsThroughProxy sends outer payloads through a signing
// proxy without a token source, and checks what the upstream receives.
func TestSignedRequestsThroughProxy(t *testing.T) {
	tests := []struct {
		name        string
		service     string // SignerConfig.Service
		body        string
		wantReqID   string // "" means a new uuid v4
		wantService string // "" means absent
		customer    string
		wantSP      map[string]any // besides merchant_id, customer_id and timestamp
	}{
		{
			name:    "juspay initiate: requestId and service added",
			service: testService, body: initiate,
			wantService: testService, customer: "abcde12345",
		},
		{
			name:      "the app's requestId and service are kept",
			service:   testService,
			body:      `{"requestId":"abcd-12345-abcd-12345","service":"in.juspay.other","payload":{"action":"process","customerId":"c-1"}}`,
			wantReqID: "abcd-12345-abcd-12345", wantService: "in.juspay.other", customer: "c-1",
		},
		{
			name:     "no service configured: none added",
			body:     `{"payload":{"action":"initiate","customerId":"c-1"}}`,
			customer: "c-1",
		},
		{
			name:     "customer_id instead of customerId",
			service:  testService,
			body:     `{"payload":{"action":"initiate","customer_id":"snake-1"}}`,
			customer: "snake-1", wantService: testService,
		},
		{
			name:     "empty customerId falls back to customer_id",
			body:     `{"payload":{"customerId":"","customer_id":"snake-2"}}`,
			customer: "snake-2",
		},
		{
			name:     "numeric customerId kept as written",
			body:     `{"payload":{"customerId":12345678901234567890}}`,
			customer: "12345678901234567890",
		},
		{
			name:     "the app's signaturePayload object is extended",
			body:     `{"payload":{"action":"initiate","customerId":"c-1","signaturePayload":{"order_id":"ord-1","amount":"100.00","merchant_id":"app-own"}}}`,
			customer: "c-1",
			wantSP:   map[string]any{"order_id": "ord-1", "amount": "100.00"},
		},
		{
			name:     "the app's signaturePayload as a JSON string is extended",
			body:     `{"payload":{"customerId":"c-1","signaturePayload":"{\"order_id\":\"ord-2\"}"}}`,
			customer: "c-1",
			wantSP:   map[string]any{"order_id": "ord-2"},
		},
		{
			name:     "the app's stale signature and key id are replaced",
			body:     `{"payload":{"customerId":"c-1","signature":"c3RhbGU=","merchantKeyId":"old-key"}}`,
			customer: "c-1",
		},
		{
			name:     "HTML and non-ASCII kept",
			body:     `{"meta":"<b>&</b> é","payload":{"customerId":"ü<1>"}}`,
			customer: "ü<1>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			_, m := newMetrics()
			s := newSigner(t, proxy.SignerConfig{Service: tc.service, Metrics: m})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/v1"), Injector: s, MaxReplayBody: 64 << 10, Metrics: m})
			req := bodyRequest(t, http.MethodPost, srv.URL+"/session", []byte(tc.body), false)
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			up.checkLengths(t)
			if v := got[0].Header.Values("Authorization"); len(v) != 0 {
				t.Errorf("Authorization = %q, want none", v)
			}
			signed := mustVerify(t, got[0].Body, &testKeys()[0].PublicKey)
			ms := fixedNow().UnixMilli()
			checkSignaturePayload(t, signed, tc.customer, ms, ms)
			for k, v := range tc.wantSP {
				if signed.sp[k] != v {
					t.Errorf("signaturePayload.%s = %#v, want the app's %#v", k, signed.sp[k], v)
				}
			}
			if n := len(signed.sp); n != 3+len(tc.wantSP) {
				t.Errorf("signaturePayload = %s, want %d fields", signed.spText, 3+len(tc.wantSP))
			}

			if tc.wantReqID == "" {
				if err := checkUUIDv4(signed.doc["requestId"]); err != nil {
					t.Error(err)
				}
			} else if got := signed.doc["requestId"]; got != tc.wantReqID {
				t.Errorf("requestId = %#v, want the app's %q", got, tc.wantReqID)
			}
			if got, ok := signed.doc["service"]; tc.wantService == "" && ok {
				t.Errorf("service = %#v, want it absent", got)
			} else if tc.wantService != "" && got != tc.wantService {
				t.Errorf("service = %#v, want %q", got, tc.wantService)
			}
			checkAppFieldsKept(t, []byte(tc.body), signed)
			if v := toFloat64(t, m.Signatures.WithLabelValues("success")); v != 1 {
				t.Errorf(`authsidecar_signatures_total{result="success"} = %v, want 1`, v)
			}
		})
	}
}

// checkAppFieldsKept checks that the signed payload holds everything the app
// sent, unchanged, and only adds requestId, service and the payload's
// signature fields.
func checkAppFieldsKept(t testing.TB, app []byte, s signedPayload) {
	t.Helper()
	if err := appFieldsKept(app, s); err != nil {
		t.Error(err)
	}
}

func appFieldsKept(app []byte, s signedPayload) error {
	doc, ok := decodeObjectUseNumber(app)
	if !ok {
		return fmt.Errorf("app body %q is not a JSON object", app)
	}
	appPayload, _ := doc["payload"].(map[string]any)
	for k, v := range doc {
		if k != "payload" && !reflect.DeepEqual(s.doc[k], v) {
			return fmt.Errorf("signed %s = %#v, want the app's %#v", k, s.doc[k], v)
		}
	}
	for k := range s.doc {
		if _, sent := doc[k]; !sent && k != "requestId" && k != "service" {
			return fmt.Errorf("signed body has %q, which the app did not send", k)
		}
	}
	signatureFields := []string{"signaturePayload", "signature", "merchantKeyId"}
	for k, v := range appPayload {
		if !slices.Contains(signatureFields, k) && !reflect.DeepEqual(s.payload[k], v) {
			return fmt.Errorf("signed payload.%s = %#v, want the app's %#v", k, s.payload[k], v)
		}
	}
	for k := range s.payload {
		if _, sent := appPayload[k]; !sent && !slices.Contains(signatureFields, k) {
			return fmt.Errorf("signed payload has %q, which the app did not send", k)
		}
	}
	return nil
}

func TestSignatureRefusesBadBodies(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		body    []byte // nil: no body
		reason  string
		message string // in the response's message
	}{
		{"not JSON", "POST", []byte(`customerId=1`), "not_json_object", "must be a JSON object"},
		{"array", "POST", []byte(`[{"payload":{"customerId":"c"}}]`), "not_json_object", "must be a JSON object"},
		{"two objects", "POST", []byte(`{"payload":{"customerId":"c"}} {}`), "not_json_object", "single JSON object"},
		{"empty body", "POST", []byte{}, "not_json_object", "JSON object"},
		{"GET without body", "GET", nil, "not_json_object", "no body"},
		{"no payload", "POST", []byte(`{"requestId":"r-1","service":"in.juspay.hyperapi"}`), "no_payload", `no "payload" object`},
		{"payload is a string", "POST", []byte(`{"payload":"{\"customerId\":\"c\"}"}`), "no_payload", `no "payload" object`},
		{"payload is null", "POST", []byte(`{"payload":null}`), "no_payload", `no "payload" object`},
		{"payload is an array", "POST", []byte(`{"payload":[{"customerId":"c"}]}`), "no_payload", `no "payload" object`},
		{"no customer id", "POST", []byte(`{"payload":{"action":"initiate"}}`), "no_customer_id", `no "customerId" or "customer_id"`},
		{"empty customer ids", "POST", []byte(`{"payload":{"customerId":"","customer_id":""}}`), "no_customer_id", `"customerId" or "customer_id"`},
		{"customer id not a string or number", "POST", []byte(`{"payload":{"customerId":true,"customer_id":{"id":"c"}}}`), "no_customer_id", `"customerId" or "customer_id"`},
		{"customer id null", "POST", []byte(`{"payload":{"customerId":null}}`), "no_customer_id", `"customerId" or "customer_id"`},
		{"signaturePayload a number", "POST", []byte(`{"payload":{"customerId":"c","signaturePayload":5}}`), "bad_field", "signaturePayload must be a JSON object"},
		{"signaturePayload an array", "POST", []byte(`{"payload":{"customerId":"c","signaturePayload":[]}}`), "bad_field", "signaturePayload must be a JSON object"},
		{"signaturePayload a string not holding an object", "POST", []byte(`{"payload":{"customerId":"c","signaturePayload":"merchant_id=stock"}}`), "bad_field", "signaturePayload must be a JSON object"},
		{"signaturePayload a string holding an unpaired surrogate", "POST", []byte(`{"payload":{"customerId":"c","signaturePayload":"{\"order_id\":\"\\ud800\"}"}}`), "bad_field", "signaturePayload must be a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			reg, m := newMetrics()
			s := newSigner(t, proxy.SignerConfig{Metrics: m})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Injector: s, MaxReplayBody: 64 << 10, Metrics: m})
			resp, body := do(t, srv.Client(), bodyRequest(t, tc.method, srv.URL+"/session", tc.body, false))
			code := "bad_request"
			if tc.reason == "no_customer_id" {
				code = tc.reason
			}
			checkSidecarError(t, resp, body, http.StatusBadRequest, code)
			var e sidecarError
			json.Unmarshal(body, &e)
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message = %q, want it to contain %q", e.Message, tc.message)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
			want := map[string]float64{fmt.Sprintf("reason=%q", tc.reason): 1}
			if got := series(t, reg, "authsidecar_rejected_bodies_total"); !maps.Equal(got, want) {
				t.Errorf("authsidecar_rejected_bodies_total = %v, want %v", got, want)
			}
			wantSig := map[string]float64{`result="error"`: 1}
			if len(tc.body) == 0 { // refused before the signer is called
				wantSig = map[string]float64{}
			}
			if got := series(t, reg, "authsidecar_signatures_total"); !maps.Equal(got, wantSig) {
				t.Errorf("authsidecar_signatures_total = %v, want %v", got, wantSig)
			}
		})
	}
}

func TestSignatureBodyTooLarge(t *testing.T) {
	const limit = 512
	up := newBodyUpstream(t, nil)
	reg, m := newMetrics()
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Injector: newSigner(t, proxy.SignerConfig{Metrics: m}), MaxReplayBody: limit, Metrics: m})
	big := []byte(`{"payload":{"customerId":"c","blob":"` + strings.Repeat("x", limit) + `"}}`)
	for _, chunked := range []bool{false, true} {
		resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/session", big, chunked))
		checkSidecarError(t, resp, body, http.StatusRequestEntityTooLarge, "body_too_large")
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
	if got, want := series(t, reg, "authsidecar_rejected_bodies_total"), map[string]float64{`reason="too_large"`: 2}; !maps.Equal(got, want) {
		t.Errorf("authsidecar_rejected_bodies_total = %v, want %v", got, want)
	}
}

// TestSignatureConcurrent signs 50 requests at once: each gets its own
// requestId, and every signature verifies.
func TestSignatureConcurrent(t *testing.T) {
	const n = 50
	up := newBodyUpstream(t, nil)
	_, m := newMetrics()
	s := newSigner(t, proxy.SignerConfig{Service: testService, Metrics: m, Now: time.Now})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Injector: s, MaxReplayBody: 64 << 10, Metrics: m})
	client := srv.Client()
	from := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"payload":{"action":"initiate","customerId":"cust-%d"}}`, i)
			resp, err := client.Post(srv.URL+"/session", "application/json", strings.NewReader(body))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: status = %d, want 200", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	to := time.Now().UnixMilli()

	got := up.requests()
	if len(got) != n {
		t.Fatalf("upstream got %d requests, want %d", len(got), n)
	}
	ids := map[any]bool{}
	customers := map[any]bool{}
	for i, r := range got {
		signed, err := verifySigned(r.Body, &testKeys()[0].PublicKey)
		if err != nil {
			t.Errorf("request %d: %v", i+1, err)
			continue
		}
		if err := checkUUIDv4(signed.doc["requestId"]); err != nil {
			t.Errorf("request %d: %v", i+1, err)
		}
		ids[signed.doc["requestId"]] = true
		if signed.sp["customer_id"] != signed.payload["customerId"] {
			t.Errorf("request %d: signaturePayload.customer_id = %#v, want its own payload's %#v", i+1, signed.sp["customer_id"], signed.payload["customerId"])
		}
		customers[signed.sp["customer_id"]] = true
		checkSignaturePayload(t, signed, signed.payload["customerId"].(string), from, to)
	}
	if len(ids) != n || len(customers) != n {
		t.Errorf("distinct requestIds = %d, customer ids = %d; want %d of each", len(ids), len(customers), n)
	}
	up.checkLengths(t)
	if v := toFloat64(t, m.Signatures.WithLabelValues("success")); v != n {
		t.Errorf(`authsidecar_signatures_total{result="success"} = %v, want %d`, v, n)
	}
}

// TestSignatureReplaySendsSameSignedBody has the upstream reject the first
// attempt: the replay, with the token source's new token, carries the
// byte-identical signed body, which was signed once.
func TestSignatureReplaySendsSameSignedBody(t *testing.T) {
	var calls atomic.Int32
	up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"session_expired"}`)
			return
		}
		io.WriteString(w, "accepted")
	})
	_, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{ForcedRefreshInterval: time.Nanosecond})
	s := newSigner(t, proxy.SignerConfig{Service: testService, Metrics: m, Now: time.Now})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: cache, Injector: s, MaxReplayBody: 64 << 10, Metrics: m})

	for _, chunked := range []bool{false, true} {
		calls.Store(0)
		before := len(up.requests())
		resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/session", []byte(initiate), chunked))
		if resp.StatusCode != http.StatusOK || string(body) != "accepted" {
			t.Fatalf("response = %d %q, want 200 %q", resp.StatusCode, body, "accepted")
		}
		got := up.requests()[before:]
		if len(got) != 2 {
			t.Fatalf("upstream got %d requests, want 2 (the 401 and its replay)", len(got))
		}
		if !bytes.Equal(got[0].Body, got[1].Body) {
			t.Errorf("replayed body = %s\nwant the first attempt's %s", got[1].Body, got[0].Body)
		}
		mustVerify(t, got[1].Body, &testKeys()[0].PublicKey)
	}
	up.checkLengths(t)
	if n := src.fetches(); n != 3 {
		t.Errorf("token fetches = %d, want 3 (the first, and one per rejection)", n)
	}
	if v := toFloat64(t, m.Signatures.WithLabelValues("success")); v != 2 {
		t.Errorf(`authsidecar_signatures_total{result="success"} = %v, want 2: one per request, none per replay`, v)
	}
	if v := toFloat64(t, m.Replays.WithLabelValues("success")); v != 2 {
		t.Errorf(`authsidecar_replays_total{result="success"} = %v, want 2`, v)
	}
}

func TestSignEndpoint(t *testing.T) {
	const limit = 1 << 10
	up := newBodyUpstream(t, nil)
	reg, m := newMetrics()
	s := newSigner(t, proxy.SignerConfig{Service: testService, Metrics: m})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Signer: s, SignPath: "/v1/sign", MaxReplayBody: limit, Metrics: m})

	tests := []struct {
		name      string
		method    string
		path      string
		body      []byte
		status    int
		code      string // for errors
		allow     bool   // want Allow: POST
		signedFor string // the customer, for 200
	}{
		{name: "POST signs", method: "POST", path: "/v1/sign", body: []byte(initiate), status: 200, signedFor: "abcde12345"},
		{name: "POST with a query signs", method: "POST", path: "/v1/sign?platform=android", body: []byte(`{"payload":{"action":"updateAuth","customer_id":"c-9"}}`), status: 200, signedFor: "c-9"},
		{name: "GET", method: "GET", path: "/v1/sign", status: 405, code: "method_not_allowed", allow: true},
		{name: "PUT", method: "PUT", path: "/v1/sign", body: []byte(initiate), status: 405, code: "method_not_allowed", allow: true},
		{name: "not JSON", method: "POST", path: "/v1/sign", body: []byte(`hello`), status: 400, code: "bad_request"},
		{name: "no customer id", method: "POST", path: "/v1/sign", body: []byte(`{"payload":{}}`), status: 400, code: "no_customer_id"},
		{name: "too large", method: "POST", path: "/v1/sign", body: []byte(`{"payload":{"customerId":"c","x":"` + strings.Repeat("x", limit) + `"}}`), status: 413, code: "body_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv.Client(), bodyRequest(t, tc.method, srv.URL+tc.path, tc.body, false))
			if tc.status != http.StatusOK {
				checkSidecarError(t, resp, body, tc.status, tc.code)
				if got := resp.Header.Get("Allow"); tc.allow && got != "POST" {
					t.Errorf("Allow = %q, want %q", got, "POST")
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			signed := mustVerify(t, body, &testKeys()[0].PublicKey)
			ms := fixedNow().UnixMilli()
			checkSignaturePayload(t, signed, tc.signedFor, ms, ms)
			if err := checkUUIDv4(signed.doc["requestId"]); err != nil {
				t.Error(err)
			}
			if signed.doc["service"] != testService {
				t.Errorf("service = %#v, want %q", signed.doc["service"], testService)
			}
			checkAppFieldsKept(t, tc.body, signed)
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests for the signing endpoint, want none", n)
	}
	// The rest goes upstream, untouched: nothing above was lost on the way.
	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/v1/sign/other", []byte(`{"a":1}`), false))
	if got := up.requests(); resp.StatusCode != http.StatusOK || len(got) != 1 || string(got[0].Body) != `{"a":1}` {
		t.Errorf("POST /v1/sign/other = %d %q, upstream got %d requests; want it forwarded as sent", resp.StatusCode, body, len(got))
	}
	if got, want := series(t, reg, "authsidecar_signatures_total"), map[string]float64{`result="success"`: 2, `result="error"`: 2}; !maps.Equal(got, want) {
		t.Errorf("authsidecar_signatures_total = %v, want %v", got, want)
	}
	want := map[string]float64{`reason="not_json_object"`: 1, `reason="no_customer_id"`: 1, `reason="too_large"`: 1}
	if got := series(t, reg, "authsidecar_rejected_bodies_total"); !maps.Equal(got, want) {
		t.Errorf("authsidecar_rejected_bodies_total = %v, want %v", got, want)
	}
}

// TestSignPathNeedsASigner checks that a SignPath without a Signer serves
// nothing locally.
func TestSignPathNeedsASigner(t *testing.T) {
	up := newBodyUpstream(t, nil)
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), SignPath: "/v1/sign", MaxReplayBody: 1 << 10})
	resp, _ := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/v1/sign", []byte(initiate), false))
	if got := up.requests(); resp.StatusCode != http.StatusOK || len(got) != 1 || string(got[0].Body) != initiate {
		t.Errorf("POST /v1/sign without a signer = %d, upstream got %d requests; want it forwarded as sent", resp.StatusCode, len(got))
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// debugLogger logs everything as JSON into the returned buffer.
func debugLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// keyMaterial is what of key must never be seen: each line of its PEM
// encodings, as they would appear in a log whether JSON-escaped or not, and
// its private numbers in decimal and hex.
func keyMaterial(t testing.TB, key *rsa.PrivateKey) []string {
	t.Helper()
	var out []string
	for _, pkcs8 := range []bool{false, true} {
		for l := range strings.SplitSeq(string(keyPEM(t, key, pkcs8)), "\n") {
			if len(l) >= 32 && !strings.HasPrefix(l, "-----") {
				out = append(out, l)
			}
		}
	}
	for _, n := range append([]string{key.D.String(), key.D.Text(16)}, key.Primes[0].String(), key.Primes[1].String()) {
		out = append(out, n[:32])
	}
	return out
}

// checkNoKeyMaterial fails the test if log holds anything of keys.
func checkNoKeyMaterial(t *testing.T, log string, keys ...*rsa.PrivateKey) {
	t.Helper()
	for i, key := range keys {
		for _, m := range keyMaterial(t, key) {
			if strings.Contains(log, m) {
				t.Errorf("log holds material of key %d (%q):\n%s", i, m, log)
				return
			}
		}
	}
}

// TestSigningKeyRotation replaces the key file under a running proxy. After
// the check interval, a new RSA key signs; a file that cannot be used to
// sign leaves the previous key in use.
func TestSigningKeyRotation(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, newKey := testKeys()[0], testKeys()[1]
	tests := []struct {
		name    string
		rotated []byte
		signer  *rsa.PrivateKey // the key that signs after the rotation
		log     string          // in the log once the rotation is seen
	}{
		{name: "new RSA key in PKCS#8 is used", rotated: keyPEM(t, newKey, true), signer: newKey, log: "using the new one"},
		{name: "broken file keeps the old key", rotated: []byte("-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n"), signer: oldKey, log: "keeping the previous one"},
		{name: "truncated key keeps the old key", rotated: keyPEM(t, newKey, false)[:900], signer: oldKey, log: "keeping the previous one"},
		{name: "EC key keeps the old key", rotated: keyPEM(t, ecKey, true), signer: oldKey, log: "keeping the previous one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each waits for the check interval
			log, logs := debugLogger()
			k, path := keyFile(t, keyPEM(t, oldKey, false), log)
			up := newBodyUpstream(t, nil)
			s := newSigner(t, proxy.SignerConfig{Key: k, Now: time.Now})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Injector: s, MaxReplayBody: 64 << 10, Logger: log})
			send := func() []byte {
				t.Helper()
				resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/session", []byte(initiate), false))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
				}
				got := up.requests()
				return got[len(got)-1].Body
			}
			mustVerify(t, send(), &oldKey.PublicKey)

			writeKey(t, path, tc.rotated)
			// tokens.KeyFile looks at the file at most once a second, from
			// the Signer call of a signature, and logs what it found: the
			// request that brings the log line is the first signed after
			// the rotation.
			deadline := time.After(10 * time.Second)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			signed := send()
			for !strings.Contains(logs.String(), tc.log) {
				select {
				case <-deadline:
					t.Fatalf("log = %s\nwant it to contain %q within 10s of the rotation", logs, tc.log)
				case <-tick.C:
				}
				signed = send()
			}
			if _, err := verifySigned(signed, &tc.signer.PublicKey); err != nil {
				t.Errorf("after rotation: %v", err)
			}
			if tc.signer != oldKey {
				if _, err := verifySigned(signed, &oldKey.PublicKey); err == nil {
					t.Errorf("after rotation, the old key still signs")
				}
			}
			checkNoKeyMaterial(t, logs.String(), oldKey, newKey)
		})
	}
}

// TestSigningKeyNeverLogged runs signing, refusals, replays, the signing
// endpoint and upstream failures with debug logging, and looks for the key.
func TestSigningKeyNeverLogged(t *testing.T) {
	log, logs := debugLogger()
	key := testKeys()[0]
	k, _ := keyFile(t, keyPEM(t, key, false), log)
	s := newSigner(t, proxy.SignerConfig{Key: k})
	var calls atomic.Int32
	up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	cache := startCache(t, &tokenSource{}, tokens.CacheOptions{Logger: log})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: cache, Injector: s, Signer: s, SignPath: "/sign", MaxReplayBody: 1 << 10, Logger: log})
	down := startProxy(t, proxy.Config{Upstream: closedPort(t), Injector: s, MaxReplayBody: 1 << 10, Logger: log})

	for _, r := range []struct {
		srv    string
		method string
		path   string
		body   string
		status int
	}{
		{srv.URL, "POST", "/session", initiate, 200}, // rejected once, replayed
		{srv.URL, "POST", "/session", `{"payload":{}}`, 400},
		{srv.URL, "POST", "/session", `not json`, 400},
		{srv.URL, "POST", "/session", `{"payload":{"customerId":"c","x":"` + strings.Repeat("x", 2<<10) + `"}}`, 413},
		{srv.URL, "POST", "/sign", initiate, 200},
		{srv.URL, "GET", "/sign", "", 405},
		{srv.URL, "POST", "/sign", `[]`, 400},
		{down.URL, "POST", "/session", initiate, 502},
	} {
		var body []byte
		if r.body != "" {
			body = []byte(r.body)
		}
		resp, _ := do(t, http.DefaultClient, bodyRequest(t, r.method, r.srv+r.path, body, false))
		if resp.StatusCode != r.status {
			t.Errorf("%s %s = %d, want %d", r.method, r.path, resp.StatusCode, r.status)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	out := logs.String()
	for _, want := range []string{"request refused", "upstream unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log = %s\nwant it to contain %q", out, want)
		}
	}
	checkNoKeyMaterial(t, out, key)
}

// TestSignerErrorsAreRequestErrors checks that each refusal of Sign is a
// *RequestError with its reason.
func TestSignerErrorsAreRequestErrors(t *testing.T) {
	s := newSigner(t, proxy.SignerConfig{})
	for body, reason := range map[string]string{
		`x`:              "not_json_object",
		`{"payload":1}`:  "no_payload",
		`{"payload":{}}`: "no_customer_id",
		`{"payload":{"customerId":"c","signaturePayload":"[]"}}`: "bad_field",
	} {
		out, err := s.Sign([]byte(body))
		var re *proxy.RequestError
		if !errors.As(err, &re) || re.Reason != reason || out != nil {
			t.Errorf("Sign(%q) = %q, %v; want a *RequestError with reason %q", body, out, err, reason)
		}
	}
}

// TestSignerWithoutMetrics checks that a nil Metrics counts nothing and
// does not fail.
func TestSignerWithoutMetrics(t *testing.T) {
	s := newSigner(t, proxy.SignerConfig{Metrics: (*metrics.Metrics)(nil)})
	if _, err := s.Sign([]byte(initiate)); err != nil {
		t.Errorf("Sign() error = %v", err)
	}
	if _, err := s.Sign([]byte(`{}`)); err == nil {
		t.Errorf("Sign({}) error = nil, want one")
	}
}
