package main

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// oauth2Source is the OAuth2 client-credentials grant (RFC 6749 §4.4), with
// a client secret or a private_key_jwt client assertion (RFC 7523).
var oauth2Source = sourceKind{
	name: "oauth2",
	check: func(c *Config, p *problems) {
		p.url("TOKEN_URL", c.TokenURL)
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
		if c.OAuth2AuthStyle != "private-key-jwt" {
			p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
			return
		}
		if c.ClientSecret != "" || c.ClientSecretFile != "" {
			p.add("CLIENT_SECRET", "not used with %sOAUTH2_AUTH_STYLE=private-key-jwt: unset it (and %sCLIENT_SECRET_FILE)", envPrefix, envPrefix)
		}
		c.clientAssertion(nil, p)
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		var p problems
		cfg := tokens.OAuth2Config{
			TokenURL: c.TokenURL,
			ClientID: secret(c.ClientID, c.ClientIDFile), ClientSecret: secret(c.ClientSecret, c.ClientSecretFile),
			Scopes: c.scopes(), Params: c.tokenParams(), AuthStyle: authStyles[c.OAuth2AuthStyle],
			DefaultTTL: c.TokenDefaultTTL, Client: b.tokenClient,
		}
		if c.OAuth2AuthStyle == "private-key-jwt" {
			cfg.Assertion = c.clientAssertion(b.log, &p)
		}
		return tokens.NewOAuth2Source(cfg), p.err()
	},
	identity: func(c Config) ([]string, error) {
		id, err := c.clientID()
		scopes := slices.Compact(slices.Sorted(slices.Values(c.scopes())))
		return []string{id, strings.Join(scopes, " "), c.tokenParams().Encode()}, err
	},
}

// clientAssertion loads CLIENT_ASSERTION_KEY_FILE for private_key_jwt client
// authentication; log receives the key file's later reload failures.
func (c Config) clientAssertion(log *slog.Logger, p *problems) *tokens.ClientAssertion {
	if c.AssertionKeyFile == "" {
		p.add("CLIENT_ASSERTION_KEY_FILE", "required with %sOAUTH2_AUTH_STYLE=private-key-jwt", envPrefix)
		return nil
	}
	key, err := tokens.LoadKeyFile(c.AssertionKeyFile, log)
	if err != nil {
		p.add("CLIENT_ASSERTION_KEY_FILE", "%v", err)
		return nil
	}
	a := &tokens.ClientAssertion{Key: key, Alg: c.AssertionAlg, KeyID: c.AssertionKeyID}
	if err := a.Check(); err != nil {
		p.add("CLIENT_ASSERTION_ALG", "%v", err)
	}
	return a
}
