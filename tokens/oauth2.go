package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// OAuth2Config describes an RFC 6749 client-credentials grant.
type OAuth2Config struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client. With Assertion set,
	// ClientSecret is neither read nor sent.
	ClientID, ClientSecret Secret
	// Assertion, if set, authenticates the client with a signed JWT (RFC 7523
	// private_key_jwt) instead of ClientSecret. If nil, the client secret is
	// used.
	Assertion *ClientAssertion
	// Scopes are sent space-separated as scope; omitted when empty.
	Scopes []string
	// Params are extra form parameters (audience, resource, …).
	Params url.Values
	// AuthStyle says how the client authenticates; the zero value detects it.
	// With Assertion set it is ignored: the credentials go in the body.
	AuthStyle oauth2.AuthStyle
	// DefaultTTL is the lifetime used when the answer has no expires_in and the
	// token is not a JWT with exp. If zero, DefaultTTL is used.
	DefaultTTL time.Duration
	// Client makes the request. If nil, http.DefaultClient is used.
	Client *http.Client
}

// ClientAssertionType is the client_assertion_type of an RFC 7523 JWT
// client assertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid: it is made for
// one request, sent at once.
const assertionLifetime = time.Minute

// ClientAssertion authenticates the client with a JWT signed by its private
// key (RFC 7523 section 2.2, OpenID Connect private_key_jwt). Each token
// request carries a fresh assertion: iss and sub are the client id, aud the
// token URL, iat now, exp a minute later and jti a random UUID.
type ClientAssertion struct {
	// Key signs the assertions; a rotated key file is used from the next
	// request on. Required.
	Key *KeyFile
	// Alg is the JWS algorithm: "RS256" or "PS256" (an RSA key of at least
	// 2048 bits) or "ES256" (an ECDSA P-256 key). If empty, RS256 is used.
	Alg string
	// KeyID is sent as the JWT's kid header, for a provider that holds several
	// of the client's keys. If empty, no kid is sent.
	KeyID string
}

// Check reports whether the assertion can be signed: a key is set, Alg is
// known and the key suits it. Token makes the same check at every fetch (a
// key file may change); Check lets a configuration be refused at start-up.
// A nil ClientAssertion (client secret authentication) has nothing to check.
func (a *ClientAssertion) Check() error {
	if a == nil {
		return nil
	}
	_, _, err := a.signer()
	return err
}

// signer returns the signing method and the current key, once checked to
// suit each other. Errors name the key's type and size, never its material.
func (a *ClientAssertion) signer() (jwt.SigningMethod, crypto.Signer, error) {
	var m jwt.SigningMethod
	switch a.Alg {
	case "", "RS256":
		m = jwt.SigningMethodRS256
	case "PS256":
		m = jwt.SigningMethodPS256
	case "ES256":
		m = jwt.SigningMethodES256
	default:
		return nil, nil, fmt.Errorf("tokens: client assertion: unsupported alg %q: want RS256, PS256 or ES256", a.Alg)
	}
	if a.Key == nil {
		return nil, nil, errors.New("tokens: client assertion: no key")
	}
	key := a.Key.Signer()
	rsaKey, isRSA := key.(*rsa.PrivateKey)
	ecKey, isEC := key.(*ecdsa.PrivateKey)
	switch {
	case m == jwt.SigningMethodES256 && isEC && ecKey.Curve == elliptic.P256():
		return m, key, nil
	case m == jwt.SigningMethodES256:
		return nil, nil, fmt.Errorf("tokens: client assertion: ES256 needs an ECDSA P-256 key, the key file holds %s", keyKind(key))
	case !isRSA:
		return nil, nil, fmt.Errorf("tokens: client assertion: %s needs an RSA key, the key file holds %s", m.Alg(), keyKind(key))
	case rsaKey.N.BitLen() < 2048: // RFC 7518 section 3.3, 3.5
		return nil, nil, fmt.Errorf("tokens: client assertion: %s needs an RSA key of at least 2048 bits, the key file holds %s", m.Alg(), keyKind(key))
	}
	return m, key, nil
}

// keyKind describes a key by its type and size, never its material.
func keyKind(key crypto.Signer) string {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("an RSA %d-bit key", k.N.BitLen())
	case *ecdsa.PrivateKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	}
	return fmt.Sprintf("a %T key", key)
}

// sign returns a new assertion for client id to present at tokenURL.
func (a *ClientAssertion) sign(id, tokenURL string, now time.Time) (string, error) {
	m, key, err := a.signer()
	if err != nil {
		return "", err
	}
	jti, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("tokens: client assertion: jti: %w", err)
	}
	// aud as a plain string, not jwt/v5's one-element array: RFC 7519
	// allows both, and some providers take only the string.
	t := jwt.NewWithClaims(m, jwt.MapClaims{
		"iss": id,
		"sub": id,
		"aud": tokenURL,
		"iat": now.Unix(),
		"exp": now.Add(assertionLifetime).Unix(),
		"jti": jti.String(),
	})
	if a.KeyID != "" {
		t.Header["kid"] = a.KeyID
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("tokens: client assertion: sign: %w", err)
	}
	return s, nil
}

// NewOAuth2Source returns a Source that runs the client-credentials grant of
// golang.org/x/oauth2/clientcredentials. The credentials are read at every
// fetch, so rotated secret files take effect at the next one.
func NewOAuth2Source(c OAuth2Config) Source {
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	return &oauth2Source{c: c}
}

type oauth2Source struct {
	c OAuth2Config

	mu  sync.Mutex
	cfg *clientcredentials.Config // client secret authentication only: kept while the credentials stay the same, so that an auto-detected auth style is remembered
}

// config returns the grant's configuration for these credentials.
func (s *oauth2Source) config(id, secret string) *clientcredentials.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg == nil || s.cfg.ClientID != id || s.cfg.ClientSecret != secret {
		s.cfg = &clientcredentials.Config{
			ClientID:       id,
			ClientSecret:   secret,
			TokenURL:       s.c.TokenURL,
			Scopes:         s.c.Scopes,
			EndpointParams: s.c.Params,
			AuthStyle:      s.c.AuthStyle,
		}
	}
	return s.cfg
}

// assertionConfig returns a configuration of its own for one request that
// presents assertion: nothing shared is changed, and no secret is sent.
func (s *oauth2Source) assertionConfig(id, assertion string) *clientcredentials.Config {
	params := make(url.Values, len(s.c.Params)+2)
	maps.Copy(params, s.c.Params)
	params.Set("client_assertion_type", ClientAssertionType)
	params.Set("client_assertion", assertion)
	return &clientcredentials.Config{
		ClientID:       id,
		TokenURL:       s.c.TokenURL,
		Scopes:         s.c.Scopes,
		EndpointParams: params,
		AuthStyle:      oauth2.AuthStyleInParams,
	}
}

func (s *oauth2Source) Token(ctx context.Context) (*Token, error) {
	id, err := s.c.ClientID.Read()
	if err != nil {
		return nil, err
	}
	var (
		cfg     *clientcredentials.Config
		secrets []string // what a provider may echo back, to be removed from its messages
	)
	if a := s.c.Assertion; a != nil {
		assertion, err := a.sign(id, s.c.TokenURL, time.Now())
		if err != nil {
			return nil, err
		}
		cfg = s.assertionConfig(id, assertion)
		secrets = []string{assertion, assertion[strings.LastIndexByte(assertion, '.')+1:]}
	} else {
		secret, err := s.c.ClientSecret.Read()
		if err != nil {
			return nil, err
		}
		cfg = s.config(id, secret)
		// A provider may echo the request back, Basic credential included.
		basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
		secrets = []string{secret, basic}
	}
	t, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, s.c.Client))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			e := &RetrieveError{
				Code:        cleanDescription(re.ErrorCode, secrets...),
				Description: cleanDescription(re.ErrorDescription, secrets...),
			}
			if re.Response != nil {
				e.Status = re.Response.StatusCode
				e.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"))
			}
			if e.Code == "" && e.Description == "" {
				e.Description = cleanDescription(string(re.Body), secrets...)
			}
			return nil, e
		}
		var ue *url.Error
		if errors.As(err, &ue) || ctx.Err() != nil {
			return nil, newRequestError("tokens: token request", err, secrets...)
		}
		// x/oauth2 could not read the answer, and its message may quote it
		// (an expires_in that is not a number, in full).
		return nil, fmt.Errorf("tokens: token request: %s", clean(err.Error(), maxEchoed, secrets))
	}
	if strings.TrimSpace(t.AccessToken) == "" {
		return nil, errNoValue
	}
	now := time.Now()
	// clientcredentials drops ExpiresIn, and x/oauth2 reads only an integer
	// expires_in: read it from the answer, as the JSON source does.
	var given time.Time
	if d, err := seconds(t.Extra("expires_in")); err == nil {
		given = now.Add(d)
	} else if !t.Expiry.IsZero() {
		given = t.Expiry
	}
	return &Token{Value: t.AccessToken, Expiry: expiryOf(t.AccessToken, given, now, s.c.DefaultTTL)}, nil
}
