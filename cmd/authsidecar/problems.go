package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/authsidecar/authsidecar/tokens"
)

// problems collects configuration errors, each naming its variable.
type problems []error

// err joins the problems; nil when there are none.
func (p problems) err() error { return errors.Join(p...) }

// fields adds the problems a tokens Config's Check found, each under the
// variable that names gives its field (TOKEN_SOURCE for a field it lacks),
// unless a problem already names that variable. A required field is said to
// be required with the setting that asks for it (TOKEN_SOURCE=json).
func (p *problems) fields(err error, names map[string]string, with string) {
	if err == nil {
		return
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		name, problem := "TOKEN_SOURCE", strings.TrimPrefix(e.Error(), "tokens: ")
		var fe *tokens.FieldError
		if errors.As(e, &fe) {
			if n, ok := names[fe.Field]; ok {
				name, problem = n, fe.Problem
			}
		}
		if rest, ok := strings.CutPrefix(problem, "required"); ok {
			problem = "required with " + envPrefix + with + rest
		}
		if !p.names(name) {
			p.add(name, "%s", problem)
		}
	}
}

// names reports whether a problem names the variable envPrefix+name.
func (p problems) names(name string) bool {
	for _, e := range p {
		if strings.HasPrefix(e.Error(), envPrefix+name+":") {
			return true
		}
	}
	return false
}

// addRaw adds a problem of the variable named in full (a route's).
func (p *problems) addRaw(variable, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", variable, fmt.Sprintf(format, args...)))
}

func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s%s: %s", envPrefix, name, fmt.Sprintf(format, args...)))
}

func (p *problems) url(name, raw string) *url.URL {
	if raw == "" {
		p.add(name, "required")
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(name, "want an absolute http or https URL, got %q", raw)
		return nil
	}
	return u
}

func (p *problems) addr(name, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || (n == 0 && port != "0") {
		p.add(name, "want host:port with a port from 0 to 65535, got %q", addr)
	}
}

func (p *problems) oneOf(name, literal, file string) {
	switch {
	case literal != "" && file != "":
		p.add(name, "set either %s%s or %s%s_FILE, not both", envPrefix, name, envPrefix, name)
	case literal == "" && file == "":
		p.add(name, "required (or %s%s_FILE)", envPrefix, name)
	case file != "":
		if _, err := tokens.ReadFile(file); err != nil { // readable now; re-read at each use
			p.add(name+"_FILE", "%v", err)
		}
	}
}

// dottedPath checks a dotted JSON path such as payload.clientAuthToken.
func (p *problems) dottedPath(name, path string, required bool) {
	if path == "" {
		if required {
			p.add(name, "required")
		}
		return
	}
	if slices.Contains(strings.Split(path, "."), "") || !utf8.ValidString(path) ||
		strings.ContainsFunc(path, isControl) {
		p.add(name, "want a dotted path such as payload.clientAuthToken, got %q", path)
	}
}

func (p *problems) positive(name string, d time.Duration) {
	if d <= 0 {
		p.add(name, "must be positive, got %s", d)
	}
}

// isControl reports whether r is an ASCII control character, tab included:
// no setting's value may hold one.
func isControl(r rune) bool { return r < ' ' || r == 0x7f }
