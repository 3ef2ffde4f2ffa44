package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// JSONConfig describes a JSON credential exchange, as TezPay documents it:
// POST {"client_id":…,"client_secret":…} and read the token and its lifetime
// from the JSON answer.
type JSONConfig struct {
	// URL is the token endpoint.
	URL string
	// ClientID and ClientSecret are sent as client_id and client_secret.
	ClientID, ClientSecret Secret
	// TokenField is the dotted path of the token in the answer ("data.token").
	// If empty, "access_token" is used.
	TokenField string
	// ExpiresInField is the dotted path of the token's lifetime in seconds.
	// If empty, "expires_in" is used.
	ExpiresInField string
	// ExpiresAtField, if set, is the dotted path of an absolute expiry (RFC
	// 3339), for providers that give one instead of a lifetime (Juspay:
	// juspay.client_auth_token_expiry); it wins over ExpiresInField.
	ExpiresAtField string
	// DefaultTTL is the lifetime used when the answer gives none and the token
	// is not a JWT with exp. If zero, DefaultTTL is used.
	DefaultTTL time.Duration
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
}

// NewJSONSource returns a Source that performs the exchange described by c.
func NewJSONSource(c JSONConfig) Source {
	if c.TokenField == "" {
		c.TokenField = "access_token"
	}
	if c.ExpiresInField == "" {
		c.ExpiresInField = "expires_in"
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	return &jsonSource{c: c}
}

type jsonSource struct{ c JSONConfig }

func (s *jsonSource) Token(ctx context.Context) (*Token, error) {
	id, err := s.c.ClientID.Read()
	if err != nil {
		return nil, err
	}
	secret, err := s.c.ClientSecret.Read()
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]string{"client_id": id, "client_secret": secret})
	if err != nil {
		return nil, fmt.Errorf("tokens: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("tokens: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.c.Client.Do(req)
	if err != nil {
		return nil, newRequestError("tokens: token request", err, secret)
	}
	defer resp.Body.Close()
	raw, err := readLimited(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("tokens: read token response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, refusal(resp, raw, secret)
	}
	return parseJSONFields(raw, jsonFields{s.c.TokenField, s.c.ExpiresInField, s.c.ExpiresAtField}, time.Now(), s.c.DefaultTTL, secret)
}

// jsonFields are the dotted paths read from a token endpoint's answer.
type jsonFields struct{ token, expiresIn, expiresAt string }

// parseJSONToken reads a token and its lifetime from a token endpoint's JSON
// answer.
func parseJSONToken(raw []byte, tokenField, expiresInField string, now time.Time, defaultTTL time.Duration) (*Token, error) {
	return parseJSONFields(raw, jsonFields{token: tokenField, expiresIn: expiresInField}, now, defaultTTL)
}

// parseJSONFields reads a token and its expiry from a token endpoint's JSON
// answer. Its errors quote no more than a few characters of the answer,
// never the token nor any of secrets.
func parseJSONFields(raw []byte, f jsonFields, now time.Time, defaultTTL time.Duration, secrets ...string) (*Token, error) {
	tokenField, expiresInField := f.token, f.expiresIn
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("tokens: malformed token response: %w", err)
	}
	value, _ := lookup(doc, tokenField).(string)
	if strings.TrimSpace(value) == "" {
		return nil, fmt.Errorf("tokens: token response has no %q", tokenField)
	}
	var given time.Time
	if f.expiresAt != "" {
		if v := lookup(doc, f.expiresAt); v != nil {
			s, _ := v.(string)
			t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("tokens: token response %q: not an RFC 3339 time", f.expiresAt)
			}
			given = t
		}
	}
	if v := lookup(doc, expiresInField); v != nil && given.IsZero() {
		secs, err := seconds(v, append(secrets, value)...)
		if err != nil {
			return nil, fmt.Errorf("tokens: token response %q: %w", expiresInField, err)
		}
		given = now.Add(secs)
	}
	return &Token{Value: value, Expiry: expiryOf(value, given, now, defaultTTL)}, nil
}

// lookup follows a dotted path through decoded JSON objects.
func lookup(doc any, path string) any {
	for _, key := range strings.Split(path, ".") {
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = obj[key]
	}
	return doc
}

// seconds reads a positive lifetime in seconds, given as a JSON number or a
// numeric string. An error quotes the value only if it looks like a number
// (a token in the wrong field does not), cleaned of secrets and cut short.
func seconds(v any, secrets ...string) (time.Duration, error) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case int64: // x/oauth2's Extra for form-encoded answers
		s = strconv.FormatInt(v, 10)
	case string:
		s = v
	default:
		return 0, fmt.Errorf("not a number")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || !(f > 0 && f <= 10*365*24*3600) { // also refuses NaN
		if strings.Trim(s, "0123456789+-.eE \t") != "" {
			return 0, fmt.Errorf("not a number of seconds (a string of %d bytes)", len(s))
		}
		return 0, fmt.Errorf("not a positive number of seconds: %s", echo(s, secrets...))
	}
	return time.Duration(f * float64(time.Second)), nil
}

// refusal builds the RetrieveError for a non-2xx answer, taking the
// provider's message from the usual fields.
func refusal(resp *http.Response, raw []byte, secrets ...string) *RetrieveError {
	e := &RetrieveError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	var doc map[string]any
	if json.Unmarshal(raw, &doc) == nil {
		if code, ok := doc["error"].(string); ok {
			e.Code = code
		}
		for _, k := range []string{"detail", "error_description", "message", "description", "Description"} {
			if msg, ok := doc[k].(string); ok && msg != "" {
				e.Description = msg
				break
			}
		}
	} else {
		e.Description = string(raw)
	}
	e.Code = cleanDescription(e.Code, secrets...)
	e.Description = cleanDescription(e.Description, secrets...)
	return e
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
		return time.Duration(min(n, uint64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

var errNoValue = errors.New("tokens: provider returned an empty token")
