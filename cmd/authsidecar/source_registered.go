package main

import (
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// registeredSource mints a token pair and registers it with the provider
// (BNP Paribas Axepta's AuthToken and AuthLabel); the hand-off endpoint
// answers what Axepta's mobile SDK expects.
var registeredSource = sourceKind{
	name: "registered",
	check: func(c *Config, p *problems) {
		p.url("TOKEN_URL", c.TokenURL)
		if c.MerchantID == "" {
			p.add("MERCHANT_ID", "required with %sTOKEN_SOURCE=registered: tokens are registered for it", envPrefix)
		}
		if c.TokenTTL <= 0 || c.TokenTTL > 24*time.Hour {
			p.add("TOKEN_TTL", "must be positive and at most 24h (the provider's limit), got %s", c.TokenTTL)
		}
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		return tokens.NewRegisteredSource(tokens.RegisteredConfig{
			URL: c.TokenURL, MerchantID: c.MerchantID, TTL: c.TokenTTL, Client: b.tokenClient,
		}), nil
	},
	identity: func(c Config) ([]string, error) {
		return []string{c.MerchantID, c.TokenTTL.String()}, nil
	},
	handoff: proxy.HandoffAxepta,
}
