package main

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// oauth2Source is the OAuth2 client-credentials grant (RFC 6749 §4.4), with
// a client secret, a private_key_jwt client assertion (RFC 7523) or one from
// a file.
var oauth2Source = oauth2Kind("oauth2", nil)

// oauth2Kind is a sourceKind asking an OAuth2 token endpoint with grant
// (nil: client credentials), the client authenticated as clientAuth says.
// Its files (assertions, subject tokens) are read for each request, and
// watched: a rotation retries a failed fetch at once (CacheOptions.Rotated).
func oauth2Kind(name string, grant *grantKind) sourceKind {
	return sourceKind{
		name: name,
		check: func(c *Config, p *problems) {
			var g tokens.Grant
			if grant != nil {
				if g = grant.make(*c, nil, p); g == nil {
					c.clientAuth(nil, nil, true, p)
					return // the grant's problems are reported
				}
			}
			assertion, file, ok := c.clientAuth(nil, nil, grant != nil, p)
			fields := oauth2Fields
			if !ok {
				// The key is missing or unusable, as reported: the client
				// authentication's fields are not checked again.
				fields = withoutClientAuth
			}
			p.fields(oauth2Config(*c, nil, assertion, file, g).Check(), fields, "TOKEN_SOURCE="+c.TokenSource)
		},
		build: func(c Config, b *builder) (tokens.Source, error) {
			var p problems
			var g tokens.Grant
			if grant != nil {
				g = grant.make(c, b, &p)
			}
			assertion, file, _ := c.clientAuth(b.log, b, grant != nil, &p)
			return tokens.NewOAuth2Source(oauth2Config(c, b.tokenClient, assertion, file, g)), p.err()
		},
		identity: func(c Config) ([]string, error) {
			id, err := c.clientID()
			scopes := slices.Compact(slices.Sorted(slices.Values(c.scopes())))
			parts := []string{id, strings.Join(scopes, " "), c.tokenParams().Encode()}
			if err != nil {
				return nil, err
			}
			if c.OAuth2AuthStyle == "client-assertion-file" {
				// The client is whom its assertion says, with or
				// without CLIENT_ID.
				iss, sub, err := tokens.JWTClaims(tokens.NewFileSource(tokens.FileConfig{Path: c.ClientAssertionFile}))
				if err != nil {
					return nil, fmt.Errorf("%sSHARED_CACHE keys the tokens by the client assertion's issuer and subject: %sCLIENT_ASSERTION_FILE: %w", envPrefix, envPrefix, err)
				}
				parts = append(parts, "client-assertion", iss, sub)
			}
			if grant == nil {
				return parts, nil
			}
			own, err := grant.identity(c)
			return append(parts, own...), err
		},
	}
}

// oauth2Fields names the variable of each field of tokens.OAuth2Config.
var oauth2Fields = map[string]string{
	"TokenURL": "TOKEN_URL", "ClientID": "CLIENT_ID", "ClientSecret": "CLIENT_SECRET", "Assertion": "CLIENT_ASSERTION_ALG",
	"AssertionFile": "CLIENT_ASSERTION_FILE", "Scopes": "SCOPES", "Params": "TOKEN_PARAMS", "DefaultTTL": "TOKEN_DEFAULT_TTL",
	"Grant": "TOKEN_SOURCE",
}

// withoutClientAuth is oauth2Fields with the client authentication's fields
// named after the key file, whose problem is already reported.
var withoutClientAuth = func() map[string]string {
	m := maps.Clone(oauth2Fields)
	m["ClientSecret"], m["Assertion"], m["AssertionFile"] = "CLIENT_ASSERTION_KEY_FILE", "CLIENT_ASSERTION_KEY_FILE", "CLIENT_ASSERTION_FILE"
	return m
}()

// oauth2Config is the source's configuration; with assertion or file, the
// client authenticates with it, and CLIENT_SECRET must be unset.
func oauth2Config(c Config, client *http.Client, assertion *tokens.ClientAssertion, file *tokens.FileSource, g tokens.Grant) tokens.OAuth2Config {
	return tokens.OAuth2Config{
		TokenURL: c.TokenURL,
		ClientID: secret(c.ClientID, c.ClientIDFile), ClientSecret: secret(c.ClientSecret, c.ClientSecretFile),
		Scopes: c.scopes(), Params: c.tokenParams(), AuthStyle: authStyles[c.OAuth2AuthStyle],
		DefaultTTL: c.TokenDefaultTTL, Client: client, Assertion: assertion, AssertionFile: file, Grant: g,
	}
}

// clientAuth checks and makes how the client authenticates, by
// OAUTH2_AUTH_STYLE: a signed assertion (private-key-jwt), one from a file
// (client-assertion-file), or its secret. With a grant other than client
// credentials (grant), the client may have none of them. ok is false when
// the assertion's key or file is missing or unusable. b, if not nil, watches
// the file.
func (c Config) clientAuth(log *slog.Logger, b *builder, grant bool, p *problems) (assertion *tokens.ClientAssertion, file *tokens.FileSource, ok bool) {
	// A public client (with a grant) or one authenticated by an assertion
	// file may go without: its client_id is sent if set. A signed assertion
	// is the client id's.
	required := c.OAuth2AuthStyle == "private-key-jwt" || (!grant && c.OAuth2AuthStyle != "client-assertion-file")
	if required || c.ClientID != "" || c.ClientIDFile != "" {
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
	}
	switch c.OAuth2AuthStyle {
	case "private-key-jwt", "client-assertion-file":
		if c.ClientSecret != "" || c.ClientSecretFile != "" {
			p.add("CLIENT_SECRET", "not used with %sOAUTH2_AUTH_STYLE=%s: unset it (and %sCLIENT_SECRET_FILE)", envPrefix, c.OAuth2AuthStyle, envPrefix)
		}
		if c.OAuth2AuthStyle == "private-key-jwt" {
			assertion = c.clientAssertion(log, p)
			return assertion, nil, assertion != nil
		}
		file = c.jwtFile("CLIENT_ASSERTION_FILE", c.ClientAssertionFile, "required with %sOAUTH2_AUTH_STYLE=client-assertion-file: the JWT the client authenticates with (a projected service-account token)", b, p)
		return nil, file, file != nil
	case "auto", "header", "params":
		if !grant || c.ClientSecret != "" || c.ClientSecretFile != "" {
			p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
		}
	}
	return nil, nil, true
}

// clientAssertion loads CLIENT_ASSERTION_KEY_FILE for private_key_jwt client
// authentication; log receives the key file's later reload failures.
func (c Config) clientAssertion(log *slog.Logger, p *problems) *tokens.ClientAssertion {
	if c.AssertionKeyFile == "" {
		p.add("CLIENT_ASSERTION_KEY_FILE", "required with %sOAUTH2_AUTH_STYLE=private-key-jwt", envPrefix)
		return nil
	}
	return c.assertionKey(log, p)
}

// assertionKey loads CLIENT_ASSERTION_KEY_FILE, which signs assertions.
func (c Config) assertionKey(log *slog.Logger, p *problems) *tokens.ClientAssertion {
	key, err := tokens.LoadKeyFile(c.AssertionKeyFile, log)
	if err != nil {
		p.add("CLIENT_ASSERTION_KEY_FILE", "%v", err)
		return nil
	}
	return &tokens.ClientAssertion{Key: key, Alg: c.AssertionAlg, KeyID: c.AssertionKeyID}
}

// jwtFile is the file of variable name, read for each token request: its
// readability is checked now. b, if not nil, watches it for a rotation,
// beside the servers. required is the problem of an empty name.
func (c Config) jwtFile(name, path, required string, b *builder, p *problems) *tokens.FileSource {
	if path == "" {
		p.add(name, required, envPrefix)
		return nil
	}
	if _, err := tokens.ReadFile(path); err != nil {
		p.add(name, "%v", err)
		return nil
	}
	if b == nil {
		return tokens.NewFileSource(tokens.FileConfig{Path: path})
	}
	if b.rotated == nil {
		b.rotated = make(chan struct{}, 1)
	}
	f := tokens.NewFileSource(tokens.FileConfig{Path: path, Logger: b.log, Changed: b.rotated})
	b.background = append(b.background, f.Watch)
	return f
}
