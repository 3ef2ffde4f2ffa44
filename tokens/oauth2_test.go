package tokens

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

const (
	oauthID     = "checkout-backend"
	oauthSecret = "s3cr3t-Kq8Zt2Vw"
	oauthOK     = `{"access_token":"opaque-access-token","token_type":"bearer","expires_in":3600}`
)

func newOAuth2TestSource(e *endpoint, c OAuth2Config) Source {
	c.TokenURL = e.base + "/oauth/token"
	c.ClientID, c.ClientSecret = Literal(oauthID), Literal(oauthSecret)
	c.Client = e.client()
	if c.AuthStyle == oauth2.AuthStyleAutoDetect {
		c.AuthStyle = oauth2.AuthStyleInParams
	}
	return NewOAuth2Source(c)
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func TestOAuth2SourceRequest(t *testing.T) {
	tests := []struct {
		name      string
		cfg       OAuth2Config
		wantForm  url.Values
		wantBasic string
	}{
		{
			name:     "credentials in params",
			cfg:      OAuth2Config{AuthStyle: oauth2.AuthStyleInParams},
			wantForm: url.Values{"grant_type": {"client_credentials"}, "client_id": {oauthID}, "client_secret": {oauthSecret}},
		},
		{
			name:      "credentials in header",
			cfg:       OAuth2Config{AuthStyle: oauth2.AuthStyleInHeader},
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantBasic: basic(oauthID, oauthSecret),
		},
		{
			name:      "scopes space-separated",
			cfg:       OAuth2Config{AuthStyle: oauth2.AuthStyleInHeader, Scopes: []string{"payments:write", "refunds"}},
			wantForm:  url.Values{"grant_type": {"client_credentials"}, "scope": {"payments:write refunds"}},
			wantBasic: basic(oauthID, oauthSecret),
		},
		{
			name:      "empty scopes omitted",
			cfg:       OAuth2Config{AuthStyle: oauth2.AuthStyleInHeader, Scopes: []string{}},
			wantForm:  url.Values{"grant_type": {"client_credentials"}},
			wantBasic: basic(oauthID, oauthSecret),
		},
		{
			name: "extra params",
			cfg: OAuth2Config{AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{"checkout"},
				Params: url.Values{"audience": {"https://api.example.com"}, "resource": {"urn:checkout"}}},
			wantForm: url.Values{"grant_type": {"client_credentials"}, "client_id": {oauthID}, "client_secret": {oauthSecret},
				"scope": {"checkout"}, "audience": {"https://api.example.com"}, "resource": {"urn:checkout"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, reply(200, oauthOK))
			tok, err := newOAuth2TestSource(e, tc.cfg).Token(context.Background())
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok.Value != "opaque-access-token" {
				t.Errorf("Token().Value = %q, want %q", tok.Value, "opaque-access-token")
			}
			reqs := e.seen()
			if len(reqs) != 1 {
				t.Fatalf("endpoint got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/oauth/token" {
				t.Errorf("request = %s %s, want POST /oauth/token", r.Method, r.Path)
			}
			if r.ContentType != "application/x-www-form-urlencoded" {
				t.Errorf("request Content-Type = %q, want application/x-www-form-urlencoded", r.ContentType)
			}
			if got := formOf(t, r.Body); !maps.EqualFunc(got, tc.wantForm, slices.Equal) {
				t.Errorf("request form = %v, want %v", got, tc.wantForm)
			}
			if r.Authorization != tc.wantBasic {
				t.Errorf("request Authorization = %q, want %q", r.Authorization, tc.wantBasic)
			}
		})
	}
}

// TestOAuth2SourceAutoDetect: with the zero AuthStyle, a provider that
// refuses Basic authentication is retried with the credentials in the body.
func TestOAuth2SourceAutoDetect(t *testing.T) {
	e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Header.Get("Authorization") != "" {
			reply(401, `{"error":"invalid_client"}`)(w, r, n)
			return
		}
		reply(200, oauthOK)(w, r, n)
	})
	src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret), Client: e.client()})
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	reqs := e.seen()
	if len(reqs) != 2 || reqs[0].Authorization == "" || formOf(t, reqs[1].Body).Get("client_secret") != oauthSecret {
		t.Errorf("requests = %+v, want Basic first, then client_secret in the body", reqs)
	}

	// Detected once, the style is kept: a renewal is one request, not a
	// refused Basic attempt and a retry each time.
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("second Token() error = %v", err)
	}
	if reqs := e.seen(); len(reqs) != 3 {
		t.Errorf("second fetch made %d requests, want 1 with the detected style (%d refused Basic attempts in all)", len(reqs)-2, countBasic(reqs))
	}
}

func countBasic(reqs []seen) int {
	n := 0
	for _, r := range reqs {
		if r.Authorization != "" {
			n++
		}
	}
	return n
}

func TestOAuth2SourceExpiry(t *testing.T) {
	jwtExp := tezpayEpoch.Add(3 * time.Hour)
	withExp := signJWT(jwt.MapClaims{"partner_id": "p1", "exp": jwtExp.Unix()})
	pastExp := signJWT(jwt.MapClaims{"partner_id": "p1", "exp": tezpayEpoch.Add(-time.Second).Unix()})
	tests := []struct {
		name       string
		body       string
		defaultTTL time.Duration
		wantLife   time.Duration
	}{
		{name: "expires_in", body: oauthOK, wantLife: time.Hour},
		{name: "JWT exp without expires_in", body: `{"access_token":"` + withExp + `","token_type":"bearer"}`, wantLife: 3 * time.Hour},
		{name: "JWT exp earlier than expires_in", body: `{"access_token":"` + withExp + `","token_type":"bearer","expires_in":43200}`, wantLife: 3 * time.Hour},
		{name: "JWT exp already past (clocks disagree), expires_in ahead", body: `{"access_token":"` + pastExp + `","token_type":"bearer","expires_in":43200}`, wantLife: 12 * time.Hour},
		{name: "opaque, configured DefaultTTL", body: `{"access_token":"opaque","token_type":"bearer"}`, defaultTTL: 5 * time.Minute, wantLife: 5 * time.Minute},
		{name: "opaque, default DefaultTTL", body: `{"access_token":"opaque","token_type":"bearer"}`, wantLife: 15 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(200, tc.body))
				tok, err := newOAuth2TestSource(e, OAuth2Config{DefaultTTL: tc.defaultTTL}).Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if got := tok.Expiry.Sub(tezpayEpoch); got != tc.wantLife {
					t.Errorf("Token().Expiry = now+%v, want now+%v", got, tc.wantLife)
				}
			})
		})
	}

	// On the real clock, outside a bubble, expires_in is used too, and wins
	// over the JWT's later exp.
	laterExp := signJWT(jwt.MapClaims{"exp": time.Now().Add(24 * time.Hour).Unix()})
	e := newEndpoint(t, reply(200, `{"access_token":"`+laterExp+`","token_type":"bearer","expires_in":600}`))
	before := time.Now()
	tok, err := newOAuth2TestSource(e, OAuth2Config{}).Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	if tok.Expiry.Before(before.Add(10*time.Minute)) || tok.Expiry.After(time.Now().Add(10*time.Minute)) {
		t.Errorf("Token().Expiry = %v, want 10 minutes from now", tok.Expiry)
	}
}

func TestOAuth2SourceRefusal(t *testing.T) {
	tests := []struct {
		name   string
		answer answer
		want   RetrieveError
	}{
		{"invalid_client", reply(401, `{"error":"invalid_client","error_description":"Client authentication failed"}`),
			RetrieveError{Status: 401, Code: "invalid_client", Description: "Client authentication failed"}},
		{"code only", reply(400, `{"error":"invalid_scope"}`),
			RetrieveError{Status: 400, Code: "invalid_scope"}},
		{"error in a 200", reply(200, `{"error":"invalid_request","error_description":"grant_type missing"}`),
			RetrieveError{Status: 200, Code: "invalid_request", Description: "grant_type missing"}},
		{"Retry-After", reply(429, `{"error":"slow_down"}`, "Retry-After", "12"),
			RetrieveError{Status: 429, Code: "slow_down", RetryAfter: 12 * time.Second}},
		{"plain text", reply(503, "upstream down\n", "Content-Type", "text/plain"),
			RetrieveError{Status: 503, Description: "upstream down"}},
		{"HTML", reply(502, "<html>Bad Gateway</html>", "Content-Type", "text/html"),
			RetrieveError{Status: 502, Description: "<html>Bad Gateway</html>"}},
		{"secret echoed in description", reply(401, `{"error":"invalid_client","error_description":"secret `+oauthSecret+` is wrong"}`),
			RetrieveError{Status: 401, Code: "invalid_client", Description: "secret [redacted] is wrong"}},
		{"secret echoed in body", reply(500, "cannot check "+oauthSecret, "Content-Type", "text/html"),
			RetrieveError{Status: 500, Description: "cannot check [redacted]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, tc.answer)
			tok, err := newOAuth2TestSource(e, OAuth2Config{}).Token(context.Background())
			var re *RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("Token() = %v, %v; want a *RetrieveError", tok, err)
			}
			if *re != tc.want {
				t.Errorf("Token() error = %+v, want %+v", *re, tc.want)
			}
			if strings.Contains(err.Error(), oauthSecret) {
				t.Errorf("Token() error = %q, which contains the client secret", err)
			}
		})
	}
}

func TestOAuth2SourceBadAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"no access_token", `{"token_type":"bearer","expires_in":3600}`},
		{"empty access_token", `{"access_token":""}`},
		{"malformed JSON", `{"access_token":`},
		{"empty body", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEndpoint(t, reply(200, tc.body))
			tok, err := newOAuth2TestSource(e, OAuth2Config{}).Token(context.Background())
			var re *RetrieveError
			if err == nil || errors.As(err, &re) {
				t.Fatalf("Token() = %v, %v; want an error that is not a refusal", tok, err)
			}
			if !strings.HasPrefix(err.Error(), "tokens: token request: ") {
				t.Errorf("Token() error = %q, want it to start with %q", err, "tokens: token request: ")
			}
		})
	}
}

func TestOAuth2SourceHangingEndpoint(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, nil)
		e.setAnswer(e.hang())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		tok, err := newOAuth2TestSource(e, OAuth2Config{}).Token(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Token() = %v, %v; want an error wrapping context.DeadlineExceeded", tok, err)
		}
	})
}

func TestOAuth2SourceSecretFile(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "client_secret")
	writeFile(t, secretFile, "old-secret\n")
	e := newEndpoint(t, reply(200, oauthOK))
	src := NewOAuth2Source(OAuth2Config{
		TokenURL: e.base, ClientID: Literal(oauthID), ClientSecret: File(secretFile),
		AuthStyle: oauth2.AuthStyleInParams, Client: e.client(),
	})
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("first Token() error = %v", err)
	}
	writeFile(t, secretFile, "new-secret")
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatalf("second Token() error = %v", err)
	}
	var got []string
	for _, r := range e.seen() {
		got = append(got, formOf(t, r.Body).Get("client_secret"))
	}
	if want := []string{"old-secret", "new-secret"}; !slices.Equal(got, want) {
		t.Errorf("client_secret sent = %q, want %q", got, want)
	}

	src = NewOAuth2Source(OAuth2Config{TokenURL: e.base, ClientID: File(filepath.Join(t.TempDir(), "missing")), Client: e.client()})
	if tok, err := src.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "read secret file") {
		t.Errorf("Token() with no client id file = %v, %v; want a read secret file error", tok, err)
	}
	if n := e.count(); n != 2 {
		t.Errorf("endpoint got %d requests, want 2", n)
	}
}

func TestOAuth2SourceDefaultClient(t *testing.T) {
	e := newTCPEndpoint(t, reply(200, oauthOK))
	src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret)})
	tok, err := src.Token(context.Background())
	if err != nil || tok.Value != "opaque-access-token" {
		t.Fatalf("Token() = %v, %v; want the token with http.DefaultClient", tok, err)
	}
}
