package tokens

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// JuspayConfig describes Juspay's Customers API, from which a client auth
// token is fetched per customer:
//
//	GET {URL}/customers/{customer_id}?options.get_client_auth_token=true
//	Authorization: Basic base64(<API key> + ":")
//	x-merchantid: <MerchantID>
//	x-routing-id: <customer_id>
//
// answers the customer object with
// "juspay":{"client_auth_token":"tkn_…","client_auth_token_expiry":"…Z"}.
type JuspayConfig struct {
	// URL is Juspay's base URL: https://api.juspay.in, or
	// https://sandbox.juspay.in for tests. Required.
	URL string
	// APIKey is the merchant's API key, sent as the Basic user name with an
	// empty password. Required.
	APIKey Secret
	// MerchantID is sent as x-merchantid. Required.
	MerchantID string
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
}

// Check reports every problem of c, each a *FieldError, joined; nil if
// NewJuspayCustomerSource can use it.
func (c JuspayConfig) Check() error {
	var f fieldErrors
	f.url("URL", c.URL)
	if u, err := url.Parse(c.URL); err == nil && (u.RawQuery != "" || u.ForceQuery || u.Fragment != "") {
		f.add("URL", "want a base URL such as https://api.juspay.in, without query or fragment, got %q", c.URL)
	}
	if c.APIKey.IsZero() {
		f.add("APIKey", "required")
	}
	switch {
	case c.MerchantID == "":
		f.add("MerchantID", "required")
	case hasControl(c.MerchantID) || strings.TrimSpace(c.MerchantID) != c.MerchantID:
		f.add("MerchantID", "want a merchant id without control characters or surrounding space, got %s", echo(c.MerchantID))
	}
	return f.err()
}

// UnknownCustomerError is Juspay's answer that it does not know the customer
// a token was asked for: a 404 with a JSON body, or an error object naming
// a missing resource (error_code object_not_found, error_info.code
// RESOURCE_NOT_FOUND).
type UnknownCustomerError struct {
	// Message is Juspay's message, cut short, with the API key removed in
	// any form Juspay may echo it.
	Message string
}

func (e *UnknownCustomerError) Error() string {
	if e.Message == "" {
		return "tokens: Juspay does not know the customer"
	}
	return "tokens: Juspay does not know the customer: " + e.Message
}

// juspayDefaultTTL is a client auth token's life when Juspay's answer gives
// no expiry: 15 minutes, as Juspay documents it.
const juspayDefaultTTL = 15 * time.Minute

// NewJuspayCustomerSource returns a KeyedSource whose keys are customer ids
// (the merchant's object_reference_id, or Juspay's "cst_…" id): each Token
// call fetches a new client auth token for that customer, as c describes.
// Juspay's refusal is a *RetrieveError, except for an unknown customer: a
// *UnknownCustomerError.
func NewJuspayCustomerSource(c JuspayConfig) KeyedSource {
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return &juspaySource{c: c}
}

type juspaySource struct{ c JuspayConfig }

func (s *juspaySource) Token(ctx context.Context, customerID string) (*Token, error) {
	if err := checkCustomerID(customerID); err != nil {
		return nil, err
	}
	key, err := s.c.APIKey.Read()
	if err != nil {
		return nil, err
	}
	// The key is the Basic user name: RFC 7617 allows no colon in it.
	if key == "" || strings.ContainsRune(key, ':') || hasControl(key) {
		return nil, errors.New("tokens: the Juspay API key is empty or holds a colon or a control character")
	}
	secrets := juspaySecrets(key)
	u := s.c.URL + "/customers/" + url.PathEscape(customerID) + "?options.get_client_auth_token=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, newRequestError("tokens: build customer request", err, secrets...)
	}
	req.SetBasicAuth(key, "")
	req.Header.Set("x-merchantid", s.c.MerchantID)
	req.Header.Set("x-routing-id", customerID)
	req.Header.Set("Accept", "application/json")
	resp, err := s.c.Client.Do(req)
	if err != nil {
		return nil, newRequestError("tokens: customer request", err, secrets...)
	}
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("tokens: read customer response: %w", err)
	}
	return parseJuspayCustomer(resp.StatusCode, resp.Header, raw, time.Now(), secrets...)
}

// checkCustomerID refuses a customer id that cannot be sent as one path
// segment and as the x-routing-id header: empty, not UTF-8, with a control
// character (tab included), or "." and "..", which a server resolves.
func checkCustomerID(id string) error {
	switch {
	case id == "":
		return errors.New("tokens: empty customer id")
	case !utf8.ValidString(id) || strings.ContainsFunc(id, unicode.IsControl):
		return errors.New("tokens: customer id is not UTF-8 text without control characters")
	case id == "." || id == "..":
		return errors.New(`tokens: customer id "." or ".." cannot be a path segment`)
	}
	return nil
}

// juspaySecrets lists the API key in every form Juspay may echo it: as it
// is, and as the Basic credential the request carried (with the colon, as
// sent, and without, as some integrations send it); secretForms adds their
// JSON and URL forms.
func juspaySecrets(key string) []string {
	return []string{
		key,
		base64.StdEncoding.EncodeToString([]byte(key + ":")),
		base64.StdEncoding.EncodeToString([]byte(key)),
	}
}

// parseJuspayCustomer reads the Customers API's answer: a client auth token
// and its expiry, an *UnknownCustomerError or a *RetrieveError. Its errors
// quote no more than a few characters of the answer, never the token nor
// any of secrets.
func parseJuspayCustomer(status int, header http.Header, raw []byte, now time.Time, secrets ...string) (*Token, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	isObject := dec.Decode(&doc) == nil && doc != nil
	if isObject && dec.More() {
		isObject = false // one object, not a stream of them
	}
	ok := status >= 200 && status <= 299
	switch {
	case isObject && (status == http.StatusNotFound || juspayNotFound(doc)):
		// Juspay's 404 for a customer is a JSON error object; a 404 with
		// any other body (a wrong URL, a proxy's page) is a refusal below.
		return nil, &UnknownCustomerError{Message: cleanDescription(juspayMessage(doc), secrets...)}
	case !ok:
		e := &RetrieveError{Status: status, RetryAfter: retryAfter(header.Get("Retry-After"))}
		if isObject {
			e.Code = cleanDescription(strField(doc, "error_code"), secrets...)
			e.Description = cleanDescription(juspayMessage(doc), secrets...)
		} else {
			e.Description = cleanDescription(string(raw), secrets...)
		}
		return nil, e
	case !isObject:
		return nil, errors.New("tokens: malformed customer response: not a JSON object")
	}
	jp, _ := doc["juspay"].(map[string]any)
	value, _ := jp["client_auth_token"].(string)
	if strings.TrimSpace(value) == "" {
		if code := strField(doc, "error_code"); code != "" || doc["error"] == true {
			// An error object with a 2xx status.
			return nil, &RetrieveError{Status: status, Code: cleanDescription(code, secrets...),
				Description: cleanDescription(juspayMessage(doc), secrets...)}
		}
		return nil, errors.New("tokens: customer response has no juspay.client_auth_token")
	}
	if hasControl(value) {
		return nil, errors.New("tokens: customer response: juspay.client_auth_token holds a control character")
	}
	expiry := now.Add(juspayDefaultTTL)
	switch v := jp["client_auth_token_expiry"].(type) {
	case nil:
	case string:
		if strings.TrimSpace(v) == "" {
			break
		}
		t, err := parseJuspayTime(v)
		if err != nil {
			return nil, fmt.Errorf("tokens: customer response: juspay.client_auth_token_expiry %s is not an RFC 3339 time", echo(v, append(secrets, value)...))
		}
		if !t.After(now) {
			return nil, fmt.Errorf("tokens: customer response: juspay.client_auth_token_expiry %s is not in the future", t.UTC().Format(time.RFC3339Nano))
		}
		expiry = t
	default:
		return nil, errors.New("tokens: customer response: juspay.client_auth_token_expiry is not a string")
	}
	return &Token{Value: value, Expiry: expiry}, nil
}

// parseJuspayTime reads an RFC 3339 time, as client_auth_token_expiry is
// documented ("2024-08-28T06:26:16Z"), or with a numeric zone without a
// colon, as Juspay writes date_created ("2016-08-02T08:07:52+0000").
func parseJuspayTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		if t2, err2 := time.Parse("2006-01-02T15:04:05.999999999Z0700", s); err2 == nil {
			return t2, nil
		}
	}
	return t, err
}

// juspayNotFound reports whether doc is Juspay's error object for a missing
// resource.
func juspayNotFound(doc map[string]any) bool {
	info, _ := doc["error_info"].(map[string]any)
	return strings.EqualFold(strField(doc, "error_code"), "object_not_found") ||
		strings.EqualFold(strField(info, "code"), "RESOURCE_NOT_FOUND")
}

// juspayMessage is the message of Juspay's error object: error_message, else
// error_info's developer_message or user_message, else user_message.
func juspayMessage(doc map[string]any) string {
	info, _ := doc["error_info"].(map[string]any)
	for _, m := range []string{strField(doc, "error_message"), strField(info, "developer_message"),
		strField(info, "user_message"), strField(doc, "user_message")} {
		if strings.TrimSpace(m) != "" {
			return m
		}
	}
	return ""
}

// strField is obj[key] if it is a string, else "".
func strField(obj map[string]any, key string) string {
	s, _ := obj[key].(string)
	return s
}
