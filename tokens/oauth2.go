package tokens

import (
	"cmp"
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

// OAuth2Config describes an RFC 6749 client-credentials grant, or with
// Grant another grant at the token endpoint (RFC 7523's JWT bearer grant,
// RFC 8693's token exchange).
type OAuth2Config struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client. With Assertion or
	// AssertionFile set, ClientSecret is neither read nor sent. With a
	// Grant, both are optional: a client without a secret or an assertion
	// is a public one, sending its client_id if it has one.
	ClientID, ClientSecret Secret
	// Assertion, if set, authenticates the client with a signed JWT (RFC 7523
	// private_key_jwt) instead of ClientSecret. If nil, the client secret is
	// used.
	Assertion *ClientAssertion
	// AssertionFile, if set, authenticates the client with the JWT another
	// process writes to this file (RFC 7523 section 2.2: a projected
	// service-account token, a SPIFFE JWT-SVID), read for each request and
	// refused, unsent, once its exp has passed.
	AssertionFile *FileSource
	// Grant, if set, is asked with in place of client credentials.
	Grant Grant
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
// key (RFC 7523 section 2.2, OpenID Connect private_key_jwt), or is the
// assertion of the JWT bearer grant (section 2.1). Each token request carries
// a fresh assertion: iss and sub are the client id, aud the token URL, iat
// now, exp a minute later and jti a random UUID, unless Issuer, Subject or
// Audience say otherwise.
type ClientAssertion struct {
	// Issuer, Subject and Audience, if set, are the assertion's iss, sub
	// and aud in place of the client id, Issuer (or the client id), and the
	// token URL.
	Issuer, Subject, Audience string
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
	iss, sub, aud := cmp.Or(a.Issuer, id), cmp.Or(a.Subject, a.Issuer, id), cmp.Or(a.Audience, tokenURL)
	if iss == "" {
		// RFC 7523 section 3: iss and sub are required.
		return "", errors.New("tokens: client assertion: no issuer: set a client id or an Issuer")
	}
	// aud as a plain string, not jwt/v5's one-element array: RFC 7519
	// allows both, and some providers take only the string.
	t := jwt.NewWithClaims(m, jwt.MapClaims{
		"iss": iss,
		"sub": sub,
		"aud": aud,
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

	lend sync.Mutex // held while cfg asks with a grant's parameters
	mu   sync.Mutex
	cfg  *clientcredentials.Config // client secret authentication only: kept while the credentials stay the same, so that an auto-detected auth style is remembered
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

// retrieve asks with cfg, with params (a grant's, made for this request) in
// place of its own if set. cfg is then the shared one of the client's
// secret, which keeps the auth style x/oauth2 detected: it is lent to one
// request at a time.
func (s *oauth2Source) retrieve(ctx context.Context, cfg *clientcredentials.Config, params url.Values) (*oauth2.Token, error) {
	if params == nil {
		return cfg.Token(ctx)
	}
	s.lend.Lock()
	defer s.lend.Unlock()
	own := cfg.EndpointParams
	cfg.EndpointParams = params
	defer func() { cfg.EndpointParams = own }()
	return cfg.Token(ctx)
}

// oneOff returns a configuration of its own for one request with params
// (in place of Params): nothing shared is changed.
func (s *oauth2Source) oneOff(id, secret string, params url.Values, style oauth2.AuthStyle) *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:       id,
		ClientSecret:   secret,
		TokenURL:       s.c.TokenURL,
		Scopes:         s.c.Scopes,
		EndpointParams: params,
		AuthStyle:      style,
	}
}

// requestParams are the form parameters of one request made at now: Params
// with the grant's and the client assertion's, and the secret values among
// them; nil for the client-credentials grant with a secret, which sends
// Params alone.
func (s *oauth2Source) requestParams(ctx context.Context, id string, now time.Time) (url.Values, []string, error) {
	var v url.Values
	var secrets []string
	add := func(p url.Values, sec []string) {
		if v == nil {
			v = make(url.Values, len(s.c.Params)+len(p)+2)
			maps.Copy(v, s.c.Params)
		}
		maps.Copy(v, p)
		secrets = append(secrets, sec...)
	}
	if g := s.c.Grant; g != nil {
		p, sec, err := g.params(ctx, id, s.c.TokenURL, now)
		if err != nil {
			return nil, nil, err
		}
		p.Set("grant_type", g.GrantType()) // clientcredentials lets it be replaced
		add(p, sec)
	}
	var assertion string
	var err error
	switch {
	case s.c.Assertion != nil:
		assertion, err = s.c.Assertion.sign(id, s.c.TokenURL, now)
	case s.c.AssertionFile != nil:
		assertion, err = readJWTFile(ctx, s.c.AssertionFile, "client assertion file", now)
	default:
		return v, secrets, nil
	}
	if err != nil {
		return nil, nil, err
	}
	add(url.Values{"client_assertion_type": {ClientAssertionType}, "client_assertion": {assertion}}, jwtSecrets(assertion))
	return v, secrets, nil
}

func (s *oauth2Source) Token(ctx context.Context) (*Token, error) {
	id, err := s.c.ClientID.Read()
	if err != nil {
		return nil, err
	}
	params, secrets, err := s.requestParams(ctx, id, time.Now())
	if err != nil {
		return nil, err
	}
	var cfg *clientcredentials.Config
	switch {
	case s.c.Assertion == nil && s.c.AssertionFile == nil && !s.c.ClientSecret.IsZero():
		secret, err := s.c.ClientSecret.Read()
		if err != nil {
			return nil, err
		}
		// A provider may echo the request back, Basic credential included.
		basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
		secrets = append(secrets, secret, basic)
		cfg = s.config(id, secret)
	default:
		// A client assertion, or a public client: its client_id, if any,
		// in the body.
		cfg = s.oneOff(id, "", params, oauth2.AuthStyleInParams)
		params = nil
	}
	t, err := s.retrieve(context.WithValue(ctx, oauth2.HTTPClient, s.c.Client), cfg, params)
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
	// An expires_in that is there but not a lifetime is an error, as with
	// the JSON source: x/oauth2 would take -1 or a century as given.
	var given time.Time
	if v := t.Extra("expires_in"); v != nil {
		d, err := seconds(v, append(secrets, t.AccessToken)...)
		if err != nil {
			return nil, fmt.Errorf("tokens: token response \"expires_in\": %w", err)
		}
		given = now.Add(d)
	}
	return &Token{Value: t.AccessToken, Expiry: expiryOf(t.AccessToken, given, now, s.c.DefaultTTL)}, nil
}
