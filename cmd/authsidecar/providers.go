package main

import (
	"maps"
	"slices"
	"strings"
)

// provider is one PROVIDER preset: the settings a provider documents, filled
// in when the environment does not set them. Adding a preset is one file
// holding its provider and one entry in providers. A preset never supplies a
// secret.
type provider struct {
	// name is the value of PROVIDER.
	name string
	// settings returns the preset's values, by variable name without the
	// prefix, given get, which reads a setting as the environment (or an
	// earlier value of the preset) has it. Settings the environment sets
	// are not replaced.
	settings func(get func(name string) string) map[string]string
}

// providers is every PROVIDER, in the order messages list them.
var providers = []provider{tezpayProvider, juspayProvider, alternativeProvider, axeptaProvider}

func lookupProvider(name string) (provider, bool) {
	for _, p := range providers {
		if p.name == name {
			return p, true
		}
	}
	return provider{}, false
}

// providerNames lists every preset, as "a, b or c".
func providerNames() string {
	return kindNames(providers, func(p provider) string { return p.name }, nil)
}

// withPreset returns environ with the settings of the PROVIDER it names
// added where environ sets none, and the names (with the prefix) the preset
// filled in. An unknown PROVIDER adds nothing: check reports it.
func withPreset(environ map[string]string) (map[string]string, map[string]bool) {
	p, ok := lookupProvider(environ[envPrefix+"PROVIDER"])
	if !ok {
		return environ, nil
	}
	out := maps.Clone(environ)
	filled := map[string]bool{}
	get := func(name string) string { return out[envPrefix+name] }
	// A preset's values may depend on each other (TOKEN_URL on UPSTREAM_URL):
	// apply them in name order until nothing changes.
	for range 3 {
		values := p.settings(get)
		changed := false
		for _, name := range slices.Sorted(maps.Keys(values)) {
			key := envPrefix + name
			if _, set := environ[key]; set || values[name] == "" || out[key] == values[name] {
				continue
			}
			out[key], filled[key], changed = values[name], true, true
		}
		if !changed {
			break
		}
	}
	return out, filled
}

// join appends a path to a base URL, with one slash between.
func join(base, path string) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + path
}
