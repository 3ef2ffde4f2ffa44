package tokens

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxRegistrationTTL is the longest validity a registered token may be given:
// Axepta refuses an ExpiryDate further ahead than 24 hours.
const MaxRegistrationTTL = 24 * time.Hour

// defaultRegistrationTTL is the platform's own default validity, used when
// RegisteredConfig.TTL is zero.
const defaultRegistrationTTL = 15 * time.Minute

// Lengths of the minted values, within Axepta's an16..56 (AuthToken) and
// an32..64 (AuthLabel).
const (
	authTokenLen = 40
	authLabelLen = 48
)

// dttmLayout is Axepta's ISODateTime, YYYY-MM-DDThh:mm:ss.
const dttmLayout = "2006-01-02T15:04:05"

// RegisteredConfig describes a token the sidecar mints itself and registers
// with the provider before use, as BNP Paribas / Axepta's mobile SDK
// authentication works: the merchant generates an AuthToken and an AuthLabel,
// registers them server to server with its MerchantID and an ExpiryDate, and
// the platform answers MID, Status, Description, Code and ExpiryDate.
type RegisteredConfig struct {
	// URL is the registration endpoint. Required.
	URL string
	// MerchantID is the merchant's id (ans..30), sent as MerchantID; the
	// answer's MID must be the same. Required: the platform refuses an empty
	// one.
	MerchantID string
	// TTL is the validity requested for each token. If zero or negative, 15
	// minutes (the platform's default); above MaxRegistrationTTL, 24 hours;
	// below a second, a second.
	TTL time.Duration
	// Encoder writes the registration and reads the answer. If nil,
	// JSONRegistrationEncoder is used.
	Encoder RegistrationEncoder
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
}

// Registration is what is sent to register one token. ExpiryDate is the end
// of the token's validity in UTC, formatted YYYY-MM-DDThh:mm:ss.
type Registration struct {
	MerchantID, AuthToken, AuthLabel, ExpiryDate string
}

// RegistrationResult is the platform's answer to a Registration, its values
// as given. Status is "OK" or "FAILED"; Code is the platform's 8-digit code;
// ExpiryDate is the end of the token's validity, YYYY-MM-DDThh:mm:ss, which
// is read as UTC unless it carries an offset. Absent values are empty.
type RegistrationResult struct {
	MID, Status, Description, Code, ExpiryDate string
}

// RegistrationEncoder is the wire format of a registration, apart from its
// lifecycle (minting, dating, checking the answer), so that Axepta's
// encrypted Data format can be added beside the plain JSON one. Its errors
// are returned as they are: they read "tokens: …", and never contain the
// AuthToken or the AuthLabel. Implementations must be safe for concurrent use.
type RegistrationEncoder interface {
	// Encode returns the body of the POST that registers r, and its
	// Content-Type.
	Encode(r Registration) (contentType string, body []byte, err error)
	// Decode reads the platform's answer. Parameter names are matched without
	// regard to case: the platform may send them in upper or lower case.
	Decode(body []byte) (RegistrationResult, error)
}

// JSONRegistrationEncoder sends a registration as a JSON object,
// {"MerchantID":…,"AuthToken":…,"AuthLabel":…,"ExpiryDate":…}, and reads a
// JSON object answer whose values are strings, numbers or null.
var JSONRegistrationEncoder RegistrationEncoder = jsonRegistration{}

type jsonRegistration struct{}

func (jsonRegistration) Encode(r Registration) (string, []byte, error) {
	body, err := json.Marshal(struct {
		MerchantID string
		AuthToken  string
		AuthLabel  string
		ExpiryDate string `json:",omitempty"`
	}(r))
	if err != nil {
		return "", nil, fmt.Errorf("tokens: encode registration: %w", err)
	}
	return "application/json", body, nil
}

func (jsonRegistration) Decode(body []byte) (RegistrationResult, error) {
	var r RegistrationResult
	fields := map[string]*string{
		"mid": &r.MID, "status": &r.Status, "description": &r.Description,
		"code": &r.Code, "expirydate": &r.ExpiryDate,
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return RegistrationResult{}, errors.New("tokens: registration answer is not a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return RegistrationResult{}, fmt.Errorf("tokens: malformed registration answer: %w", err)
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return RegistrationResult{}, fmt.Errorf("tokens: malformed registration answer: %w", err)
		}
		name := asciiLower(key)
		p, ok := fields[name]
		if !ok {
			continue
		}
		if seen[name] {
			return RegistrationResult{}, fmt.Errorf("tokens: registration answer gives %s twice", name)
		}
		seen[name] = true
		switch v := v.(type) {
		case nil:
		case string:
			*p = v
		case json.Number:
			*p = v.String()
		default:
			return RegistrationResult{}, fmt.Errorf("tokens: registration answer's %s is not a string", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return RegistrationResult{}, fmt.Errorf("tokens: malformed registration answer: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return RegistrationResult{}, errors.New("tokens: malformed registration answer: data after the JSON object")
	}
	return r, nil
}

// asciiLower lower-cases an ASCII key; a key with other characters matches
// no parameter name, so it is returned unchanged.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return s
		}
	}
	return strings.ToLower(s)
}

// NewRegisteredSource returns a Source that, at each call, mints a fresh
// AuthToken (40 alphanumeric characters) and AuthLabel (48) from crypto/rand,
// registers them as c describes, and returns them as the token's Value and
// Label. The token expires at the answer's ExpiryDate, or at the one
// requested (now plus TTL, in UTC, to the second below) if the answer gives
// none that parses; an expiry that is not in the future is an error. A
// Status other than OK, or a non-2xx answer, is a *RetrieveError.
func NewRegisteredSource(c RegisteredConfig) Source {
	switch {
	case c.TTL <= 0:
		c.TTL = defaultRegistrationTTL
	case c.TTL > MaxRegistrationTTL:
		c.TTL = MaxRegistrationTTL
	case c.TTL < time.Second:
		c.TTL = time.Second
	}
	if c.Encoder == nil {
		c.Encoder = JSONRegistrationEncoder
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	return &registeredSource{c: c}
}

type registeredSource struct{ c RegisteredConfig }

func (s *registeredSource) Token(ctx context.Context) (*Token, error) {
	// Truncated, not rounded: the expiry asked for is never past now+TTL.
	requested := time.Now().Add(s.c.TTL).UTC().Truncate(time.Second)
	reg := Registration{
		MerchantID: s.c.MerchantID,
		AuthToken:  randomAlnum(authTokenLen),
		AuthLabel:  randomAlnum(authLabelLen),
		ExpiryDate: requested.Format(dttmLayout),
	}
	contentType, body, err := s.c.Encoder.Encode(reg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tokens: build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := s.c.Client.Do(req)
	if err != nil {
		return nil, newRequestError("tokens: registration request", err, reg.AuthToken, reg.AuthLabel)
	}
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("tokens: read registration answer: %w", err)
	}
	return s.answer(resp.StatusCode, resp.Header, raw, reg, requested, time.Now())
}

// answer reads the platform's answer to reg, made at requested's request, at
// time now.
func (s *registeredSource) answer(status int, header http.Header, raw []byte, reg Registration, requested, now time.Time) (*Token, error) {
	secrets := []string{reg.AuthToken, reg.AuthLabel}
	res, err := s.c.Encoder.Decode(raw)
	if status < 200 || status > 299 {
		e := refusal(&http.Response{StatusCode: status, Header: header}, raw, secrets...)
		if err == nil && (res.Code != "" || res.Description != "") {
			e.Code = cleanDescription(res.Code, secrets...)
			e.Description = cleanDescription(res.Description, secrets...)
		}
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	switch st := strings.TrimSpace(res.Status); {
	case st == "":
		return nil, errors.New("tokens: registration answer has no Status")
	case !strings.EqualFold(st, "OK"):
		return nil, &RetrieveError{
			Status:      status,
			Code:        cleanDescription(res.Code, secrets...),
			Description: cleanDescription(res.Description, secrets...),
			RetryAfter:  retryAfter(header.Get("Retry-After")),
		}
	}
	switch mid := strings.TrimSpace(res.MID); {
	case mid == "":
		return nil, errors.New("tokens: registration answer has no MID")
	case mid != strings.TrimSpace(reg.MerchantID):
		return nil, fmt.Errorf("tokens: registration answer is for merchant %s, not %q", echo(mid, secrets...), reg.MerchantID)
	}
	// The effective ExpiryDate, but never later than asked: an answer in
	// the platform's local time without an offset must not outlive the token.
	expiry := requested
	if t, ok := parseDTTM(res.ExpiryDate); ok && t.Before(requested) {
		expiry = t
	}
	if !expiry.After(now) {
		return nil, fmt.Errorf("tokens: registration answer's ExpiryDate %s is not in the future", expiry.Format(time.RFC3339))
	}
	return &Token{Value: reg.AuthToken, Label: reg.AuthLabel, Expiry: expiry, Extra: map[string]string{
		"Code":        cleanDescription(res.Code, secrets...),
		"Description": cleanDescription(res.Description, secrets...),
	}}, nil
}

// parseDTTM reads an ExpiryDate: YYYY-MM-DDThh:mm:ss in UTC, or with an
// offset (RFC 3339); fractions of a second are accepted.
func parseDTTM(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(dttmLayout, s, time.UTC); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
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
