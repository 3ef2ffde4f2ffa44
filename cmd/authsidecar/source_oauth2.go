package main

import (
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// oauth2Source is the OAuth2 client-credentials grant (RFC 6749 §4.4), with
// a client secret or a private_key_jwt client assertion (RFC 7523).
var oauth2Source = sourceKind{
	name: "oauth2",
	check: func(c *Config, p *problems) {
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
		var assertion *tokens.ClientAssertion
		if c.OAuth2AuthStyle == "private-key-jwt" {
			if c.ClientSecret != "" || c.ClientSecretFile != "" {
				p.add("CLIENT_SECRET", "not used with %sOAUTH2_AUTH_STYLE=private-key-jwt: unset it (and %sCLIENT_SECRET_FILE)", envPrefix, envPrefix)
			}
			if assertion = c.clientAssertion(nil, p); assertion == nil {
				// The key is missing or unusable, as reported: the client
				// authentication's fields are not checked again.
				p.fields(oauth2Config(*c, nil, nil).Check(), withoutClientAuth, "TOKEN_SOURCE="+c.TokenSource)
				return
			}
		} else {
			p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
		}
		p.fields(oauth2Config(*c, nil, assertion).Check(), oauth2Fields, "TOKEN_SOURCE="+c.TokenSource)
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		var p problems
		var assertion *tokens.ClientAssertion
		if c.OAuth2AuthStyle == "private-key-jwt" {
			assertion = c.clientAssertion(b.log, &p)
		}
		return tokens.NewOAuth2Source(oauth2Config(c, b.tokenClient, assertion)), p.err()
	},
	identity: func(c Config) ([]string, error) {
		id, err := c.clientID()
		scopes := slices.Compact(slices.Sorted(slices.Values(c.scopes())))
		return []string{id, strings.Join(scopes, " "), c.tokenParams().Encode()}, err
	},
}

// oauth2Fields names the variable of each field of tokens.OAuth2Config.
var oauth2Fields = map[string]string{
	"TokenURL": "TOKEN_URL", "ClientID": "CLIENT_ID", "ClientSecret": "CLIENT_SECRET", "Assertion": "CLIENT_ASSERTION_ALG",
	"Scopes": "SCOPES", "Params": "TOKEN_PARAMS", "DefaultTTL": "TOKEN_DEFAULT_TTL",
}

// withoutClientAuth is oauth2Fields with the client authentication's fields
// named after the key file, whose problem is already reported.
var withoutClientAuth = func() map[string]string {
	m := maps.Clone(oauth2Fields)
	m["ClientSecret"], m["Assertion"] = "CLIENT_ASSERTION_KEY_FILE", "CLIENT_ASSERTION_KEY_FILE"
	return m
}()

// oauth2Config is the source's configuration; with assertion, the client
// authenticates with it (private_key_jwt), and CLIENT_SECRET must be unset.
func oauth2Config(c Config, client *http.Client, assertion *tokens.ClientAssertion) tokens.OAuth2Config {
	return tokens.OAuth2Config{
		TokenURL: c.TokenURL,
		ClientID: secret(c.ClientID, c.ClientIDFile), ClientSecret: secret(c.ClientSecret, c.ClientSecretFile),
		Scopes: c.scopes(), Params: c.tokenParams(), AuthStyle: authStyles[c.OAuth2AuthStyle],
		DefaultTTL: c.TokenDefaultTTL, Client: client, Assertion: assertion,
	}
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
	return &tokens.ClientAssertion{Key: key, Alg: c.AssertionAlg, KeyID: c.AssertionKeyID}
}
