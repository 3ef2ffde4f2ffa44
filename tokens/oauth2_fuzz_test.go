package tokens

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// roundTripFunc answers a client's requests in memory.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzOAuth2Response feeds token endpoint answers (status, Content-Type and
// body, as JSON or as a form) to the OAuth2 source: it must not panic; a
// token it returns is the answer's access_token, usable in a header (not
// blank) and dated by expires_in when that is a positive number of seconds;
// an error is a tokens: error that never shows the client secret, and a
// refusal carries the answer's status. testdata/fuzz/FuzzOAuth2Response
// holds the answers that found bugs.
func FuzzOAuth2Response(f *testing.F) {
	const id, secret = "merchant-7", "s3cr3t-Pa55"
	f.Add(200, "application/json", []byte(`{"access_token":"`+tezpayExampleToken+`","token_type":"Bearer","expires_in":3600}`))
	f.Add(200, "application/json; charset=utf-8", []byte(`{"access_token":"opaque","expires_in":"3600"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"opaque","expires_in":3600.5}`))
	f.Add(200, "application/json", []byte(`{"access_token":"opaque","expires_in":-5}`))
	f.Add(200, "application/json", []byte(`{"access_token":"opaque","expires_in":99999999999}`))
	f.Add(200, "application/json", []byte(`{"access_token":"opaque"}`))
	f.Add(200, "application/json", []byte(`{"access_token":""}`))
	f.Add(200, "application/json", []byte(`{"token_type":"Bearer"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"x","error":"invalid_client"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"x"`))
	f.Add(200, "application/json", []byte(``))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=opaque&token_type=bearer`))
	f.Add(200, "text/plain", []byte(`access_token=op%20aque&expires_in=abc`))
	f.Add(200, "text/plain", []byte(`access_token=%zz`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=a;b`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=opaque&expires_in=-5`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=opaque&expires_in=99999999999`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_client","error_description":"bad secret `+secret+`"}`))
	f.Add(401, "application/json", []byte(`{"error":"invalid_client","error_description":"Basic `+base64.StdEncoding.EncodeToString([]byte(id+":"+secret))+`"}`))
	f.Add(401, "application/x-www-form-urlencoded", []byte(`error=invalid_client&error_description=client_secret%3D`+secret))
	f.Add(429, "application/json", []byte(`{"error":"slow_down"}`))
	f.Add(503, "text/html", []byte(`<html>down for `+secret+`</html>`))
	f.Add(302, "", []byte(nil))
	f.Add(204, "", []byte(nil))

	now := tezpayEpoch
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		bubble(t, func(t *testing.T) { // the source dates the token at tezpayEpoch
			if status < 100 || status > 999 {
				status = 100 + (status%900+900)%900
			}
			rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Body != nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
				h := http.Header{}
				if contentType != "" {
					h.Set("Content-Type", contentType)
				}
				return &http.Response{
					StatusCode: status, Header: h, Request: r,
					Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
				}, nil
			})
			src := NewOAuth2Source(OAuth2Config{
				TokenURL: "https://idp.test/token", ClientID: Literal(id), ClientSecret: Literal(secret),
				DefaultTTL: time.Minute,
				Client:     &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			})
			tok, err := src.Token(context.Background())
			if err != nil {
				if tok != nil {
					t.Errorf("Token() = %v with error %v, want nil", tok, err)
				}
				if !strings.HasPrefix(err.Error(), "tokens: ") {
					t.Errorf("Token() error = %q, want a tokens: error", err)
				}
				basic := base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
				for _, s := range []string{secret, basic} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("Token() error = %q, which shows the client secret", err)
					}
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
			access, expiresIn := oauth2Fields(contentType, body)
			if tok.Value != access {
				t.Errorf("Token().Value = %q, want the answer's access_token %q", tok.Value, access)
			}
			if strings.TrimSpace(tok.Value) == "" {
				t.Errorf("Token().Value = %q from %q: a blank token, which no request can carry", tok.Value, body)
			}
			if exp, ok := jwtExpiry(tok.Value); tok.Expiry.IsZero() && !(ok && exp.IsZero()) {
				t.Errorf("Token().Expiry is zero")
			}
			if d, err := seconds(expiresIn); err == nil {
				want := now.Add(d)
				if exp, ok := jwtExpiry(tok.Value); ok && exp.Before(want) {
					want = exp
				}
				if !tok.Expiry.Equal(want) {
					t.Errorf("Token().Expiry = %v, want %v: expires_in %q dated by the source's clock (body %q)", tok.Expiry, want, expiresIn, body)
				}
			}
		})
	})
}

// oauth2Fields reads access_token and expires_in from a token answer the way
// x/oauth2 does: a form for form or text content types, else JSON, whose
// access_token is matched without regard to case (encoding/json into a
// struct) and whose expires_in is read exactly (Token.Extra).
func oauth2Fields(contentType string, body []byte) (access string, expiresIn any) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, _ := url.ParseQuery(string(body))
		if e := v.Get("expires_in"); e != "" {
			expiresIn = e
		}
		return v.Get("access_token"), expiresIn
	}
	var tj struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &tj)
	var doc map[string]any
	json.Unmarshal(body, &doc)
	return tj.AccessToken, doc["expires_in"]
}
