package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
)

// assertionProvider is a fake token endpoint that authenticates its client
// the RFC 7523 way: it verifies client_assertion with the client's public
// key, and answers invalid_client, naming the fault, to a request that does
// not pass. A request that passes gets the answer set by setPassAnswer,
// oauthOK at first.
type assertionProvider struct {
	*endpoint
	alg string // the only JWS alg accepted

	mu     sync.Mutex
	pub    crypto.PublicKey
	kid    string // the kid header wanted; "" wants none
	pass   answer
	passed []jwt.MapClaims // of each assertion verified, in order
}

func newAssertionProvider(t *testing.T, alg string, pub crypto.PublicKey, kid string) *assertionProvider {
	t.Helper()
	p := &assertionProvider{alg: alg, pub: pub, kid: kid, pass: reply(200, oauthOK)}
	p.endpoint = newEndpoint(t, p.serve)
	return p
}

// tokenURL is the token URL newOAuth2TestSource gives its source: the
// audience the assertions must name.
func (p *assertionProvider) tokenURL() string { return p.base + "/oauth/token" }

func (p *assertionProvider) setKey(pub crypto.PublicKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pub = pub
}

func (p *assertionProvider) setPassAnswer(a answer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pass = a
}

func (p *assertionProvider) claims() []jwt.MapClaims {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.passed)
}

func (p *assertionProvider) serve(w http.ResponseWriter, r *http.Request, n int) {
	claims, err := p.verify(r)
	if err != nil {
		body, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": err.Error()})
		reply(http.StatusUnauthorized, string(body))(w, r, n)
		return
	}
	p.mu.Lock()
	p.passed = append(p.passed, claims)
	pass := p.pass
	p.mu.Unlock()
	pass(w, r, n)
}

// verify authenticates the request, and returns its assertion's claims.
func (p *assertionProvider) verify(r *http.Request) (jwt.MapClaims, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		return nil, fmt.Errorf("Authorization header %q sent", h)
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	f := r.PostForm
	switch {
	case f.Has("client_secret"):
		return nil, fmt.Errorf("client_secret %q sent", f.Get("client_secret"))
	case f.Get("grant_type") != "client_credentials":
		return nil, fmt.Errorf("grant_type = %q", f.Get("grant_type"))
	case !slices.Equal(f["client_assertion_type"], []string{ClientAssertionType}):
		return nil, fmt.Errorf("client_assertion_type = %q", f["client_assertion_type"])
	case f.Has("client_id") && !slices.Equal(f["client_id"], []string{oauthID}):
		return nil, fmt.Errorf("client_id = %q", f["client_id"])
	case len(f["client_assertion"]) != 1:
		return nil, fmt.Errorf("%d client_assertion values", len(f["client_assertion"]))
	}

	p.mu.Lock()
	pub, kid := p.pub, p.kid
	p.mu.Unlock()
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(f.Get("client_assertion"), claims,
		func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{p.alg}),
		jwt.WithIssuer(oauthID), jwt.WithSubject(oauthID), jwt.WithAudience(p.tokenURL()),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		return nil, fmt.Errorf("client_assertion: %w", err)
	}
	if got, has := tok.Header["kid"]; has != (kid != "") || has && got != kid {
		return nil, fmt.Errorf("kid header = %v (present: %t), want %q", got, has, kid)
	}
	now := time.Now().Unix()
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat.Unix() != now || exp.Unix() != now+60 {
		return nil, fmt.Errorf("iat, exp = %d, %d; want %d, %d", iat.Unix(), exp.Unix(), now, now+60)
	}
	if aud, ok := claims["aud"].(string); !ok || aud != p.tokenURL() {
		return nil, fmt.Errorf("aud = %#v, want the string %q", claims["aud"], p.tokenURL())
	}
	jti, _ := claims["jti"].(string)
	if u, err := uuid.Parse(jti); err != nil || u.Version() != 4 {
		return nil, fmt.Errorf("jti = %q, want a random UUID", jti)
	}
	return claims, nil
}

// loadKey writes the PEM document doc to a file of its own and loads it.
func loadKey(t testing.TB, doc []byte) (*KeyFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client_key.pem")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeyFile(path, nil)
	if err != nil {
		t.Fatalf("LoadKeyFile() error = %v", err)
	}
	return k, path
}

func TestOAuth2SourceClientAssertion(t *testing.T) {
	rsaKey, ecKey := rsaTestKeys()[0], ecTestKey()
	tests := []struct {
		name      string
		doc       []byte
		pub       crypto.PublicKey
		alg       string // configured
		wantAlg   string // signed with
		kid       string
		authStyle oauth2.AuthStyle
	}{
		{name: "RS256 by default", doc: pkcs1PEM(rsaKey), pub: &rsaKey.PublicKey, wantAlg: "RS256"},
		{name: "RS256 with kid", doc: pkcs8PEM(t, rsaKey), pub: &rsaKey.PublicKey, alg: "RS256", wantAlg: "RS256", kid: "checkout-2025-09"},
		{name: "PS256", doc: pkcs1PEM(rsaKey), pub: &rsaKey.PublicKey, alg: "PS256", wantAlg: "PS256"},
		{name: "PS256 with kid, header auth style ignored", doc: pkcs8PEM(t, rsaKey), pub: &rsaKey.PublicKey, alg: "PS256", wantAlg: "PS256",
			kid: "ps-1", authStyle: oauth2.AuthStyleInHeader},
		{name: "ES256", doc: sec1PEM(t, ecKey), pub: &ecKey.PublicKey, alg: "ES256", wantAlg: "ES256"},
		{name: "ES256 with kid", doc: pkcs8PEM(t, ecKey), pub: &ecKey.PublicKey, alg: "ES256", wantAlg: "ES256", kid: "ec-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				key, _ := loadKey(t, tc.doc)
				p := newAssertionProvider(t, tc.wantAlg, tc.pub, tc.kid)
				params := url.Values{"audience": {"https://api.example.com"}}
				src := newOAuth2TestSource(p.endpoint, OAuth2Config{
					Assertion: &ClientAssertion{Key: key, Alg: tc.alg, KeyID: tc.kid},
					Scopes:    []string{"payments:write", "refunds"}, Params: params, AuthStyle: tc.authStyle,
				})

				tok, err := src.Token(context.Background())
				if err != nil {
					t.Fatalf("Token() error = %v", err)
				}
				if tok.Value != "opaque-access-token" || !tok.Expiry.Equal(tezpayEpoch.Add(time.Hour)) {
					t.Errorf("Token() = %q expiring at %v, want %q at %v", tok.Value, tok.Expiry, "opaque-access-token", tezpayEpoch.Add(time.Hour))
				}
				time.Sleep(30 * time.Second)
				if _, err := src.Token(context.Background()); err != nil {
					t.Fatalf("second Token() error = %v", err)
				}

				reqs := p.seen()
				if len(reqs) != 2 {
					t.Fatalf("endpoint got %d requests, want 2", len(reqs))
				}
				form := formOf(t, reqs[0].Body)
				want := url.Values{
					"grant_type": {"client_credentials"}, "client_id": {oauthID}, "scope": {"payments:write refunds"},
					"audience": {"https://api.example.com"}, "client_assertion_type": {ClientAssertionType},
					"client_assertion": form["client_assertion"],
				}
				if !maps.EqualFunc(form, want, slices.Equal) {
					t.Errorf("request form = %v, want %v", form, want)
				}
				if len(params) != 1 {
					t.Errorf("OAuth2Config.Params after two fetches = %v, want it unchanged", params)
				}

				// A fresh assertion for each request, dated by the source's clock.
				claims := p.claims()
				if len(claims) != 2 {
					t.Fatalf("provider verified %d assertions, want 2", len(claims))
				}
				if claims[0]["jti"] == claims[1]["jti"] {
					t.Errorf("both assertions have jti %q, want a new one for each request", claims[0]["jti"])
				}
				if iat0, iat1 := claims[0]["iat"], claims[1]["iat"]; iat1 != iat0.(float64)+30 {
					t.Errorf("iat of the assertions = %v, %v; want 30 s apart", iat0, iat1)
				}
			})
		})
	}
}

// TestOAuth2SourceClientAssertionConcurrent: fetches at once each get an
// assertion of their own, and share nothing they change (run with -race).
func TestOAuth2SourceClientAssertionConcurrent(t *testing.T) {
	bubble(t, func(t *testing.T) {
		key, _ := loadKey(t, pkcs1PEM(rsaTestKeys()[0]))
		p := newAssertionProvider(t, "RS256", &rsaTestKeys()[0].PublicKey, "")
		src := newOAuth2TestSource(p.endpoint, OAuth2Config{
			Assertion: &ClientAssertion{Key: key},
			Params:    url.Values{"resource": {"urn:checkout"}},
		})
		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := src.Token(context.Background())
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("Token() error = %v", err)
			}
		}
		jtis := map[any]bool{}
		for _, c := range p.claims() {
			jtis[c["jti"]] = true
		}
		if len(jtis) != n {
			t.Errorf("%d fetches sent %d distinct jti, want %d", n, len(jtis), n)
		}
	})
}

func TestOAuth2SourceClientAssertionRefusal(t *testing.T) {
	// echo answers with the assertion, or its signature, in the message.
	echo := func(status int, sigOnly bool, format, contentType string) answer {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			a := r.PostForm.Get("client_assertion")
			if sigOnly {
				a = a[strings.LastIndexByte(a, '.')+1:]
			}
			reply(status, fmt.Sprintf(format, a), "Content-Type", contentType)(w, r, n)
		}
	}
	tests := []struct {
		name   string
		answer answer
		want   RetrieveError
	}{
		{"invalid_client", reply(401, `{"error":"invalid_client","error_description":"no such key"}`, "Retry-After", "5"),
			RetrieveError{Status: 401, Code: "invalid_client", Description: "no such key", RetryAfter: 5 * time.Second}},
		{"assertion echoed in description", echo(400, false, `{"error":"invalid_grant","error_description":"assertion %s already used"}`, "application/json"),
			RetrieveError{Status: 400, Code: "invalid_grant", Description: "assertion [redacted] already used"}},
		{"signature echoed in body", echo(500, true, "cannot check signature %s", "text/plain"),
			RetrieveError{Status: 500, Description: "cannot check signature [redacted]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				key, _ := loadKey(t, sec1PEM(t, ecTestKey()))
				p := newAssertionProvider(t, "ES256", &ecTestKey().PublicKey, "")
				p.setPassAnswer(tc.answer)
				src := newOAuth2TestSource(p.endpoint, OAuth2Config{Assertion: &ClientAssertion{Key: key, Alg: "ES256"}})
				tok, err := src.Token(context.Background())
				var re *RetrieveError
				if !errors.As(err, &re) {
					t.Fatalf("Token() = %v, %v; want a *RetrieveError", tok, err)
				}
				if *re != tc.want {
					t.Errorf("Token() error = %+v, want %+v", *re, tc.want)
				}
				if len(p.claims()) != 1 {
					t.Errorf("provider verified %d assertions, want 1: the refusal came after authentication", len(p.claims()))
				}
			})
		})
	}
}

// TestOAuth2SourceClientAssertionKeyRotation: a key file replaced in place
// signs the next request.
func TestOAuth2SourceClientAssertionKeyRotation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		oldKey, newKey := rsaTestKeys()[0], rsaTestKeys()[1]
		key, path := loadKey(t, pkcs1PEM(oldKey))
		p := newAssertionProvider(t, "PS256", &newKey.PublicKey, "")
		src := newOAuth2TestSource(p.endpoint, OAuth2Config{Assertion: &ClientAssertion{Key: key, Alg: "PS256"}})

		// The provider knows only the new key: the old one is refused.
		var re *RetrieveError
		if tok, err := src.Token(context.Background()); !errors.As(err, &re) || re.Code != "invalid_client" {
			t.Fatalf("Token() signed with the old key = %v, %v; want an invalid_client refusal", tok, err)
		}

		replaceFile(t, path, pkcs8PEM(t, newKey))
		expireCheck(key) // as if a second had passed since the key file was last looked at
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("Token() after the rotation = %v, want the new key to be accepted", err)
		}
		p.setKey(&oldKey.PublicKey)
		if tok, err := src.Token(context.Background()); !errors.As(err, &re) || re.Code != "invalid_client" {
			t.Errorf("Token() after the rotation, provider knowing only the old key = %v, %v; want an invalid_client refusal", tok, err)
		}
	})
}

// TestOAuth2SourceClientAssertionCurveRotation: a KeyFile takes an ECDSA key
// on another curve for a rotation; ES256 then refuses it, with no request.
func TestOAuth2SourceClientAssertionCurveRotation(t *testing.T) {
	bubble(t, func(t *testing.T) {
		p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key, path := loadKey(t, sec1PEM(t, ecTestKey()))
		p := newAssertionProvider(t, "ES256", &ecTestKey().PublicKey, "")
		src := newOAuth2TestSource(p.endpoint, OAuth2Config{Assertion: &ClientAssertion{Key: key, Alg: "ES256"}})
		if _, err := src.Token(context.Background()); err != nil {
			t.Fatalf("Token() error = %v", err)
		}

		replaceFile(t, path, sec1PEM(t, p384))
		expireCheck(key)
		want := "tokens: client assertion: ES256 needs an ECDSA P-256 key, the key file holds an ECDSA P-384 key"
		if tok, err := src.Token(context.Background()); err == nil || err.Error() != want {
			t.Errorf("Token() with a P-384 key = %v, %v; want %q", tok, err, want)
		}
		if n := p.count(); n != 1 {
			t.Errorf("endpoint got %d requests, want 1 (none with an unusable key)", n)
		}
	})
}

// TestClientAssertionCheck: Check and Token refuse the same configurations,
// with the same error; Token then sends nothing.
func TestClientAssertionCheck(t *testing.T) {
	rsaKey, ecKey := rsaTestKeys()[0], ecTestKey()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaDoc, ecDoc, p384Doc, smallDoc := pkcs1PEM(rsaKey), sec1PEM(t, ecKey), pkcs8PEM(t, p384), pkcs1PEM(rsa1024)
	tests := []struct {
		name    string
		doc     []byte // nil: no Key
		alg     string
		wantErr string // "": none
	}{
		{name: "default RS256, RSA", doc: rsaDoc},
		{name: "RS256, RSA", doc: rsaDoc, alg: "RS256"},
		{name: "PS256, RSA", doc: rsaDoc, alg: "PS256"},
		{name: "ES256, P-256", doc: ecDoc, alg: "ES256"},
		{name: "ES256, RSA", doc: rsaDoc, alg: "ES256",
			wantErr: "tokens: client assertion: ES256 needs an ECDSA P-256 key, the key file holds an RSA 2048-bit key"},
		{name: "ES256, P-384", doc: p384Doc, alg: "ES256",
			wantErr: "tokens: client assertion: ES256 needs an ECDSA P-256 key, the key file holds an ECDSA P-384 key"},
		{name: "default RS256, EC", doc: ecDoc,
			wantErr: "tokens: client assertion: RS256 needs an RSA key, the key file holds an ECDSA P-256 key"},
		{name: "PS256, EC", doc: ecDoc, alg: "PS256",
			wantErr: "tokens: client assertion: PS256 needs an RSA key, the key file holds an ECDSA P-256 key"},
		{name: "RS256, RSA 1024", doc: smallDoc, alg: "RS256",
			wantErr: "tokens: client assertion: RS256 needs an RSA key of at least 2048 bits, the key file holds an RSA 1024-bit key"},
		{name: "HS256", doc: rsaDoc, alg: "HS256",
			wantErr: `tokens: client assertion: unsupported alg "HS256": want RS256, PS256 or ES256`},
		{name: "none", doc: rsaDoc, alg: "none",
			wantErr: `tokens: client assertion: unsupported alg "none": want RS256, PS256 or ES256`},
		{name: "lower case", doc: ecDoc, alg: "es256",
			wantErr: `tokens: client assertion: unsupported alg "es256": want RS256, PS256 or ES256`},
		{name: "no key", alg: "RS256", wantErr: "tokens: client assertion: no key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &ClientAssertion{Alg: tc.alg}
			if tc.doc != nil {
				a.Key, _ = loadKey(t, tc.doc)
			}
			err := a.Check()
			if got := fmt.Sprint(err); tc.wantErr == "" && err != nil || tc.wantErr != "" && got != tc.wantErr {
				t.Fatalf("Check() = %v, want %q", err, tc.wantErr)
			}

			e := newEndpoint(t, reply(200, oauthOK))
			tok, err := newOAuth2TestSource(e, OAuth2Config{Assertion: a}).Token(context.Background())
			if tc.wantErr == "" {
				if err != nil || e.count() != 1 {
					t.Errorf("Token() = %v, %v after %d requests; want a token after 1", tok, err, e.count())
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Token() = %v, %v; want %q", tok, err, tc.wantErr)
			}
			if n := e.count(); n != 0 {
				t.Errorf("endpoint got %d requests, want none", n)
			}
			checkNoKeyLines(t, fmt.Sprint(err), tc.doc)
		})
	}

	if err := (*ClientAssertion)(nil).Check(); err != nil {
		t.Errorf("Check() of a nil ClientAssertion = %v, want nil: client secret authentication", err)
	}
}

// FuzzClientAssertionAlg: any Alg is either one of the three, taken with the
// key it needs and refused with the other, or refused with both keys; no
// error quotes a key.
func FuzzClientAssertionAlg(f *testing.F) {
	for _, s := range []string{"", "RS256", "PS256", "ES256", "HS256", "none", "rs256", "RS256 ", "ES384", "EdDSA"} {
		f.Add(s)
	}
	rsaDoc, ecDoc := pkcs1PEM(rsaTestKeys()[0]), sec1PEM(f, ecTestKey())
	rsaKey, _ := loadKey(f, rsaDoc)
	ecKey, _ := loadKey(f, ecDoc)
	f.Fuzz(func(t *testing.T, alg string) {
		rsaErr := (&ClientAssertion{Key: rsaKey, Alg: alg}).Check()
		ecErr := (&ClientAssertion{Key: ecKey, Alg: alg}).Check()
		switch alg {
		case "", "RS256", "PS256":
			if rsaErr != nil || ecErr == nil {
				t.Errorf("Check(%q) = %v with RSA, %v with EC; want RSA only", alg, rsaErr, ecErr)
			}
		case "ES256":
			if rsaErr == nil || ecErr != nil {
				t.Errorf("Check(%q) = %v with RSA, %v with EC; want EC only", alg, rsaErr, ecErr)
			}
		default:
			for _, err := range []error{rsaErr, ecErr} {
				if err == nil || !strings.HasPrefix(err.Error(), "tokens: client assertion: unsupported alg ") {
					t.Errorf("Check(%q) = %v, want an unsupported alg error", alg, err)
				}
			}
		}
		checkNoKeyLines(t, fmt.Sprint(rsaErr, ecErr), rsaDoc, ecDoc)
	})
}
