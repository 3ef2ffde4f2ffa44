package main

import (
	"net/http"
	"strings"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// juspayCustomerSource fetches each customer's clientAuthToken from
// Juspay's Customers API, authenticated with the merchant's API key: a
// token per customer, held in the keyed cache.
var juspayCustomerSource = sourceKind{
	name:   "juspay-customer",
	inject: jsonBodyMode.name,
	check: func(c *Config, p *problems) {
		p.oneOf("API_KEY", c.APIKey, c.APIKeyFile)
		c.checkAPIKey(p)
		p.fields(juspayConfig(*c, nil).Check(), juspayFields, "TOKEN_SOURCE="+c.TokenSource)
	},
	keyed: func(c Config, b *builder) (tokens.KeyedSource, error) {
		return tokens.NewJuspayCustomerSource(juspayConfig(c, b.tokenClient)), nil
	},
}

// juspayFields names the variable of each field of tokens.JuspayConfig.
var juspayFields = map[string]string{"URL": "TOKEN_URL", "APIKey": "API_KEY", "MerchantID": "MERCHANT_ID"}

func juspayConfig(c Config, client *http.Client) tokens.JuspayConfig {
	return tokens.JuspayConfig{URL: c.TokenURL, APIKey: secret(c.APIKey, c.APIKeyFile), MerchantID: c.MerchantID, Client: client}
}

// checkAPIKey checks the API key's value, read now: it is the Basic user
// name of every call to Juspay, so a key Juspay could never be sent would
// fail every fetch. The problem never quotes the key.
func (c *Config) checkAPIKey(p *problems) {
	if p.names("API_KEY") || p.names("API_KEY_FILE") {
		return
	}
	name := "API_KEY"
	if c.APIKeyFile != "" {
		name = "API_KEY_FILE"
	}
	key, err := secret(c.APIKey, c.APIKeyFile).Read()
	if err == nil {
		err = proxy.CheckBasicUser(key)
	}
	if err != nil {
		p.add(name, "%s (the API key is the Basic user name of Juspay's API)", strings.TrimPrefix(err.Error(), "proxy: "))
	}
}

// checkKeyed checks the settings of tokens per customer: the cache's size,
// where the customer is in a body, and the endpoint that answers a
// customer's token.
func (c *Config) checkKeyed(p *problems, source sourceKind, sourceOK bool) {
	keyed := sourceOK && source.keyed != nil
	if c.TokenCacheSize < 1 {
		p.add("TOKEN_CACHE_SIZE", "must be at least 1, got %d", c.TokenCacheSize)
	}
	if c.BodyCustomerField != "" {
		p.dottedPath("BODY_CUSTOMER_FIELD", c.BodyCustomerField, false)
	}
	if c.ClientAuthTokenPath != "" {
		if err := proxy.CheckEndpointPath(c.ClientAuthTokenPath); err != nil {
			p.add("CLIENT_AUTH_TOKEN_PATH", "%v", err)
		}
	}
	if keyed {
		if m, ok := lookupMode(c.Inject); ok && m.needsToken && m.name != jsonBodyMode.name {
			p.add("INJECT", "%s puts one token on every request, but %sTOKEN_SOURCE=%s gives a token per customer: use json-body (the customer is read from the body), or a mode without a token (basic, none) with %sCLIENT_AUTH_TOKEN_PATH",
				c.Inject, envPrefix, c.TokenSource, envPrefix)
		}
		if c.HandoffPath != "" {
			p.add("HANDOFF_PATH", "hands out one token, but %sTOKEN_SOURCE=%s gives a token per customer: use %sCLIENT_AUTH_TOKEN_PATH", envPrefix, c.TokenSource, envPrefix)
		}
		// Without a token on requests, the endpoint is the tokens' only use,
		// and no body is read for a customer.
		if m, ok := lookupMode(c.Inject); ok && !m.needsToken && !p.names("TOKEN_SOURCE") {
			if c.ClientAuthTokenPath == "" {
				p.add("CLIENT_AUTH_TOKEN_PATH", "required with %sTOKEN_SOURCE=%s and %sINJECT=%s: nothing else would use the customers' tokens", envPrefix, c.TokenSource, envPrefix, c.Inject)
			}
			if c.BodyCustomerField != "" {
				p.add("BODY_CUSTOMER_FIELD", "not used with %sINJECT=%s: bodies are read for a customer with json-body only", envPrefix, c.Inject)
			}
		}
	}
	if !keyed && sourceOK {
		for name, v := range map[string]string{"CLIENT_AUTH_TOKEN_PATH": c.ClientAuthTokenPath, "BODY_CUSTOMER_FIELD": c.BodyCustomerField} {
			if v != "" {
				p.add(name, "needs tokens per customer: %sTOKEN_SOURCE=%s", envPrefix, sourceNames(func(k sourceKind) bool { return k.keyed != nil }))
			}
		}
	}
}
