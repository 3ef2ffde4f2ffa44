package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// literalSecrets are the settings whose value is a secret: -check says
// where they came from, never what they are. Secrets given as files
// (…_FILE) are shown as their paths.
var literalSecrets = map[string]bool{
	"CLIENT_SECRET": true, "BASIC_USER": true, "BASIC_PASSWORD": true, "API_KEY": true,
}

// writeEffective writes, one line per setting that has a value, the
// configuration c that environ gave, and where each value came from: the
// environment, the PROVIDER preset, or the default.
func writeEffective(w io.Writer, environ map[string]string, c Config) {
	_, filled := withPreset(environ)
	v := reflect.ValueOf(c)
	for i, f := range reflect.VisibleFields(v.Type()) {
		name, ok := f.Tag.Lookup("env")
		if !ok {
			continue
		}
		key := envPrefix + name
		value := fmt.Sprint(v.Field(i).Interface())
		_, set := environ[key]
		if !set && (value == "" || v.Field(i).IsZero() && !filled[key]) {
			continue
		}
		origin := "default"
		switch {
		case set:
			origin = "environment"
		case filled[key]:
			origin = "preset " + c.Provider
		}
		if literalSecrets[name] && value != "" {
			value = "[secret: not shown]"
		}
		fmt.Fprintf(w, "%s=%s (%s)\n", key, strings.ReplaceAll(value, "\n", `\n`), origin)
	}
}

// writeSetup writes the effective configuration of every route: without
// ROUTES as writeEffective does, with ROUTES under a "route NAME:" line
// each, its variables named as they were set.
func writeSetup(w io.Writer, st setup) {
	if !st.routed() {
		writeEffective(w, st.environ[defaultRoute], st.routes[0].cfg)
		return
	}
	for _, r := range st.routes {
		fmt.Fprintf(w, "route %s:\n", r.name)
		var b strings.Builder
		writeEffective(&b, st.environ[r.name], r.cfg)
		for line := range strings.Lines(b.String()) {
			fmt.Fprint(w, "  "+routeProblem(errors.New(line), r.name, st.own[r.name]).Error())
		}
	}
}
