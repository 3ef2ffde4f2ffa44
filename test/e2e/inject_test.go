package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// e2eSigningKey is a 2048-bit RSA key, generated once.
var e2eSigningKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// juspayInitiate is an initiate outer payload as the app sends it, with
// numbers that must reach the upstream exactly as written.
const juspayInitiate = `{"payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"abcde12345","amount":12345678901234567890,"fee":1.10}}`

// seenRequest is one request as the upstream saw it.
type seenRequest struct {
	path   string
	header http.Header
	body   []byte
}

// recordingUpstream records every request and answers with respond (200
// {"status":"ok"} if nil).
type recordingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newRecordingUpstream(t *testing.T, respond func(w http.ResponseWriter, body []byte)) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{path: r.URL.Path, header: r.Header.Clone(), body: body})
		u.mu.Unlock()
		if respond != nil {
			respond(w, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *recordingUpstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// verifyJuspaySignature checks a signed outer payload: the signature over
// the exact signaturePayload string, the ids, the timestamp within
// [from, to], and a uuid v4 requestId. It returns the decoded payload.
func verifyJuspaySignature(t *testing.T, body []byte, customer string, from, to time.Time) map[string]any {
	t.Helper()
	var doc struct {
		RequestID string         `json:"requestId"`
		Service   string         `json:"service"`
		Payload   map[string]any `json:"payload"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("signed body %q: %v", body, err)
	}
	spText, _ := doc.Payload["signaturePayload"].(string)
	sigText, _ := doc.Payload["signature"].(string)
	sig, err := base64.StdEncoding.DecodeString(sigText)
	digest := sha256.Sum256([]byte(spText))
	if err != nil || rsa.VerifyPKCS1v15(&e2eSigningKey().PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Errorf("signature %q over %q does not verify with the public key", sigText, spText)
	}
	if doc.Payload["merchantKeyId"] != "key-e2e" {
		t.Errorf("payload.merchantKeyId = %#v, want %q", doc.Payload["merchantKeyId"], "key-e2e")
	}
	var sp map[string]string
	if err := json.Unmarshal([]byte(spText), &sp); err != nil {
		t.Fatalf("signaturePayload %q: %v", spText, err)
	}
	ms, err := strconv.ParseInt(sp["timestamp"], 10, 64)
	if sp["merchant_id"] != "stock" || sp["customer_id"] != customer || err != nil || ms < from.UnixMilli() || ms > to.UnixMilli() {
		t.Errorf("signaturePayload = %q, want merchant_id stock, customer_id %q and a timestamp in ms between %d and %d", spText, customer, from.UnixMilli(), to.UnixMilli())
	}
	if u, err := uuid.Parse(doc.RequestID); err != nil || u.Version() != 4 {
		t.Errorf("requestId = %q, want a uuid v4", doc.RequestID)
	}
	if doc.Service != "in.juspay.hyperapi" {
		t.Errorf("service = %q, want %q", doc.Service, "in.juspay.hyperapi")
	}
	return doc.Payload
}

func TestSignatureMode(t *testing.T) {
	t.Parallel()
	der, err := x509.MarshalPKCS8PrivateKey(e2eSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	up := newRecordingUpstream(t, nil)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":     up.URL + "/api",
		"TOKEN_SOURCE":     "none",
		"INJECT":           "signature",
		"SIGNING_KEY_FILE": keyFile,
		"SIGNING_KEY_ID":   "key-e2e",
		"MERCHANT_ID":      "stock",
		"SERVICE":          "in.juspay.hyperapi",
		"SIGN_PATH":        "/v1/sign",
		"LOG_LEVEL":        "debug",
	})
	s.waitReady(10 * time.Second)
	c := newClient(t)

	from := time.Now()
	r := call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(juspayInitiate))
	if r.status != http.StatusOK || string(r.body) != `{"status":"ok"}` {
		t.Fatalf("POST /v1/initiate = %v, want the upstream's 200", r)
	}
	got := up.requests()
	if len(got) != 1 || got[0].path != "/api/v1/initiate" {
		t.Fatalf("upstream got %d requests (%v), want 1 for /api/v1/initiate", len(got), got)
	}
	payload := verifyJuspaySignature(t, got[0].body, "abcde12345", from, time.Now())
	if payload["action"] != "initiate" || payload["issuingPsp"] != "YES_BIZ" ||
		!bytes.Contains(got[0].body, []byte(`"amount":12345678901234567890`)) || !bytes.Contains(got[0].body, []byte(`"fee":1.10`)) {
		t.Errorf("upstream body = %s, want the app's fields and numbers as sent", got[0].body)
	}

	// The signing endpoint answers itself.
	from = time.Now()
	r = call(c, http.MethodPost, s.URL+"/v1/sign", []byte(`{"payload":{"action":"updateAuth","customer_id":"c-42"}}`))
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /v1/sign = %v, want 200 JSON", r)
	}
	if payload := verifyJuspaySignature(t, r.body, "c-42", from, time.Now()); payload["action"] != "updateAuth" {
		t.Errorf("signed payload = %v, want the app's action", payload)
	}
	if r := call(c, http.MethodGet, s.URL+"/v1/sign", nil); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Errorf("GET /v1/sign = %v (Allow %q), want 405 with Allow: POST", r, r.header.Get("Allow"))
	}

	// A body that cannot be signed is refused, and says why.
	r = call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(`{"payload":{"action":"initiate"}}`))
	var e sidecarError
	if r.status != http.StatusBadRequest || json.Unmarshal(r.body, &e) != nil || e.Error != "no_customer_id" || !strings.Contains(e.Message, "customerId") {
		t.Errorf("POST without a customer id = %v, want 400 no_customer_id naming customerId", r)
	}
	r = call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(`not json`))
	if r.status != http.StatusBadRequest {
		t.Errorf("POST not JSON = %v, want 400", r)
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream got %d requests, want still 1: the signing endpoint and refused bodies stay local", n)
	}

	want := map[string]float64{
		`authsidecar_signatures_total{result="success",route="default"}`:              2,
		`authsidecar_signatures_total{result="error",route="default"}`:                2,
		`authsidecar_rejected_bodies_total{reason="no_customer_id",route="default"}`:  1,
		`authsidecar_rejected_bodies_total{reason="not_json_object",route="default"}`: 1,
		`authsidecar_errors_total{reason="method_not_allowed",route="default"}`:       1,
		`authsidecar_upstream_responses_total{code="200",route="default"}`:            1,
		`authsidecar_requests_total{code="400",method="post",route="default"}`:        2,
	}
	var m string
	mismatch := func() []string {
		m = s.metrics()
		var bad []string
		for series, v := range want {
			if got, ok := metric(m, series); !ok || got != v {
				bad = append(bad, series)
			}
		}
		return bad
	}
	eventually(5*time.Second, func() bool { return len(mismatch()) == 0 })
	for _, series := range mismatch() {
		got, ok := metric(m, series)
		t.Errorf("%s = %v (present: %v), want %v", series, got, ok, want[series])
	}

	// Nothing of the key is printed: neither its PEM lines nor its private
	// numbers.
	out := s.output()
	secrets := []string{e2eSigningKey().D.String()[:32], e2eSigningKey().D.Text(16)[:32], e2eSigningKey().Primes[0].String()[:32]}
	for l := range strings.SplitSeq(string(keyPEM), "\n") {
		if len(l) > 16 && !strings.HasPrefix(l, "-----") {
			secrets = append(secrets, l)
		}
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the sidecar's output holds the signing key (%q)", secret)
			break
		}
	}
}

func TestJSONBodyMode(t *testing.T) {
	t.Parallel()
	p, tp := newTezPay(t, 0, nil)
	var (
		mu      sync.Mutex
		revoked = map[string]bool{}
	)
	// The upstream takes the token from payload.clientAuthToken, as Juspay
	// does, and accepts the tokens TezPay issued and that it did not revoke.
	up := newRecordingUpstream(t, func(w http.ResponseWriter, body []byte) {
		var doc struct {
			Payload struct {
				ClientAuthToken string `json:"clientAuthToken"`
			} `json:"payload"`
		}
		json.Unmarshal(body, &doc)
		mu.Lock()
		ok := slices.Contains(p.Issued(), doc.Payload.ClientAuthToken) && !revoked[doc.Payload.ClientAuthToken]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"session_expired"}`)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	s := startSidecar(t, tezPayEnv(tp.URL, "UPSTREAM_URL", up.URL, "INJECT", "json-body", "FORCED_REFRESH_INTERVAL", "1ms"))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	r := call(c, http.MethodPost, s.URL+"/v1/initiate", []byte(juspayInitiate))
	if r.status != http.StatusOK {
		t.Fatalf("POST /v1/initiate = %v, want 200", r)
	}
	issued := p.Issued()
	got := up.requests()
	if len(issued) != 1 || len(got) != 1 {
		t.Fatalf("tokens issued = %d, upstream requests = %d; want 1 and 1", len(issued), len(got))
	}
	checkJSONBody(t, got[0], issued[0])

	// The upstream revokes the token: the request is replayed with a new
	// token in the app's original body.
	mu.Lock()
	revoked[issued[0]] = true
	mu.Unlock()
	r = call(c, http.MethodPost, s.URL+"/v1/process", []byte(juspayInitiate))
	if r.status != http.StatusOK {
		t.Fatalf("POST /v1/process with a revoked token = %v, want 200 after a replay", r)
	}
	issued = p.Issued()
	got = up.requests()
	if len(issued) != 2 || len(got) != 3 {
		t.Fatalf("tokens issued = %d, upstream requests = %d; want 2 and 3", len(issued), len(got))
	}
	checkJSONBody(t, got[1], issued[0])
	checkJSONBody(t, got[2], issued[1])

	for _, bad := range []struct {
		method string
		body   []byte
	}{{http.MethodPost, []byte(`amount=100`)}, {http.MethodPost, []byte(`{"payload":"x"}`)}, {http.MethodGet, nil}} {
		if r := call(c, bad.method, s.URL+"/v1/process", bad.body); r.status != http.StatusBadRequest {
			t.Errorf("%s %q = %v, want 400", bad.method, bad.body, r)
		}
	}
	if n := len(up.requests()); n != 3 {
		t.Errorf("upstream got %d requests, want still 3: refused bodies stay local", n)
	}
}

// expiryText is RFC 3339 in UTC with milliseconds.
var expiryText = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// checkJSONBody checks that a request carried tok and its expiry in the
// body, no Authorization, and the rest of the app's body as sent.
func checkJSONBody(t *testing.T, r seenRequest, tok string) {
	t.Helper()
	if v := r.header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization = %q, want none", v)
	}
	var doc struct {
		Payload map[string]json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("upstream body %q: %v", r.body, err)
	}
	var got, expiry string
	json.Unmarshal(doc.Payload["clientAuthToken"], &got)
	json.Unmarshal(doc.Payload["authExpiry"], &expiry)
	if got != tok {
		t.Errorf("payload.clientAuthToken = %.20q…, want the token TezPay issued %.20q…", got, tok)
	}
	when, err := time.Parse(time.RFC3339, expiry)
	if !expiryText.MatchString(expiry) || err != nil || time.Until(when) < 11*time.Hour || time.Until(when) > 13*time.Hour {
		t.Errorf("payload.authExpiry = %q, want about 12 hours on, in UTC with milliseconds", expiry)
	}
	for k, want := range map[string]string{"action": `"initiate"`, "customerId": `"abcde12345"`, "amount": `12345678901234567890`, "fee": `1.10`} {
		if string(doc.Payload[k]) != want {
			t.Errorf("payload.%s = %s, want the app's %s", k, doc.Payload[k], want)
		}
	}
}
