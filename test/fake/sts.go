package fake

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Grant types, client assertion type and token types of RFC 7523 and RFC
// 8693, as the STS takes them.
const (
	GrantTypeClientCredentials = "client_credentials"
	GrantTypeJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantTypeTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	ClientAssertionTypeJWT     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	TokenTypeJWT               = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken       = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken           = "urn:ietf:params:oauth:token-type:id_token"
)

// stsAlgs are the JWS algorithms the STS verifies: never none or an HMAC.
var stsAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// STSConfig describes an STS. Every zero value means the default given.
type STSConfig struct {
	// TokenURL is the token endpoint's URL as its clients name it: the aud
	// that JWT bearer assertions and client assertions must carry (RFC 7523
	// section 3, item 3), as a string or in an array.
	TokenURL string
	// Issuers are the issuers trusted for subject tokens, actor tokens and
	// JWT bearer assertions: iss, and the key that verifies their JWTs.
	Issuers map[string]crypto.PublicKey
	// SubjectAudience, if set, is the aud a subject token (and an actor
	// token) must carry.
	SubjectAudience string
	// TokenTypes are the subject_token_type and actor_token_type accepted.
	// If nil, TokenTypeJWT only.
	TokenTypes []string
	// RequestedTokenTypes are the requested_token_type accepted, the first
	// issued when none is asked for. If nil, TokenTypeAccessToken only.
	RequestedTokenTypes []string
	// Audiences and Resources are the audience and resource values a token
	// exchange may name (else invalid_target). If nil, any; a resource must
	// be an absolute URI without a fragment in any case (RFC 8707).
	Audiences, Resources []string
	// Scopes are the scope values a request may ask for (else
	// invalid_scope). If nil, any.
	Scopes []string
	// Clients are the registered clients, by client_id. If nil, every
	// client is a public one: no authentication, client_id optional, and
	// client_credentials refused.
	Clients map[string]STSClient
	// TokenType is the token_type answered. If empty, "Bearer"; "N_A" for
	// a token that is not an access token (RFC 8693 section 2.2.1).
	TokenType string
	// TTL is the life of the tokens issued, sent as expires_in. If zero, an
	// hour.
	TTL time.Duration
	// Echo makes error descriptions quote the token, assertion or secret
	// they are about, as careless servers do: for the tests that the client
	// never shows them.
	Echo bool
}

// STSClient is a registered client: it authenticates with Secret
// (client_secret_basic or client_secret_post), if set, or with a JWT
// signed by the key Key verifies (RFC 7523 section 2.2), if set. One with
// neither is a public client, which sends its client_id.
type STSClient struct {
	Secret string
	Key    crypto.PublicKey
}

// STSRequest is one request to the token endpoint, as it came.
type STSRequest struct {
	Form          url.Values // the body's parameters
	Authorization string     // the Authorization header, if any
	At            time.Time
}

// STSError is an RFC 6749 section 5.2 error answer.
type STSError struct {
	Status      int
	Code        string // error
	Description string // error_description
	// RetryAfter, if positive, is sent as Retry-After, in whole seconds
	// (a 429 or 503 of FailWith).
	RetryAfter time.Duration
}

func (e *STSError) Error() string { return e.Code + ": " + e.Description }

// STS is a fake OAuth 2.0 authorization server: its one token endpoint
// (see Handler) runs RFC 8693's token exchange, RFC 7523's JWT bearer grant
// and RFC 6749's client credentials grant, with the client authentication
// of RFC 6749 section 2.3.1 and RFC 7523 section 2.2, and answers as RFC
// 6749 section 5 says. Unlike Ory Hydra, which answers a reused jti with
// 400 jti_known, it answers invalid_grant (RFC 7523 section 3.1) or
// invalid_client (section 3.2). Its methods are safe for concurrent use.
type STS struct {
	c STSConfig

	mu       sync.Mutex
	issuers  map[string]crypto.PublicKey
	jtis     map[string]time.Time // used jti, until their assertion's exp
	requests []STSRequest
	issued   []string
	fail     *STSError
}

// NewSTS returns an STS configured by c.
func NewSTS(c STSConfig) *STS {
	if c.TokenTypes == nil {
		c.TokenTypes = []string{TokenTypeJWT}
	}
	if c.RequestedTokenTypes == nil {
		c.RequestedTokenTypes = []string{TokenTypeAccessToken}
	}
	if c.TokenType == "" {
		c.TokenType = "Bearer"
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	issuers := make(map[string]crypto.PublicKey, len(c.Issuers))
	for iss, k := range c.Issuers {
		issuers[iss] = k
	}
	return &STS{c: c, issuers: issuers, jtis: map[string]time.Time{}}
}

// Handler serves the token endpoint, at any path: POST only.
func (s *STS) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Requests returns every request so far, oldest first.
func (s *STS) Requests() []STSRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Issued returns the tokens issued so far, oldest first.
func (s *STS) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// Untrust stops trusting iss: its JWTs are refused from now on.
func (s *STS) Untrust(iss string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.issuers, iss)
}

// FailWith makes every request get e, after being recorded, until
// FailWith(nil).
func (s *STS) FailWith(e *STSError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = e
}

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		stsError(w, &STSError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "the token endpoint takes POST"})
		return
	}
	err := r.ParseForm()
	s.mu.Lock()
	s.requests = append(s.requests, STSRequest{Form: r.PostForm, Authorization: r.Header.Get("Authorization"), At: time.Now()})
	fail := s.fail
	s.mu.Unlock()
	switch {
	case fail != nil:
		stsError(w, fail)
	case err != nil:
		stsError(w, refuse("invalid_request", "malformed body: %v", err))
	default:
		if ans, e := s.token(r); e != nil {
			stsError(w, e)
		} else {
			w.Header().Set("Cache-Control", "no-store") // RFC 6749 section 5.1
			writeJSON(w, http.StatusOK, ans)
		}
	}
}

// token runs the request's grant and returns the answer's fields.
func (s *STS) token(r *http.Request) (map[string]any, *STSError) {
	f := r.PostForm
	for k, v := range f { // RFC 6749 section 3.2; an empty one is as if omitted
		if len(v) > 1 && k != "audience" && k != "resource" {
			return nil, refuse("invalid_request", "%s given %d times", k, len(v))
		}
	}
	client, authed, e := s.authenticate(r)
	if e != nil {
		return nil, e
	}
	for _, sc := range strings.Fields(f.Get("scope")) { // RFC 6749 section 3.3
		if s.c.Scopes != nil && !slices.Contains(s.c.Scopes, sc) {
			return nil, refuse("invalid_scope", "scope %q not granted", sc)
		}
	}
	switch gt := f.Get("grant_type"); gt {
	case GrantTypeTokenExchange:
		return s.exchange(f)
	case GrantTypeJWTBearer:
		return s.jwtBearer(f)
	case GrantTypeClientCredentials:
		if !authed { // RFC 6749 section 4.4: confidential clients only
			return nil, refuse("invalid_client", "client_credentials needs client authentication")
		}
		return s.issue(TokenTypeAccessToken, client), nil
	case "":
		return nil, refuse("invalid_request", "grant_type missing")
	default:
		return nil, refuse("unsupported_grant_type", "grant_type %q", gt)
	}
}

// authenticate finds the client, and whether it authenticated. A public
// client's client_id is optional; with Clients set, every request must
// authenticate, with one method (RFC 6749 section 2.3).
func (s *STS) authenticate(r *http.Request) (string, bool, *STSError) {
	f := r.PostForm
	basicID, basicSecret, hasBasic := r.BasicAuth()
	methods := 0
	for _, has := range []bool{hasBasic, f.Get("client_secret") != "", f.Get("client_assertion") != "" || f.Get("client_assertion_type") != ""} {
		if has {
			methods++
		}
	}
	if methods > 1 {
		return "", false, refuse("invalid_request", "more than one client authentication method")
	}
	if s.c.Clients == nil {
		if methods > 0 {
			return "", false, refuse("invalid_client", "no client authenticates here: public clients only")
		}
		return f.Get("client_id"), false, nil
	}
	switch {
	case hasBasic:
		// RFC 6749 section 2.3.1: both form-urlencoded, then Basic.
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return "", false, refuse("invalid_client", "Basic credentials not form-urlencoded")
		}
		if f.Get("client_id") != "" && f.Get("client_id") != id {
			return "", false, refuse("invalid_request", "client_id differs from the Basic credentials'")
		}
		return id, true, s.checkSecret(id, secret)
	case f.Get("client_secret") != "":
		id := f.Get("client_id")
		return id, true, s.checkSecret(id, f.Get("client_secret"))
	case methods == 1:
		id, e := s.checkClientAssertion(f)
		return id, e == nil, e
	}
	// A registered public client (neither Secret nor Key) names itself.
	if c, ok := s.c.Clients[f.Get("client_id")]; ok && c.Secret == "" && c.Key == nil {
		return f.Get("client_id"), false, nil
	}
	return "", false, refuse("invalid_client", "client authentication required")
}

func (s *STS) checkSecret(id, secret string) *STSError {
	c, ok := s.c.Clients[id]
	if !ok || c.Secret == "" || c.Secret != secret {
		return refuse("invalid_client", "client %q: %s", id, s.quote("wrong secret", secret))
	}
	return nil
}

// checkClientAssertion checks RFC 7523 section 2.2 and 3 client
// authentication; every fault is invalid_client (section 3.2).
func (s *STS) checkClientAssertion(f url.Values) (string, *STSError) {
	if typ := f.Get("client_assertion_type"); typ != ClientAssertionTypeJWT {
		return "", refuse("invalid_client", "client_assertion_type %q", typ)
	}
	a := f.Get("client_assertion")
	if a == "" {
		return "", refuse("invalid_request", "client_assertion missing")
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(a, &claims); err != nil {
		return "", refuse("invalid_client", "%s", s.quote("client_assertion is not a JWT", a))
	}
	id := claims.Subject
	c, ok := s.c.Clients[id]
	switch {
	case !ok || c.Key == nil:
		return "", refuse("invalid_client", "client %q has no key", id)
	case claims.Issuer != id:
		return "", refuse("invalid_client", "client_assertion iss %q is not its sub %q", claims.Issuer, id)
	case f.Get("client_id") != "" && f.Get("client_id") != id:
		return "", refuse("invalid_client", "client_id %q is not the client_assertion's sub %q", f.Get("client_id"), id)
	}
	if err := s.verify(a, c.Key, s.c.TokenURL, true); err != nil {
		return "", refuse("invalid_client", "%s", s.quote("client_assertion: "+err.Error(), a))
	}
	return id, nil
}

// verify checks a JWT's signature with key, its exp (required), nbf, and
// its aud if aud is set; then, for an assertion (once), accepts its jti, if
// any, once. A subject token is not an assertion: it may be exchanged again.
func (s *STS) verify(tok string, key crypto.PublicKey, aud string, once bool) error {
	opts := []jwt.ParserOption{jwt.WithValidMethods(stsAlgs), jwt.WithExpirationRequired()}
	if aud != "" {
		opts = append(opts, jwt.WithAudience(aud))
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil }, opts...); err != nil {
		return err
	}
	if !once {
		return nil
	}
	jti, ok := claims["jti"].(string)
	if !ok {
		if _, has := claims["jti"]; has {
			return errors.New("jti is not a string")
		}
		return nil
	}
	exp, _ := claims.GetExpirationTime()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, until := range s.jtis {
		if !until.After(now) {
			delete(s.jtis, j)
		}
	}
	if _, used := s.jtis[jti]; used {
		return fmt.Errorf("jti %q already used", jti)
	}
	s.jtis[jti] = exp.Time
	return nil
}

// trusted returns the key of a JWT's issuer, unverified as yet.
func (s *STS) trusted(tok string) (jwt.RegisteredClaims, crypto.PublicKey, error) {
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		return claims, nil, errors.New("not a JWT")
	}
	s.mu.Lock()
	key, ok := s.issuers[claims.Issuer]
	s.mu.Unlock()
	if !ok {
		return claims, nil, fmt.Errorf("issuer %q not trusted", claims.Issuer)
	}
	if claims.Subject == "" {
		return claims, nil, errors.New("no sub")
	}
	return claims, key, nil
}

// jwtBearer runs RFC 7523 section 2.1's grant: every fault of the
// assertion is invalid_grant (section 3.1).
func (s *STS) jwtBearer(f url.Values) (map[string]any, *STSError) {
	a := f.Get("assertion")
	if a == "" {
		return nil, refuse("invalid_request", "assertion missing")
	}
	claims, key, err := s.trusted(a)
	if err == nil {
		err = s.verify(a, key, s.c.TokenURL, true)
	}
	if err != nil {
		return nil, refuse("invalid_grant", "%s", s.quote("assertion: "+err.Error(), a))
	}
	return s.issue(TokenTypeAccessToken, claims.Subject), nil
}

// exchange runs RFC 8693's token exchange. A subject or actor token that is
// missing, of a type not taken, or invalid is invalid_request (section
// 2.2.2), as is an unsupported requested_token_type; an audience or
// resource not served is invalid_target.
func (s *STS) exchange(f url.Values) (map[string]any, *STSError) {
	subject, e := s.exchangeToken(f, "subject_token", true)
	if e != nil {
		return nil, e
	}
	if _, e := s.exchangeToken(f, "actor_token", false); e != nil {
		return nil, e
	}
	issued := s.c.RequestedTokenTypes[0]
	if rt := f.Get("requested_token_type"); rt != "" {
		if !slices.Contains(s.c.RequestedTokenTypes, rt) {
			return nil, refuse("invalid_request", "requested_token_type %q not supported", rt)
		}
		issued = rt
	}
	for _, a := range f["audience"] {
		if s.c.Audiences != nil && !slices.Contains(s.c.Audiences, a) {
			return nil, refuse("invalid_target", "audience %q not served", a)
		}
	}
	for _, res := range f["resource"] {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return nil, refuse("invalid_target", "resource %q is not an absolute URI without a fragment", res)
		}
		if s.c.Resources != nil && !slices.Contains(s.c.Resources, res) {
			return nil, refuse("invalid_target", "resource %q not served", res)
		}
	}
	return s.issue(issued, subject), nil
}

// exchangeToken checks the token named (subject_token or actor_token) and
// its type, and returns its sub; "" for an actor token not given.
func (s *STS) exchangeToken(f url.Values, name string, required bool) (string, *STSError) {
	tok, typ := f.Get(name), f.Get(name+"_type")
	switch {
	case tok == "" && required:
		return "", refuse("invalid_request", "%s missing", name)
	case tok == "" && typ != "":
		return "", refuse("invalid_request", "%s_type without %s", name, name)
	case tok == "":
		return "", nil
	case typ == "":
		return "", refuse("invalid_request", "%s_type missing", name)
	case !slices.Contains(s.c.TokenTypes, typ):
		return "", refuse("invalid_request", "%s_type %q not supported", name, typ)
	}
	claims, key, err := s.trusted(tok)
	if err == nil {
		err = s.verify(tok, key, s.c.SubjectAudience, false)
	}
	if err != nil {
		return "", refuse("invalid_request", "%s", s.quote(name+": "+err.Error(), tok))
	}
	return claims.Subject, nil
}

// issue makes a token of type typ for sub, and the answer that carries it.
func (s *STS) issue(typ, sub string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := fmt.Sprintf("sts-%d-%s", len(s.issued)+1, base64.RawURLEncoding.EncodeToString([]byte(sub))) + "." + rand.Text()
	s.issued = append(s.issued, tok)
	ans := map[string]any{
		"access_token": tok,
		"token_type":   s.c.TokenType,
		"expires_in":   int(s.c.TTL.Seconds()),
	}
	if typ != "" {
		ans["issued_token_type"] = typ
	}
	return ans
}

// quote is msg, followed by v if the STS echoes what it refuses.
func (s *STS) quote(msg, v string) string {
	if s.c.Echo {
		return msg + ": " + v
	}
	return msg
}

// refuse returns the error code with a description: 401 for
// invalid_client, else 400 (RFC 6749 section 5.2).
func refuse(code, format string, a ...any) *STSError {
	status := http.StatusBadRequest
	if code == "invalid_client" {
		status = http.StatusUnauthorized
	}
	return &STSError{Status: status, Code: code, Description: fmt.Sprintf(format, a...)}
}

// stsError writes e as RFC 6749 section 5.2 says; a 401 names the scheme
// the client may use (section 5.2, invalid_client).
func stsError(w http.ResponseWriter, e *STSError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter/time.Second)))
	}
	body := map[string]string{"error": e.Code}
	if e.Description != "" {
		body["error_description"] = e.Description
	}
	writeJSON(w, e.Status, body)
}
