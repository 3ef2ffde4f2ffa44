package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/tokens"
)

// paygateMode seals each call in Computop Paygate's envelope, as BNP
// Paribas Axepta wants its server-to-server calls: the merchant's passwords
// are the credential, so it sends no token.
var paygateMode = injectMode{
	name:              "paygate",
	paygate:           true,
	bodies:            true, // a POST's form is read, sealed and sent in its place
	tenantCredentials: true, // each tenant's paygate_key and paygate_hmac_key
	check: func(c *Config, p *problems) {
		if k, ok := lookupSource(c.TokenSource); ok && k.build != nil {
			p.add("TOKEN_SOURCE", "must be none with %sINJECT=paygate: the Paygate passwords are the credential, got %q", envPrefix, c.TokenSource)
		}
	},
	build: func(_ Config, parts modeParts) (proxy.Injector, error) { return proxy.Paygate(parts.merchant), nil },
}

// paygateCiphers maps PAYGATE_CIPHER to the cipher built from the
// encryption password.
var paygateCiphers = map[string]func(key []byte) (paygate.Cipher, error){
	"blowfish": paygate.NewBlowfish,
	"aes":      paygate.NewAES,
}

// usesPaygate reports whether the merchant's Paygate passwords are needed:
// INJECT=paygate, PAYGATE_PATH or SDK_AUTH_PATH.
func (c Config) usesPaygate() bool {
	m, _ := lookupMode(c.Inject)
	return m.paygate || c.PaygatePath != "" || c.SDKAuthPath != ""
}

// checkPaygate checks the Paygate settings, when something uses them.
func (c *Config) checkPaygate(p *problems) {
	if c.PaygatePath != "" {
		if err := proxy.CheckEndpointPath(c.PaygatePath); err != nil {
			p.add("PAYGATE_PATH", "%v", err)
		} else if strings.HasSuffix(c.PaygatePath, "/") {
			// The codec serves PAYGATE_PATH + "/encrypt": with /paygate/ it
			// would be /paygate//encrypt, and /paygate/encrypt forwarded.
			p.add("PAYGATE_PATH", "must not end with /: the codec serves %q and %q under it, got %q", "/encrypt", "/decrypt", c.PaygatePath)
		}
	}
	if !c.usesPaygate() {
		for name, v := range map[string]string{"PAYGATE_KEY_FILE": c.PaygateKeyFile, "PAYGATE_HMAC_KEY_FILE": c.PaygateHMACKeyFile} {
			if v != "" {
				p.add(name, "not used: set %sINJECT=paygate, %sPAYGATE_PATH or %sSDK_AUTH_PATH", envPrefix, envPrefix, envPrefix)
			}
		}
		return
	}
	if c.ownCredentials() {
		c.checkPaygateMerchant(p)
	} else if _, ok := paygateCiphers[c.PaygateCipher]; !ok {
		p.add("PAYGATE_CIPHER", "must be blowfish or aes, got %q", c.PaygateCipher)
	}
}

// checkPaygateMerchant checks the merchant's id and Paygate passwords.
func (c *Config) checkPaygateMerchant(p *problems) {
	if c.MerchantID == "" {
		p.add("MERCHANT_ID", "required with Paygate: it is the MerchantID of every call")
	} else if _, err := paygate.Encode(paygate.Params{{Key: "MerchantID", Value: c.MerchantID}}); err != nil {
		p.add("MERCHANT_ID", "must not hold '&', '=' or control characters: Paygate does not escape inside Data")
	}
	c.paygateMerchant(nil, p)
}

// paygateMerchant loads the merchant's Paygate passwords, reloaded when
// their files change; log receives the reloads' failures.
func (c Config) paygateMerchant(log *slog.Logger, p *problems) func() *paygate.Merchant {
	newCipher, ok := paygateCiphers[c.PaygateCipher]
	if !ok {
		p.add("PAYGATE_CIPHER", "must be blowfish or aes, got %q", c.PaygateCipher)
	}
	if c.PaygateKeyFile == "" {
		p.add("PAYGATE_KEY_FILE", "required with Paygate: the merchant's encryption password")
	}
	if !ok || c.PaygateKeyFile == "" {
		return nil
	}
	// Each file on its own first, so that a problem names its variable.
	if raw, err := tokens.ReadFile(c.PaygateKeyFile); err != nil {
		p.add("PAYGATE_KEY_FILE", "%v", err)
	} else if _, err := newCipher(bytes.TrimSpace(raw)); err != nil {
		p.add("PAYGATE_KEY_FILE", "%v (PAYGATE_CIPHER is %s)", err, c.PaygateCipher)
	}
	if c.PaygateHMACKeyFile != "" {
		if raw, err := tokens.ReadFile(c.PaygateHMACKeyFile); err != nil {
			p.add("PAYGATE_HMAC_KEY_FILE", "%v", err)
		} else if len(bytes.TrimSpace(raw)) == 0 {
			p.add("PAYGATE_HMAC_KEY_FILE", "the file is empty")
		}
	}
	if p.names("PAYGATE_KEY_FILE") || p.names("PAYGATE_HMAC_KEY_FILE") {
		return nil
	}
	paths := []string{c.PaygateKeyFile}
	if c.PaygateHMACKeyFile != "" {
		paths = append(paths, c.PaygateHMACKeyFile)
	}
	id := c.MerchantID
	w, err := tokens.Watch("Paygate password files", paths, func(files [][]byte, _ **paygate.Merchant) (*paygate.Merchant, error) {
		c, err := newCipher(bytes.TrimSpace(files[0]))
		if err != nil {
			return nil, err
		}
		var hmacKey []byte
		if len(files) > 1 {
			if hmacKey = bytes.TrimSpace(files[1]); len(hmacKey) == 0 {
				return nil, errors.New("paygate: the HMAC password file is empty")
			}
		}
		return paygate.NewMerchant(id, c, hmacKey), nil
	}, log)
	if err != nil {
		p.add("PAYGATE_KEY_FILE", "%v", err) // the files changed since they were checked
		return nil
	}
	return w.Get
}
