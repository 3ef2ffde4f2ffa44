package main

import (
	"fmt"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// sourceKind describes one TOKEN_SOURCE: the checks of its settings, how it
// is built, and what the rest of the sidecar may do with its tokens. Adding
// a source is one file holding its sourceKind and one entry in sourceKinds.
type sourceKind struct {
	// name is the value of TOKEN_SOURCE.
	name string
	// check reports the problems of the kind's own settings; nil checks nothing.
	check func(c *Config, p *problems)
	// build constructs the source once, at start-up. Nil for a kind that
	// fetches no token (requests go out without one).
	build func(c Config, b *builder) (tokens.Source, error)
	// keyed, in place of build, constructs a source of tokens per key (per
	// customer), held in a keyed cache.
	keyed func(c Config, b *builder) (tokens.KeyedSource, error)
	// inject is INJECT's default with this kind; empty means bearer.
	inject string
	// identity, if not nil, lets the shared cache hold the kind's tokens: it
	// names what makes two sidecars' tokens interchangeable (the provider, the
	// client, whatever changes the token asked for or read). Never a secret.
	identity func(c Config) ([]string, error)
}

// sourceKinds is every TOKEN_SOURCE, in the order messages list them.
var sourceKinds = []sourceKind{jsonSource, oauth2Source, jwtBearerSource, tokenExchangeSource, juspayCustomerSource, fileSource, noSource}

// noSource fetches nothing: requests go out as the app sent them, or signed.
var noSource = sourceKind{name: "none"}

// lookupSource returns the kind named name.
func lookupSource(name string) (sourceKind, bool) {
	for _, k := range sourceKinds {
		if k.name == name {
			return k, true
		}
	}
	return sourceKind{}, false
}

// kindNames lists the names of the kinds keep is true for (nil: all), as
// "a, b or c".
func kindNames[K any](kinds []K, name func(K) string, keep func(K) bool) string {
	var names []string
	for _, k := range kinds {
		if keep == nil || keep(k) {
			names = append(names, name(k))
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// sourceNames lists the kinds keep is true for; nil keeps them all.
func sourceNames(keep func(sourceKind) bool) string {
	return kindNames(sourceKinds, func(k sourceKind) string { return k.name }, keep)
}

// checkSource checks TOKEN_SOURCE and the settings of the kind it names.
func (c *Config) checkSource(p *problems) (sourceKind, bool) {
	kind, ok := lookupSource(c.TokenSource)
	switch {
	case c.TokenSource == "":
		p.add("TOKEN_SOURCE", "required: %s", sourceNames(nil))
	case !ok:
		p.add("TOKEN_SOURCE", "must be %s, got %q", sourceNames(nil), c.TokenSource)
	case kind.check != nil && !c.ownCredentials():
		// The route's own credentials are not used: each tenant's are
		// checked with the tenants (checkTenants).
	case kind.check != nil:
		kind.check(c, p)
	}
	c.checkGrantVars(p)
	return kind, ok
}

// fetchesTokens reports whether a kind yields tokens.
func fetchesTokens(k sourceKind) bool { return k.build != nil || k.keyed != nil }

// clientID reads CLIENT_ID or CLIENT_ID_FILE.
func (c Config) clientID() (string, error) {
	id, err := secret(c.ClientID, c.ClientIDFile).Read()
	if err != nil {
		return "", fmt.Errorf("%sCLIENT_ID_FILE: %w", envPrefix, err)
	}
	return id, nil
}

func secret(literal, file string) tokens.Secret {
	if file != "" {
		return tokens.File(file)
	}
	return tokens.Literal(literal)
}
