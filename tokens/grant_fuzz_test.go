package tokens

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzTokenExchangeAnswer feeds token endpoint answers (status,
// Content-Type, body) to a token exchange source, end to end through its
// HTTP client: it must not panic; a token it returns came from a 2xx answer,
// is usable in a header (not blank) and expires in the future, unless the
// answer gave no usable expires_in and the token is itself a JWT whose exp
// has passed (the Cache refuses such a token); an error is a tokens: error
// that never shows the subject token or its signature. In the body,
// {subject} and {sig} stand for the subject token and its signature, so
// that answers may echo them as careless servers do.
func FuzzTokenExchangeAnswer(f *testing.F) {
	const ok = `{"access_token":"opaque-exchanged","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":3600}`
	expiredJWT := signJWT(jwt.MapClaims{"sub": "x", "exp": tezpayEpoch.Add(-time.Hour).Unix()})
	for _, s := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, "application/json", ok},
		{200, "application/json;charset=UTF-8", `{"access_token":"id-token","issued_token_type":"urn:ietf:params:oauth:token-type:id_token","token_type":"N_A","expires_in":300}`},
		{200, "application/json", `{"access_token":"opaque","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"}`},
		{200, "application/json", `{"access_token":"opaque","token_type":"Bearer","expires_in":99999999999}`},
		{200, "application/json", `{"access_token":"opaque","token_type":"Bearer","expires_in":1e300}`},
		{200, "application/json", `{"access_token":"opaque","token_type":"Bearer","expires_in":"3600"}`},
		{200, "application/json", `{"access_token":"opaque","token_type":"Bearer","expires_in":-1}`},
		{200, "application/json", `{"access_token":"opaque","token_type":"Bearer","expires_in":"{subject}"}`},
		{200, "application/json", `{"access_token":"` + expiredJWT + `","token_type":"Bearer"}`},
		{200, "application/json", `{"access_token":"` + expiredJWT + `","token_type":"Bearer","expires_in":60}`},
		{200, "application/json", `{"access_token":" ","token_type":"Bearer","expires_in":60}`},
		{200, "application/json", `{"error":"invalid_request","error_description":"subject_token {subject} refused"}`},
		{400, "application/json", `{"error":"invalid_request","error_description":"subject_token_type missing"}`},
		{400, "application/json", `{"error":"invalid_target","error_description":"audience \"vault\" not served"}`},
		{400, "application/json", `{"error":"invalid_grant","error_description":"bad subject token: {subject}"}`},
		{401, "application/json", `{"error":"invalid_client","error_description":"signature {sig} invalid"}`},
		{401, "application/x-www-form-urlencoded", `error=invalid_request&error_description=subject_token%3D{subject}`},
		{500, "text/plain", `cannot verify {sig}`},
		{503, "text/html", `<html>{subject}</html>`},
		{200, "text/plain", `access_token={subject}&expires_in=abc`},
		{200, "application/json", `{"access_token":`},
		{200, "application/json", "\x00\xff garbage"},
		{204, "", ``},
		{302, "", ``},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}

	subject := signJWT(jwt.MapClaims{"iss": saIssuer, "sub": saSubject, "exp": tezpayEpoch.Add(time.Hour).Unix()})
	sig := subject[strings.LastIndexByte(subject, '.')+1:]
	path := filepath.Join(f.TempDir(), "token")
	if err := os.WriteFile(path, []byte(subject+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 999 {
			status = 100 + (status%900+900)%900
		}
		body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("{subject}"), []byte(subject)), []byte("{sig}"), []byte(sig))
		bubble(t, func(t *testing.T) {
			rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Body != nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
				h := http.Header{}
				if contentType != "" {
					h.Set("Content-Type", contentType)
				}
				return &http.Response{StatusCode: status, Header: h, Request: r,
					Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}, nil
			})
			src := NewOAuth2Source(OAuth2Config{
				TokenURL: "https://sts.test/token", ClientID: Literal("checkout"),
				Grant:  &TokenExchange{SubjectToken: NewFileSource(FileConfig{Path: path})},
				Client: &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			})
			now := time.Now()
			tok, err := src.Token(context.Background())
			if err != nil {
				if tok != nil {
					t.Errorf("Token() = %v with error %v, want nil", tok, err)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "tokens: ") {
					t.Errorf("Token() error = %q, want a tokens: error", msg)
				}
				if strings.Contains(msg, subject) || strings.Contains(msg, sig) {
					t.Errorf("Token() error = %q, which shows the subject token or its signature", msg)
				}
				var re *RetrieveError
				if errors.As(err, &re) && re.Status != status {
					t.Errorf("Token() refusal Status = %d, want %d", re.Status, status)
				}
				return
			}
			if status < 200 || status > 299 {
				t.Fatalf("Token() = a token from a %d answer %q", status, body)
			}
			if strings.TrimSpace(tok.Value) == "" {
				t.Errorf("Token().Value = %q from %q: blank", tok.Value, body)
			}
			_, expiresIn := oauth2Fields(contentType, body)
			_, badExpiresIn := seconds(expiresIn)
			if expiresIn != nil && badExpiresIn != nil {
				t.Fatalf("Token() = a token, with an expires_in it refuses (%v): body %q", badExpiresIn, body)
			}
			if !tok.Expiry.After(now) {
				if exp, isJWT := jwtExpiry(tok.Value); badExpiresIn == nil || !isJWT || exp.After(now) {
					t.Errorf("Token().Expiry = %v, not after now %v (body %q)", tok.Expiry, now, body)
				}
			}
		})
	})
}
