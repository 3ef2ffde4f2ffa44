package main

import (
	"log/slog"

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
	// tenantCredentials: the mode's own credentials may be each tenant's,
	// from its directory (see tenants.go), built per tenant.
	tenantCredentials bool
	// header, if not nil, names the header the mode sets, which SET_HEADERS
	// may not set.
	header func(c Config) string
	// check reports the problems of the mode's own settings; nil checks nothing.
	check func(c *Config, p *problems)
	// own lists the variables set that only this mode reads: with another
	// INJECT each is refused as not used. Nil reads none.
	own func(c Config) []string
	// build constructs the injector once, at start-up, from the parts the
	// mode needs. Its error names the variables at fault.
	build func(c Config, parts modeParts) (proxy.Injector, error)
}

// modeParts are what build made for the modes that need them.
type modeParts struct {
	// log receives what happens later to the files a mode reads.
	log *slog.Logger
	// signer is set when the mode signs.
	signer *proxy.Signer
	// merchant is set when the mode uses Paygate.
	merchant func() *paygate.Merchant
}

// injectModes is every INJECT, in the order messages list them.
var injectModes = []injectMode{bearerMode, headerMode, jsonBodyMode, signatureMode, paygateMode, basicMode, noneMode}

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
	switch {
	case mode.check == nil:
	case mode.tenantCredentials && !c.ownCredentials():
		// The route has no credentials of its own: each tenant's are
		// checked with the tenants (checkTenants).
	default:
		mode.check(c, p)
	}
	for _, m := range injectModes {
		if ok && m.name != mode.name && m.own != nil {
			for _, name := range m.own(*c) {
				p.add(name, "not used: set %sINJECT=%s", envPrefix, m.name)
			}
		}
	}
	p.dottedPath("JSON_EXPIRES_AT_FIELD", c.JSONExpiresAtField, false)
	if c.signs() && c.ownCredentials() {
		c.checkSigning(p)
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

// checkSigning checks the merchant's signing key and the ids that go with it.
func (c *Config) checkSigning(p *problems) {
	c.signingKey(nil, p)
	if c.SigningKeyID == "" {
		p.add("SIGNING_KEY_ID", "required for signing: it becomes payload.merchantKeyId")
	}
	if c.MerchantID == "" {
		p.add("MERCHANT_ID", "required for signing: it becomes merchant_id in the signature payload")
	}
}

// signs reports whether a signing key is needed: INJECT signs, or SIGN_PATH
// serves the local signing endpoint.
func (c Config) signs() bool {
	m, _ := lookupMode(c.Inject)
	return m.signs || c.SignPath != ""
}

// injector builds the configured injector.
func (c Config) injector(parts modeParts) (proxy.Injector, error) {
	m, _ := lookupMode(c.Inject)
	return m.build(c, parts)
}
