package hydra

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	issuer  = "https://issuer.example.test"
	subject = "svc-payments"
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// claims are an assertion's usual claims: iss, sub, aud (the token URL), iat
// now, exp in five minutes, a new jti. Tests change or delete them.
func claims(s *Server, iss, sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": iss,
		"sub": sub,
		"aud": s.TokenURL,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": newJTI(),
	}
}

// sign signs c with key (RS256 or ES256, per the key's type) and kid.
func sign(t testing.TB, key crypto.Signer, kid string, c jwt.MapClaims) string {
	t.Helper()
	m := jwt.SigningMethod(jwt.SigningMethodRS256)
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		m = jwt.SigningMethodES256
	}
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bearer is the JWT-bearer grant's form for a public client.
func bearer(clientID, assertion, scope string) url.Values {
	f := url.Values{"grant_type": {GrantJWTBearer}, "assertion": {assertion}, "client_id": {clientID}}
	if scope != "" {
		f.Set("scope", scope)
	}
	return f
}

// wantToken checks that r is a bearer token that Hydra itself says is
// active for sub and client.
func wantToken(t *testing.T, s *Server, r *TokenResponse, sub, client string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("token endpoint: %d, want 200: %s", r.Status, r.Raw)
	}
	if r.AccessToken == "" || !strings.EqualFold(r.TokenType, "bearer") || r.ExpiresIn <= 0 || r.ExpiresIn > 3600 {
		t.Fatalf("token answer: access_token %t, token_type %q, expires_in %d; want a bearer token for at most an hour: %s",
			r.AccessToken != "", r.TokenType, r.ExpiresIn, r.Raw)
	}
	in := s.Introspect(t, r.AccessToken)
	if in["active"] != true || in["sub"] != sub || in["client_id"] != client {
		t.Fatalf("introspection: %v; want active, sub %q, client_id %q", in, sub, client)
	}
}

// wantError checks that r is a refusal with status and code.
func wantError(t *testing.T, r *TokenResponse, status int, code string) {
	t.Helper()
	if r.Status != status || r.Error != code || r.AccessToken != "" {
		t.Fatalf("token endpoint: %d %q, want %d %q: %s", r.Status, r.Error, status, code, r.Raw)
	}
	t.Logf("refused as wanted: %d %s: %s", r.Status, r.Error, r.ErrorDescription)
}

func TestStart(t *testing.T) {
	s := Start(t)
	t.Logf("Hydra ready in %v; public %s, admin %s, token URL %s, issuer %s", s.Ready, s.PublicURL, s.AdminURL, s.TokenURL, s.Issuer)
	if s.TokenURL != s.PublicURL+"/oauth2/token" {
		t.Errorf("TokenURL = %q, want %q", s.TokenURL, s.PublicURL+"/oauth2/token")
	}
}

// TestJWTBearer: RFC 7523 section 2.1, an assertion signed by a trusted
// issuer's key buys an access token, once.
func TestJWTBearer(t *testing.T) {
	s := Start(t)
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", []string{"payments.read", "payments.write"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read", "payments.write"}})

	assertion := sign(t, key, "rsa-1", claims(s, issuer, subject))
	r := s.PostToken(t, bearer(client.ID, assertion, "payments.read"))
	wantToken(t, s, r, subject, client.ID)
	if r.Scope != "payments.read" {
		t.Errorf("scope = %q, want payments.read", r.Scope)
	}

	t.Run("the same assertion again", func(t *testing.T) {
		wantError(t, s.PostToken(t, bearer(client.ID, assertion, "payments.read")), http.StatusBadRequest, "jti_known")
	})
	t.Run("the same jti in a new assertion", func(t *testing.T) {
		c := claims(s, issuer, subject)
		first := sign(t, key, "rsa-1", c)
		wantToken(t, s, s.PostToken(t, bearer(client.ID, first, "")), subject, client.ID)
		c["iat"] = time.Now().Unix() + 1
		wantError(t, s.PostToken(t, bearer(client.ID, sign(t, key, "rsa-1", c), "")), http.StatusBadRequest, "jti_known")
	})
	t.Run("an untrusted key with the trusted kid", func(t *testing.T) {
		a := sign(t, rsaKey(t), "rsa-1", claims(s, issuer, subject))
		wantError(t, s.PostToken(t, bearer(client.ID, a, "")), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("an untrusted key without kid", func(t *testing.T) {
		a := sign(t, rsaKey(t), "", claims(s, issuer, subject))
		wantError(t, s.PostToken(t, bearer(client.ID, a, "")), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("the trusted key without kid", func(t *testing.T) {
		a := sign(t, key, "", claims(s, issuer, subject))
		wantToken(t, s, s.PostToken(t, bearer(client.ID, a, "")), subject, client.ID)
	})
	t.Run("an untrusted issuer", func(t *testing.T) {
		a := sign(t, key, "rsa-1", claims(s, "https://other.example.test", subject))
		wantError(t, s.PostToken(t, bearer(client.ID, a, "")), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("another subject", func(t *testing.T) {
		a := sign(t, key, "rsa-1", claims(s, issuer, "svc-other"))
		wantError(t, s.PostToken(t, bearer(client.ID, a, "")), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("a scope the issuer was not given", func(t *testing.T) {
		a := sign(t, key, "rsa-1", claims(s, issuer, subject))
		wantError(t, s.PostToken(t, bearer(client.ID, a, "payments.refund")), http.StatusBadRequest, "invalid_scope")
	})
	t.Run("no client authentication", func(t *testing.T) {
		f := bearer(client.ID, sign(t, key, "rsa-1", claims(s, issuer, subject)), "")
		f.Del("client_id")
		wantError(t, s.PostToken(t, f), http.StatusBadRequest, "invalid_request")
	})
	t.Run("a client not allowed the grant", func(t *testing.T) {
		other := s.CreateClient(t, ClientSpec{GrantTypes: []string{GrantClientCredentials}, AuthMethod: "client_secret_basic"})
		f := bearer("", sign(t, key, "rsa-1", claims(s, issuer, subject)), "")
		f.Del("client_id")
		wantError(t, s.PostToken(t, f, other.ID, other.Secret), http.StatusBadRequest, "unauthorized_client")
	})
	t.Run("a confidential client", func(t *testing.T) {
		c := s.CreateClient(t, ClientSpec{AuthMethod: "client_secret_basic", Scopes: []string{"payments.read"}})
		f := bearer("", sign(t, key, "rsa-1", claims(s, issuer, subject)), "payments.read")
		f.Del("client_id")
		wantToken(t, s, s.PostToken(t, f, c.ID, c.Secret), subject, c.ID)
	})
}

// TestJWTBearerClaims records which claims Hydra requires of an assertion
// and how far ahead its exp may be (oauth2.grant.jwt.max_ttl, 720h by
// default).
func TestJWTBearerClaims(t *testing.T) {
	s := Start(t)
	key := ecKey(t)
	s.TrustIssuer(t, issuer, "", key.Public(), "ec-1", []string{"payments.read"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read"}})
	now := time.Now()

	ok := []struct {
		name string
		edit func(jwt.MapClaims)
	}{
		{"ES256, any subject", func(jwt.MapClaims) {}},
		{"aud as a list", func(c jwt.MapClaims) { c["aud"] = []string{"https://elsewhere.test", s.TokenURL} }},
		{"exp 719h after iat", func(c jwt.MapClaims) { c["exp"] = now.Add(719 * time.Hour).Unix() }},
		{"iat an hour ago", func(c jwt.MapClaims) { c["iat"] = now.Add(-time.Hour).Unix() }},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			c := claims(s, issuer, "svc-"+newJTI()[:6])
			tc.edit(c)
			wantToken(t, s, s.PostToken(t, bearer(client.ID, sign(t, key, "ec-1", c), "payments.read")), c["sub"].(string), client.ID)
		})
	}

	refused := []struct {
		name string
		edit func(jwt.MapClaims)
	}{
		{"no jti", func(c jwt.MapClaims) { delete(c, "jti") }},
		{"no iat", func(c jwt.MapClaims) { delete(c, "iat") }},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }},
		{"exp passed", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }},
		{"exp 721h after iat", func(c jwt.MapClaims) { c["exp"] = now.Add(721 * time.Hour).Unix() }},
		{"nbf ahead", func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }},
		{"no aud", func(c jwt.MapClaims) { delete(c, "aud") }},
		{"aud the issuer", func(c jwt.MapClaims) { c["aud"] = s.Issuer }},
		{"no sub", func(c jwt.MapClaims) { delete(c, "sub") }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c := claims(s, issuer, subject)
			tc.edit(c)
			wantError(t, s.PostToken(t, bearer(client.ID, sign(t, key, "ec-1", c), "")), http.StatusBadRequest, "invalid_grant")
		})
	}
}

// TestJWTBearerMaxTTL: oauth2.grant.jwt.max_ttl limits exp - iat.
func TestJWTBearerMaxTTL(t *testing.T) {
	s := Start(t, "OAUTH2_GRANT_JWT_MAX_TTL=10m")
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", nil)
	client := s.CreateClient(t, ClientSpec{})
	now := time.Now()

	c := claims(s, issuer, subject)
	c["exp"] = now.Add(9 * time.Minute).Unix()
	wantToken(t, s, s.PostToken(t, bearer(client.ID, sign(t, key, "rsa-1", c), "")), subject, client.ID)
	c = claims(s, issuer, subject)
	c["exp"] = now.Add(11 * time.Minute).Unix()
	wantError(t, s.PostToken(t, bearer(client.ID, sign(t, key, "rsa-1", c), "")), http.StatusBadRequest, "invalid_grant")
}

// TestPrivateKeyJWT: client authentication by a JWT signed with a key in
// the client's registered jwks (RFC 7523 section 2.2, private_key_jwt), the
// way a client-assertion file would be tested.
func TestPrivateKeyJWT(t *testing.T) {
	s := Start(t)
	for _, newKey := range []func(testing.TB) crypto.Signer{
		func(t testing.TB) crypto.Signer { return rsaKey(t) },
		func(t testing.TB) crypto.Signer { return ecKey(t) },
	} {
		key := newKey(t)
		alg := defaultAlg(key.Public())
		t.Run(alg, func(t *testing.T) {
			c := s.CreateClient(t, ClientSpec{
				AuthMethod: "private_key_jwt",
				GrantTypes: []string{GrantClientCredentials, GrantJWTBearer},
				Scopes:     []string{"payments.read"},
				Key:        key.Public(),
				KeyID:      "client-key",
			})
			form := func(assertion string) url.Values {
				return url.Values{
					"grant_type":            {GrantClientCredentials},
					"scope":                 {"payments.read"},
					"client_assertion_type": {ClientAssertionType},
					"client_assertion":      {assertion},
				}
			}
			assertion := sign(t, key, "client-key", claims(s, c.ID, c.ID))
			r := s.PostToken(t, form(assertion))
			wantToken(t, s, r, c.ID, c.ID)

			t.Run("the same assertion again", func(t *testing.T) {
				wantError(t, s.PostToken(t, form(assertion)), http.StatusBadRequest, "jti_known")
			})
			t.Run("another key", func(t *testing.T) {
				wantError(t, s.PostToken(t, form(sign(t, newKey(t), "client-key", claims(s, c.ID, c.ID)))), http.StatusUnauthorized, "invalid_client")
			})
			t.Run("aud the issuer", func(t *testing.T) {
				cl := claims(s, c.ID, c.ID)
				cl["aud"] = s.Issuer
				wantError(t, s.PostToken(t, form(sign(t, key, "client-key", cl))), http.StatusUnauthorized, "invalid_client")
			})
			t.Run("with the JWT-bearer grant", func(t *testing.T) {
				issKey := rsaKey(t)
				s.TrustIssuer(t, issuer+"/"+alg, subject, issKey.Public(), "rsa-1", []string{"payments.read"})
				f := bearer("", sign(t, issKey, "rsa-1", claims(s, issuer+"/"+alg, subject)), "payments.read")
				f.Del("client_id")
				f.Set("client_assertion_type", ClientAssertionType)
				f.Set("client_assertion", sign(t, key, "client-key", claims(s, c.ID, c.ID)))
				wantToken(t, s, s.PostToken(t, f), subject, c.ID)
			})
			t.Run("one jti for both assertions", func(t *testing.T) {
				// Hydra keeps one list of used jti for client assertions
				// and JWT-bearer assertions: the client assertion's is
				// recorded first, so the grant's is then known.
				grant := claims(s, issuer+"/"+alg, subject)
				client := claims(s, c.ID, c.ID)
				client["jti"] = grant["jti"]
				issKey := rsaKey(t)
				s.TrustIssuer(t, issuer+"/"+alg, subject, issKey.Public(), "rsa-2", []string{"payments.read"})
				f := bearer("", sign(t, issKey, "rsa-2", grant), "payments.read")
				f.Del("client_id")
				f.Set("client_assertion_type", ClientAssertionType)
				f.Set("client_assertion", sign(t, key, "client-key", client))
				wantError(t, s.PostToken(t, f), http.StatusBadRequest, "jti_known")
			})
		})
	}
}

// TestTokenExchange records that Hydra v2.3.0 has no RFC 8693 token
// exchange: a client may be registered for the grant, but the token
// endpoint has no handler for it.
func TestTokenExchange(t *testing.T) {
	s := Start(t)
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", nil)
	c := s.CreateClient(t, ClientSpec{GrantTypes: []string{GrantTokenExchange, GrantJWTBearer}})
	f := url.Values{
		"grant_type":         {GrantTokenExchange},
		"client_id":          {c.ID},
		"subject_token":      {sign(t, key, "rsa-1", claims(s, issuer, subject))},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}
	wantError(t, s.PostToken(t, f), http.StatusBadRequest, "invalid_request")
}
