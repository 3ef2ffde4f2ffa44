package main

import (
	"crypto/rsa"
	"log/slog"
	"strings"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// jsonBodyMode writes the token (and its expiry) into fields of the JSON
// body: Juspay's payload.clientAuthToken and payload.authExpiry.
var jsonBodyMode = injectMode{
	name:       "json-body",
	needsToken: true,
	bodies:     true,
	check: func(c *Config, p *problems) {
		p.dottedPath("BODY_TOKEN_FIELD", c.BodyTokenField, true)
		p.dottedPath("BODY_EXPIRY_FIELD", c.BodyExpiryField, false)
		if tok, exp := c.BodyTokenField+".", c.BodyExpiryField+"."; c.BodyExpiryField != "" && (strings.HasPrefix(tok, exp) || strings.HasPrefix(exp, tok)) {
			p.add("BODY_EXPIRY_FIELD", "%q overlaps %sBODY_TOKEN_FIELD %q: the two must be separate fields", c.BodyExpiryField, envPrefix, c.BodyTokenField)
		}
	},
	build: func(c Config, _ modeParts) (proxy.Injector, error) {
		return proxy.JSONBody(c.BodyTokenField, c.BodyExpiryField), nil
	},
}

// signatureMode signs each JSON body with the merchant's RSA key (Juspay's
// merchantKeyId, signaturePayload and signature); it sends no token.
var signatureMode = injectMode{
	name:              "signature",
	signs:             true,
	bodies:            true,
	tenantCredentials: true, // each tenant's signing_key.pem
	build:             func(_ Config, parts modeParts) (proxy.Injector, error) { return parts.signer, nil },
}

// signingKey loads SIGNING_KEY_FILE, an RSA private key; log receives the
// file's later reload failures.
func (c Config) signingKey(log *slog.Logger, p *problems) *tokens.KeyFile {
	if c.SigningKeyFile == "" {
		p.add("SIGNING_KEY_FILE", "required for signing (%sINJECT=signature or %sSIGN_PATH)", envPrefix, envPrefix)
		return nil
	}
	key, err := tokens.LoadKeyFile(c.SigningKeyFile, log)
	if err != nil {
		p.add("SIGNING_KEY_FILE", "%v", err)
		return nil
	}
	if _, ok := key.Signer().(*rsa.PrivateKey); !ok {
		p.add("SIGNING_KEY_FILE", "want an RSA private key, got %T", key.Signer())
		return nil
	}
	return key
}
