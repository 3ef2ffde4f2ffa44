package main

import (
	"net/http"

	"github.com/authsidecar/authsidecar/tokens"
)

// jsonSource posts {"client_id","client_secret"} as JSON and reads the token
// from configurable fields of the answer (TezPay and its like).
var jsonSource = sourceKind{
	name: "json",
	check: func(c *Config, p *problems) {
		p.oneOf("CLIENT_ID", c.ClientID, c.ClientIDFile)
		p.oneOf("CLIENT_SECRET", c.ClientSecret, c.ClientSecretFile)
		if c.OAuth2AuthStyle == "private-key-jwt" {
			p.add("OAUTH2_AUTH_STYLE", "private-key-jwt goes with %sTOKEN_SOURCE=oauth2, not json", envPrefix)
		}
		p.fields(jsonConfig(*c, nil).Check(), jsonFields, "TOKEN_SOURCE="+c.TokenSource)
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		return tokens.NewJSONSource(jsonConfig(c, b.tokenClient)), nil
	},
	identity: func(c Config) ([]string, error) {
		id, err := c.clientID()
		return []string{id, c.JSONTokenField, c.JSONExpiresInField, c.JSONExpiresAtField}, err
	},
}

// jsonFields names the variable of each field of tokens.JSONConfig.
var jsonFields = map[string]string{
	"URL": "TOKEN_URL", "ClientID": "CLIENT_ID", "ClientSecret": "CLIENT_SECRET", "TokenField": "JSON_TOKEN_FIELD",
	"ExpiresInField": "JSON_EXPIRES_IN_FIELD", "ExpiresAtField": "JSON_EXPIRES_AT_FIELD", "DefaultTTL": "TOKEN_DEFAULT_TTL",
}

func jsonConfig(c Config, client *http.Client) tokens.JSONConfig {
	return tokens.JSONConfig{
		URL:      c.TokenURL,
		ClientID: secret(c.ClientID, c.ClientIDFile), ClientSecret: secret(c.ClientSecret, c.ClientSecretFile),
		TokenField: c.JSONTokenField, ExpiresInField: c.JSONExpiresInField, ExpiresAtField: c.JSONExpiresAtField,
		DefaultTTL: c.TokenDefaultTTL, Client: client,
	}
}
