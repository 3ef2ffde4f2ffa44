package tokens

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/authsidecar/authsidecar/test/fake"
)

const (
	saIssuer  = "https://kubernetes.default.svc.cluster.local"
	saSubject = "system:serviceaccount:payments:checkout"
	// stsTokenURL is the token URL the sources post to, served in memory.
	stsTokenURL = "http://provider.test/oauth2/token"
)

// stsServer is a fake.STS served in memory, usable in a bubble.
type stsServer struct {
	*fake.STS
	*endpoint
}

// newSTSServer serves an STS at stsTokenURL (c.TokenURL, the aud it wants,
// too unless set), trusting saIssuer's tokens signed with rsaTestKeys()[0].
func newSTSServer(t *testing.T, c fake.STSConfig) *stsServer {
	t.Helper()
	if c.TokenURL == "" {
		c.TokenURL = stsTokenURL
	}
	if c.Issuers == nil {
		c.Issuers = map[string]crypto.PublicKey{saIssuer: &rsaTestKeys()[0].PublicKey}
	}
	s := fake.NewSTS(c)
	h := s.Handler()
	return &stsServer{STS: s, endpoint: newEndpoint(t, func(w http.ResponseWriter, r *http.Request, _ int) { h.ServeHTTP(w, r) })}
}

// saClaims are a projected service-account token's, valid for an hour from
// now, with changes (a nil value deletes the claim).
func saClaims(changes jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": saIssuer, "sub": saSubject, "aud": stsTokenURL, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": fmt.Sprint(now.UnixNano(), len(changes))}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// signRS256 signs claims with rsaTestKeys()[0], which the STS trusts for
// saIssuer; signES256 with ecTestKey().
func signRS256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(rsaTestKeys()[0])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signES256(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(ecTestKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenFile writes content, with a newline as a kubelet would not, to a new
// file and returns its source.
func tokenFile(t *testing.T, name, content string) *FileSource {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, content+"\n")
	return NewFileSource(FileConfig{Path: path})
}

// onlyRequest returns the one request the STS got, failing otherwise.
func onlyRequest(t *testing.T, s *stsServer) fake.STSRequest {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("STS got %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// TestTokenExchangeRequest: every RFC 8693 parameter is on the wire as
// configured, with each way of authenticating the client, and the STS,
// which checks them, issues the token the source returns.
func TestTokenExchangeRequest(t *testing.T) {
	clientKey, _ := loadKeyOnce(t)
	tests := []struct {
		name      string
		clients   map[string]fake.STSClient
		cfg       func(t *testing.T, subject *FileSource) OAuth2Config
		wantForm  url.Values // client_assertion is taken from the request
		wantBasic string
	}{
		{
			name: "public client without client_id",
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				return OAuth2Config{Grant: &TokenExchange{SubjectToken: subject}}
			},
			wantForm: url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {JWTTokenType}},
		},
		{
			name:    "every parameter, public client with its client_id",
			clients: map[string]fake.STSClient{oauthID: {}},
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				actor := tokenFile(t, "actor", signRS256(t, saClaims(jwt.MapClaims{"sub": "system:serviceaccount:mesh:gateway"})))
				return OAuth2Config{ClientID: Literal(oauthID), Scopes: []string{"payments:write", "refunds"},
					Params: url.Values{"audience": {"payments-api", "refunds-api"}, "resource": {"https://payments.example.test/"}},
					Grant: &TokenExchange{SubjectToken: subject, SubjectTokenType: "urn:ietf:params:oauth:token-type:id_token",
						ActorToken: actor, ActorTokenType: JWTTokenType, RequestedTokenType: "urn:ietf:params:oauth:token-type:access_token"}}
			},
			wantForm: url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
				"actor_token_type": {JWTTokenType}, "requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
				"audience": {"payments-api", "refunds-api"}, "resource": {"https://payments.example.test/"},
				"scope": {"payments:write refunds"}, "client_id": {oauthID}},
		},
		{
			name:    "client_secret_basic",
			clients: map[string]fake.STSClient{oauthID: {Secret: oauthSecret}},
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret), AuthStyle: oauth2.AuthStyleInHeader,
					Grant: &TokenExchange{SubjectToken: subject}}
			},
			wantForm:  url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {JWTTokenType}},
			wantBasic: basic(oauthID, oauthSecret),
		},
		{
			name:    "client_secret_post",
			clients: map[string]fake.STSClient{oauthID: {Secret: oauthSecret}},
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret), AuthStyle: oauth2.AuthStyleInParams,
					Grant: &TokenExchange{SubjectToken: subject}}
			},
			wantForm: url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {JWTTokenType},
				"client_id": {oauthID}, "client_secret": {oauthSecret}},
		},
		{
			name:    "private_key_jwt",
			clients: map[string]fake.STSClient{oauthID: {Key: &rsaTestKeys()[1].PublicKey}},
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), Assertion: &ClientAssertion{Key: clientKey},
					Grant: &TokenExchange{SubjectToken: subject}}
			},
			wantForm: url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {JWTTokenType},
				"client_id": {oauthID}, "client_assertion_type": {ClientAssertionType}},
		},
		{
			name:    "client assertion file, no client_id",
			clients: map[string]fake.STSClient{oauthID: {Key: &ecTestKey().PublicKey}},
			cfg: func(t *testing.T, subject *FileSource) OAuth2Config {
				a := tokenFile(t, "client-assertion", signES256(t, saClaims(jwt.MapClaims{"iss": oauthID, "sub": oauthID})))
				return OAuth2Config{AssertionFile: a, Grant: &TokenExchange{SubjectToken: subject}}
			},
			wantForm: url.Values{"grant_type": {TokenExchangeGrantType}, "subject_token_type": {JWTTokenType},
				"client_assertion_type": {ClientAssertionType}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				s := newSTSServer(t, fake.STSConfig{Clients: tc.clients,
					TokenTypes:          []string{JWTTokenType, "urn:ietf:params:oauth:token-type:id_token"},
					RequestedTokenTypes: []string{"urn:ietf:params:oauth:token-type:access_token"},
					Audiences:           []string{"payments-api", "refunds-api"}, Resources: []string{"https://payments.example.test/"}})
				subjectJWT := signRS256(t, saClaims(nil))
				subject := tokenFile(t, "token", subjectJWT)
				cfg := tc.cfg(t, subject)
				cfg.TokenURL, cfg.Client = stsTokenURL, s.client()
				if err := cfg.Check(); err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				tok, err := NewOAuth2Source(cfg).Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v; STS requests %+v", err, s.Requests())
				}
				issued := s.Issued()
				if len(issued) != 1 || tok.Value != issued[0] || !tok.Expiry.Equal(tezpayEpoch.Add(time.Hour)) {
					t.Errorf("Token() = %q expiring at %v, want the STS's %q at %v", tok.Value, tok.Expiry, issued, tezpayEpoch.Add(time.Hour))
				}

				r := onlyRequest(t, s)
				want := maps.Clone(tc.wantForm)
				want["subject_token"] = []string{subjectJWT} // the file's content, trimmed
				if g := tc.cfg(t, subject).Grant.(*TokenExchange); g.ActorToken != nil {
					want["actor_token"] = r.Form["actor_token"]
					if a := r.Form.Get("actor_token"); a == "" || a == subjectJWT || strings.ContainsAny(a, "\n ") {
						t.Errorf("actor_token = %q, want the actor file's JWT", a)
					}
				}
				if want.Has("client_assertion_type") {
					want["client_assertion"] = r.Form["client_assertion"]
				}
				if !maps.EqualFunc(r.Form, want, slices.Equal) {
					t.Errorf("request form = %v,\nwant %v", r.Form, want)
				}
				if r.Authorization != tc.wantBasic {
					t.Errorf("request Authorization = %q, want %q", r.Authorization, tc.wantBasic)
				}
			})
		})
	}
}

// loadKeyOnce loads rsaTestKeys()[1] as a client's key file.
func loadKeyOnce(t *testing.T) (*KeyFile, string) {
	t.Helper()
	return loadKey(t, pkcs1PEM(rsaTestKeys()[1]))
}

// TestTokenExchangeTokenTypeNA: an STS that answers token_type N_A (RFC 8693
// section 2.2.1: the issued token is not an access token) still gives a
// token, dated by expires_in.
func TestTokenExchangeTokenTypeNA(t *testing.T) {
	bubble(t, func(t *testing.T) {
		s := newSTSServer(t, fake.STSConfig{TokenType: "N_A", TTL: 10 * time.Minute,
			RequestedTokenTypes: []string{"urn:ietf:params:oauth:token-type:id_token"}})
		src := NewOAuth2Source(OAuth2Config{TokenURL: stsTokenURL, Client: s.client(), Grant: &TokenExchange{
			SubjectToken: tokenFile(t, "token", signRS256(t, saClaims(nil))), RequestedTokenType: "urn:ietf:params:oauth:token-type:id_token"}})
		tok, err := src.Token(context.Background())
		if err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if issued := s.Issued(); len(issued) != 1 || tok.Value != issued[0] || !tok.Expiry.Equal(tezpayEpoch.Add(10*time.Minute)) {
			t.Errorf("Token() = %q at %v, want %q at now+10m", tok.Value, tok.Expiry, issued)
		}
	})
}

// TestTokenExchangeExpiresInOutOfRange: an expires_in that is not a
// positive number of seconds up to 10 years is refused, or ignored for the
// DefaultTTL, as the JSON source refuses it; never a token already expired,
// or one kept for decades.
func TestTokenExchangeExpiresInOutOfRange(t *testing.T) {
	for _, expiresIn := range []string{"-1", "-3600", "99999999999", "315360001"} {
		t.Run(expiresIn, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				e := newEndpoint(t, reply(200, `{"access_token":"opaque","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":`+expiresIn+`}`))
				src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, Client: e.client(),
					Grant: &TokenExchange{SubjectToken: tokenFile(t, "token", signRS256(t, saClaims(nil)))}})
				now := time.Now()
				tok, err := src.Token(context.Background())
				// oauth2.go fell back to x/oauth2's Token.Expiry when
				// seconds() refused expires_in, and x/oauth2 v0.37 dates any
				// nonzero integer (negative, or capped at 2^31-1 s): the
				// source returned a token already expired, or one that
				// lived 68 years. It is an error now, as with the JSON source.
				if err == nil && (!tok.Expiry.After(now) || tok.Expiry.After(now.Add(10*365*24*time.Hour))) {
					t.Errorf("Token() with expires_in %s = a token expiring in %v, want an error or an expiry within 10 years", expiresIn, tok.Expiry.Sub(now))
				}
			})
		})
	}
}

// TestTokenExchangeRefusal: the STS's RFC 6749 errors become a
// *RetrieveError with its status, code and description, and neither the
// error nor the description ever shows the subject or actor token, or
// their signatures, even when the STS echoes them.
func TestTokenExchangeRefusal(t *testing.T) {
	tests := []struct {
		name    string
		sts     fake.STSConfig
		untrust bool
		actor   bool
		params  url.Values
		answer  func(subject string) answer // if set, answers in place of the STS
		want    RetrieveError
	}{
		{name: "issuer untrusted, token echoed", sts: fake.STSConfig{Echo: true}, untrust: true,
			want: RetrieveError{Status: 400, Code: "invalid_request", Description: `subject_token: issuer "` + saIssuer + `" not trusted: [redacted]`}},
		{name: "issuer untrusted", untrust: true,
			want: RetrieveError{Status: 400, Code: "invalid_request", Description: `subject_token: issuer "` + saIssuer + `" not trusted`}},
		{name: "actor token untrusted, echoed", sts: fake.STSConfig{Echo: true}, actor: true,
			want: RetrieveError{Status: 400, Code: "invalid_request", Description: `actor_token: issuer "mesh" not trusted: [redacted]`}},
		{name: "audience not served", sts: fake.STSConfig{Audiences: []string{"payments-api"}}, params: url.Values{"audience": {"vault"}},
			want: RetrieveError{Status: 400, Code: "invalid_target", Description: `audience "vault" not served`}},
		{name: "invalid_grant with Retry-After", answer: func(string) answer {
			return reply(400, `{"error":"invalid_grant","error_description":"subject revoked"}`, "Retry-After", "7")
		}, want: RetrieveError{Status: 400, Code: "invalid_grant", Description: "subject revoked", RetryAfter: 7 * time.Second}},
		{name: "token JSON-escaped in the description", answer: func(s string) answer {
			return reply(400, `{"error":"invalid_request","error_description":"bad \u0022`+strings.ReplaceAll(s, ".", `\u002e`)+`\u0022"}`)
		}, want: RetrieveError{Status: 400, Code: "invalid_request", Description: `bad "[redacted]"`}},
		{name: "signature in a plain-text body", answer: func(s string) answer {
			return reply(500, "cannot verify "+s[strings.LastIndexByte(s, '.')+1:], "Content-Type", "text/plain")
		}, want: RetrieveError{Status: 500, Description: "cannot verify [redacted]"}},
		{name: "token in the error code", answer: func(s string) answer {
			return reply(401, `{"error":"`+s+`"}`)
		}, want: RetrieveError{Status: 401, Code: "[redacted]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				s := newSTSServer(t, tc.sts)
				if tc.untrust {
					s.Untrust(saIssuer)
				}
				subject := signRS256(t, saClaims(nil))
				g := &TokenExchange{SubjectToken: tokenFile(t, "token", subject)}
				secrets := []string{subject, subject[strings.LastIndexByte(subject, '.')+1:]}
				if tc.actor {
					// Of an issuer the STS does not trust: refused, and echoed.
					actor := signES256(t, saClaims(jwt.MapClaims{"iss": "mesh"}))
					g.ActorToken, g.ActorTokenType = tokenFile(t, "actor", actor), JWTTokenType
					secrets = append(secrets, actor, actor[strings.LastIndexByte(actor, '.')+1:])
				}
				if tc.answer != nil {
					s.setAnswer(tc.answer(subject))
				}
				tok, err := NewOAuth2Source(OAuth2Config{TokenURL: stsTokenURL, Client: s.client(), Params: tc.params, Grant: g}).Token(context.Background())
				var re *RetrieveError
				if !errors.As(err, &re) {
					t.Fatalf("Token() = %v, %v; want a *RetrieveError", tok, err)
				}
				if *re != tc.want {
					t.Errorf("Token() error = %+v,\nwant %+v", *re, tc.want)
				}
				for _, sec := range secrets {
					if strings.Contains(err.Error(), sec) || strings.Contains(re.Description, sec) || strings.Contains(re.Code, sec) {
						t.Errorf("Token() error = %q, which shows a token or its signature", err)
					}
				}
			})
		})
	}
}

// TestJWTBearerGrant: the RFC 7523 section 2.1 assertion is the file's
// content, or one the source signs (iss, sub and aud as configured or by
// default), and the client authenticates in each way, or not at all; the
// STS verifies each assertion and issues the token returned.
func TestJWTBearerGrant(t *testing.T) {
	const iss = "https://ci.example.test"
	ecKey, _ := loadKey(t, sec1PEM(t, ecTestKey()))
	clientKey, _ := loadKeyOnce(t)
	tests := []struct {
		name       string
		sts        fake.STSConfig
		cfg        func(t *testing.T) OAuth2Config
		wantForm   url.Values // assertion and client_assertion are checked apart
		wantBasic  string
		wantClaims jwt.MapClaims // of a signed assertion: iss, sub, aud
	}{
		{
			name: "file, public client without client_id",
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{Grant: &JWTBearer{File: tokenFile(t, "assertion", signRS256(t, saClaims(nil)))}}
			},
			wantForm: url.Values{"grant_type": {JWTBearerGrantType}},
		},
		{
			name: "file, public client with client_id",
			sts:  fake.STSConfig{Clients: map[string]fake.STSClient{oauthID: {}}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), Grant: &JWTBearer{File: tokenFile(t, "assertion", signRS256(t, saClaims(nil)))}}
			},
			wantForm: url.Values{"grant_type": {JWTBearerGrantType}, "client_id": {oauthID}},
		},
		{
			name: "file, client secret",
			sts:  fake.STSConfig{Clients: map[string]fake.STSClient{oauthID: {Secret: oauthSecret}}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret), AuthStyle: oauth2.AuthStyleInHeader,
					Grant: &JWTBearer{File: tokenFile(t, "assertion", signRS256(t, saClaims(nil)))}}
			},
			wantForm:  url.Values{"grant_type": {JWTBearerGrantType}},
			wantBasic: basic(oauthID, oauthSecret),
		},
		{
			name: "file, private_key_jwt",
			sts:  fake.STSConfig{Clients: map[string]fake.STSClient{oauthID: {Key: &rsaTestKeys()[1].PublicKey}}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), Assertion: &ClientAssertion{Key: clientKey, Alg: "PS256"},
					Grant: &JWTBearer{File: tokenFile(t, "assertion", signRS256(t, saClaims(nil)))}}
			},
			wantForm: url.Values{"grant_type": {JWTBearerGrantType}, "client_id": {oauthID}, "client_assertion_type": {ClientAssertionType}},
		},
		{
			name: "file, client assertion file",
			sts:  fake.STSConfig{Clients: map[string]fake.STSClient{oauthID: {Key: &ecTestKey().PublicKey}}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID),
					AssertionFile: tokenFile(t, "client-assertion", signES256(t, saClaims(jwt.MapClaims{"iss": oauthID, "sub": oauthID}))),
					Grant:         &JWTBearer{File: tokenFile(t, "assertion", signRS256(t, saClaims(nil)))}}
			},
			wantForm: url.Values{"grant_type": {JWTBearerGrantType}, "client_id": {oauthID}, "client_assertion_type": {ClientAssertionType}},
		},
		{
			name: "signed: sub and aud by default",
			sts:  fake.STSConfig{Issuers: map[string]crypto.PublicKey{iss: &ecTestKey().PublicKey}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{Grant: &JWTBearer{Signed: &ClientAssertion{Key: ecKey, Alg: "ES256", Issuer: iss}}}
			},
			wantForm:   url.Values{"grant_type": {JWTBearerGrantType}},
			wantClaims: jwt.MapClaims{"iss": iss, "sub": iss, "aud": stsTokenURL},
		},
		{
			name: "signed: iss, sub and aud given",
			// The STS knows itself by its public URL, not the one posted to.
			sts: fake.STSConfig{TokenURL: "https://sts.example.test/token", Issuers: map[string]crypto.PublicKey{iss: &ecTestKey().PublicKey}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), Grant: &JWTBearer{Signed: &ClientAssertion{Key: ecKey, Alg: "ES256",
					Issuer: iss, Subject: "deploy-bot", Audience: "https://sts.example.test/token"}}}
			},
			wantForm:   url.Values{"grant_type": {JWTBearerGrantType}, "client_id": {oauthID}},
			wantClaims: jwt.MapClaims{"iss": iss, "sub": "deploy-bot", "aud": "https://sts.example.test/token"},
		},
		{
			name: "signed: the client id by default",
			sts:  fake.STSConfig{Issuers: map[string]crypto.PublicKey{oauthID: &ecTestKey().PublicKey}},
			cfg: func(t *testing.T) OAuth2Config {
				return OAuth2Config{ClientID: Literal(oauthID), Grant: &JWTBearer{Signed: &ClientAssertion{Key: ecKey, Alg: "ES256"}}}
			},
			wantForm:   url.Values{"grant_type": {JWTBearerGrantType}, "client_id": {oauthID}},
			wantClaims: jwt.MapClaims{"iss": oauthID, "sub": oauthID, "aud": stsTokenURL},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				s := newSTSServer(t, tc.sts)
				cfg := tc.cfg(t)
				cfg.TokenURL, cfg.Client = stsTokenURL, s.client()
				if err := cfg.Check(); err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				src := NewOAuth2Source(cfg)
				tok, err := src.Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if issued := s.Issued(); len(issued) != 1 || tok.Value != issued[0] {
					t.Errorf("Token() = %q, want the STS's %q", tok.Value, issued)
				}
				r := onlyRequest(t, s)
				form := maps.Clone(r.Form)
				assertion := form.Get("assertion")
				delete(form, "assertion")
				delete(form, "client_assertion")
				if !maps.EqualFunc(form, tc.wantForm, slices.Equal) {
					t.Errorf("request form = %v,\nwant %v (and assertion)", r.Form, tc.wantForm)
				}
				if r.Authorization != tc.wantBasic {
					t.Errorf("request Authorization = %q, want %q", r.Authorization, tc.wantBasic)
				}
				if g := cfg.Grant.(*JWTBearer); g.File != nil {
					content, _ := os.ReadFile(g.File.c.Path)
					if want := strings.TrimSpace(string(content)); assertion != want {
						t.Errorf("assertion = %q, want the file's content %q", assertion, want)
					}
					return
				}
				claims := jwt.MapClaims{}
				if _, _, err := jwt.NewParser().ParseUnverified(assertion, claims); err != nil {
					t.Fatalf("assertion %q: %v", assertion, err)
				}
				for k, v := range tc.wantClaims {
					if claims[k] != v {
						t.Errorf("assertion %s = %#v, want %q", k, claims[k], v)
					}
				}
				if claims["exp"] != float64(tezpayEpoch.Add(time.Minute).Unix()) {
					t.Errorf("assertion exp = %v, want a minute from now", claims["exp"])
				}
				// A fresh assertion for the next request: the STS takes a jti once.
				if _, err := src.Token(context.Background()); err != nil {
					t.Errorf("second Token() error = %v, want a new assertion accepted", err)
				}
			})
		})
	}
}

// TestClientAssertionFileRotation: with the client credentials grant, the
// client_assertion is the file's content, read for each request: after the
// kubelet's atomic swap of ..data, the next fetch sends the new JWT (the STS
// takes a jti once, so the old one would be refused).
func TestClientAssertionFileRotation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		s := newSTSServer(t, fake.STSConfig{Clients: map[string]fake.STSClient{oauthID: {Key: &ecTestKey().PublicKey}}})
		first := signES256(t, saClaims(jwt.MapClaims{"iss": oauthID, "sub": oauthID, "jti": "first"}))
		m := newKubeletMount(t, first)
		cfg := OAuth2Config{TokenURL: stsTokenURL, ClientID: Literal(oauthID), AssertionFile: NewFileSource(FileConfig{Path: m.Path()}), Client: s.client()}
		if err := cfg.Check(); err != nil {
			t.Fatalf("Check() = %v, want nil", err)
		}
		src := NewOAuth2Source(cfg)
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		time.Sleep(10 * time.Minute)
		second := signES256(t, saClaims(jwt.MapClaims{"iss": oauthID, "sub": oauthID, "jti": "second"}))
		m.rotate(t, second)
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("Token() after the rotation error = %v", err)
		}

		var got []url.Values
		for _, r := range s.Requests() {
			got = append(got, r.Form)
			if r.Authorization != "" {
				t.Errorf("request Authorization = %q, want none", r.Authorization)
			}
		}
		want := []url.Values{
			{"grant_type": {"client_credentials"}, "client_id": {oauthID}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {first}},
			{"grant_type": {"client_credentials"}, "client_id": {oauthID}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {second}},
		}
		if !slices.EqualFunc(got, want, func(a, b url.Values) bool { return maps.EqualFunc(a, b, slices.Equal) }) {
			t.Errorf("request forms = %v,\nwant %v", got, want)
		}
	})
}

// TestExpiredJWTFileNotSent: a JWT file whose exp has passed (an assertion,
// a subject or actor token, a client assertion) fails the fetch with an
// error naming the file and saying it expired, quoting none of it; no
// request is made. An opaque token in the same place is sent as it is.
func TestExpiredJWTFileNotSent(t *testing.T) {
	tests := []struct {
		name string
		what string // in the error
		cfg  func(good, bad *FileSource) OAuth2Config
	}{
		{"assertion file", "assertion file", func(good, bad *FileSource) OAuth2Config {
			return OAuth2Config{Grant: &JWTBearer{File: bad}}
		}},
		{"subject token file", "subject token file", func(good, bad *FileSource) OAuth2Config {
			return OAuth2Config{Grant: &TokenExchange{SubjectToken: bad}}
		}},
		{"actor token file", "actor token file", func(good, bad *FileSource) OAuth2Config {
			return OAuth2Config{Grant: &TokenExchange{SubjectToken: good, ActorToken: bad, ActorTokenType: JWTTokenType}}
		}},
		{"client assertion file, client credentials", "client assertion file", func(good, bad *FileSource) OAuth2Config {
			return OAuth2Config{ClientID: Literal(oauthID), AssertionFile: bad}
		}},
		{"client assertion file, token exchange", "client assertion file", func(good, bad *FileSource) OAuth2Config {
			return OAuth2Config{AssertionFile: bad, Grant: &TokenExchange{SubjectToken: good}}
		}},
	}
	for _, tc := range tests {
		for _, exp := range []time.Duration{-time.Hour, 0} {
			t.Run(fmt.Sprintf("%s, exp now%+v", tc.name, exp), func(t *testing.T) {
				bubble(t, func(t *testing.T) {
					e := newEndpoint(t, reply(200, oauthOK))
					expired := signRS256(t, saClaims(jwt.MapClaims{"exp": time.Now().Add(exp).Unix()}))
					good, bad := tokenFile(t, "good", signRS256(t, saClaims(nil))), tokenFile(t, "expired", expired)
					cfg := tc.cfg(good, bad)
					cfg.TokenURL, cfg.Client = e.base+"/token", e.client()
					tok, err := NewOAuth2Source(cfg).Token(context.Background())
					if err == nil {
						t.Fatalf("Token() = %v, want an error", tok)
					}
					for _, want := range []string{"tokens: " + tc.what + " " + bad.c.Path + ":", "expired"} {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("Token() error = %q, want it to hold %q", err, want)
						}
					}
					if sig := expired[strings.LastIndexByte(expired, '.')+1:]; strings.Contains(err.Error(), sig) {
						t.Errorf("Token() error = %q, which quotes the file", err)
					}
					if n := e.count(); n != 0 {
						t.Errorf("endpoint got %d requests, want none", n)
					}
				})
			})
		}
	}

	t.Run("opaque subject token", func(t *testing.T) {
		e := newEndpoint(t, reply(200, oauthOK))
		src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, Client: e.client(), Grant: &TokenExchange{
			SubjectToken: tokenFile(t, "token", "opaque-subject"), SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token"}})
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("Token() error = %v", err)
		}
		if reqs := e.seen(); len(reqs) != 1 || formOf(t, reqs[0].Body).Get("subject_token") != "opaque-subject" {
			t.Errorf("requests = %d, want one with subject_token opaque-subject", len(reqs))
		}
	})
}

// TestGrantCheck: Check names the field of every bad combination of a
// grant and client authentication, and passes the good ones.
func TestGrantCheck(t *testing.T) {
	key, _ := loadKeyOnce(t)
	f := func(path string) *FileSource { return NewFileSource(FileConfig{Path: path}) }
	const u = "https://sts.example.test/token"
	id, secret := Literal(oauthID), Literal(oauthSecret)
	sub := f("/var/run/secrets/tokens/sts")
	tests := []struct {
		name string
		cfg  OAuth2Config
		want []string
	}{
		{"token exchange, public", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: sub}}, nil},
		{"token exchange, every field", OAuth2Config{TokenURL: u, ClientID: id, ClientSecret: secret, Params: url.Values{"audience": {"a"}, "resource": {"https://r.example/"}},
			Grant: &TokenExchange{SubjectToken: sub, SubjectTokenType: JWTTokenType, ActorToken: f("/a"), ActorTokenType: JWTTokenType,
				RequestedTokenType: "urn:ietf:params:oauth:token-type:access_token"}}, nil},
		{"JWT bearer file, client assertion file", OAuth2Config{TokenURL: u, AssertionFile: f("/ca"), Grant: &JWTBearer{File: sub}}, nil},
		{"JWT bearer signed", OAuth2Config{TokenURL: u, Grant: &JWTBearer{Signed: &ClientAssertion{Key: key, Issuer: "ci"}}}, nil},
		{"client credentials, client assertion file", OAuth2Config{TokenURL: u, ClientID: id, AssertionFile: f("/ca")}, nil},
		{"client credentials, client assertion file without client id", OAuth2Config{TokenURL: u, AssertionFile: f("/ca")}, nil},
		{"client credentials without client id", OAuth2Config{TokenURL: u, ClientSecret: secret}, []string{"ClientID"}},
		{"Assertion and AssertionFile", OAuth2Config{TokenURL: u, ClientID: id, Assertion: &ClientAssertion{Key: key}, AssertionFile: f("/ca")}, []string{"AssertionFile"}},
		{"AssertionFile and a secret", OAuth2Config{TokenURL: u, ClientID: id, ClientSecret: secret, AssertionFile: f("/ca")}, []string{"ClientSecret"}},
		{"AssertionFile without a path", OAuth2Config{TokenURL: u, ClientID: id, AssertionFile: f("")}, []string{"AssertionFile"}},
		{"token exchange without subject", OAuth2Config{TokenURL: u, Grant: &TokenExchange{}}, []string{"Grant"}},
		{"token exchange, subject without a path", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: f("")}}, []string{"Grant"}},
		{"actor token without type", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: sub, ActorToken: f("/a")}}, []string{"Grant"}},
		{"actor token type without token", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: sub, ActorTokenType: JWTTokenType}}, []string{"Grant"}},
		{"token types not URIs", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: sub, SubjectTokenType: "jwt",
			ActorToken: f("/a"), ActorTokenType: "N_A", RequestedTokenType: "urn:ietf:params:oauth:token-type:access token"}}, []string{"Grant", "Grant", "Grant"}},
		{"JWT bearer with both", OAuth2Config{TokenURL: u, Grant: &JWTBearer{File: sub, Signed: &ClientAssertion{Key: key}}}, []string{"Grant"}},
		{"JWT bearer with neither", OAuth2Config{TokenURL: u, Grant: &JWTBearer{}}, []string{"Grant"}},
		{"JWT bearer, file without a path", OAuth2Config{TokenURL: u, Grant: &JWTBearer{File: f("")}}, []string{"Grant"}},
		{"JWT bearer signed without a key", OAuth2Config{TokenURL: u, Grant: &JWTBearer{Signed: &ClientAssertion{Issuer: "ci"}}}, []string{"Grant"}},
		{"grant parameters in Params", OAuth2Config{TokenURL: u, Grant: &TokenExchange{SubjectToken: sub}, Params: url.Values{
			"subject_token": {"x"}, "subject_token_type": {"x"}, "actor_token": {"x"}, "actor_token_type": {"x"}, "requested_token_type": {"x"}, "assertion": {"x"}}},
			[]string{"Params", "Params", "Params", "Params", "Params", "Params"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check()
			if got := fieldsOf(t, err); !slices.Equal(got, tc.want) {
				t.Errorf("Check() = %v, naming %q; want %q", err, got, tc.want)
			}
		})
	}

	// Configurations that cannot work, which Check passed until they were
	// found here. Which field it names is its choice: any problem will do.
	unworkable := []struct {
		name string
		cfg  OAuth2Config
	}{
		// With a Grant the client may be public, but a secret without a
		// client id authenticates no one (Basic ":secret", or client_secret
		// without client_id): every fetch is refused with invalid_client.
		{"secret without client id", OAuth2Config{TokenURL: u, ClientSecret: secret, Grant: &TokenExchange{SubjectToken: sub}}},
		// private_key_jwt without a client id or an Issuer signs client
		// assertions with iss "" and sub "" (RFC 7523 section 3 items 1, 2:
		// both required, the client id for client authentication).
		{"Assertion without client id or Issuer", OAuth2Config{TokenURL: u, Assertion: &ClientAssertion{Key: key}, Grant: &TokenExchange{SubjectToken: sub}}},
		// Likewise the JWT bearer grant's self-signed assertion (see
		// TestJWTBearerSignedWithoutIssuerSent).
		{"JWT bearer signed without client id or Issuer", OAuth2Config{TokenURL: u, Grant: &JWTBearer{Signed: &ClientAssertion{Key: key}}}},
	}
	for _, tc := range unworkable {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Check(); err == nil {
				t.Errorf("Check() = nil, want a problem: this configuration cannot get a token")
			}
		})
	}
}

// TestJWTBearerSignedWithoutIssuerSent shows what the configuration above
// that Check passes sends: an assertion with empty iss and sub.
func TestJWTBearerSignedWithoutIssuerSent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		key, _ := loadKeyOnce(t)
		e := newEndpoint(t, reply(200, oauthOK))
		src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, Client: e.client(), Grant: &JWTBearer{Signed: &ClientAssertion{Key: key}}})
		tok, err := src.Token(context.Background())
		if err == nil || e.count() != 0 {
			var iss, sub any = "(none sent)", "(none sent)"
			if reqs := e.seen(); len(reqs) > 0 {
				claims := jwt.MapClaims{}
				jwt.NewParser().ParseUnverified(formOf(t, reqs[0].Body).Get("assertion"), claims)
				iss, sub = claims["iss"], claims["sub"]
			}
			// RFC 7523 section 3 items 1 and 2: iss and sub are required.
			t.Errorf("Token() = %v, %v after %d requests, the assertion's iss %q and sub %q; want an error, and no request", tok, err, e.count(), iss, sub)
		}
	})
}

// TestGrantAutoDetectRemembered: with the zero AuthStyle and a secret, a
// provider refusing Basic is tried again with the secret in the body, and
// the style that worked is kept, as for client credentials
// (TestOAuth2SourceAutoDetect): a renewal is one request.
func TestGrantAutoDetectRemembered(t *testing.T) {
	bubble(t, func(t *testing.T) {
		e := newEndpoint(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if r.Header.Get("Authorization") != "" {
				reply(401, `{"error":"invalid_client"}`)(w, r, n)
				return
			}
			reply(200, oauthOK)(w, r, n)
		})
		src := NewOAuth2Source(OAuth2Config{TokenURL: e.base, ClientID: Literal(oauthID), ClientSecret: Literal(oauthSecret), Client: e.client(),
			Grant: &TokenExchange{SubjectToken: tokenFile(t, "token", signRS256(t, saClaims(nil)))}})
		for i := range 3 {
			if _, err := src.Token(context.Background()); err != nil {
				t.Fatalf("Token() #%d error = %v", i+1, err)
			}
		}
		// The detected style is cached in the clientcredentials.Config: one
		// per request, as it was with a Grant, tried Basic first again.
		if reqs := e.seen(); len(reqs) != 4 {
			t.Errorf("3 fetches made %d requests (%d refused Basic attempts), want 4: Basic refused once, then the body every time", len(reqs), countBasic(reqs))
		}
	})
}

// TestCacheRotated: a rotated subject token file, seen by its FileSource's
// Watch on the channel shared as FileConfig.Changed and given to the Cache
// as Rotated, causes no fetch while the token is healthy (it is renewed at
// its time, with the new file), and retries a failed fetch at once, before
// the backoff would.
func TestCacheRotated(t *testing.T) {
	const poll = time.Second
	setup := func(t *testing.T, subject string, rotated bool) (*stsServer, *kubeletMount, *observer, *Cache) {
		noInotify(t) // poll, in fake time
		setJitter(t, 0)
		s := newSTSServer(t, fake.STSConfig{})
		m := newKubeletMount(t, subject)
		changed := make(chan struct{}, 1)
		f := NewFileSource(FileConfig{Path: m.Path(), PollInterval: poll, Changed: changed})
		startWatch(t, f)
		obs := &observer{}
		opts := CacheOptions{Observer: obs, MinBackoff: time.Minute, MaxBackoff: time.Minute, MaxBackoffNoToken: time.Minute}
		if rotated {
			opts.Rotated = changed
		}
		c := NewCache(NewOAuth2Source(OAuth2Config{TokenURL: stsTokenURL, Client: s.client(), Grant: &TokenExchange{SubjectToken: f}}), opts)
		run(t, c)
		return s, m, obs, c
	}

	t.Run("healthy token: no fetch until the renewal", func(t *testing.T) {
		bubble(t, func(t *testing.T) {
			start := time.Now()
			first := signRS256(t, saClaims(jwt.MapClaims{"exp": start.Add(2 * time.Hour).Unix()}))
			s, m, obs, c := setup(t, first, true)
			mustToken(t, c)
			time.Sleep(10 * time.Minute)
			second := signRS256(t, saClaims(jwt.MapClaims{"exp": start.Add(3 * time.Hour).Unix(), "jti": "second"}))
			m.rotate(t, second)
			time.Sleep(37 * time.Minute) // to 47 min: the renewal is at 48 (80% of an hour)
			synctest.Wait()
			if n := len(s.Requests()); n != 1 {
				t.Fatalf("STS got %d requests in the 37 min after a rotation, want 1 (the first fetch): a rotation waits for the renewal", n)
			}
			at := obs.ended.wait(t, 2)
			if d := at.Sub(start); d != 48*time.Minute {
				t.Errorf("renewal at start+%v, want +48m", d)
			}
			reqs := s.Requests()
			if got := reqs[len(reqs)-1].Form.Get("subject_token"); got != second {
				t.Errorf("renewal sent subject_token %.20q…, want the rotated one", got)
			}
			time.Sleep(30 * time.Minute) // the signal was spent by the renewal
			synctest.Wait()
			if n := len(s.Requests()); n != 2 {
				t.Errorf("STS got %d requests by start+78m, want 2", n)
			}
		})
	})

	for _, rotated := range []bool{true, false} {
		t.Run(fmt.Sprintf("failed fetch, Rotated given: %t", rotated), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				start := time.Now()
				// The kubelet is late: the file holds a token past its exp.
				stale := signRS256(t, saClaims(jwt.MapClaims{"exp": start.Add(-time.Minute).Unix()}))
				s, m, obs, c := setup(t, stale, rotated)
				obs.ended.wait(t, 1)
				if ev := obs.last(t); ev.err == nil || !strings.Contains(ev.err.Error(), "expired") {
					t.Fatalf("first fetch = %v, want the expired subject token refused", ev.err)
				}
				time.Sleep(5500 * time.Millisecond) // between two polls
				m.rotate(t, signRS256(t, saClaims(nil)))
				at := obs.ended.wait(t, 2)
				// Rotated at +5.5s, seen at the next poll, +6s; the backoff
				// (jitter 0) would wait until +30s.
				want := 6 * time.Second
				if !rotated {
					want = 30 * time.Second
				}
				if d := at.Sub(start); d != want {
					t.Errorf("retry at start+%v, want +%v", d, want)
				}
				if ev := obs.last(t); ev.err != nil {
					t.Errorf("retry = %v, want a token", ev.err)
				}
				if tok := mustToken(t, c); tok.Value != s.Issued()[0] {
					t.Errorf("Token() = %q, want the STS's %q", tok.Value, s.Issued())
				}
				if n := len(s.Requests()); n != 1 {
					t.Errorf("STS got %d requests, want 1: the expired token was never sent", n)
				}
			})
		})
	}
}

// TestCacheRotatedWaitsForRetryAfter: a rotation after a refusal that
// carried Retry-After does not retry before it: the provider said when.
func TestCacheRotatedWaitsForRetryAfter(t *testing.T) {
	bubble(t, func(t *testing.T) {
		noInotify(t)
		setJitter(t, 0)
		s := newSTSServer(t, fake.STSConfig{})
		s.FailWith(&fake.STSError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", RetryAfter: 20 * time.Second})
		m := newKubeletMount(t, signRS256(t, saClaims(nil)))
		changed := make(chan struct{}, 1)
		f := NewFileSource(FileConfig{Path: m.Path(), PollInterval: time.Second, Changed: changed})
		startWatch(t, f)
		obs := &observer{}
		c := NewCache(NewOAuth2Source(OAuth2Config{TokenURL: stsTokenURL, Client: s.client(), Grant: &TokenExchange{SubjectToken: f}}),
			CacheOptions{Observer: obs, MinBackoff: time.Second, MaxBackoff: time.Minute, MaxBackoffNoToken: time.Minute, Rotated: changed})
		run(t, c)
		start := time.Now()
		obs.ended.wait(t, 1)
		s.FailWith(nil)
		time.Sleep(2500 * time.Millisecond)
		m.rotate(t, signRS256(t, saClaims(jwt.MapClaims{"jti": "rotated"})))
		at := obs.ended.wait(t, 2)
		if d := at.Sub(start); d != 20*time.Second {
			t.Errorf("retry at start+%v, want +20s: the provider's Retry-After, not the rotation at +3s", d)
		}
	})
}

// TestJWTClaims: iss and sub of the JWT in a file, unverified; an opaque
// token, a JWT without one of them, or a missing file is an error naming
// the file and quoting none of it.
func TestJWTClaims(t *testing.T) {
	tests := []struct {
		name     string
		content  string // "": no file
		iss, sub string
		wantErr  bool
	}{
		{name: "service-account token", content: signRS256(t, saClaims(nil)), iss: saIssuer, sub: saSubject},
		{name: "expired still read", content: signRS256(t, saClaims(jwt.MapClaims{"exp": 1})), iss: saIssuer, sub: saSubject},
		{name: "opaque", content: "opaque-access-token-Zx81", wantErr: true},
		{name: "no sub", content: signRS256(t, saClaims(jwt.MapClaims{"sub": nil})), wantErr: true},
		{name: "no iss", content: signRS256(t, saClaims(jwt.MapClaims{"iss": nil})), wantErr: true},
		{name: "no file", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if tc.content != "" {
				writeFile(t, path, tc.content)
			}
			iss, sub, err := JWTClaims(NewFileSource(FileConfig{Path: path}))
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Errorf("JWTClaims() = %q, %q, %v; want an error naming %s", iss, sub, err, path)
				}
				if err != nil && tc.content != "" && strings.Contains(err.Error(), tc.content) {
					t.Errorf("JWTClaims() error = %q, which quotes the file", err)
				}
				return
			}
			if err != nil || iss != tc.iss || sub != tc.sub {
				t.Errorf("JWTClaims() = %q, %q, %v; want %q, %q", iss, sub, err, tc.iss, tc.sub)
			}
		})
	}
}
