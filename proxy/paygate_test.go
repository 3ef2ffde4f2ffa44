package proxy_test

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
)

const (
	pgMerchantID = "Generic3DSTest"
	pgPayID      = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
	pgTransID    = "order-2024-0001"
	pgPath       = "/paygate" // Config.PaygatePath in these tests
	pgMaxBody    = 4096       // Config.MaxReplayBody in these tests
	formType     = "application/x-www-form-urlencoded"
)

var pgHMACKey = []byte("s3cr3t-hmac-key")

// pgCipher is one of Paygate's two ciphers with a key.
type pgCipher struct {
	name string
	c    paygate.Cipher
}

// pgCiphers returns Blowfish and AES with the merchant's passwords, or,
// with other set, with passwords the merchant does not have.
func pgCiphers(tb testing.TB, other bool) []pgCipher {
	tb.Helper()
	bfKey, aesKey := "Xp9$eK2!rT7q", "0123456789abcdef0123456789abcdef"
	if other {
		bfKey, aesKey = "another-password", "fedcba9876543210fedcba9876543210"
	}
	bf, err := paygate.NewBlowfish([]byte(bfKey))
	if err != nil {
		tb.Fatal(err)
	}
	aes, err := paygate.NewAES([]byte(aesKey))
	if err != nil {
		tb.Fatal(err)
	}
	return []pgCipher{{"blowfish", bf}, {"aes", aes}}
}

// pgMerchant is a merchant to test with, named by cipher and HMAC key.
type pgMerchant struct {
	name string
	m    *paygate.Merchant
}

// pgMerchants returns the merchant with each cipher, with and without an
// HMAC key.
func pgMerchants(tb testing.TB) []pgMerchant {
	tb.Helper()
	var ms []pgMerchant
	for _, c := range pgCiphers(tb, false) {
		ms = append(ms,
			pgMerchant{c.name + "/no-hmac", &paygate.Merchant{ID: pgMerchantID, Cipher: c.c}},
			pgMerchant{c.name + "/hmac", paygate.NewMerchant(pgMerchantID, c.c, pgHMACKey)})
	}
	return ms
}

func fixed(m *paygate.Merchant) func() *paygate.Merchant {
	return func() *paygate.Merchant { return m }
}

// startPaygate serves the proxy with INJECT=paygate, and its codec under
// pgPath, for merchant.
func startPaygate(t *testing.T, upstream *url.URL, merchant func() *paygate.Merchant) *httptest.Server {
	t.Helper()
	return startProxy(t, proxy.Config{
		Upstream:        upstream,
		Injector:        proxy.Paygate(merchant),
		PaygateMerchant: merchant,
		PaygatePath:     pgPath,
		MaxReplayBody:   pgMaxBody,
	})
}

// hmacHex is Paygate's MAC over fields joined by '*', computed here with
// crypto/hmac rather than with package paygate.
func hmacHex(key []byte, fields ...string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(strings.Join(fields, "*")))
	return strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// answerParams is a capture's answer, with its MAC when key is not nil.
func answerParams(key []byte, status, code string) paygate.Params {
	p := paygate.Params{
		{Key: "mid", Value: pgMerchantID},
		{Key: "PayID", Value: pgPayID},
		{Key: "XID", Value: "0123456789ABCDEF0123456789ABCDEF"},
		{Key: "TransID", Value: pgTransID},
		{Key: "Status", Value: status},
		{Key: "Code", Value: code},
		{Key: "Description", Value: "a description"},
	}
	if key != nil {
		p = append(p, paygate.Param{Key: "MAC", Value: hmacHex(key, pgPayID, pgTransID, pgMerchantID, status, code)})
	}
	return p
}

// sealAnswer returns the Len and Data of an answer with params encrypted
// with c, as Paygate writes them: no MerchantID inside.
func sealAnswer(tb testing.TB, c paygate.Cipher, params paygate.Params) (length, data string) {
	tb.Helper()
	plain, err := paygate.Encode(params)
	if err != nil {
		tb.Fatal(err)
	}
	data, err = c.Encrypt([]byte(plain))
	if err != nil {
		tb.Fatal(err)
	}
	return strconv.Itoa(len(plain)), data
}

// answerBody is a Paygate answer's body: mid=…&Len=…&Data=….
func answerBody(tb testing.TB, c paygate.Cipher, params paygate.Params) string {
	tb.Helper()
	length, data := sealAnswer(tb, c, params)
	return "mid=" + pgMerchantID + "&Len=" + length + "&Data=" + data
}

// formOf is params form-urlencoded, in order: what the app must receive.
func formOf(params paygate.Params) string {
	pairs := make([]string, len(params))
	for i, kv := range params {
		pairs[i] = url.QueryEscape(kv.Key) + "=" + url.QueryEscape(kv.Value)
	}
	return strings.Join(pairs, "&")
}

// answering is an upstream answer handler that writes body as a form.
func answering(body string) func(http.ResponseWriter, *http.Request, received) {
	return func(w http.ResponseWriter, _ *http.Request, _ received) {
		w.Header().Set("Content-Type", formType)
		w.Write([]byte(body))
	}
}

// pgRequest is a Paygate call to path through srv with the plain form:
// in the query of a GET, or the form body of a POST.
func pgRequest(t *testing.T, srv *httptest.Server, method, path, form string) *http.Request {
	t.Helper()
	target, body := srv.URL+path, ""
	if method == http.MethodGet {
		target += "?" + form
	} else {
		body = form
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", formType)
	}
	return req
}

// checkForm checks that the app received a plain form body, with the
// headers that describe it, and returns it parsed.
func checkForm(t *testing.T, resp *http.Response, body []byte) url.Values {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != formType {
		t.Errorf("Content-Type = %q, want %q (body %q)", ct, formType, body)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length = %q, want %d, the body's length", cl, len(body))
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding = %q, want none", ce)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("body %q is not a form: %v", body, err)
	}
	if v.Has("Data") || v.Has("Len") {
		t.Errorf("body %q still holds Len or Data, want the plain parameters", body)
	}
	return v
}

// serveFake serves the fake Paygate until the test ends, and returns its
// URL as an Upstream.
func serveFake(t *testing.T, pg *fake.Paygate) *url.URL {
	t.Helper()
	srv := httptest.NewServer(pg.Handler())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// captureForm is a capture's plain parameters as the app sends them.
var captureForm = "PayID=" + pgPayID + "&TransID=" + pgTransID + "&Amount=100&Currency=EUR"

func TestPaygateCallsAgainstFake(t *testing.T) {
	calls := []struct {
		name, method, path string
	}{
		{"capture POST body", http.MethodPost, fake.PaygateCapturePath},
		{"credit GET query", http.MethodGet, fake.PaygateCreditPath},
	}
	for _, pm := range pgMerchants(t) {
		for _, call := range calls {
			t.Run(pm.name+"/"+call.name, func(t *testing.T) {
				pg := fake.NewPaygate(pgMerchantID, pm.m.Cipher, pm.m.HMACKey)
				srv := startPaygate(t, serveFake(t, pg), fixed(pm.m))

				resp, body := do(t, srv.Client(), pgRequest(t, srv, call.method, call.path, captureForm))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d, want 200 (body %q)", resp.StatusCode, body)
				}
				v := checkForm(t, resp, body)
				for k, want := range map[string]string{"Status": "OK", "Code": fake.PaygateCodeOK, "TransID": pgTransID, "PayID": pgPayID} {
					if got := v.Get(k); got != want {
						t.Errorf("%s = %q, want %q (body %q)", k, got, want, body)
					}
				}
				if pm.m.HMACKey != nil && !v.Has("MAC") {
					t.Errorf("body %q has no MAC, want the answer's, checked", body)
				}
				if n := pg.Calls(); n != 1 {
					t.Errorf("fake Paygate calls = %d, want 1", n)
				}
			})
		}
	}
}

// formKeys returns the names of a form-urlencoded text's pairs, in order.
func formKeys(s string) []string {
	var keys []string
	for pair := range strings.SplitSeq(s, "&") {
		k, _, _ := strings.Cut(pair, "=")
		keys = append(keys, k)
	}
	return keys
}

func TestPaygateCallOnTheWire(t *testing.T) {
	const appMAC = "ABCDEF0123456789"
	tests := []struct {
		name, method, path string
		query, body        string // as the app sends them
		app                paygate.Params
		inBody             bool // whether the envelope goes in the body
	}{
		{
			name: "capture POST body", method: http.MethodPost, path: "/capture.aspx",
			body: "PayID=" + pgPayID + "&TransID=" + pgTransID + "&Amount=100&Currency=EUR&RefNr=r%C3%A9f+1",
			app: paygate.Params{{Key: "PayID", Value: pgPayID}, {Key: "TransID", Value: pgTransID},
				{Key: "Amount", Value: "100"}, {Key: "Currency", Value: "EUR"}, {Key: "RefNr", Value: "réf 1"}},
			inBody: true,
		},
		{
			name: "credit GET query", method: http.MethodGet, path: "/credit.aspx",
			query: "PayID=" + pgPayID + "&TransID=" + pgTransID + "&Amount=250&Currency=USD",
			app: paygate.Params{{Key: "PayID", Value: pgPayID}, {Key: "TransID", Value: pgTransID},
				{Key: "Amount", Value: "250"}, {Key: "Currency", Value: "USD"}},
		},
		{
			name: "POST without a body, query", method: http.MethodPost, path: "/capture.aspx",
			query: "TransID=" + pgTransID + "&Amount=1&Currency=EUR",
			app:   paygate.Params{{Key: "TransID", Value: pgTransID}, {Key: "Amount", Value: "1"}, {Key: "Currency", Value: "EUR"}},
		},
		{
			name: "app's MAC kept", method: http.MethodPost, path: "/capture.aspx",
			body:   "PayID=" + pgPayID + "&MAC=" + appMAC + "&TransID=" + pgTransID,
			app:    paygate.Params{{Key: "PayID", Value: pgPayID}, {Key: "MAC", Value: appMAC}, {Key: "TransID", Value: pgTransID}},
			inBody: true,
		},
		{
			name: "app's MerchantID kept in place", method: http.MethodGet, path: "/credit.aspx",
			query: "PayID=" + pgPayID + "&MerchantID=" + pgMerchantID + "&Amount=5&Currency=EUR",
			app: paygate.Params{{Key: "PayID", Value: pgPayID}, {Key: "MerchantID", Value: pgMerchantID},
				{Key: "Amount", Value: "5"}, {Key: "Currency", Value: "EUR"}},
		},
	}
	for _, pm := range pgMerchants(t) {
		for _, tc := range tests {
			t.Run(pm.name+"/"+tc.name, func(t *testing.T) {
				answer := answerParams(pm.m.HMACKey, "OK", "00000000")
				up := newUpstream(t, answering(answerBody(t, pm.m.Cipher, answer)))
				srv := startPaygate(t, up.base(t, ""), fixed(pm.m))

				target := srv.URL + tc.path
				if tc.query != "" {
					target += "?" + tc.query
				}
				req, err := http.NewRequest(tc.method, target, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.body != "" {
					req.Header.Set("Content-Type", formType)
				}
				req.Header.Set("Accept-Encoding", "br")
				resp, body := do(t, srv.Client(), req)
				if resp.StatusCode != http.StatusOK || string(body) != formOf(answer) {
					t.Fatalf("answer = %d %q, want 200 %q", resp.StatusCode, body, formOf(answer))
				}

				got := up.requests()
				if len(got) != 1 {
					t.Fatalf("upstream received %d requests, want 1", len(got))
				}
				r := got[0]
				if r.Method != tc.method {
					t.Errorf("upstream method = %q, want %q", r.Method, tc.method)
				}
				path, query, _ := strings.Cut(r.RequestURI, "?")
				if path != tc.path {
					t.Errorf("upstream path = %q, want %q", path, tc.path)
				}
				envelope := query
				if tc.inBody {
					envelope = string(r.Body)
					if query != "" {
						t.Errorf("upstream query = %q, want none: the envelope is in the body", query)
					}
					if ct := r.Header.Get("Content-Type"); ct != formType {
						t.Errorf("upstream Content-Type = %q, want %q", ct, formType)
					}
				} else if r.Len != 0 {
					t.Errorf("upstream body = %q, want none: the envelope is in the query", r.Body)
				}
				if keys := formKeys(envelope); !slices.Equal(keys, []string{"MerchantID", "Len", "Data"}) {
					t.Fatalf("upstream envelope %q has %q, want exactly MerchantID, Len, Data", envelope, keys)
				}
				env, err := url.ParseQuery(envelope)
				if err != nil {
					t.Fatal(err)
				}
				if id := env.Get("MerchantID"); id != pgMerchantID {
					t.Errorf("MerchantID = %q, want %q", id, pgMerchantID)
				}

				want := tc.app
				if _, ok := want.Get("MerchantID"); !ok {
					want = append(paygate.Params{{Key: "MerchantID", Value: pgMerchantID}}, want...)
				}
				if _, ok := tc.app.Get("MAC"); pm.m.HMACKey != nil && !ok {
					payID, _ := tc.app.Get("PayID")
					transID, _ := tc.app.Get("TransID")
					amount, _ := tc.app.Get("Amount")
					currency, _ := tc.app.Get("Currency")
					want = append(want, paygate.Param{Key: "MAC", Value: hmacHex(pm.m.HMACKey, payID, transID, pgMerchantID, amount, currency)})
				}
				plain, _ := paygate.Encode(want)
				if l := env.Get("Len"); l != strconv.Itoa(len(plain)) {
					t.Errorf("Len = %q, want %d", l, len(plain))
				}
				opened, err := paygate.Open(pm.m.Cipher, env.Get("Len"), env.Get("Data"))
				if err != nil {
					t.Fatalf("paygate.Open(upstream's Len and Data) error = %v", err)
				}
				if !slices.Equal(opened, want) {
					t.Errorf("Data holds %q, want %q", opened, want)
				}

				if ae := r.Header.Get("Accept-Encoding"); ae != "" && ae != "gzip" {
					t.Errorf("upstream Accept-Encoding = %q, want the transport's own (gzip) or none, not the app's", ae)
				}
			})
		}
	}
}

// TestPaygateOpensCompressedAnswer has the upstream compress its answer
// whenever asked to: the sidecar must still open it, whatever
// Accept-Encoding the app sent, and the app must get the plain form with
// no Content-Encoding.
func TestPaygateOpensCompressedAnswer(t *testing.T) {
	m := pgMerchants(t)[3].m // aes, with an HMAC key
	answer := answerParams(m.HMACKey, "OK", "00000000")
	plain := answerBody(t, m.Cipher, answer)
	tests := []struct {
		name           string
		acceptEncoding string // the app's
		// encoding, if set, is the Content-Encoding the upstream claims
		// for a body it sends uncompressed.
		encoding string
	}{
		{name: "app asks for gzip", acceptEncoding: "gzip"},
		{name: "app asks for nothing", acceptEncoding: "identity"},
		{name: "mislabelled answer", acceptEncoding: "gzip", encoding: "deflate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ received) {
				w.Header().Set("Content-Type", formType)
				switch {
				case tc.encoding != "":
					w.Header().Set("Content-Encoding", tc.encoding)
					w.Write([]byte(plain))
				case strings.Contains(r.Header.Get("Accept-Encoding"), "gzip"):
					w.Header().Set("Content-Encoding", "gzip")
					zw := gzip.NewWriter(w)
					zw.Write([]byte(plain))
					zw.Close()
				default:
					w.Write([]byte(plain))
				}
			})
			srv := startPaygate(t, up.base(t, ""), fixed(m))
			req := pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm)
			// Set by hand, the app's client leaves the answer as it comes.
			req.Header.Set("Accept-Encoding", tc.acceptEncoding)
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || string(body) != formOf(answer) {
				t.Fatalf("answer = %d %q, want 200 %q", resp.StatusCode, body, formOf(answer))
			}
			checkForm(t, resp, body)
		})
	}
}

func TestPaygateAnswerWithheld(t *testing.T) {
	for _, pm := range pgMerchants(t) {
		if pm.m.HMACKey == nil {
			continue
		}
		t.Run(pm.name+"/tampered MAC", func(t *testing.T) {
			pg := fake.NewPaygate(pgMerchantID, pm.m.Cipher, pm.m.HMACKey)
			pg.TamperResponseMAC(true)
			srv := startPaygate(t, serveFake(t, pg), fixed(pm.m))
			resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, fake.PaygateCapturePath, captureForm))
			checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
			for _, plain := range []string{pgPayID, pgTransID, "Status", "success", "XID"} {
				if bytes.Contains(body, []byte(plain)) {
					t.Errorf("body %q holds %q from the withheld answer", body, plain)
				}
			}
			if n := pg.Calls(); n != 1 {
				t.Errorf("fake Paygate calls = %d, want 1", n)
			}
		})
		t.Run(pm.name+"/OK without MAC", func(t *testing.T) {
			up := newUpstream(t, answering(answerBody(t, pm.m.Cipher, answerParams(nil, "OK", "00000000"))))
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
			resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
			if bytes.Contains(body, []byte(pgTransID)) {
				t.Errorf("body %q holds the withheld answer's TransID", body)
			}
		})
		t.Run(pm.name+"/FAILED without MAC passed", func(t *testing.T) {
			answer := answerParams(nil, "FAILED", "21500984")
			up := newUpstream(t, answering(answerBody(t, pm.m.Cipher, answer)))
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
			resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			if resp.StatusCode != http.StatusOK || string(body) != formOf(answer) {
				t.Fatalf("answer = %d %q, want 200 %q", resp.StatusCode, body, formOf(answer))
			}
			checkForm(t, resp, body)
		})
		// The MAC covers one Status, Code, PayID and TransID; an app that
		// reads the last of two would read one it does not cover.
		for name, answer := range map[string]paygate.Params{
			"FAILED without MAC, then OK": append(answerParams(nil, "FAILED", "21500984"), paygate.Param{Key: "Status", Value: "OK"}),
			"a MAC over FAILED, then OK":  append(answerParams(pm.m.HMACKey, "FAILED", "21500984"), paygate.Param{Key: "status", Value: "OK"}),
			"a MAC, then another Code":    append(answerParams(pm.m.HMACKey, "OK", "00000000"), paygate.Param{Key: "CODE", Value: "21500984"}),
			"two MACs":                    append(answerParams(pm.m.HMACKey, "OK", "00000000"), paygate.Param{Key: "MAC", Value: "00"}),
		} {
			t.Run(pm.name+"/"+name, func(t *testing.T) {
				up := newUpstream(t, answering(answerBody(t, pm.m.Cipher, answer)))
				srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
				resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
				checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
			})
		}
		t.Run(pm.name+"/FAILED with a wrong MAC", func(t *testing.T) {
			answer := answerParams(nil, "FAILED", "21500984")
			answer = append(answer, paygate.Param{Key: "MAC", Value: hmacHex([]byte("other"), "x")})
			up := newUpstream(t, answering(answerBody(t, pm.m.Cipher, answer)))
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
			resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
		})
	}
}

// TestPaygateAnswerHiddenData sends answers whose Data has a wrong MAC,
// around which the rest of the form, or the Location, cannot be parsed: a
// bad escape, more pairs than a form may have, a Location that is not a
// URL. The Data must still be found and checked, and the answer withheld,
// not passed to the app as an answer without Data.
func TestPaygateAnswerHiddenData(t *testing.T) {
	m := pgMerchants(t)[1].m // blowfish, with an HMAC key
	length, data := sealAnswer(t, m.Cipher, answerParams([]byte("another hmac key"), "OK", "00000000"))
	tampered := "mid=" + pgMerchantID + "&Len=" + length + "&Data=" + data
	tests := []struct {
		name, location, body string
	}{
		{name: "bad escape after Data", body: tampered + "&x=%zz"},
		{name: "bad escape before Data", body: "x=%zz&" + tampered},
		{name: "too many pairs", body: tampered + strings.Repeat("&", 1001)},
		{name: "Location not a URL", location: "https://shop.example/ok%zz?" + tampered},
		{name: "Location with a bad escape", location: "https://shop.example/ok?x=%zz&" + tampered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ received) {
				status := http.StatusOK
				if tc.location != "" {
					w.Header().Set("Location", tc.location)
					status = http.StatusFound
				}
				w.Header().Set("Content-Type", formType)
				w.WriteHeader(status)
				w.Write([]byte(tc.body))
			})
			srv := startPaygate(t, up.base(t, ""), fixed(m))
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, body := do(t, client, pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
			if resp.Header.Get("Location") != "" || bytes.Contains(body, []byte(data)) {
				t.Errorf("answer = %d %q, Location %q: the tampered Data reached the app", resp.StatusCode, shorten(body), resp.Header.Get("Location"))
			}
		})
	}
}

// TestPaygateAnswerOtherKey sends answers encrypted with a password the
// merchant does not have: each must be refused as undecryptable. Decrypted
// with the wrong key, Data is random bytes that may still split into
// Key=value pairs, so each case makes many calls.
func TestPaygateAnswerOtherKey(t *testing.T) {
	const calls = 25
	others := pgCiphers(t, true)
	for i, pm := range pgMerchants(t) {
		other := others[i/2] // pgMerchants lists each cipher twice
		t.Run(pm.name, func(t *testing.T) {
			bodies := make([]string, calls) // each a different plain text
			for k := range bodies {
				p := answerParams(pm.m.HMACKey, "OK", "00000000")
				p = append(p, paygate.Param{Key: "RefNr", Value: strconv.Itoa(k)})
				bodies[k] = answerBody(t, other.c, p)
			}
			var n atomic.Int64
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				answering(bodies[(n.Add(1)-1)%calls])(w, r, got)
			})
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
			for range calls {
				resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
				checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_answer")
				if t.Failed() {
					return
				}
			}
		})
	}
}

func TestPaygateAnswerInRedirect(t *testing.T) {
	for _, pm := range pgMerchants(t) {
		t.Run(pm.name, func(t *testing.T) {
			answer := answerParams(pm.m.HMACKey, "OK", "00000000")
			length, data := sealAnswer(t, pm.m.Cipher, answer)
			location := "https://shop.example/ok?mid=" + pgMerchantID + "&Len=" + length + "&Data=" + data
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ received) {
				w.Header().Set("Location", location)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusFound)
				w.Write([]byte(`<html><body>Object moved to <a href="https://shop.example/ok">here</a></body></html>`))
			})
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, body := do(t, client, pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			// The answer stays a redirect, to where Paygate sent it; its
			// body is the Location's Data, opened and checked.
			if resp.StatusCode != http.StatusFound {
				t.Errorf("status = %d, want 302, as the upstream answered", resp.StatusCode)
			}
			if got := resp.Header.Get("Location"); got != location {
				t.Errorf("Location = %q, want the upstream's %q", got, location)
			}
			if string(body) != formOf(answer) {
				t.Errorf("body = %q, want %q", body, formOf(answer))
			}
			checkForm(t, resp, body)
		})
	}
	t.Run("tampered MAC in the Location", func(t *testing.T) {
		m := pgMerchants(t)[1].m
		answer := answerParams([]byte("another hmac key"), "OK", "00000000")
		length, data := sealAnswer(t, m.Cipher, answer)
		up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ received) {
			w.Header().Set("Location", "https://shop.example/ok?Len="+length+"&Data="+data)
			w.WriteHeader(http.StatusFound)
		})
		srv := startPaygate(t, up.base(t, ""), fixed(m))
		client := srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, body := do(t, client, pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
		checkSidecarError(t, resp, body, http.StatusBadGateway, "bad_upstream_signature")
		if resp.Header.Get("Location") != "" {
			t.Errorf("Location = %q, want none on a withheld answer", resp.Header.Get("Location"))
		}
	})
}

func TestPaygatePassThrough(t *testing.T) {
	bf := pgMerchants(t)[1].m // blowfish, with an HMAC key
	big := "mid=" + pgMerchantID + "&Len=10&Data=" + strings.Repeat("AB", 1<<19) + "&"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
	}{
		{"HTML", http.StatusOK, "text/html; charset=utf-8", "<!DOCTYPE html><html><body><h1>Maintenance</h1><p>Back soon.</p></body></html>\n"},
		{"JSON error", http.StatusInternalServerError, "application/json", `{"error":"internal","message":"a=b"}`},
		{"plain FAILED form", http.StatusOK, formType, "Status=FAILED&Code=21500985&Description=Unknown+MerchantID"},
		{"redirect without Data", http.StatusFound, "text/html", "<a href=\"https://shop.example/ok\">moved</a>"},
		{"empty", http.StatusNoContent, "", ""},
		{"over 1 MiB", http.StatusOK, formType, big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ received) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				if tc.status == http.StatusFound {
					w.Header().Set("Location", "https://shop.example/ok?PayID="+pgPayID)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			srv := startPaygate(t, up.base(t, ""), fixed(bf))
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, body := do(t, client, pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.contentType)
			}
			if !bytes.Equal(body, []byte(tc.body)) {
				t.Errorf("body = %q (%d bytes), want the upstream's %d bytes", shorten(body), len(body), len(tc.body))
			}
			if len(up.requests()) != 1 {
				t.Errorf("upstream received %d requests, want 1", len(up.requests()))
			}
		})
	}
	t.Run("fake Paygate down", func(t *testing.T) {
		pg := fake.NewPaygate(pgMerchantID, bf.Cipher, bf.HMACKey)
		pg.SetDown(true)
		srv := startPaygate(t, serveFake(t, pg), fixed(bf))
		resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, fake.PaygateCapturePath, captureForm))
		want := "Status=FAILED&Code=" + fake.PaygateCodeUnavailable + "&Description=Service+temporarily+unavailable"
		if resp.StatusCode != http.StatusServiceUnavailable || string(body) != want {
			t.Errorf("answer = %d %q, want 503 %q", resp.StatusCode, body, want)
		}
	})
	t.Run("fake Paygate, unknown merchant", func(t *testing.T) {
		pg := fake.NewPaygate("AnotherMerchant", bf.Cipher, bf.HMACKey)
		srv := startPaygate(t, serveFake(t, pg), fixed(bf))
		resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodGet, fake.PaygateCreditPath, captureForm))
		want := "Status=FAILED&Code=" + fake.PaygateCodeUnknownMerchant + "&Description=Unknown+MerchantID"
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("answer = %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	})
}

// shorten returns b, or its start when it is long.
func shorten(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "…"...)
	}
	return b
}

func TestPaygateRefusals(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		query, body string
		contentType string // of the body; formType if empty and there is a body
		status      int
		code        string
		secret      string // a value the error must not echo
	}{
		{name: "JSON body", method: http.MethodPost, body: `{"PayID":"x","Amount":100}`, contentType: "application/json"},
		{name: "form without Content-Type", method: http.MethodPost, body: "PayID=x&Amount=100", contentType: "-"},
		{name: "text/plain body", method: http.MethodPost, body: "PayID=x&Amount=100", contentType: "text/plain"},
		{name: "& in a value", method: http.MethodPost, body: "PayID=x&RefNr=x%26y-secret", secret: "x&y-secret"},
		{name: "= in a value", method: http.MethodGet, query: "PayID=x&RefNr=a%3Db-secret", secret: "a=b-secret"},
		{name: "& in a name", method: http.MethodGet, query: "Pay%26ID=x"},
		{name: "control character in a value", method: http.MethodPost, body: "PayID=x&RefNr=a%0Ab"},
		{name: "empty name", method: http.MethodPost, body: "PayID=x&=y"},
		{name: "bad escape", method: http.MethodPost, body: "PayID=%zz"},
		{name: "query and body", method: http.MethodPost, query: "PayID=x", body: "Amount=100"},
		{name: "GET with a body", method: http.MethodGet, query: "PayID=x", body: "Amount=100"},
		{name: "Len sent", method: http.MethodPost, body: "PayID=x&Len=3"},
		{name: "Data sent", method: http.MethodGet, query: "PayID=x&Data=ABCD"},
		{name: "data sent, lower case", method: http.MethodPost, body: "PayID=x&data=ABCD"},
		{name: "PUT", method: http.MethodPut, body: captureForm},
		{name: "DELETE", method: http.MethodDelete, query: captureForm},
		{name: "no parameters, GET", method: http.MethodGet},
		{name: "no parameters, POST", method: http.MethodPost},
		{name: "only separators", method: http.MethodGet, query: "&&"},
		{name: "over 1000 parameters", method: http.MethodPost, body: "PayID=x" + strings.Repeat("&a", 1000)},
		{name: "another MerchantID", method: http.MethodPost, body: "MerchantID=SomeoneElse&PayID=x"},
		{name: "MerchantID's value in another case", method: http.MethodPost, body: "merchantid=" + strings.ToLower(pgMerchantID) + "&PayID=x"},
		{name: "body over MaxReplayBody", method: http.MethodPost, body: "PayID=x&RefNr=" + strings.Repeat("a", pgMaxBody),
			status: http.StatusRequestEntityTooLarge, code: "body_too_large"},
	}
	m := pgMerchants(t)[1].m
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startPaygate(t, up.base(t, ""), fixed(m))
			target := srv.URL + "/capture.aspx"
			if tc.query != "" {
				target += "?" + tc.query
			}
			var body *strings.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, target, nil)
			if body != nil {
				req, err = http.NewRequest(tc.method, target, body)
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.contentType == "-":
			case tc.contentType != "":
				req.Header.Set("Content-Type", tc.contentType)
			case tc.body != "":
				req.Header.Set("Content-Type", formType)
			}
			resp, got := do(t, srv.Client(), req)
			status, code := tc.status, tc.code
			if status == 0 {
				status, code = http.StatusBadRequest, "bad_request"
			}
			checkSidecarError(t, resp, got, status, code)
			if tc.secret != "" && bytes.Contains(got, []byte(tc.secret)) {
				t.Errorf("body %q echoes the value %q", got, tc.secret)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

// codecPost posts form to the codec's op through srv.
func codecPost(t *testing.T, srv *httptest.Server, op, form string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+pgPath+op, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", formType)
	return do(t, srv.Client(), req)
}

func TestPaygateCodec(t *testing.T) {
	for _, pm := range pgMerchants(t) {
		t.Run(pm.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startPaygate(t, up.base(t, ""), fixed(pm.m))

			// encrypt, then the fake Paygate takes the envelope as a call.
			resp, body := codecPost(t, srv, "/encrypt", captureForm)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/encrypt = %d %q, want 200", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("/encrypt Cache-Control = %q, want no-store", cc)
			}
			if keys := formKeys(string(body)); !slices.Equal(keys, []string{"MerchantID", "Len", "Data"}) {
				t.Fatalf("/encrypt = %q, want MerchantID, Len, Data", body)
			}
			env, _ := url.ParseQuery(string(body))
			want := paygate.Params{{Key: "MerchantID", Value: pgMerchantID}, {Key: "PayID", Value: pgPayID},
				{Key: "TransID", Value: pgTransID}, {Key: "Amount", Value: "100"}, {Key: "Currency", Value: "EUR"}}
			if pm.m.HMACKey != nil {
				want = append(want, paygate.Param{Key: "MAC", Value: hmacHex(pm.m.HMACKey, pgPayID, pgTransID, pgMerchantID, "100", "EUR")})
			}
			if opened, err := paygate.Open(pm.m.Cipher, env.Get("Len"), env.Get("Data")); err != nil || !slices.Equal(opened, want) {
				t.Errorf("paygate.Open(/encrypt's envelope) = %q, %v; want %q", opened, err, want)
			}
			pg := fake.NewPaygate(pgMerchantID, pm.m.Cipher, pm.m.HMACKey)
			pgSrv := httptest.NewServer(pg.Handler())
			t.Cleanup(pgSrv.Close)
			pgResp, err := http.Post(pgSrv.URL+fake.PaygateCapturePath, formType, strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			pgBody := new(bytes.Buffer)
			pgBody.ReadFrom(pgResp.Body)
			pgResp.Body.Close()

			// decrypt the fake's answer.
			resp, body = codecPost(t, srv, "/decrypt", pgBody.String())
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/decrypt of the fake's answer %q = %d %q, want 200", pgBody, resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("/decrypt Cache-Control = %q, want no-store", cc)
			}
			v := checkForm(t, resp, body)
			if v.Get("Status") != "OK" || v.Get("TransID") != pgTransID || v.Get("PayID") != pgPayID {
				t.Errorf("/decrypt = %q, want Status=OK with the call's PayID and TransID", body)
			}

			// decrypt a notification built here, in order.
			notify := answerParams(pm.m.HMACKey, "OK", "00000000")
			resp, body = codecPost(t, srv, "/decrypt", answerBody(t, pm.m.Cipher, notify))
			if resp.StatusCode != http.StatusOK || string(body) != formOf(notify) {
				t.Errorf("/decrypt = %d %q, want 200 %q", resp.StatusCode, body, formOf(notify))
			}

			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

func TestPaygateCodecRefusals(t *testing.T) {
	m := pgMerchants(t)[3].m // aes, with an HMAC key
	other := pgCiphers(t, true)[1].c
	badMAC := answerParams([]byte("another hmac key"), "OK", "00000000")
	noMAC := answerParams(nil, "OK", "00000000")
	tests := []struct {
		name, method, path string
		contentType        string
		body               string
		status             int
		code               string
	}{
		{name: "wrong MAC", method: http.MethodPost, path: "/decrypt", body: answerBody(t, m.Cipher, badMAC), status: http.StatusBadRequest, code: "bad_signature"},
		{name: "missing MAC", method: http.MethodPost, path: "/decrypt", body: answerBody(t, m.Cipher, noMAC), status: http.StatusBadRequest, code: "bad_signature"},
		{name: "another key", method: http.MethodPost, path: "/decrypt", body: answerBody(t, other, noMAC), status: http.StatusBadRequest, code: "bad_request"},
		{name: "no Data", method: http.MethodPost, path: "/decrypt", body: "Len=12", status: http.StatusBadRequest, code: "bad_request"},
		{name: "encrypt & in a value", method: http.MethodPost, path: "/encrypt", body: "PayID=x%26y", status: http.StatusBadRequest, code: "bad_request"},
		{name: "encrypt another MerchantID", method: http.MethodPost, path: "/encrypt", body: "MerchantID=x", status: http.StatusBadRequest, code: "bad_request"},
		{name: "JSON", method: http.MethodPost, path: "/encrypt", contentType: "application/json", body: `{"PayID":"x"}`, status: http.StatusBadRequest, code: "bad_request"},
		{name: "bad escape", method: http.MethodPost, path: "/encrypt", body: "PayID=%zz", status: http.StatusBadRequest, code: "bad_request"},
		{name: "too large", method: http.MethodPost, path: "/encrypt", body: "RefNr=" + strings.Repeat("a", pgMaxBody), status: http.StatusRequestEntityTooLarge, code: "body_too_large"},
		{name: "GET encrypt", method: http.MethodGet, path: "/encrypt?PayID=x", status: http.StatusMethodNotAllowed, code: "method_not_allowed"},
		{name: "GET decrypt", method: http.MethodGet, path: "/decrypt", status: http.StatusMethodNotAllowed, code: "method_not_allowed"},
		{name: "other op", method: http.MethodPost, path: "/other", body: captureForm, status: http.StatusNotFound, code: "not_found"},
		{name: "the prefix", method: http.MethodPost, path: "", body: captureForm, status: http.StatusNotFound, code: "not_found"},
		{name: "under an op", method: http.MethodPost, path: "/encrypt/x", body: captureForm, status: http.StatusNotFound, code: "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startPaygate(t, up.base(t, ""), fixed(m))
			req, err := http.NewRequest(tc.method, srv.URL+pgPath+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			ct := tc.contentType
			if ct == "" && tc.body != "" {
				ct = formType
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			resp, body := do(t, srv.Client(), req)
			checkSidecarError(t, resp, body, tc.status, tc.code)
			if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream received %d requests, want 0", n)
			}
		})
	}
}

// TestPaygateMerchantRotation swaps the merchant between calls, as a
// rotated password file does: each call, and the codec, use the merchant
// current when it arrives.
func TestPaygateMerchantRotation(t *testing.T) {
	ciphers, others := pgCiphers(t, false), pgCiphers(t, true)
	ms := []*paygate.Merchant{
		{ID: pgMerchantID, Cipher: ciphers[0].c, HMACKey: pgHMACKey},
		{ID: pgMerchantID, Cipher: others[0].c, HMACKey: []byte("rotated hmac key")},
		{ID: "NewMerchant", Cipher: others[1].c},
	}
	answers := map[*paygate.Merchant]string{}
	for _, m := range ms {
		answers[m] = answerBody(t, m.Cipher, answerParams(m.HMACKey, "OK", "00000000"))
	}
	var current atomic.Pointer[paygate.Merchant]
	current.Store(ms[0])
	// The upstream answers for the merchant current when the call
	// arrives.
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		answering(answers[current.Load()])(w, r, got)
	})
	srv := startPaygate(t, up.base(t, ""), current.Load)
	for i, m := range ms {
		current.Store(m)
		resp, body := do(t, srv.Client(), pgRequest(t, srv, http.MethodPost, "/capture.aspx", captureForm))
		if want := formOf(answerParams(m.HMACKey, "OK", "00000000")); resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("call %d: answer = %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
		got := up.requests()[i]
		env, _ := url.ParseQuery(string(got.Body))
		if id := env.Get("MerchantID"); id != m.ID {
			t.Errorf("call %d: MerchantID = %q, want %q", i, id, m.ID)
		}
		params, err := paygate.Open(m.Cipher, env.Get("Len"), env.Get("Data"))
		if err != nil {
			t.Errorf("call %d: the envelope does not open with the current merchant: %v", i, err)
		}
		if _, hasMAC := params.Get("MAC"); hasMAC != (m.HMACKey != nil) {
			t.Errorf("call %d: Data holds a MAC: %v, want %v", i, hasMAC, m.HMACKey != nil)
		}
		// The codec follows too.
		resp, body = codecPost(t, srv, "/encrypt", captureForm)
		env, _ = url.ParseQuery(string(body))
		if resp.StatusCode != http.StatusOK || env.Get("MerchantID") != m.ID {
			t.Fatalf("call %d: /encrypt = %d %q, want 200 for %s", i, resp.StatusCode, body, m.ID)
		}
		if _, err := paygate.Open(m.Cipher, env.Get("Len"), env.Get("Data")); err != nil {
			t.Errorf("call %d: /encrypt's envelope does not open with the current merchant's cipher: %v", i, err)
		}
	}
}

// TestPaygateEmptyChunkedBody sends the parameters in the query with an
// empty body of unknown length (sent chunked): the upstream must get the
// envelope in the query and no body at all.
func TestPaygateEmptyChunkedBody(t *testing.T) {
	m := pgMerchants(t)[0].m
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			type framing struct {
				length int64
				te     []string
			}
			seen := make(chan framing, 1)
			answer := answerParams(nil, "OK", "00000000")
			answerText := answerBody(t, m.Cipher, answer)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				seen <- framing{r.ContentLength, r.TransferEncoding}
				answering(answerText)(w, r, got)
			})
			srv := startPaygate(t, up.base(t, ""), fixed(m))
			// An empty reader of a type NewRequest cannot measure.
			req, err := http.NewRequest(method, srv.URL+"/credit.aspx?"+captureForm, io.MultiReader())
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || string(body) != formOf(answer) {
				t.Fatalf("answer = %d %q, want 200 %q", resp.StatusCode, body, formOf(answer))
			}
			f := <-seen
			if f.length != 0 || f.te != nil {
				t.Errorf("upstream body framing: Content-Length %d, Transfer-Encoding %q; want 0 and none", f.length, f.te)
			}
			got := up.requests()[0]
			if _, q, _ := strings.Cut(got.RequestURI, "?"); !slices.Equal(formKeys(q), []string{"MerchantID", "Len", "Data"}) {
				t.Errorf("upstream request-target = %q, want the envelope in the query", got.RequestURI)
			}
		})
	}
}
