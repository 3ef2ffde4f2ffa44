package fake

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// The paths of the fake Paygate's server-to-server calls, as Computop
// Paygate names them.
const (
	PaygateCapturePath   = "/capture.aspx"
	PaygateCreditPath    = "/credit.aspx"
	PaygateAuthTokenPath = "/AuthToken.aspx"
)

// The Codes the fake Paygate answers with. Paygate's "Response Codes" list
// is not reproduced in the documents the project holds; these have its
// 8-digit form (first digit 0 for OK, 2 for FAILED) and are the fake's own
// beyond PaygateCodeOK.
const (
	PaygateCodeOK               = "00000000"
	PaygateCodeFormat           = "21500001" // a parameter is missing or badly formatted
	PaygateCodeDuplicate        = "21500002" // the AuthToken is already registered
	PaygateCodeMAC              = "21500003" // the request's MAC is missing or wrong
	PaygateCodeEnvelope         = "21500984" // Len or Data cannot be decrypted or parsed
	PaygateCodeUnknownMerchant  = "21500985" // the plain MerchantID is not a known merchant
	PaygateCodeMerchantMismatch = "21500986" // the MerchantID inside Data differs from the plain one
	PaygateCodeUnavailable      = "22000000" // SetDown
)

// maxPaygateBody bounds a call's body; Paygate calls are a few hundred bytes.
const maxPaygateBody = 1 << 16

// axeptaDTTM is the Axepta documents' dttm, YYYY-MM-DDThh:mm:ss; the fake
// reads it and writes it in UTC.
const axeptaDTTM = "2006-01-02T15:04:05"

// axeptaRegistration is what the fake keeps of a registered AuthToken.
type axeptaRegistration struct {
	label  string
	expiry time.Time
}

// Paygate is a fake of Computop Paygate's server-to-server interface as BNP
// Paribas Axepta uses it, for one merchant. Every call is a form-urlencoded
// POST (or a GET query) of MerchantID in plain, Len and Data; the fake
// decrypts Data with the merchant's cipher, cut to Len, and checks the
// MerchantID inside it against the plain one. It answers with HTTP 200 and
// a form body mid=…&Len=…&Data=…, Data encrypting the answer's parameters;
// refusals are Status=FAILED with a Code and a Description, as Paygate
// does. Only SetDown gives a non-2xx answer. Its methods are safe for
// concurrent use.
type Paygate struct {
	merchantID string
	cipher     paygate.Cipher
	hmacKey    []byte

	mu     sync.Mutex
	now    func() time.Time
	down   bool
	tamper bool
	calls  int
	regs   map[string]axeptaRegistration
}

// NewPaygate returns a Paygate for the merchant merchantID, whose Data is
// encrypted with c. If hmacKey is nil, capture and credit calls need no
// MAC and answers carry none.
func NewPaygate(merchantID string, c paygate.Cipher, hmacKey []byte) *Paygate {
	return &Paygate{
		merchantID: merchantID,
		cipher:     c,
		hmacKey:    hmacKey,
		now:        time.Now,
		regs:       map[string]axeptaRegistration{},
	}
}

// Handler serves PaygateCapturePath, PaygateCreditPath and
// PaygateAuthTokenPath.
func (p *Paygate) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(PaygateCapturePath, p.serve(p.payment))
	mux.HandleFunc(PaygateCreditPath, p.serve(p.payment))
	mux.HandleFunc(PaygateAuthTokenPath, p.serve(p.authToken))
	return mux
}

// SetClock makes the fake tell the time with now (time.Now by default).
func (p *Paygate) SetClock(now func() time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now = now
}

// SetDown makes every call answer 503 while down is true.
func (p *Paygate) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// TamperResponseMAC makes answers carry a wrong MAC while tamper is true.
func (p *Paygate) TamperResponseMAC(tamper bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = tamper
}

// Calls returns how many requests reached the fake's paths, refused and
// SetDown ones included.
func (p *Paygate) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// Registered reports whether authToken was registered, and with which
// label and expiry.
func (p *Paygate) Registered(authToken string) (label string, expiry time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.regs[authToken]
	return r.label, r.expiry, ok
}

// AuthTokens returns every AuthToken registered, with its AuthLabel.
func (p *Paygate) AuthTokens() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.regs))
	for tok, r := range p.regs {
		out[tok] = r.label
	}
	return out
}

// Registrations returns how many AuthTokens were registered.
func (p *Paygate) Registrations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regs)
}

// paygateCall is one decrypted request, with the fake's settings when it
// arrived.
type paygateCall struct {
	params paygate.Params
	now    time.Time
	tamper bool
}

// serve opens the envelope and hands its parameters to h, which returns the
// answer's parameters.
func (p *Paygate) serve(h func(paygateCall) paygate.Params) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls++
		call := paygateCall{now: p.now(), tamper: p.tamper}
		down := p.down
		p.mu.Unlock()
		if down {
			writePlainFailed(w, http.StatusServiceUnavailable, PaygateCodeUnavailable, "Service temporarily unavailable")
			return
		}
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxPaygateBody)
		if err := r.ParseForm(); err != nil {
			writePlainFailed(w, http.StatusOK, PaygateCodeFormat, "Request is not a form")
			return
		}
		if mid := r.Form.Get("MerchantID"); mid != p.merchantID {
			// Paygate cannot encrypt for a merchant it does not know, so
			// this refusal alone is answered in plain.
			writePlainFailed(w, http.StatusOK, PaygateCodeUnknownMerchant, "Unknown MerchantID")
			return
		}
		params, err := paygate.Open(p.cipher, r.Form.Get("Len"), r.Form.Get("Data"))
		if err != nil {
			p.answer(w, paygate.Params{
				{Key: "mid", Value: p.merchantID},
				{Key: "Status", Value: "FAILED"},
				{Key: "Code", Value: PaygateCodeEnvelope},
				{Key: "Description", Value: "Len or Data cannot be decrypted"},
			})
			return
		}
		if mid, _ := params.Get("MerchantID"); mid != p.merchantID {
			p.answer(w, paygate.Params{
				{Key: "mid", Value: p.merchantID},
				{Key: "Status", Value: "FAILED"},
				{Key: "Code", Value: PaygateCodeMerchantMismatch},
				{Key: "Description", Value: "MerchantID in Data differs from the MerchantID parameter"},
			})
			return
		}
		call.params = params
		p.answer(w, h(call))
	}
}

// payment serves a capture or a credit: PayID, TransID, Amount (in the
// smallest unit of the currency), Currency (ISO 4217 alpha) and, when the
// fake has an hmac key, a MAC.
func (p *Paygate) payment(c paygateCall) paygate.Params {
	payID, _ := c.params.Get("PayID")
	transID, _ := c.params.Get("TransID")
	amount, _ := c.params.Get("Amount")
	currency, _ := c.params.Get("Currency")
	fail := func(code, description string) paygate.Params {
		return p.withMAC(c, paygate.Params{
			{Key: "mid", Value: p.merchantID},
			{Key: "PayID", Value: payID},
			{Key: "TransID", Value: transID},
			{Key: "Status", Value: "FAILED"},
			{Key: "Code", Value: code},
			{Key: "Description", Value: description},
		})
	}
	switch {
	case !alphanumeric(payID, 1, 32):
		return fail(PaygateCodeFormat, "PayID is missing or not an..32")
	case transID == "" || len(transID) > 64:
		return fail(PaygateCodeFormat, "TransID is missing or longer than 64 characters")
	case !digits(amount):
		return fail(PaygateCodeFormat, "Amount is missing or not a number")
	case !upperLetters(currency, 3):
		return fail(PaygateCodeFormat, "Currency is not a 3-letter code")
	}
	if p.hmacKey != nil {
		got, _ := c.params.Get("MAC")
		if !paygate.VerifyMAC(got, paygate.RequestMAC(p.hmacKey, payID, transID, p.merchantID, amount, currency)) {
			return fail(PaygateCodeMAC, "MAC is missing or wrong")
		}
	}
	return p.withMAC(c, paygate.Params{
		{Key: "mid", Value: p.merchantID},
		{Key: "PayID", Value: payID},
		{Key: "XID", Value: newPaygateID()},
		{Key: "TransID", Value: transID},
		{Key: "Status", Value: "OK"},
		{Key: "Code", Value: PaygateCodeOK},
		{Key: "Description", Value: "success"},
	})
}

// withMAC appends the answer's MAC when the fake has an hmac key.
func (p *Paygate) withMAC(c paygateCall, params paygate.Params) paygate.Params {
	if p.hmacKey == nil {
		return params
	}
	payID, _ := params.Get("PayID")
	transID, _ := params.Get("TransID")
	status, _ := params.Get("Status")
	code, _ := params.Get("Code")
	mac := paygate.ResponseMAC(p.hmacKey, payID, transID, p.merchantID, status, code)
	if c.tamper {
		mac = tamperHex(mac)
	}
	return append(params, paygate.Param{Key: "MAC", Value: mac})
}

// authToken serves the mobile SDK's registration: AuthToken (an16..56),
// AuthLabel (an32..64) and, optionally, ExpiryDate (YYYY-MM-DDThh:mm:ss in
// UTC, in the future and at most 24 hours ahead; 15 minutes if omitted).
func (p *Paygate) authToken(c paygateCall) paygate.Params {
	fail := func(code, description string) paygate.Params {
		return paygate.Params{
			{Key: "MID", Value: p.merchantID},
			{Key: "Status", Value: "FAILED"},
			{Key: "Code", Value: code},
			{Key: "Description", Value: description},
		}
	}
	token, _ := c.params.Get("AuthToken")
	label, _ := c.params.Get("AuthLabel")
	if !alphanumeric(token, 16, 56) {
		return fail(PaygateCodeFormat, "AuthToken is not an16..56")
	}
	if !alphanumeric(label, 32, 64) {
		return fail(PaygateCodeFormat, "AuthLabel is not an32..64")
	}
	expiry := c.now.Add(15 * time.Minute).UTC().Truncate(time.Second)
	if s, ok := c.params.Get("ExpiryDate"); ok {
		t, err := time.ParseInLocation(axeptaDTTM, s, time.UTC)
		if err != nil || len(s) != len(axeptaDTTM) { // Parse would take a fraction of a second
			return fail(PaygateCodeFormat, "ExpiryDate is not YYYY-MM-DDThh:mm:ss")
		}
		if !t.After(c.now) || t.After(c.now.Add(24*time.Hour)) {
			return fail(PaygateCodeFormat, "ExpiryDate is not within the next 24 hours")
		}
		expiry = t
	}
	p.mu.Lock()
	_, dup := p.regs[token]
	if !dup {
		p.regs[token] = axeptaRegistration{label: label, expiry: expiry}
	}
	p.mu.Unlock()
	if dup {
		return fail(PaygateCodeDuplicate, "AuthToken is already registered")
	}
	return paygate.Params{
		{Key: "MID", Value: p.merchantID},
		{Key: "Status", Value: "OK"},
		{Key: "Code", Value: PaygateCodeOK},
		{Key: "Description", Value: "success"},
		{Key: "ExpiryDate", Value: expiry.Format(axeptaDTTM)},
	}
}

// answer writes params encrypted for the merchant, as
// mid=…&Len=…&Data=…. Unlike paygate.Seal it puts no MerchantID inside
// Data: Paygate's answers carry none.
func (p *Paygate) answer(w http.ResponseWriter, params paygate.Params) {
	plain, err := paygate.Encode(params)
	if err != nil {
		http.Error(w, "fake paygate: "+err.Error(), http.StatusInternalServerError)
		return
	}
	data, err := p.cipher.Encrypt([]byte(plain))
	if err != nil {
		http.Error(w, "fake paygate: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("mid=" + url.QueryEscape(p.merchantID) + "&Len=" + strconv.Itoa(len(plain)) + "&Data=" + data))
}

// writePlainFailed answers Status=FAILED unencrypted.
func writePlainFailed(w http.ResponseWriter, httpStatus int, code, description string) {
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
	w.WriteHeader(httpStatus)
	_, _ = w.Write([]byte("Status=FAILED&Code=" + code + "&Description=" + url.QueryEscape(description)))
}

// newPaygateID returns a random 32-character upper-case hex id, the shape
// of Paygate's PayID and XID.
func newPaygateID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// tamperHex changes the last hex digit of s.
func tamperHex(s string) string {
	if s == "" {
		return "0"
	}
	last := byte('0')
	if s[len(s)-1] == '0' {
		last = '1'
	}
	return s[:len(s)-1] + string(last)
}

// alphanumeric reports whether s is an (ASCII letters and digits) of a
// length from lo to hi.
func alphanumeric(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func upperLetters(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
