package main

import (
	"net/http"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// registeredSource mints a token pair and registers it with the provider
// (BNP Paribas Axepta's AuthToken and AuthLabel); the hand-off endpoint
// answers what Axepta's mobile SDK expects.
var registeredSource = sourceKind{
	name: "registered",
	check: func(c *Config, p *problems) {
		p.fields(registeredConfig(*c, nil).Check(), registeredFields, c.TokenSource)
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		return tokens.NewRegisteredSource(registeredConfig(c, b.tokenClient)), nil
	},
	identity: func(c Config) ([]string, error) {
		return []string{c.MerchantID, c.TokenTTL.String()}, nil
	},
	handoff: proxy.HandoffAxepta,
}

// registeredFields names the variable of each field of tokens.RegisteredConfig.
var registeredFields = map[string]string{"URL": "TOKEN_URL", "MerchantID": "MERCHANT_ID", "TTL": "TOKEN_TTL"}

func registeredConfig(c Config, client *http.Client) tokens.RegisteredConfig {
	return tokens.RegisteredConfig{URL: c.TokenURL, MerchantID: c.MerchantID, TTL: c.TokenTTL, Client: client}
}
