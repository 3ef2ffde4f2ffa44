package main

import "github.com/authsidecar/authsidecar/tokens"

// fileSource reads the token from a file that something else keeps fresh (a
// projected service-account token, a Vault agent), and watches it.
var fileSource = sourceKind{
	name: "file",
	check: func(c *Config, p *problems) {
		if c.TokenFile == "" {
			p.add("TOKEN_FILE", "required with %sTOKEN_SOURCE=file", envPrefix)
		} else if _, err := tokens.ReadFile(c.TokenFile); err != nil {
			p.add("TOKEN_FILE", "%v", err)
		}
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		fs := tokens.NewFileSource(tokens.FileConfig{Path: c.TokenFile, DefaultTTL: c.TokenDefaultTTL, Logger: b.log})
		b.changed = fs.Changed()
		b.background = append(b.background, fs.Watch)
		return fs, nil
	},
}
