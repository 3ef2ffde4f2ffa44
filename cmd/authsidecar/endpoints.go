package main

import "strings"

// checkEndpoints checks that the local endpoints, served on the proxy
// listener and never forwarded, do not overlap: each path is one
// endpoint's, and none lies under PAYGATE_PATH.
func (c *Config) checkEndpoints(p *problems) {
	type endpoint struct{ name, path string }
	var all []endpoint
	for _, e := range []endpoint{{"SIGN_PATH", c.SignPath}, {"HANDOFF_PATH", c.HandoffPath}, {"PAYGATE_PATH", c.PaygatePath}, {"SDK_AUTH_PATH", c.SDKAuthPath}, {"CLIENT_AUTH_TOKEN_PATH", c.ClientAuthTokenPath}} {
		if e.path != "" {
			all = append(all, e)
		}
	}
	for i, a := range all {
		for _, b := range all[:i] {
			switch {
			case a.path == b.path:
				p.add(a.name, "must differ from %s%s (%s)", envPrefix, b.name, b.path)
			case b.name == "PAYGATE_PATH" && strings.HasPrefix(a.path, b.path+"/"),
				a.name == "PAYGATE_PATH" && strings.HasPrefix(b.path, a.path+"/"):
				p.add(a.name, "overlaps %s%s (%s): the Paygate codec serves everything under it", envPrefix, b.name, b.path)
			}
		}
	}
}
