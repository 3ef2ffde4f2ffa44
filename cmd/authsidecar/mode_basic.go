package main

import (
	"log/slog"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// basicMode sets "Authorization: Basic base64(user:password)" from
// BASIC_USER and BASIC_PASSWORD, or their files: Juspay's server API (the
// API key as user, no password), and the many APIs that take a static key
// this way. The credentials are encoded once, and again when a file
// changes; they are the credential, so the mode sends no token.
var basicMode = injectMode{
	name:              "basic",
	tenantCredentials: true,
	header:            func(Config) string { return "Authorization" },
	check: func(c *Config, p *problems) {
		// A source of tokens per customer may go with it: those tokens are
		// handed out at CLIENT_AUTH_TOKEN_PATH, never put on requests.
		if k, ok := lookupSource(c.TokenSource); ok && k.build != nil {
			p.add("TOKEN_SOURCE", "must be none with %sINJECT=basic: the user name and password are the credential, got %q", envPrefix, c.TokenSource)
		}
		c.basicAuth(nil, p)
	},
	own: func(c Config) []string {
		var set []string
		for _, v := range []struct{ name, value string }{
			{"BASIC_USER", c.BasicUser}, {"BASIC_USER_FILE", c.BasicUserFile},
			{"BASIC_PASSWORD", c.BasicPassword}, {"BASIC_PASSWORD_FILE", c.BasicPasswordFile},
		} {
			if v.value != "" {
				set = append(set, v.name)
			}
		}
		return set
	},
	build: func(c Config, parts modeParts) (proxy.Injector, error) {
		var p problems
		auth := c.basicAuth(parts.log, &p)
		if err := p.err(); err != nil {
			return nil, err
		}
		return proxy.Basic(auth), nil
	},
}

// basicAuth reads the Basic credentials, re-encoded when their files
// change; log receives the failures of later changes. Each problem names its
// variable and never quotes a value.
func (c Config) basicAuth(log *slog.Logger, p *problems) func() *proxy.BasicAuth {
	p.oneOf("BASIC_USER", c.BasicUser, c.BasicUserFile)
	if c.BasicPassword != "" && c.BasicPasswordFile != "" {
		p.add("BASIC_PASSWORD", "set either %sBASIC_PASSWORD or %sBASIC_PASSWORD_FILE, not both", envPrefix, envPrefix)
	}
	if p.names("BASIC_USER") || p.names("BASIC_USER_FILE") || p.names("BASIC_PASSWORD") {
		return nil
	}
	user, userVar := tokens.Literal(c.BasicUser), "BASIC_USER"
	if c.BasicUserFile != "" {
		user, userVar = tokens.File(c.BasicUserFile), "BASIC_USER_FILE"
	}
	password, passwordVar := tokens.Literal(c.BasicPassword), "BASIC_PASSWORD"
	if c.BasicPasswordFile != "" {
		password, passwordVar = tokens.File(c.BasicPasswordFile), "BASIC_PASSWORD_FILE"
	}
	// Each value on its own first, so that a problem names its variable.
	if v, err := user.Read(); err != nil {
		p.add(userVar, "%v", err)
	} else if err := proxy.CheckBasicUser(v); err != nil {
		p.add(userVar, "%v", err)
	}
	if v, err := password.Read(); err != nil {
		p.add(passwordVar, "%v", err)
	} else if err := proxy.CheckBasicPassword(v); err != nil {
		p.add(passwordVar, "%v", err)
	}
	if p.names(userVar) || p.names(passwordVar) {
		return nil
	}
	w, err := tokens.WatchSecrets("Basic credential files", []tokens.Secret{user, password}, func(v []string) (*proxy.BasicAuth, error) {
		return proxy.NewBasicAuth(v[0], v[1])
	}, log)
	if err != nil { // a file changed since it was read
		if c.BasicUserFile == "" {
			userVar = passwordVar
		}
		p.add(userVar, "%v", err)
		return nil
	}
	return w.Get
}
