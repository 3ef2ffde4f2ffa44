package main

import (
	"strings"

	"github.com/authsidecar/authsidecar/proxy"
)

// bearerMode sets "Authorization: Bearer <token>".
var bearerMode = injectMode{
	name:       "bearer",
	needsToken: true,
	header:     func(Config) string { return "Authorization" },
	build:      func(Config, modeParts) (proxy.Injector, error) { return proxy.Bearer(), nil },
}

// headerMode sets INJECT_HEADER to INJECT_PREFIX and the token.
var headerMode = injectMode{
	name:       "header",
	needsToken: true,
	header:     func(c Config) string { return c.InjectHeader },
	check: func(c *Config, p *problems) {
		if !validHeaderName(c.InjectHeader) {
			p.add("INJECT_HEADER", "not a valid header name: %q", c.InjectHeader)
		}
		if strings.ContainsFunc(c.InjectPrefix, isControl) {
			p.add("INJECT_PREFIX", "must not hold control characters")
		}
	},
	build: func(c Config, _ modeParts) (proxy.Injector, error) {
		return proxy.Header(c.InjectHeader, c.InjectPrefix), nil
	},
}

// noneMode adds nothing: requests go out as the app sent them.
var noneMode = injectMode{
	name:  "none",
	build: func(Config, modeParts) (proxy.Injector, error) { return proxy.None(), nil },
}
