package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// grantKind is a grant other than client credentials, at an OAuth2 token
// endpoint: the variables only it reads, how it is made, and the identity
// of its subject for the shared cache.
type grantKind struct {
	// own lists the variables set that only this grant reads.
	own func(c Config) []string
	// make checks the grant's settings and makes it; nil with problems,
	// each naming one of own's variables or CLIENT_ASSERTION_KEY_FILE. b,
	// if not nil, watches its files.
	make func(c Config, b *builder, p *problems) tokens.Grant
	// identity is whom the provider will know the tokens' subject as
	// (iss and sub, never the token), for the shared cache.
	identity func(c Config) ([]string, error)
}

// jwtBearerSource exchanges a JWT for a token (RFC 7523 §2.1): a projected
// service-account token or a SPIFFE JWT-SVID from ASSERTION_FILE, or one the
// sidecar signs with CLIENT_ASSERTION_KEY_FILE as ASSERTION_ISSUER.
var jwtBearerSource = oauth2Kind("jwt-bearer", &jwtBearerGrant)

var jwtBearerGrant = grantKind{
	own: func(c Config) []string {
		return setVars(map[string]string{"ASSERTION_FILE": c.AssertionFile, "ASSERTION_ISSUER": c.AssertionIssuer, "ASSERTION_SUBJECT": c.AssertionSubject, "ASSERTION_AUDIENCE": c.AssertionAudience})
	},
	make: func(c Config, b *builder, p *problems) tokens.Grant {
		if c.AssertionIssuer == "" {
			for name, v := range map[string]string{"ASSERTION_SUBJECT": c.AssertionSubject, "ASSERTION_AUDIENCE": c.AssertionAudience} {
				if v != "" {
					p.add(name, "only with %sASSERTION_ISSUER: the claims of an assertion the sidecar signs", envPrefix)
				}
			}
		}
		switch {
		case c.AssertionFile != "" && c.AssertionIssuer != "":
			p.add("ASSERTION_ISSUER", "not with %sASSERTION_FILE: the assertion is the file's, or one the sidecar signs as %sASSERTION_ISSUER", envPrefix, envPrefix)
		case c.AssertionFile != "":
			if f := c.jwtFile("ASSERTION_FILE", c.AssertionFile, "", b, p); f != nil {
				return &tokens.JWTBearer{File: f}
			}
		case c.AssertionIssuer != "":
			if c.AssertionKeyFile == "" {
				p.add("CLIENT_ASSERTION_KEY_FILE", "required with %sASSERTION_ISSUER: the key that signs the assertion", envPrefix)
				return nil
			}
			if a := c.assertionKey(b.logger(), p); a != nil {
				a.Issuer, a.Subject, a.Audience = c.AssertionIssuer, c.AssertionSubject, c.AssertionAudience
				return &tokens.JWTBearer{Signed: a}
			}
		default:
			p.add("ASSERTION_FILE", "required with %sTOKEN_SOURCE=jwt-bearer: the JWT exchanged for a token (a projected service-account token), or set %sASSERTION_ISSUER and %sCLIENT_ASSERTION_KEY_FILE for one the sidecar signs", envPrefix, envPrefix, envPrefix)
		}
		return nil
	},
	identity: func(c Config) ([]string, error) {
		if c.AssertionFile == "" {
			return []string{"signed", c.AssertionIssuer, c.AssertionSubject, c.AssertionAudience}, nil
		}
		iss, sub, err := tokens.JWTClaims(tokens.NewFileSource(tokens.FileConfig{Path: c.AssertionFile}))
		if err != nil {
			return nil, fmt.Errorf("%sSHARED_CACHE keys the tokens by the assertion's issuer and subject: %sASSERTION_FILE: %w", envPrefix, envPrefix, err)
		}
		return []string{"assertion", iss, sub}, nil
	},
}

// tokenExchangeSource exchanges a token for a token (RFC 8693): a projected
// service-account token from SUBJECT_TOKEN_FILE for the provider's.
var tokenExchangeSource = oauth2Kind("token-exchange", &tokenExchangeGrant)

var tokenExchangeGrant = grantKind{
	own: func(c Config) []string {
		return setVars(map[string]string{"SUBJECT_TOKEN_FILE": c.SubjectTokenFile, "ACTOR_TOKEN_FILE": c.ActorTokenFile, "ACTOR_TOKEN_TYPE": c.ActorTokenType, "REQUESTED_TOKEN_TYPE": c.RequestedTokenType})
	},
	make: func(c Config, b *builder, p *problems) tokens.Grant {
		for name, v := range map[string]string{"SUBJECT_TOKEN_TYPE": c.SubjectTokenType, "ACTOR_TOKEN_TYPE": c.ActorTokenType, "REQUESTED_TOKEN_TYPE": c.RequestedTokenType} {
			if u, err := url.Parse(v); v != "" && (err != nil || u.Scheme == "" || strings.ContainsAny(v, " \t\r\n")) {
				p.add(name, "must be a URI, such as urn:ietf:params:oauth:token-type:jwt (RFC 8693 section 3)")
			}
		}
		if c.SubjectTokenType == "" {
			p.add("SUBJECT_TOKEN_TYPE", "required: the subject token's type, such as urn:ietf:params:oauth:token-type:jwt")
		}
		switch {
		case c.ActorTokenFile != "" && c.ActorTokenType == "":
			p.add("ACTOR_TOKEN_TYPE", "required with %sACTOR_TOKEN_FILE (RFC 8693 section 2.1)", envPrefix)
		case c.ActorTokenFile == "" && c.ActorTokenType != "":
			p.add("ACTOR_TOKEN_TYPE", "only with %sACTOR_TOKEN_FILE", envPrefix)
		}
		subject := c.jwtFile("SUBJECT_TOKEN_FILE", c.SubjectTokenFile, "required with %sTOKEN_SOURCE=token-exchange: the token exchanged (a projected service-account token)", b, p)
		var actor *tokens.FileSource
		if c.ActorTokenFile != "" {
			actor = c.jwtFile("ACTOR_TOKEN_FILE", c.ActorTokenFile, "", b, p)
		}
		if subject == nil || (c.ActorTokenFile != "" && actor == nil) || p.names("SUBJECT_TOKEN_TYPE") || p.names("ACTOR_TOKEN_TYPE") || p.names("REQUESTED_TOKEN_TYPE") {
			return nil
		}
		return &tokens.TokenExchange{
			SubjectToken: subject, SubjectTokenType: c.SubjectTokenType,
			ActorToken: actor, ActorTokenType: c.ActorTokenType,
			RequestedTokenType: c.RequestedTokenType,
		}
	},
	identity: func(c Config) ([]string, error) {
		iss, sub, err := tokens.JWTClaims(tokens.NewFileSource(tokens.FileConfig{Path: c.SubjectTokenFile}))
		if err != nil {
			return nil, fmt.Errorf("%sSHARED_CACHE keys the tokens by the subject token's issuer and subject: %sSUBJECT_TOKEN_FILE: %w", envPrefix, envPrefix, err)
		}
		parts := []string{c.SubjectTokenType, iss, sub, c.RequestedTokenType}
		if c.ActorTokenFile != "" {
			aiss, asub, err := tokens.JWTClaims(tokens.NewFileSource(tokens.FileConfig{Path: c.ActorTokenFile}))
			if err != nil {
				return nil, fmt.Errorf("%sSHARED_CACHE keys the tokens by the actor token's issuer and subject too: %sACTOR_TOKEN_FILE: %w", envPrefix, envPrefix, err)
			}
			parts = append(parts, c.ActorTokenType, aiss, asub)
		}
		return parts, nil
	},
}

// grantKinds are the grants other than client credentials, by TOKEN_SOURCE.
var grantKinds = map[string]*grantKind{jwtBearerSource.name: &jwtBearerGrant, tokenExchangeSource.name: &tokenExchangeGrant}

// checkGrantVars refuses the variables of a grant that TOKEN_SOURCE does
// not name, and a client assertion file without its auth style: they would
// be silently ignored.
func (c *Config) checkGrantVars(p *problems) {
	if c.OAuth2AuthStyle != "client-assertion-file" && c.ClientAssertionFile != "" {
		p.add("CLIENT_ASSERTION_FILE", "not used: set %sOAUTH2_AUTH_STYLE=client-assertion-file", envPrefix)
	}
	for name, g := range grantKinds {
		if c.TokenSource == name {
			continue
		}
		for _, v := range g.own(*c) {
			p.add(v, "not used: set %sTOKEN_SOURCE=%s", envPrefix, name)
		}
	}
}

// setVars returns the names of vars (name → value) that are set, sorted.
func setVars(vars map[string]string) []string {
	var names []string
	for name, v := range vars {
		if v != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}
