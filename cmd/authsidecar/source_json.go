package main

import "github.com/authsidecar/authsidecar/tokens"

// jsonSource posts {"client_id","client_secret"} as JSON and reads the token
// from configurable fields of the answer (TezPay and its like).
var jsonSource = sourceKind{
	name: "json",
	check: func(c *Config, p *problems) {
		p.url("TOKEN_URL", c.TokenURL)
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
		p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
		if c.OAuth2AuthStyle == "private-key-jwt" {
			p.add("OAUTH2_AUTH_STYLE", "private-key-jwt goes with %sTOKEN_SOURCE=oauth2, not json", envPrefix)
		}
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		return tokens.NewJSONSource(tokens.JSONConfig{
			URL:      c.TokenURL,
			ClientID: secret(c.ClientID, c.ClientIDFile), ClientSecret: secret(c.ClientSecret, c.ClientSecretFile),
			TokenField: c.JSONTokenField, ExpiresInField: c.JSONExpiresInField, ExpiresAtField: c.JSONExpiresAtField,
			DefaultTTL: c.TokenDefaultTTL, Client: b.tokenClient,
		}), nil
	},
	identity: func(c Config) ([]string, error) {
		id, err := c.clientID()
		return []string{id, c.JSONTokenField, c.JSONExpiresInField, c.JSONExpiresAtField}, err
	},
}
