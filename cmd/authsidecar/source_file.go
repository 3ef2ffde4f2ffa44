package main

import "github.com/authsidecar/authsidecar/tokens"

// fileSource reads the token from a file that something else keeps fresh (a
// projected service-account token, a Vault agent), and watches it.
var fileSource = sourceKind{
	name: "file",
	check: func(c *Config, p *problems) {
		p.fields(fileConfig(*c).Check(), map[string]string{"Path": "TOKEN_FILE", "DefaultTTL": "TOKEN_DEFAULT_TTL"}, "TOKEN_SOURCE="+c.TokenSource)
		if c.TokenFile != "" {
			if _, err := tokens.ReadFile(c.TokenFile); err != nil {
				p.add("TOKEN_FILE", "%v", err)
			}
		}
	},
	build: func(c Config, b *builder) (tokens.Source, error) {
		cfg := fileConfig(c)
		cfg.Logger = b.log
		fs := tokens.NewFileSource(cfg)
		b.changed = fs.Changed()
		b.background = append(b.background, fs.Watch)
		return fs, nil
	},
}

func fileConfig(c Config) tokens.FileConfig {
	return tokens.FileConfig{Path: c.TokenFile, DefaultTTL: c.TokenDefaultTTL}
}
