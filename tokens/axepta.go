package tokens

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// MaxRegistrationTTL is the longest validity an Axepta AuthToken may be
// given: the platform refuses an ExpiryDate further ahead than 24 hours.
const MaxRegistrationTTL = 24 * time.Hour

// defaultRegistrationTTL is the platform's own default validity, used when
// AxeptaConfig.TTL is zero.
const defaultRegistrationTTL = 15 * time.Minute

// Lengths of the minted values, within Axepta's an16..56 (AuthToken) and
// an32..64 (AuthLabel).
const (
	authTokenLen = 40
	authLabelLen = 48
)

// maxMerchantID is the length of Axepta's MerchantID, ans..30.
const maxMerchantID = 30

// dttmLayout is Axepta's ISODateTime, YYYY-MM-DDThh:mm:ss.
const dttmLayout = "2006-01-02T15:04:05"

// AxeptaConfig describes the registration of Axepta mobile-SDK AuthTokens:
// BNP Paribas Axepta's mobile SDK authenticates with a one-off AuthToken and
// AuthLabel that the merchant mints for each SDK request and registers
// server to server, in Paygate's encrypted envelope, before answering the
// SDK.
type AxeptaConfig struct {
	// URL is the AuthToken registration URL. Required: there is no default,
	// as the platform does not publish it.
	URL string
	// Merchant returns the merchant's id and current passwords; it is called
	// once per registration, so that rotated password files take effect.
	// Required. Only the Cipher is used to send; the HMACKey, if any, checks
	// a MAC the answer carries.
	Merchant func() *paygate.Merchant
	// TTL is the validity requested for each AuthToken. If zero, 15 minutes
	// (the platform's default). Check refuses a negative one, one below a
	// second and one above MaxRegistrationTTL; the registrar takes a
	// negative one as zero and brings the others within those bounds.
	TTL time.Duration
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
}

// Check reports every problem of c, each a *FieldError, joined; nil if
// NewAxeptaRegistrar can use it. It calls c.Merchant once.
func (c AxeptaConfig) Check() error {
	var f fieldErrors
	f.url("URL", c.URL)
	if c.Merchant == nil {
		f.add("Merchant", "required")
	} else if m := c.Merchant(); m == nil {
		f.add("Merchant", "required: it returned none")
	} else {
		switch {
		case m.ID == "":
			f.add("Merchant", "the merchant id is required")
		case len(m.ID) > maxMerchantID || strings.ContainsAny(m.ID, "&=") || hasControl(m.ID):
			f.add("Merchant", "want a merchant id of at most %d characters without '&', '=' or control characters, got %s", maxMerchantID, echo(m.ID))
		}
		if m.Cipher == nil {
			f.add("Merchant", "the cipher (encryption password) is required")
		}
	}
	if c.TTL != 0 && (c.TTL < time.Second || c.TTL > MaxRegistrationTTL) {
		f.add("TTL", "must be zero (15 minutes) or from 1s to %s (the provider's limit), got %s", MaxRegistrationTTL, c.TTL)
	}
	return f.err()
}

// AxeptaAuth is one registered AuthToken and AuthLabel with the platform's
// answer: the object the Axepta mobile SDK expects from the merchant, its
// JSON in the document's field names and order. AuthToken and AuthLabel are
// secrets; String and LogValue leave them out.
type AxeptaAuth struct {
	AuthToken string `json:"AuthToken"`
	AuthLabel string `json:"AuthLabel"`
	// ExpiryDate is the end of the token's validity, YYYY-MM-DDThh:mm:ss in
	// UTC: the platform's, unless it is later than the one requested.
	ExpiryDate  string `json:"ExpiryDate"`
	Description string `json:"Description"`
	Status      string `json:"Status"`
	Code        string `json:"Code"`
}

// String hides the AuthToken and the AuthLabel.
func (a AxeptaAuth) String() string {
	return fmt.Sprintf("{AuthToken:[redacted] AuthLabel:[redacted] ExpiryDate:%s Description:%q Status:%s Code:%s}",
		a.ExpiryDate, a.Description, a.Status, a.Code)
}

// GoString hides them from %#v too.
func (a AxeptaAuth) GoString() string { return "tokens.AxeptaAuth" + a.String() }

// LogValue implements slog.LogValuer: never the AuthToken or the AuthLabel.
func (a AxeptaAuth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("expiry_date", a.ExpiryDate), slog.String("status", a.Status), slog.String("code", a.Code))
}

// AxeptaRegistrar registers one fresh AuthToken per call. It is safe for
// concurrent use.
type AxeptaRegistrar struct{ c AxeptaConfig }

// NewAxeptaRegistrar returns a registrar for c; see AxeptaConfig.Check.
func NewAxeptaRegistrar(c AxeptaConfig) *AxeptaRegistrar {
	switch {
	case c.TTL <= 0:
		c.TTL = defaultRegistrationTTL
	case c.TTL > MaxRegistrationTTL:
		c.TTL = MaxRegistrationTTL
	case c.TTL < time.Second:
		c.TTL = time.Second
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	return &AxeptaRegistrar{c: c}
}

// Register mints a fresh AuthToken (40 alphanumeric characters) and AuthLabel
// (48) from crypto/rand, registers them with the merchant's id and an
// ExpiryDate TTL ahead, and returns them with the platform's answer.
//
// The request is a form-urlencoded POST of Paygate's envelope, MerchantID,
// Len and Data, Data encrypting MerchantID, AuthToken, AuthLabel and
// ExpiryDate. The answer's Len and Data are decrypted; an answer in plain
// (Paygate's refusal of a call it cannot decrypt) is read as it is, but only
// as a refusal. Parameter names are matched in any case. A MAC in the answer
// must verify when the merchant has an HMACKey.
//
// A Status other than OK, or a non-2xx answer, is a *RetrieveError with the
// platform's Code and Description. A failed request wraps its cause, so that
// errors.Is(err, context.DeadlineExceeded) holds after ctx's deadline. No
// error holds the AuthToken, the AuthLabel or the merchant's passwords.
func (r *AxeptaRegistrar) Register(ctx context.Context) (AxeptaAuth, error) {
	m := r.merchant()
	if m == nil {
		return AxeptaAuth{}, errors.New("tokens: axepta registration: no merchant, or a merchant without an id or a cipher")
	}
	// Truncated, not rounded: the expiry asked for is never past now+TTL.
	requested := time.Now().Add(r.c.TTL).UTC().Truncate(time.Second)
	token, label := randomAlnum(authTokenLen), randomAlnum(authLabelLen)
	secrets := registrationSecrets(m, token, label)
	// No MAC: the document lists none for this call.
	env, err := paygate.Seal(m.Cipher, m.ID, paygate.Params{
		{Key: "AuthToken", Value: token},
		{Key: "AuthLabel", Value: label},
		{Key: "ExpiryDate", Value: requested.Format(dttmLayout)},
	})
	if err != nil {
		return AxeptaAuth{}, fmt.Errorf("tokens: seal registration: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.c.URL, strings.NewReader(env.Encode()))
	if err != nil {
		return AxeptaAuth{}, fmt.Errorf("tokens: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.c.Client.Do(req)
	if err != nil {
		return AxeptaAuth{}, newRequestError("tokens: registration request", err, secrets...)
	}
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body)
	if err != nil {
		return AxeptaAuth{}, newRequestError("tokens: read registration answer", err, secrets...)
	}
	return axeptaAnswer(m, resp.StatusCode, resp.Header, raw, token, label, requested, time.Now())
}

// registrationSecrets are what no error may show: the minted values and the
// merchant's HMAC password (unless it is too short to redact without
// mangling the rest of a message; the encryption password is the Cipher's,
// out of reach).
func registrationSecrets(m *paygate.Merchant, token, label string) []string {
	if len(m.HMACKey) >= 8 {
		return []string{token, label, string(m.HMACKey)}
	}
	return []string{token, label}
}

// merchant returns the merchant to register for, or nil if it cannot be used.
func (r *AxeptaRegistrar) merchant() *paygate.Merchant {
	if r.c.Merchant == nil {
		return nil
	}
	m := r.c.Merchant()
	if m == nil || m.ID == "" || m.Cipher == nil {
		return nil
	}
	return m
}

// axeptaResult is what the sidecar reads of the platform's answer. Absent
// values are empty.
type axeptaResult struct {
	// MIDs are the answer's MID inside Data and its mid in plain, those given.
	MIDs                                  []string
	Status, Code, Description, ExpiryDate string
	// Sealed is true if the values came from inside Data.
	Sealed bool
}

// decodeAxeptaAnswer reads the platform's answer to a registration for m: a
// form of Len and Data (and often mid), Data decrypted and parsed; or, with
// no Data, the form's parameters in plain. Names are matched in any ASCII
// case, and a name given twice is an error. A MAC, if any, is checked with
// m's HMACKey, if any.
func decodeAxeptaAnswer(m *paygate.Merchant, raw []byte) (axeptaResult, error) {
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return axeptaResult{}, errors.New("tokens: registration answer is not a form")
	}
	outer, err := pick(formParams(form), "mid", "len", "data", "status", "code", "description", "expirydate", "mac", "payid", "transid")
	if err != nil {
		return axeptaResult{}, err
	}
	params := outer
	sealed := false
	if data, ok := outer["data"]; ok {
		p, err := paygate.Open(m.Cipher, outer["len"], data)
		if err != nil {
			return axeptaResult{}, fmt.Errorf("tokens: registration answer: %w", err)
		}
		if params, err = pick(p, "mid", "status", "code", "description", "expirydate", "mac", "payid", "transid"); err != nil {
			return axeptaResult{}, err
		}
		sealed = true
	}
	// The mid in plain is Paygate's too: when both are given, both count.
	var mids []string
	if v, ok := params["mid"]; ok {
		mids = append(mids, v)
	}
	if v, ok := outer["mid"]; ok && sealed {
		mids = append(mids, v)
	}
	if mac, ok := params["mac"]; ok && m.HMACKey != nil {
		want := paygate.ResponseMAC(m.HMACKey, params["payid"], params["transid"], m.ID, params["status"], params["code"])
		if !paygate.VerifyMAC(mac, want) {
			return axeptaResult{}, fmt.Errorf("tokens: registration answer: %w", paygate.ErrBadMAC)
		}
	}
	return axeptaResult{
		MIDs: mids, Status: params["status"], Code: params["code"],
		Description: params["description"], ExpiryDate: params["expirydate"], Sealed: sealed,
	}, nil
}

// formParams lists a form's parameters; the order of names is lost, which
// pick does not need.
func formParams(form url.Values) paygate.Params {
	var p paygate.Params
	for k, vs := range form {
		for _, v := range vs {
			p = append(p, paygate.Param{Key: k, Value: v})
		}
	}
	return p
}

// pick returns the values of the named parameters (lower-case names), matched
// in any ASCII case; a name found twice is an error.
func pick(params paygate.Params, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, kv := range params {
		name := asciiLower(kv.Key)
		for _, n := range names {
			if name != n {
				continue
			}
			if _, dup := out[n]; dup {
				return nil, fmt.Errorf("tokens: registration answer gives %s twice", n)
			}
			out[n] = kv.Value
		}
	}
	return out, nil
}

// asciiLower lower-cases an ASCII name; a name with other characters matches
// no parameter name (strings.EqualFold would take "ſtatus" for "status"), so
// it is returned unchanged.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return s
		}
	}
	return strings.ToLower(s)
}

// axeptaAnswer reads the platform's answer (HTTP status, header and body) to
// the registration of token and label for m, which asked for an expiry at
// requested, at time now.
func axeptaAnswer(m *paygate.Merchant, status int, header http.Header, raw []byte, token, label string, requested, now time.Time) (AxeptaAuth, error) {
	secrets := registrationSecrets(m, token, label)
	res, err := decodeAxeptaAnswer(m, raw)
	if status < 200 || status > 299 {
		e := &RetrieveError{Status: status, RetryAfter: retryAfter(header.Get("Retry-After"))}
		if err == nil && (res.Code != "" || res.Description != "") {
			e.Code = cleanDescription(res.Code, secrets...)
			e.Description = cleanDescription(res.Description, secrets...)
		} else {
			e = refusal(&http.Response{StatusCode: status, Header: header}, raw, secrets...)
		}
		return AxeptaAuth{}, e
	}
	if err != nil {
		return AxeptaAuth{}, err
	}
	st := strings.TrimSpace(res.Status)
	switch {
	case st == "":
		return AxeptaAuth{}, errors.New("tokens: registration answer has no Status")
	case !strings.EqualFold(st, "OK"):
		return AxeptaAuth{}, &RetrieveError{
			Status:      status,
			Code:        cleanDescription(res.Code, secrets...),
			Description: cleanDescription(res.Description, secrets...),
			RetryAfter:  retryAfter(header.Get("Retry-After")),
		}
	case !res.Sealed:
		// Paygate answers in plain only what it refuses: an OK anyone on
		// the way could have written is no registration.
		return AxeptaAuth{}, errors.New("tokens: registration answer says OK without Data: not encrypted for the merchant")
	}
	if len(res.MIDs) == 0 {
		return AxeptaAuth{}, errors.New("tokens: registration answer has no MID")
	}
	for _, mid := range res.MIDs {
		if mid = strings.TrimSpace(mid); mid != m.ID {
			return AxeptaAuth{}, fmt.Errorf("tokens: registration answer is for merchant %s, not %s", echo(mid, secrets...), echo(m.ID))
		}
	}
	// The effective ExpiryDate, but never later than asked: an answer in
	// the platform's local time without an offset must not outlive the token.
	expiry := requested
	if t, ok := parseDTTM(res.ExpiryDate); ok && t.Before(requested) {
		expiry = t
	}
	if !expiry.After(now) {
		return AxeptaAuth{}, fmt.Errorf("tokens: registration answer's ExpiryDate %s is not in the future", expiry.Format(time.RFC3339))
	}
	return AxeptaAuth{
		AuthToken:   token,
		AuthLabel:   label,
		ExpiryDate:  expiry.Format(dttmLayout),
		Description: cleanDescription(res.Description, secrets...),
		Status:      cleanDescription(st, secrets...),
		Code:        cleanDescription(res.Code, secrets...),
	}, nil
}

// parseDTTM reads an ExpiryDate: YYYY-MM-DDThh:mm:ss in UTC, or with an
// offset (RFC 3339); fractions of a second are accepted, and dropped: the
// expiry is handed on to the second.
func parseDTTM(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(dttmLayout, s, time.UTC); err == nil {
		return t.Truncate(time.Second), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC().Truncate(time.Second), true
	}
	return time.Time{}, false
}

// alnum is the alphabet of minted values: an, alphanumeric.
const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomAlnum returns n characters drawn uniformly from alnum with
// crypto/rand. Bytes from 248 (4×62) up are rejected, so that b%62 favours
// no character.
func randomAlnum(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/8+8)
	for len(out) < n {
		rand.Read(buf) // never fails: the runtime aborts instead
		for _, b := range buf {
			if int(b) >= 4*len(alnum) {
				continue
			}
			out = append(out, alnum[int(b)%len(alnum)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out)
}
