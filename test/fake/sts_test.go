package fake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	stsURL    = "https://sts.example.test/oauth2/token"
	stsIssuer = "https://kubernetes.default.svc"
	stsSub    = "system:serviceaccount:payments:checkout"
	stsClient = "checkout"
	stsSecret = "s3cr3t:with/odd&chars"
)

var stsKeys = sync.OnceValues(func() (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return r, e
})

// otherKey signs what no issuer or client of the tests trusts.
var otherKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return e
})

// signed returns a JWT of claims signed with key (RS256 for RSA, ES256
// for ECDSA, HS256 for a []byte, none for nil).
func signed(t *testing.T, key any, claims jwt.MapClaims) string {
	t.Helper()
	var m jwt.SigningMethod
	switch key.(type) {
	case *rsa.PrivateKey:
		m = jwt.SigningMethodRS256
	case *ecdsa.PrivateKey:
		m = jwt.SigningMethodES256
	case []byte:
		m = jwt.SigningMethodHS256
	case nil:
		m, key = jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// subjectClaims are a projected service-account token's, valid for an hour,
// with changes (a nil value deletes the claim).
func subjectClaims(changes jwt.MapClaims) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"iss": stsIssuer, "sub": stsSub, "aud": "sts.example.test", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": rand.Text()}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// assertionClaims are an RFC 7523 assertion's, for the token URL, with
// changes (a nil value deletes the claim).
func assertionClaims(iss, sub string, changes jwt.MapClaims) jwt.MapClaims {
	c := subjectClaims(jwt.MapClaims{"iss": iss, "sub": sub, "aud": stsURL})
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

type stsAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// post sends form to s's token endpoint, with Basic credentials if basic
// holds a user and password, and returns the answer.
func post(t *testing.T, s *STS, form url.Values, basic ...string) stsAnswer {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, stsURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		r.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", w.Body, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("answer Content-Type = %q, want application/json", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("answer Cache-Control = %q, want no-store (RFC 6749 section 5.1)", cc)
	}
	return stsAnswer{w.Code, w.Header(), body}
}

// want checks an answer: a token if code is "", else that error and status.
func (a stsAnswer) want(t *testing.T, status int, code string) {
	t.Helper()
	if a.status != status || (code == "") != (a.body["error"] == nil) || code != "" && a.body["error"] != code {
		t.Fatalf("answer = %d %v, want %d %q", a.status, a.body, status, code)
	}
	if code == "" {
		return
	}
	if d, ok := a.body["error_description"].(string); !ok || d == "" {
		t.Errorf("answer error_description = %v, want a description", a.body["error_description"])
	}
	if len(a.body) > 2 {
		t.Errorf("answer = %v, want error and error_description only", a.body)
	}
	if h := a.header.Get("WWW-Authenticate"); (status == 401) != (h != "") {
		t.Errorf("answer %d WWW-Authenticate = %q, want one with a 401 only", status, h)
	}
}

func exchangeForm(subject string, changes url.Values) url.Values {
	f := url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {TokenTypeJWT}}
	for k, v := range changes {
		if v == nil {
			f.Del(k)
		} else {
			f[k] = v
		}
	}
	return f
}

func TestSTSTokenExchange(t *testing.T) {
	rsaKey, ecKey := stsKeys()
	cfg := STSConfig{
		TokenURL:            stsURL,
		Issuers:             map[string]crypto.PublicKey{stsIssuer: &rsaKey.PublicKey, "https://actor.example.test": &ecKey.PublicKey},
		SubjectAudience:     "sts.example.test",
		TokenTypes:          []string{TokenTypeJWT, TokenTypeIDToken},
		RequestedTokenTypes: []string{TokenTypeAccessToken, TokenTypeJWT},
		Audiences:           []string{"payments-api"},
		Resources:           []string{"https://payments.example.test/"},
		Scopes:              []string{"payments:write", "refunds"},
	}
	subject := func(t *testing.T, changes jwt.MapClaims) string { return signed(t, rsaKey, subjectClaims(changes)) }
	actor := func(t *testing.T) string {
		return signed(t, ecKey, subjectClaims(jwt.MapClaims{"iss": "https://actor.example.test", "sub": "gateway"}))
	}
	tests := []struct {
		name       string
		form       func(t *testing.T) url.Values
		status     int
		code       string // "": a token
		issuedType string
	}{
		{"minimal", func(t *testing.T) url.Values { return exchangeForm(subject(t, nil), nil) }, 200, "", TokenTypeAccessToken},
		{"every parameter", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"actor_token": {actor(t)}, "actor_token_type": {TokenTypeJWT},
				"requested_token_type": {TokenTypeJWT}, "audience": {"payments-api"}, "resource": {"https://payments.example.test/"},
				"scope": {"payments:write refunds"}})
		}, 200, "", TokenTypeJWT},
		{"subject_token missing", func(t *testing.T) url.Values { return exchangeForm("", url.Values{"subject_token": nil}) }, 400, "invalid_request", ""},
		{"subject_token_type missing", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"subject_token_type": nil})
		}, 400, "invalid_request", ""},
		{"subject_token_type not taken", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"subject_token_type": {TokenTypeAccessToken}})
		}, 400, "invalid_request", ""},
		{"subject token expired", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, jwt.MapClaims{"exp": time.Now().Add(-time.Second).Unix()}), nil)
		}, 400, "invalid_request", ""},
		{"subject token without exp", func(t *testing.T) url.Values { return exchangeForm(subject(t, jwt.MapClaims{"exp": nil}), nil) }, 400, "invalid_request", ""},
		{"subject token for another audience", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, jwt.MapClaims{"aud": "vault"}), nil)
		}, 400, "invalid_request", ""},
		{"subject token of an untrusted issuer", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, jwt.MapClaims{"iss": "https://evil.example.test"}), nil)
		}, 400, "invalid_request", ""},
		{"subject token signed by another key", func(t *testing.T) url.Values {
			return exchangeForm(signed(t, otherKey(), subjectClaims(nil)), nil)
		}, 400, "invalid_request", ""},
		{"subject token HS256", func(t *testing.T) url.Values {
			return exchangeForm(signed(t, []byte("k"), subjectClaims(nil)), nil)
		}, 400, "invalid_request", ""},
		{"subject token alg none", func(t *testing.T) url.Values { return exchangeForm(signed(t, nil, subjectClaims(nil)), nil) }, 400, "invalid_request", ""},
		{"subject token opaque", func(t *testing.T) url.Values { return exchangeForm("opaque-token", nil) }, 400, "invalid_request", ""},
		{"actor_token without its type", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"actor_token": {actor(t)}})
		}, 400, "invalid_request", ""},
		{"actor_token_type without actor_token", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"actor_token_type": {TokenTypeJWT}})
		}, 400, "invalid_request", ""},
		{"actor token signed by another key", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"actor_token": {signed(t, otherKey(), subjectClaims(nil))}, "actor_token_type": {TokenTypeJWT}})
		}, 400, "invalid_request", ""},
		{"requested_token_type not supported", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"requested_token_type": {"urn:ietf:params:oauth:token-type:saml2"}})
		}, 400, "invalid_request", ""},
		{"audience not served", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"audience": {"payments-api", "billing-api"}})
		}, 400, "invalid_target", ""},
		{"resource not served", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"resource": {"https://billing.example.test/"}})
		}, 400, "invalid_target", ""},
		{"resource not absolute", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"resource": {"/payments"}})
		}, 400, "invalid_target", ""},
		{"resource with a fragment", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"resource": {"https://payments.example.test/#x"}})
		}, 400, "invalid_target", ""},
		{"scope not granted", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"scope": {"payments:write admin"}})
		}, 400, "invalid_scope", ""},
		{"a parameter twice", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"subject_token_type": {TokenTypeJWT, TokenTypeJWT}})
		}, 400, "invalid_request", ""},
		{"grant_type missing", func(t *testing.T) url.Values { return exchangeForm(subject(t, nil), url.Values{"grant_type": nil}) }, 400, "invalid_request", ""},
		{"grant_type unknown", func(t *testing.T) url.Values {
			return exchangeForm(subject(t, nil), url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:saml2-bearer"}})
		}, 400, "unsupported_grant_type", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSTS(cfg)
			a := post(t, s, tc.form(t))
			a.want(t, tc.status, tc.code)
			if tc.code != "" {
				if n := len(s.Issued()); n != 0 {
					t.Errorf("Issued() = %d tokens after a refusal, want none", n)
				}
				return
			}
			if a.body["issued_token_type"] != tc.issuedType || a.body["token_type"] != "Bearer" || a.body["expires_in"] != 3600.0 {
				t.Errorf("answer = %v, want issued_token_type %q, token_type Bearer, expires_in 3600", a.body, tc.issuedType)
			}
			if issued := s.Issued(); len(issued) != 1 || a.body["access_token"] != issued[0] {
				t.Errorf("answer access_token = %v, Issued() = %q; want the one token issued", a.body["access_token"], issued)
			}
		})
	}
}

// TestSTSTokenTypeNA: a token that is not an access token is answered with
// token_type N_A (RFC 8693 section 2.2.1); the issued type is still named.
func TestSTSTokenTypeNA(t *testing.T) {
	rsaKey, _ := stsKeys()
	s := NewSTS(STSConfig{Issuers: map[string]crypto.PublicKey{stsIssuer: &rsaKey.PublicKey}, TokenType: "N_A",
		RequestedTokenTypes: []string{TokenTypeIDToken}, TTL: 5 * time.Minute})
	a := post(t, s, exchangeForm(signed(t, rsaKey, subjectClaims(nil)), nil))
	a.want(t, 200, "")
	if a.body["token_type"] != "N_A" || a.body["issued_token_type"] != TokenTypeIDToken || a.body["expires_in"] != 300.0 {
		t.Errorf("answer = %v, want token_type N_A, issued_token_type %s, expires_in 300", a.body, TokenTypeIDToken)
	}
}

func TestSTSJWTBearer(t *testing.T) {
	rsaKey, ecKey := stsKeys()
	const iss = "https://spiffe.example.test"
	cfg := STSConfig{TokenURL: stsURL, Issuers: map[string]crypto.PublicKey{iss: &ecKey.PublicKey, stsIssuer: &rsaKey.PublicKey}}
	grant := func(a string) url.Values { return url.Values{"grant_type": {GrantTypeJWTBearer}, "assertion": {a}} }
	assertion := func(t *testing.T, changes jwt.MapClaims) string {
		return signed(t, ecKey, assertionClaims(iss, "spiffe://example.test/checkout", changes))
	}
	tests := []struct {
		name   string
		form   func(t *testing.T) url.Values
		status int
		code   string
	}{
		{"aud a string", func(t *testing.T) url.Values { return grant(assertion(t, nil)) }, 200, ""},
		{"aud in an array", func(t *testing.T) url.Values { return grant(assertion(t, jwt.MapClaims{"aud": []string{"x", stsURL}})) }, 200, ""},
		{"without jti", func(t *testing.T) url.Values { return grant(assertion(t, jwt.MapClaims{"jti": nil})) }, 200, ""},
		{"other trusted issuer, RS256", func(t *testing.T) url.Values {
			return grant(signed(t, rsaKey, assertionClaims(stsIssuer, stsSub, nil)))
		}, 200, ""},
		{"assertion missing", func(t *testing.T) url.Values { return url.Values{"grant_type": {GrantTypeJWTBearer}} }, 400, "invalid_request"},
		{"aud another URL", func(t *testing.T) url.Values {
			return grant(assertion(t, jwt.MapClaims{"aud": "https://sts.example.test/"}))
		}, 400, "invalid_grant"},
		{"no aud", func(t *testing.T) url.Values { return grant(assertion(t, jwt.MapClaims{"aud": nil})) }, 400, "invalid_grant"},
		{"expired", func(t *testing.T) url.Values {
			return grant(assertion(t, jwt.MapClaims{"exp": time.Now().Add(-time.Second).Unix()}))
		}, 400, "invalid_grant"},
		{"no exp", func(t *testing.T) url.Values { return grant(assertion(t, jwt.MapClaims{"exp": nil})) }, 400, "invalid_grant"},
		{"nbf ahead", func(t *testing.T) url.Values {
			return grant(assertion(t, jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}))
		}, 400, "invalid_grant"},
		{"no sub", func(t *testing.T) url.Values { return grant(assertion(t, jwt.MapClaims{"sub": nil})) }, 400, "invalid_grant"},
		{"issuer not trusted", func(t *testing.T) url.Values {
			return grant(signed(t, ecKey, assertionClaims("https://evil.example.test", "x", nil)))
		}, 400, "invalid_grant"},
		{"signed by the other issuer's key", func(t *testing.T) url.Values {
			return grant(signed(t, rsaKey, assertionClaims(iss, "x", nil)))
		}, 400, "invalid_grant"},
		{"HS256", func(t *testing.T) url.Values { return grant(signed(t, []byte("k"), assertionClaims(iss, "x", nil))) }, 400, "invalid_grant"},
		{"not a JWT", func(t *testing.T) url.Values { return grant("opaque") }, 400, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSTS(cfg)
			post(t, s, tc.form(t)).want(t, tc.status, tc.code)
		})
	}

	t.Run("jti once", func(t *testing.T) {
		s := NewSTS(cfg)
		a := assertion(t, nil)
		post(t, s, grant(a)).want(t, 200, "")
		post(t, s, grant(a)).want(t, 400, "invalid_grant")
		post(t, s, grant(assertion(t, nil))).want(t, 200, "")
	})
	t.Run("a refused assertion uses no jti", func(t *testing.T) {
		s := NewSTS(cfg)
		post(t, s, grant(assertion(t, jwt.MapClaims{"jti": "j1", "aud": "elsewhere"}))).want(t, 400, "invalid_grant")
		post(t, s, grant(assertion(t, jwt.MapClaims{"jti": "j1"}))).want(t, 200, "")
	})
	t.Run("Untrust", func(t *testing.T) {
		s := NewSTS(cfg)
		post(t, s, grant(assertion(t, nil))).want(t, 200, "")
		s.Untrust(iss)
		post(t, s, grant(assertion(t, nil))).want(t, 400, "invalid_grant")
		post(t, s, grant(signed(t, rsaKey, assertionClaims(stsIssuer, stsSub, nil)))).want(t, 200, "")
	})
}

func TestSTSClientAuthentication(t *testing.T) {
	rsaKey, ecKey := stsKeys()
	cfg := STSConfig{
		TokenURL: stsURL,
		Issuers:  map[string]crypto.PublicKey{stsIssuer: &rsaKey.PublicKey},
		Clients: map[string]STSClient{
			stsClient:        {Secret: stsSecret},
			"keyed":          {Key: &ecKey.PublicKey},
			"public-cli":     {},
			"secret-and-key": {Secret: "other", Key: &rsaKey.PublicKey},
		},
	}
	cc := func(extra url.Values) url.Values {
		f := url.Values{"grant_type": {GrantTypeClientCredentials}}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	ca := func(t *testing.T, changes jwt.MapClaims) url.Values {
		return url.Values{"client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {signed(t, ecKey, assertionClaims("keyed", "keyed", changes))}}
	}
	with := func(a, b url.Values) url.Values {
		for k, v := range b {
			a[k] = v
		}
		return a
	}
	tests := []struct {
		name   string
		form   func(t *testing.T) url.Values
		basic  []string
		status int
		code   string
	}{
		{"client_secret_basic, form-urlencoded", func(*testing.T) url.Values { return cc(nil) }, []string{stsClient, stsSecret}, 200, ""},
		{"client_secret_basic, wrong secret", func(*testing.T) url.Values { return cc(nil) }, []string{stsClient, "guess"}, 401, "invalid_client"},
		{"client_secret_basic, unknown client", func(*testing.T) url.Values { return cc(nil) }, []string{"nobody", stsSecret}, 401, "invalid_client"},
		{"client_secret_post", func(*testing.T) url.Values {
			return cc(url.Values{"client_id": {stsClient}, "client_secret": {stsSecret}})
		}, nil, 200, ""},
		{"client_secret_post, wrong secret", func(*testing.T) url.Values {
			return cc(url.Values{"client_id": {stsClient}, "client_secret": {"guess"}})
		}, nil, 401, "invalid_client"},
		{"basic and post at once", func(*testing.T) url.Values {
			return cc(url.Values{"client_id": {stsClient}, "client_secret": {stsSecret}})
		}, []string{stsClient, stsSecret}, 400, "invalid_request"},
		{"private_key_jwt", func(t *testing.T) url.Values { return cc(ca(t, nil)) }, nil, 200, ""},
		{"private_key_jwt with its client_id", func(t *testing.T) url.Values {
			return cc(with(ca(t, nil), url.Values{"client_id": {"keyed"}}))
		}, nil, 200, ""},
		{"private_key_jwt with another client_id", func(t *testing.T) url.Values {
			return cc(with(ca(t, nil), url.Values{"client_id": {stsClient}}))
		}, nil, 401, "invalid_client"},
		{"private_key_jwt, iss not sub", func(t *testing.T) url.Values { return cc(ca(t, jwt.MapClaims{"iss": "other"})) }, nil, 401, "invalid_client"},
		{"private_key_jwt, aud elsewhere", func(t *testing.T) url.Values {
			return cc(ca(t, jwt.MapClaims{"aud": "https://other.example.test/token"}))
		}, nil, 401, "invalid_client"},
		{"private_key_jwt, expired", func(t *testing.T) url.Values {
			return cc(ca(t, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}))
		}, nil, 401, "invalid_client"},
		{"private_key_jwt, wrong key", func(t *testing.T) url.Values {
			return cc(url.Values{"client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {signed(t, otherKey(), assertionClaims("keyed", "keyed", nil))}})
		}, nil, 401, "invalid_client"},
		{"private_key_jwt, client without a key", func(t *testing.T) url.Values {
			return cc(url.Values{"client_assertion_type": {ClientAssertionTypeJWT}, "client_assertion": {signed(t, ecKey, assertionClaims(stsClient, stsClient, nil))}})
		}, nil, 401, "invalid_client"},
		{"private_key_jwt, wrong assertion type", func(t *testing.T) url.Values {
			return cc(with(ca(t, nil), url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}))
		}, nil, 401, "invalid_client"},
		{"private_key_jwt and a secret", func(t *testing.T) url.Values {
			return cc(with(ca(t, nil), url.Values{"client_secret": {"other"}}))
		}, nil, 400, "invalid_request"},
		{"no authentication", func(*testing.T) url.Values { return cc(nil) }, nil, 401, "invalid_client"},
		{"public client, client_credentials", func(*testing.T) url.Values { return cc(url.Values{"client_id": {"public-cli"}}) }, nil, 401, "invalid_client"},
		{"public client, token exchange", func(t *testing.T) url.Values {
			return exchangeForm(signed(t, rsaKey, subjectClaims(nil)), url.Values{"client_id": {"public-cli"}})
		}, nil, 200, ""},
		{"unregistered client_id alone, token exchange", func(t *testing.T) url.Values {
			return exchangeForm(signed(t, rsaKey, subjectClaims(nil)), url.Values{"client_id": {"nobody"}})
		}, nil, 401, "invalid_client"},
		{"confidential client_id alone, token exchange", func(t *testing.T) url.Values {
			return exchangeForm(signed(t, rsaKey, subjectClaims(nil)), url.Values{"client_id": {stsClient}})
		}, nil, 401, "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSTS(cfg)
			post(t, s, tc.form(t), tc.basic...).want(t, tc.status, tc.code)
		})
	}

	t.Run("client assertion jti once", func(t *testing.T) {
		s := NewSTS(cfg)
		f := cc(ca(t, nil))
		post(t, s, f).want(t, 200, "")
		post(t, s, f).want(t, 401, "invalid_client")
	})
	t.Run("no clients: public only", func(t *testing.T) {
		s := NewSTS(STSConfig{Issuers: cfg.Issuers})
		subject := signed(t, rsaKey, subjectClaims(nil))
		post(t, s, exchangeForm(subject, url.Values{"client_secret": {"x"}, "client_id": {"c"}})).want(t, 401, "invalid_client")
		post(t, s, exchangeForm(subject, url.Values{"client_id": {"any"}})).want(t, 200, "")
		// The same subject token again: it is no assertion, its jti is not spent.
		post(t, s, exchangeForm(subject, nil)).want(t, 200, "")
		post(t, s, cc(nil)).want(t, 401, "invalid_client")
	})
}

// TestSTSRecordsAndFails: every request is recorded as it came, refused or
// not; FailWith answers its error until cleared; Echo quotes what is
// refused, and only then.
func TestSTSRecordsAndFails(t *testing.T) {
	rsaKey, _ := stsKeys()
	s := NewSTS(STSConfig{Issuers: map[string]crypto.PublicKey{stsIssuer: &rsaKey.PublicKey}})
	subject := signed(t, rsaKey, subjectClaims(nil))
	post(t, s, exchangeForm(subject, url.Values{"scope": {"a b"}})).want(t, 200, "")
	s.FailWith(&STSError{Status: 503, Code: "temporarily_unavailable", Description: "maintenance"})
	a := post(t, s, exchangeForm(subject, nil))
	if a.status != 503 || a.body["error"] != "temporarily_unavailable" || a.body["error_description"] != "maintenance" {
		t.Errorf("answer while failing = %d %v, want 503 temporarily_unavailable maintenance", a.status, a.body)
	}
	s.FailWith(nil)
	post(t, s, exchangeForm("opaque", nil), "c", "p").want(t, 401, "invalid_client")

	reqs := s.Requests()
	if len(reqs) != 3 {
		t.Fatalf("Requests() = %d, want 3", len(reqs))
	}
	if got := reqs[0].Form; got.Get("subject_token") != subject || got.Get("scope") != "a b" || got.Get("grant_type") != GrantTypeTokenExchange {
		t.Errorf("Requests()[0].Form = %v, want the form sent", got)
	}
	if reqs[2].Authorization == "" || reqs[1].Authorization != "" {
		t.Errorf("Requests() Authorization = %q, %q; want the second's only", reqs[1].Authorization, reqs[2].Authorization)
	}
	if n := len(s.Issued()); n != 1 {
		t.Errorf("Issued() = %d tokens, want 1", n)
	}

	for _, echo := range []bool{false, true} {
		s := NewSTS(STSConfig{Issuers: map[string]crypto.PublicKey{stsIssuer: &rsaKey.PublicKey}, Echo: echo})
		expired := signed(t, rsaKey, subjectClaims(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}))
		a := post(t, s, exchangeForm(expired, nil))
		a.want(t, 400, "invalid_request")
		if d := a.body["error_description"].(string); strings.Contains(d, expired) != echo {
			t.Errorf("Echo %t: error_description = %q, want the subject token in it: %t", echo, d, echo)
		}
	}

	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, stsURL, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET = %d, Allow %q; want 405, Allow POST", w.Code, w.Header().Get("Allow"))
	}
}
