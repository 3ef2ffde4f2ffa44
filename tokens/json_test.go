package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJSONSourceTezPay(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, tezpay(tezpaySecret))
		tok, err := newTezPaySource(e).Token(context.Background())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if exp, ok := jwtExpiry(tok.Value); !ok || !exp.Equal(tezpayEpoch.Add(12*time.Hour)) {
			t.Errorf("Token().Value is not the JWT TezPay issued: exp = %v, %v", exp, ok)
		}
		if want := tezpayEpoch.Add(43200 * time.Second); !tok.Expiry.Equal(want) {
			t.Errorf("Token().Expiry = %v, want %v", tok.Expiry, want)
		}

		reqs := e.seen()
		if len(reqs) != 1 {
			t.Fatalf("endpoint got %d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.Method != http.MethodPost || r.Path != "/api/v1/tezpay/authenticate" {
			t.Errorf("request = %s %s, want POST /api/v1/tezpay/authenticate", r.Method, r.Path)
		}
		if r.ContentType != "application/json" {
			t.Errorf("request Content-Type = %q, want %q", r.ContentType, "application/json")
		}
		if r.Accept != "application/json" {
			t.Errorf("request Accept = %q, want %q", r.Accept, "application/json")
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("request body %q is not JSON: %v", r.Body, err)
		}
		want := map[string]any{"client_id": tezpayID, "client_secret": tezpaySecret}
		if len(body) != len(want) || body["client_id"] != want["client_id"] || body["client_secret"] != want["client_secret"] {
			t.Errorf("request body = %v, want %v", body, want)
		}
	})
}

func TestJSONSourceExpiry(t *testing.T) {
	jwtExp := tezpayEpoch.Add(3 * time.Hour)
	withExp := signJWT(jwt.MapClaims{"sub": "merchant", "exp": jwtExp.Unix()})
	withoutExp := signJWT(jwt.MapClaims{"sub": "merchant"})
	pastExp := signJWT(jwt.MapClaims{"sub": "merchant", "exp": tezpayEpoch.Add(-time.Second).Unix()})
	tests := []struct {
		name                  string
		tokenField, expiresIn string
		defaultTTL            time.Duration
		body                  string
		wantValue             string
		wantLife              time.Duration // Expiry - now
	}{
		{name: "expires_in number", body: `{"access_token":"opaque","expires_in":43200}`, wantValue: "opaque", wantLife: 12 * time.Hour},
		{name: "expires_in numeric string", body: `{"access_token":"opaque","expires_in":"3600"}`, wantValue: "opaque", wantLife: time.Hour},
		{name: "expires_in fraction", body: `{"access_token":"opaque","expires_in":1.5}`, wantValue: "opaque", wantLife: 1500 * time.Millisecond},
		{name: "dotted paths", tokenField: "data.token", expiresIn: "data.ttl", body: `{"status":"ok","data":{"token":"nested","ttl":"600"}}`, wantValue: "nested", wantLife: 10 * time.Minute},
		{name: "JWT exp without expires_in", body: `{"access_token":"` + withExp + `"}`, wantValue: withExp, wantLife: 3 * time.Hour},
		{name: "expires_in wins over a later JWT exp", body: `{"access_token":"` + withExp + `","expires_in":60}`, wantValue: withExp, wantLife: time.Minute},
		{name: "JWT exp wins over a later expires_in", body: `{"access_token":"` + withExp + `","expires_in":43200}`, wantValue: withExp, wantLife: 3 * time.Hour},
		{name: "JWT exp already past (clocks disagree): expires_in", body: `{"access_token":"` + pastExp + `","expires_in":43200}`, wantValue: pastExp, wantLife: 12 * time.Hour},
		{name: "TezPay's sample: expires_in 43200, exp 24h after iat", body: `{"access_token":"` + tezpayExampleToken + `","expires_in":43200}`, wantValue: tezpayExampleToken, wantLife: 12 * time.Hour},
		{name: "expires_in null", body: `{"access_token":"` + withExp + `","expires_in":null}`, wantValue: withExp, wantLife: 3 * time.Hour},
		{name: "opaque token, configured DefaultTTL", defaultTTL: 5 * time.Minute, body: `{"access_token":"opaque"}`, wantValue: "opaque", wantLife: 5 * time.Minute},
		{name: "opaque token, default DefaultTTL", body: `{"access_token":"opaque"}`, wantValue: "opaque", wantLife: 15 * time.Minute},
		{name: "JWT without exp", body: `{"access_token":"` + withoutExp + `"}`, wantValue: withoutExp, wantLife: DefaultTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(http.StatusOK, tc.body))
				src := NewJSONSource(JSONConfig{
					URL: e.url(), ClientID: Literal(tezpayID), ClientSecret: Literal(tezpaySecret),
					TokenField: tc.tokenField, ExpiresInField: tc.expiresIn, DefaultTTL: tc.defaultTTL,
					Client: e.client(),
				})
				tok, err := src.Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if tok.Value != tc.wantValue {
					t.Errorf("Token().Value = %q, want %q", tok.Value, tc.wantValue)
				}
				if got := tok.Expiry.Sub(tezpayEpoch); got != tc.wantLife {
					t.Errorf("Token().Expiry = now+%v, want now+%v", got, tc.wantLife)
				}
			})
		})
	}
}

// TestJSONSourceExpiresAt: an absolute expiry in RFC 3339, as Juspay's
// juspay.client_auth_token_expiry, wins over expires_in.
func TestJSONSourceExpiresAt(t *testing.T) {
	at := time.Date(2025, 9, 17, 21, 0, 44, 318e6, time.UTC) // tezpayEpoch + 1h00m00.318s
	tests := []struct {
		name    string
		body    string
		want    time.Time
		wantErr string
	}{
		{name: "Juspay", body: `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"2025-09-17T21:00:44.318Z"}}`, want: at},
		{name: "wins over expires_in", body: `{"expires_in":60,"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"2025-09-17T21:00:44.318Z"}}`, want: at},
		{name: "with an offset", body: `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"2025-09-18T02:30:44.318+05:30"}}`, want: at},
		{name: "absent: expires_in", body: `{"expires_in":600,"juspay":{"client_auth_token":"tkn_1"}}`, want: tezpayEpoch.Add(10 * time.Minute)},
		{name: "absent: DefaultTTL", body: `{"juspay":{"client_auth_token":"tkn_1"}}`, want: tezpayEpoch.Add(DefaultTTL)},
		{name: "not RFC 3339", body: `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":"17/09/2025 21:00"}}`, wantErr: `"juspay.client_auth_token_expiry": not an RFC 3339 time`},
		{name: "a number", body: `{"juspay":{"client_auth_token":"tkn_1","client_auth_token_expiry":1758142844}}`, wantErr: `"juspay.client_auth_token_expiry": not an RFC 3339 time`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(http.StatusOK, tc.body))
				src := NewJSONSource(JSONConfig{
					URL: e.url(), TokenField: "juspay.client_auth_token", ExpiresAtField: "juspay.client_auth_token_expiry",
					Client: e.client(),
				})
				tok, err := src.Token(context.Background())
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("Token() = %v, %v; want an error containing %q", tok, err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if tok.Value != "tkn_1" || !tok.Expiry.Equal(tc.want) {
					t.Errorf("Token() = %q expiring %v, want %q expiring %v", tok.Value, tok.Expiry, "tkn_1", tc.want)
				}
			})
		})
	}
}

func TestJSONSourceBadAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"malformed JSON", 200, `{"access_token":`, "malformed token response"},
		{"empty 200", 200, ``, "malformed token response"},
		{"204 no content", 204, ``, "malformed token response"},
		{"HTML page", 200, `<html>maintenance</html>`, "malformed token response"},
		{"no token", 200, `{"token_type":"bearer","expires_in":43200}`, `no "access_token"`},
		{"token elsewhere", 200, `{"data":{"access_token":"x"}}`, `no "access_token"`},
		{"token not a string", 200, `{"access_token":12345}`, `no "access_token"`},
		{"blank token", 200, `{"access_token":"  "}`, `no "access_token"`},
		{"JSON array", 200, `["access_token"]`, `no "access_token"`},
		{"JSON null", 200, `null`, `no "access_token"`},
		{"expires_in zero", 200, `{"access_token":"x","expires_in":0}`, `"expires_in"`},
		{"expires_in negative", 200, `{"access_token":"x","expires_in":-60}`, `"expires_in"`},
		{"expires_in words", 200, `{"access_token":"x","expires_in":"12 hours"}`, `"expires_in"`},
		{"expires_in bool", 200, `{"access_token":"x","expires_in":true}`, `"expires_in"`},
		{"expires_in over ten years", 200, `{"access_token":"x","expires_in":1e10}`, `"expires_in"`},
		{"expires_in infinite", 200, `{"access_token":"x","expires_in":"Inf"}`, `"expires_in"`},
		// NaN parses as a float and passes both "f <= 0" and "f > 10y".
		{"expires_in NaN", 200, `{"access_token":"x","expires_in":"NaN"}`, `"expires_in"`},
		{"over 1 MiB", 200, `{"access_token":"x","pad":"` + strings.Repeat("x", maxRead) + `"}`, "larger than 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(tc.status, tc.body))
				tok, err := newTezPaySource(e).Token(context.Background())
				checkMalformed(t, tok, err, tc.wantErr)
			})
		})
	}
}

func TestJSONSourceRefusal(t *testing.T) {
	long := strings.Repeat("é", 300) // 600 bytes of two-byte runes
	tests := []struct {
		name   string
		answer answer
		want   RetrieveError
	}{
		{"TezPay invalid credentials", reply(401, `{"detail":"Invalid credentials"}`),
			RetrieveError{Status: 401, Description: "Invalid credentials"}},
		{"TezPay service error", reply(500, `{"detail":"Authentication service error"}`),
			RetrieveError{Status: 500, Description: "Authentication service error"}},
		{"OAuth2 error", reply(400, `{"error":"invalid_client","error_description":"Client authentication failed"}`),
			RetrieveError{Status: 400, Code: "invalid_client", Description: "Client authentication failed"}},
		{"message field", reply(403, `{"message":"Access denied"}`),
			RetrieveError{Status: 403, Description: "Access denied"}},
		{"detail wins over message", reply(403, `{"message":"second","detail":"first"}`),
			RetrieveError{Status: 403, Description: "first"}},
		{"plain text body", reply(502, "  Bad Gateway\n", "Content-Type", "text/plain"),
			RetrieveError{Status: 502, Description: "Bad Gateway"}},
		{"no body", reply(503, ""), RetrieveError{Status: 503}},
		{"Retry-After seconds", reply(429, `{"detail":"slow down"}`, "Retry-After", "30"),
			RetrieveError{Status: 429, Description: "slow down", RetryAfter: 30 * time.Second}},
		{"Retry-After date", reply(503, `{"detail":"maintenance"}`, "Retry-After", time.Now().Add(2*time.Hour).UTC().Format(http.TimeFormat)),
			RetrieveError{Status: 503, Description: "maintenance", RetryAfter: 2 * time.Hour}},
		{"Retry-After junk", reply(503, `{}`, "Retry-After", "soon"), RetrieveError{Status: 503}},
		{"secret echoed in detail", reply(401, `{"detail":"bad client_secret `+tezpaySecret+` for `+tezpayID+`"}`),
			RetrieveError{Status: 401, Description: "bad client_secret [redacted] for " + tezpayID}},
		{"secret echoed in code", reply(401, `{"error":"`+tezpaySecret+`"}`),
			RetrieveError{Status: 401, Code: "[redacted]"}},
		{"secret echoed in plain text", reply(401, "no such secret: "+tezpaySecret, "Content-Type", "text/plain"),
			RetrieveError{Status: 401, Description: "no such secret: [redacted]"}},
		{"long message", reply(400, `{"detail":"`+long+`"}`),
			RetrieveError{Status: 400, Description: long[:maxDescription] + "…"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			tok, err := newTezPaySource(e).Token(context.Background())
			var re *RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("Token() = %v, %v; want a *RetrieveError", tok, err)
			}
			if re.Status != tc.want.Status || re.Code != tc.want.Code || re.Description != tc.want.Description {
				t.Errorf("Token() error = {Status:%d Code:%q Description:%q}, want {Status:%d Code:%q Description:%q}",
					re.Status, re.Code, re.Description, tc.want.Status, tc.want.Code, tc.want.Description)
			}
			if d := re.RetryAfter - tc.want.RetryAfter; d < -2*time.Second || d > 0 {
				t.Errorf("Token() error RetryAfter = %v, want %v", re.RetryAfter, tc.want.RetryAfter)
			}
			if strings.Contains(err.Error(), tezpaySecret) {
				t.Errorf("Token() error = %q, which contains the client secret", err)
			}
		})
	}
}

func TestJSONSourceHangingEndpoint(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, nil)
		e.setAnswer(e.hang())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		tok, err := newTezPaySource(e).Token(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Token() = %v, %v; want an error wrapping context.DeadlineExceeded", tok, err)
		}
		if elapsed := time.Since(start); elapsed != 100*time.Millisecond {
			t.Errorf("Token() returned after %v, want 100ms", elapsed)
		}
	})
}

func TestJSONSourceNetworkError(t *testing.T) {
	e := newEndpoint(t, dropConnection)
	tok, err := newTezPaySource(e).Token(context.Background())
	var re *RetrieveError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("Token() = %v, %v; want a network error, not a refusal", tok, err)
	}
	if !strings.HasPrefix(err.Error(), "tokens: token request: ") {
		t.Errorf("Token() error = %q, want it to start with %q", err, "tokens: token request: ")
	}

	src := NewJSONSource(JSONConfig{URL: "http://example.invalid\x7f/"})
	if _, err := src.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "build request") {
		t.Errorf("Token() with a bad URL: error = %v, want a build request error", err)
	}
}

// TestJSONSourceSecretFile rotates the secret file between two fetches: the
// second request must carry the new secret, with no restart.
func TestJSONSourceSecretFile(t *testing.T) {
	dir := t.TempDir()
	idFile, secretFile := filepath.Join(dir, "client_id"), filepath.Join(dir, "client_secret")
	writeFile(t, idFile, tezpayID+"\n")
	writeFile(t, secretFile, "  old-secret\n")

	e := newEndpoint(t, reply(200, `{"access_token":"tok","expires_in":60}`))
	src := NewJSONSource(JSONConfig{URL: e.url(), ClientID: File(idFile), ClientSecret: File(secretFile), Client: e.client()})
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("first Token() error = %v", err)
	}
	writeFile(t, secretFile, "new-secret\n")
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("second Token() error = %v", err)
	}
	var got []string
	for _, r := range e.seen() {
		var body struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("request body %q: %v", r.Body, err)
		}
		if body.ClientID != tezpayID {
			t.Errorf("request client_id = %q, want %q", body.ClientID, tezpayID)
		}
		got = append(got, body.ClientSecret)
	}
	if want := []string{"old-secret", "new-secret"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("client_secret sent = %q, want %q", got, want)
	}

	if err := os.Remove(secretFile); err != nil {
		t.Fatal(err)
	}
	if tok, err := src.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "read secret file") {
		t.Errorf("Token() with the secret file gone = %v, %v; want a read secret file error", tok, err)
	}
	if n := e.count(); n != 2 {
		t.Errorf("endpoint got %d requests, want 2 (none without a secret)", n)
	}
}

// TestJSONSourceDefaults: a nil Client means http.DefaultClient, and the
// token is dated by the system clock.
func TestJSONSourceDefaults(t *testing.T) {
	e := newTCPEndpoint(t, reply(200, `{"access_token":"tok","expires_in":60}`))
	before := time.Now()
	tok, err := NewJSONSource(JSONConfig{URL: e.url()}).Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	if tok.Expiry.Before(before.Add(time.Minute)) || tok.Expiry.After(time.Now().Add(time.Minute)) {
		t.Errorf("Token().Expiry = %v, want about a minute from now", tok.Expiry)
	}
	var body map[string]string
	if err := json.Unmarshal(e.seen()[0].Body, &body); err != nil || body["client_id"] != "" || body["client_secret"] != "" {
		t.Errorf("request body with zero Secrets = %v (%v), want empty client_id and client_secret", body, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// formOf decodes a form-encoded request body.
func formOf(t *testing.T, body []byte) url.Values {
	t.Helper()
	v, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("request body %q is not a form: %v", body, err)
	}
	return v
}
