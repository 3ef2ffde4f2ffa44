package main

import (
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// injectMode describes one INJECT: how requests are authenticated, what the
// mode needs, and how its injector is built. Adding a mode is one file
// holding its injectMode and one entry in injectModes.
type injectMode struct {
	// name is the value of INJECT.
	name string
	// needsToken: the mode puts a token on requests, so TOKEN_SOURCE must
	// yield one.
	needsToken bool
	// signs: the mode signs bodies with SIGNING_KEY_FILE and sends no token.
	signs bool
	// bodies: the mode rewrites request bodies in memory.
	bodies bool
	// paygate: the mode seals calls with the merchant's Paygate passwords.
	paygate bool
	// check reports the problems of the mode's own settings; nil checks nothing.
	check func(c *Config, p *problems)
	// build constructs the injector once, at start-up, from the parts the
	// mode needs.
	build func(c Config, parts modeParts) proxy.Injector
}

// modeParts are what build made for the modes that need them.
type modeParts struct {
	// signer is set when the mode signs.
	signer *proxy.Signer
	// merchant is set when the mode uses Paygate.
	merchant func() *paygate.Merchant
}

// injectModes is every INJECT, in the order messages list them.
var injectModes = []injectMode{bearerMode, headerMode, jsonBodyMode, signatureMode, paygateMode, noneMode}

// defaultInject is INJECT when unset: bearer, or none when TOKEN_SOURCE
// yields no token.
func defaultInject(source string) string {
	k, ok := lookupSource(source)
	switch {
	case ok && !fetchesTokens(k):
		return noneMode.name
	case k.inject != "":
		return k.inject
	}
	return bearerMode.name
}

func lookupMode(name string) (injectMode, bool) {
	for _, m := range injectModes {
		if m.name == name {
			return m, true
		}
	}
	return injectMode{}, false
}

// modeNames lists the modes keep is true for; nil keeps them all.
func modeNames(keep func(injectMode) bool) string {
	return kindNames(injectModes, func(m injectMode) string { return m.name }, keep)
}

// checkInjection checks INJECT, what the mode needs of the token source, and
// the settings that go with it.
func (c *Config) checkInjection(p *problems, source sourceKind, sourceOK bool) {
	mode, ok := lookupMode(c.Inject) // an unknown mode: the checks of a mode that needs nothing
	if !ok {
		p.add("INJECT", "must be %s, got %q", modeNames(nil), c.Inject)
	}
	if mode.needsToken && sourceOK && !fetchesTokens(source) {
		p.add("INJECT", "%s needs a token: set %sTOKEN_SOURCE to %s, or use %s", c.Inject, envPrefix,
			sourceNames(fetchesTokens), modeNames(func(m injectMode) bool { return !m.needsToken }))
	}
	if mode.check != nil {
		mode.check(c, p)
	}
	p.dottedPath("JSON_EXPIRES_AT_FIELD", c.JSONExpiresAtField, false)
	if c.signs() {
		c.signingKey(nil, p)
		if c.SigningKeyID == "" {
			p.add("SIGNING_KEY_ID", "required for signing: it becomes payload.merchantKeyId")
		}
		if c.MerchantID == "" {
			p.add("MERCHANT_ID", "required for signing: it becomes merchant_id in the signature payload")
		}
	}
	if c.MaxReplayBody == 0 && (mode.bodies || c.SignPath != "" || c.PaygatePath != "") {
		p.add("MAX_REPLAY_BODY", "must be positive with %sINJECT=%s, %sSIGN_PATH or %sPAYGATE_PATH: bodies are rewritten in memory", envPrefix, c.Inject, envPrefix, envPrefix)
	}
	if c.SignPath != "" {
		if err := proxy.CheckEndpointPath(c.SignPath); err != nil {
			p.add("SIGN_PATH", "%v", err)
		}
	}
}

// signs reports whether a signing key is needed: INJECT signs, or SIGN_PATH
// serves the local signing endpoint.
func (c Config) signs() bool {
	m, _ := lookupMode(c.Inject)
	return m.signs || c.SignPath != ""
}

// injector builds the configured injector.
func (c Config) injector(parts modeParts) proxy.Injector {
	m, _ := lookupMode(c.Inject)
	return m.build(c, parts)
}
