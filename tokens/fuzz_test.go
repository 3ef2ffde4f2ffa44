package tokens

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzParseJSONToken feeds token endpoint answers and field paths to the
// JSON exchange's parser (parseJSONToken, and parseJSONFields under it when
// an absolute expiry field is set): it must not panic, and a token it
// returns must be usable.
func FuzzParseJSONToken(f *testing.F) {
	f.Add([]byte(`{"access_token":"`+tezpayExampleToken+`","token_type":"bearer","expires_in":43200,"client_id":"`+tezpayID+`"}`), "access_token", "expires_in", "")
	f.Add([]byte(`{"access_token":"`+tezpayExampleToken+`"}`), "access_token", "expires_in", "")
	f.Add([]byte(`{"status":"ok","data":{"token":"abc","ttl":"600"}}`), "data.token", "data.ttl", "")
	f.Add([]byte(`{"access_token":"opaque","expires_in":" 12.5 "}`), "access_token", "expires_in", "")
	f.Add([]byte(`{"access_token":"x","expires_in":1e400}`), "access_token", "expires_in", "")
	f.Add([]byte(`{"access_token":"x","expires_in":-1}`), "access_token", "expires_in", "")
	f.Add([]byte(`{"juspay":{"client_auth_token":"tkn","client_auth_token_expiry":"2025-09-17T21:00:44.318Z"}}`), "juspay.client_auth_token", "expires_in", "juspay.client_auth_token_expiry")
	f.Add([]byte(`{"t":"x","at":"2025-09-18T02:30:44+05:30","in":"x"}`), "t", "in", "at")
	f.Add([]byte(`{"":{"":"x"}}`), ".", "", "")
	f.Add([]byte(`["access_token"]`), "access_token", "expires_in", "")
	f.Add([]byte(`{"detail":"Invalid credentials"}`), "access_token", "expires_in", "")
	f.Add([]byte(``), "", "", "")
	now := tezpayEpoch
	f.Fuzz(func(t *testing.T, raw []byte, tokenField, expiresInField, expiresAtField string) {
		var tok *Token
		var err error
		if expiresAtField == "" {
			tok, err = parseJSONToken(raw, tokenField, expiresInField, now, time.Minute)
		} else {
			tok, err = parseJSONFields(raw, jsonFields{tokenField, expiresInField, expiresAtField}, now, time.Minute)
		}
		if err != nil {
			if tok != nil {
				t.Errorf("parseJSONToken() = %v with error %v, want nil", tok, err)
			}
			if !strings.HasPrefix(err.Error(), "tokens: ") {
				t.Errorf("parseJSONToken() error = %q, want a tokens: error", err)
			}
			// The answer is quoted cut short: only the configured paths
			// (quoted, so up to 6 bytes a byte) may make an error long.
			if n, limit := len(err.Error()), maxErrorLen+6*(len(tokenField)+len(expiresInField)+len(expiresAtField)); n > limit {
				t.Errorf("parseJSONToken() error is %d bytes, want at most %d: %.200q", n, limit, err)
			}
			return
		}
		if tok == nil || strings.TrimSpace(tok.Value) == "" {
			t.Fatalf("parseJSONToken() = %#v, nil; want a token with a value", tok)
		}
		// The only zero Expiry possible is a JWT whose exp is year 1, which
		// the cache refuses as expired.
		if exp, ok := jwtExpiry(tok.Value); tok.Expiry.IsZero() && !(ok && exp.IsZero()) {
			t.Errorf("parseJSONToken().Expiry is zero")
		}
		var doc any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("parseJSONToken() accepted %q, which does not decode: %v", raw, err)
		}
		if v, _ := lookup(doc, tokenField).(string); v != tok.Value {
			t.Errorf("parseJSONToken().Value = %q, want %q at %q", tok.Value, v, tokenField)
		}
		at, _ := lookup(doc, expiresAtField).(string)
		switch want, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(at)); {
		case expiresAtField != "" && perr == nil && !want.IsZero():
			if !tok.Expiry.Equal(want) {
				t.Errorf("parseJSONFields().Expiry = %v, want %v from %q", tok.Expiry, want, expiresAtField)
			}
		case lookup(doc, expiresInField) != nil:
			if tok.Expiry.Before(now) || tok.Expiry.After(now.Add(10*365*24*time.Hour)) {
				t.Errorf("parseJSONToken().Expiry = %v from %q, want between now and 10 years on", tok.Expiry, expiresInField)
			}
		}
	})
}

// FuzzJWTExpiry feeds token values, JWT or not, to the unverified exp reader.
func FuzzJWTExpiry(f *testing.F) {
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": 1758228044}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(tezpayExampleToken)
	f.Add(none)
	f.Add(signJWT(jwt.MapClaims{"exp": 1758228044.5, "aud": []string{"a"}}))
	f.Add(signJWT(jwt.MapClaims{"exp": "tomorrow"}))
	f.Add(signJWT(jwt.MapClaims{"sub": "merchant"}))
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.")
	f.Add("a.b.c")
	f.Add("opaque-access-token")
	f.Add("")
	now := tezpayEpoch
	f.Fuzz(func(t *testing.T, value string) {
		exp, ok := jwtExpiry(value)
		if !ok {
			if !exp.IsZero() {
				t.Errorf("jwtExpiry() = %v, false; want the zero time", exp)
			}
			return
		}
		if strings.Count(value, ".") != 2 {
			t.Errorf("jwtExpiry(%q) = %v, true for a value that is not three segments", value, exp)
		}
		if again, ok := jwtExpiry(value); !ok || !again.Equal(exp) {
			t.Errorf("jwtExpiry() = %v then %v, want the same", exp, again)
		}
		if got := expiryOf(value, time.Time{}, now, time.Minute); !got.Equal(exp) {
			t.Errorf("expiryOf() = %v, want the JWT's exp %v", got, exp)
		}
	})
}

// redactable reports whether a secret can be told apart from the redaction
// marks: a secret inside "[redacted]" (say "act"), or one made with its
// brackets or with the "…" of a cut, may appear in any output.
func redactable(secret string) bool {
	return secret != "" && utf8.ValidString(secret) && !strings.ContainsAny(secret, "[]…") && !strings.Contains("[redacted]", secret)
}

// checkDescription checks a cleaned provider message.
func checkDescription(t *testing.T, field, got, secret string) {
	t.Helper()
	if !utf8.ValidString(got) {
		t.Errorf("%s = %q, not valid UTF-8", field, got)
	}
	if len(got) > maxDescription+len("…") {
		t.Errorf("%s is %d bytes, want at most %d", field, len(got), maxDescription+len("…"))
	}
	if redactable(secret) && strings.Contains(got, secret) {
		t.Errorf("%s = %q, which contains the secret %q", field, got, secret)
	}
}

// FuzzRefusal feeds a token endpoint's refusals (status, body, Retry-After)
// and the secret that was sent to the builder of *RetrieveError.
func FuzzRefusal(f *testing.F) {
	f.Add(401, []byte(`{"detail":"Invalid credentials"}`), "", tezpaySecret)
	f.Add(401, []byte(`{"detail":"Token has expired"}`), "", tezpaySecret)
	f.Add(400, []byte(`{"error":"invalid_client","error_description":"bad secret s3cr3t"}`), "", "s3cr3t")
	f.Add(403, []byte(`{"message":"Access denied","detail":7}`), "", "pw")
	f.Add(429, []byte(`{"error":{"code":429}}`), "120", "pw")
	f.Add(503, []byte("<html>Service Unavailable: s3cr3t</html>"), "Mon, 02 Jan 2006 15:04:05 GMT", "s3cr3t")
	f.Add(500, []byte(strings.Repeat("é", 200)), "-1", "é")
	f.Add(0, []byte(nil), "", "")
	f.Fuzz(func(t *testing.T, status int, body []byte, retryAfterHeader, secret string) {
		resp := &http.Response{StatusCode: status, Header: http.Header{}}
		if retryAfterHeader != "" {
			resp.Header.Set("Retry-After", retryAfterHeader)
		}
		e := refusal(resp, body, secret)
		if e.Status != status {
			t.Errorf("refusal().Status = %d, want %d", e.Status, status)
		}
		if e.RetryAfter < 0 {
			t.Errorf("refusal().RetryAfter = %v from %q, want no negative wait", e.RetryAfter, retryAfterHeader)
		}
		checkDescription(t, "refusal().Code", e.Code, secret)
		checkDescription(t, "refusal().Description", e.Description, secret)
		if !strings.HasPrefix(e.Error(), "tokens: provider refused: status ") {
			t.Errorf("refusal().Error() = %q", e.Error())
		}
	})
}

// echoForms are the forms in which a provider may echo a secret back: as it
// is, JSON-escaped (with and without HTML escaping) and URL-encoded.
func echoForms(secret string) []string {
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	for _, escapeHTML := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		enc.Encode(secret)
		quoted := strings.TrimSuffix(b.String(), "\n")
		forms = append(forms, quoted[1:len(quoted)-1])
	}
	return forms
}

// FuzzCleanDescription: whatever a provider says, what is kept is short,
// valid UTF-8 and free of the secret, and a short message with no echo of the
// secret is kept whole.
func FuzzCleanDescription(f *testing.F) {
	f.Add("Invalid credentials", "")
	f.Add("client_secret "+tezpaySecret+" is not valid", tezpaySecret)
	f.Add("  Token has expired\n", "expired")
	f.Add(strings.Repeat("é", 200), "é")
	f.Add(strings.Repeat("a", maxDescription-1)+"€€", "b")
	f.Add("bad \xff byte", "bad")
	f.Add(`{"client_secret":"s3\"cr\u003c3t"}`, `s3"cr<3t`)
	f.Add("client_secret=s3+cr%26t", "s3 cr&t")
	f.Fuzz(func(t *testing.T, s, secret string) {
		got := cleanDescription(s, secret)
		checkDescription(t, "cleanDescription()", got, secret)
		if len(got) > maxDescription && !strings.HasSuffix(got, "…") {
			t.Errorf("cleanDescription() = %q: cut without a mark", got)
		}
		trimmed := strings.TrimSpace(s)
		echoed := slices.ContainsFunc(echoForms(secret), func(form string) bool { return form != "" && strings.Contains(s, form) })
		if !echoed && utf8.ValidString(s) && utf8.ValidString(secret) && len(trimmed) <= maxDescription && got != trimmed {
			t.Errorf("cleanDescription(%q, %q) = %q, want %q", s, secret, got, trimmed)
		}
	})
}
