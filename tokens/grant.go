package tokens

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Grant types and token types of the grants an OAuth2Config may ask with in
// place of client credentials.
const (
	// JWTBearerGrantType is RFC 7523 section 2.1's grant: a JWT for a token.
	JWTBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// TokenExchangeGrantType is RFC 8693's grant: a token for a token.
	TokenExchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	// JWTTokenType is RFC 8693's token type of a JWT, the subject token's by
	// default.
	JWTTokenType = "urn:ietf:params:oauth:token-type:jwt"
)

// Grant is a grant asked with in place of client credentials: RFC 7523's JWT
// bearer grant (*JWTBearer) or RFC 8693's token exchange (*TokenExchange).
// Its parameters are made afresh for each token request, from files read
// then, so that a rotated file is used at the next one.
type Grant interface {
	// GrantType is the grant_type sent.
	GrantType() string
	// params returns the grant's form parameters for a request made at now,
	// to tokenURL by client id (either may be empty), and the secret values
	// among them, never to be echoed.
	params(ctx context.Context, id, tokenURL string, now time.Time) (url.Values, []string, error)
	// files are the files the grant reads, watched for a rotation.
	files() []*FileSource
	// check reports the grant's problems within c, as Check does.
	check(c OAuth2Config, f *fieldErrors)
}

// JWTBearer is RFC 7523's JWT bearer grant: the assertion is the JWT in File
// (a projected service-account token, a SPIFFE JWT-SVID, rotated by another
// process), or one the source signs with Signed for each request (the
// service-account key flow). Exactly one of the two is set.
type JWTBearer struct {
	File   *FileSource
	Signed *ClientAssertion
}

func (*JWTBearer) GrantType() string { return JWTBearerGrantType }

func (g *JWTBearer) params(ctx context.Context, id, tokenURL string, now time.Time) (url.Values, []string, error) {
	var assertion string
	var err error
	if g.Signed != nil {
		assertion, err = g.Signed.sign(id, tokenURL, now)
	} else {
		assertion, err = readJWTFile(ctx, g.File, "assertion file", now)
	}
	if err != nil {
		return nil, nil, err
	}
	return url.Values{"assertion": {assertion}}, jwtSecrets(assertion), nil
}

func (g *JWTBearer) files() []*FileSource {
	if g.File == nil {
		return nil
	}
	return []*FileSource{g.File}
}

func (g *JWTBearer) check(c OAuth2Config, f *fieldErrors) {
	switch {
	case (g.File == nil) == (g.Signed == nil):
		f.add("Grant", "the JWT bearer grant needs an assertion file or a key to sign one, not both")
	case g.Signed != nil:
		if err := g.Signed.Check(); err != nil {
			f.add("Grant", "%v", strings.TrimPrefix(err.Error(), "tokens: "))
		}
		if g.Signed.Issuer == "" && c.ClientID.IsZero() {
			// RFC 7523 section 3: iss and sub are required.
			f.add("Grant", "the signed assertion needs an Issuer, or a ClientID to stand for it")
		}
	case g.File.c.Path == "":
		f.add("Grant", "the assertion file has no path")
	}
}

// TokenExchange is RFC 8693's token exchange: the token in SubjectToken (a
// projected service-account token, rotated by the kubelet) for one of the
// provider's, with the one in ActorToken if set.
type TokenExchange struct {
	// SubjectToken is the file of the token exchanged. Required.
	SubjectToken *FileSource
	// SubjectTokenType is its type. If empty, JWTTokenType.
	SubjectTokenType string
	// ActorToken, if set, is the file of the token of the party acting for
	// the subject, of type ActorTokenType (required with it).
	ActorToken     *FileSource
	ActorTokenType string
	// RequestedTokenType, if set, is the type of token asked for.
	RequestedTokenType string
}

func (*TokenExchange) GrantType() string { return TokenExchangeGrantType }

func (g *TokenExchange) params(ctx context.Context, _, _ string, now time.Time) (url.Values, []string, error) {
	subject, err := readJWTFile(ctx, g.SubjectToken, "subject token file", now)
	if err != nil {
		return nil, nil, err
	}
	typ := g.SubjectTokenType
	if typ == "" {
		typ = JWTTokenType
	}
	v := url.Values{"subject_token": {subject}, "subject_token_type": {typ}}
	secrets := jwtSecrets(subject)
	if g.ActorToken != nil {
		actor, err := readJWTFile(ctx, g.ActorToken, "actor token file", now)
		if err != nil {
			return nil, nil, err
		}
		v.Set("actor_token", actor)
		v.Set("actor_token_type", g.ActorTokenType)
		secrets = append(secrets, jwtSecrets(actor)...)
	}
	if g.RequestedTokenType != "" {
		v.Set("requested_token_type", g.RequestedTokenType)
	}
	return v, secrets, nil
}

func (g *TokenExchange) files() []*FileSource {
	fs := []*FileSource{g.SubjectToken}
	if g.ActorToken != nil {
		fs = append(fs, g.ActorToken)
	}
	return fs
}

func (g *TokenExchange) check(_ OAuth2Config, f *fieldErrors) {
	if g.SubjectToken == nil || g.SubjectToken.c.Path == "" {
		f.add("Grant", "the token exchange needs a subject token file")
	}
	for _, t := range []struct{ name, v string }{{"subject token type", g.SubjectTokenType}, {"actor token type", g.ActorTokenType}, {"requested token type", g.RequestedTokenType}} {
		if t.v != "" && !isAbsoluteURI(t.v) {
			f.add("Grant", "the %s must be a URI (urn:ietf:params:oauth:token-type:…), got %s", t.name, echo(t.v))
		}
	}
	switch {
	case g.ActorToken != nil && g.ActorTokenType == "":
		f.add("Grant", "an actor token needs its type (RFC 8693 section 2.1)")
	case g.ActorToken == nil && g.ActorTokenType != "":
		f.add("Grant", "an actor token type without an actor token")
	}
}

// isAbsoluteURI reports whether s is an absolute URI, as token types are.
func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && !strings.ContainsAny(s, " \t\r\n")
}

// jwtSecrets are the values of a token that a provider's message must never
// show: the token, and its signature should the message cut it.
func jwtSecrets(tok string) []string {
	if i := strings.LastIndexByte(tok, '.'); i >= 0 && i+1 < len(tok) {
		return []string{tok, tok[i+1:]}
	}
	return []string{tok}
}

// errExpiredFile is an assertion or token file whose JWT has expired: it is
// not sent, the provider would only refuse it.
var errExpiredFile = errors.New("expired")

// readJWTFile reads the token in f for one request at now: refused when it
// is a JWT whose exp has passed, so that no request carries it. what names
// the file in errors, which never quote its content.
func readJWTFile(ctx context.Context, f *FileSource, what string, now time.Time) (string, error) {
	tok, err := f.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("tokens: %s %s: %w", what, f.c.Path, unwrapFileError(err))
	}
	if exp, ok := jwtExpiry(tok.Value); ok && !exp.After(now) {
		return "", fmt.Errorf("tokens: %s %s: the JWT %w at %s: the process that writes it (the kubelet, a SPIFFE helper) has not rotated it", what, f.c.Path, errExpiredFile, exp.UTC().Format(time.RFC3339))
	}
	return tok.Value, nil
}

// unwrapFileError drops the token file's own prefix from err's message.
func unwrapFileError(err error) error {
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "tokens: "), "token file: ")
	if errors.Is(err, errFileEmpty) || errors.Is(err, errFileControl) || errors.Is(err, errTooLarge) {
		return errors.New(strings.TrimPrefix(msg, "token file "))
	}
	return errors.New(msg)
}

// JWTClaims returns the iss and sub of the JWT in f, unverified: what the
// provider will know the sidecar by, for the shared cache's identity. It
// fails if the file does not hold a JWT with both.
func JWTClaims(f *FileSource) (iss, sub string, err error) {
	tok, err := f.Token(context.Background())
	if err != nil {
		return "", "", fmt.Errorf("tokens: %s: %w", f.c.Path, unwrapFileError(err))
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok.Value, &claims); err != nil || claims.Issuer == "" || claims.Subject == "" {
		return "", "", fmt.Errorf("tokens: %s does not hold a JWT with iss and sub", f.c.Path)
	}
	return claims.Issuer, claims.Subject, nil
}
