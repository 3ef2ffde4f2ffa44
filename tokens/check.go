package tokens

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// FieldError is a problem with one field of a source's configuration, as
// the Config types' Check methods report them.
type FieldError struct {
	// Field names the Config field, e.g. "TokenURL".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *FieldError) Error() string { return "tokens: " + e.Field + ": " + e.Problem }

// fieldErrors collects the problems of one Check.
type fieldErrors []error

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// url checks that raw is an absolute http or https URL.
func (f *fieldErrors) url(field, raw string) {
	if raw == "" {
		f.add(field, "required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		f.add(field, "want an absolute http or https URL, got %q", raw)
	}
}

// dottedPath checks a dotted JSON path such as data.access_token.
func (f *fieldErrors) dottedPath(field, path string) {
	if path != "" && (strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") || hasControl(path)) {
		f.add(field, "want a dotted path such as data.access_token, got %q", path)
	}
}

func (f fieldErrors) err() error { return errors.Join(f...) }

// Check reports every problem of c, each a *FieldError, joined; nil if
// NewJSONSource can use it.
func (c JSONConfig) Check() error {
	var f fieldErrors
	f.url("URL", c.URL)
	if c.ClientID.IsZero() {
		f.add("ClientID", "required")
	}
	if c.ClientSecret.IsZero() {
		f.add("ClientSecret", "required")
	}
	f.dottedPath("TokenField", c.TokenField)
	f.dottedPath("ExpiresInField", c.ExpiresInField)
	f.dottedPath("ExpiresAtField", c.ExpiresAtField)
	if c.DefaultTTL < 0 {
		f.add("DefaultTTL", "must not be negative, got %s", c.DefaultTTL)
	}
	return f.err()
}

// oauth2Reserved are the form parameters the OAuth2 source sets itself,
// some with a Grant only.
var oauth2Reserved = []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type",
	"assertion", "subject_token", "subject_token_type", "actor_token", "actor_token_type", "requested_token_type"}

// Check reports every problem of c, each a *FieldError, joined; nil if
// NewOAuth2Source can use it.
func (c OAuth2Config) Check() error {
	var f fieldErrors
	f.url("TokenURL", c.TokenURL)
	// With a Grant, the client may be a public one, without credentials;
	// with an assertion file, the assertion says who it is.
	switch {
	case !c.ClientID.IsZero():
	case c.Grant == nil && c.AssertionFile == nil:
		f.add("ClientID", "required")
	case !c.ClientSecret.IsZero():
		f.add("ClientID", "required with a ClientSecret: a secret alone authenticates no one")
	case c.Assertion != nil && c.Assertion.Issuer == "":
		f.add("ClientID", "required with an Assertion: it is the assertion's iss and sub")
	}
	switch {
	case c.Assertion != nil && c.AssertionFile != nil:
		f.add("AssertionFile", "not with an Assertion: the client authenticates with one")
	case c.Assertion == nil && c.AssertionFile == nil && c.ClientSecret.IsZero() && c.Grant == nil:
		f.add("ClientSecret", "required (or an Assertion)")
	case (c.Assertion != nil || c.AssertionFile != nil) && !c.ClientSecret.IsZero():
		f.add("ClientSecret", "not used with an Assertion")
	}
	if c.Assertion != nil {
		if err := c.Assertion.Check(); err != nil {
			f.add("Assertion", "%v", strings.TrimPrefix(err.Error(), "tokens: "))
		}
	}
	if c.AssertionFile != nil && c.AssertionFile.c.Path == "" {
		f.add("AssertionFile", "the client assertion file has no path")
	}
	if c.Grant != nil {
		c.Grant.check(c, &f)
	}
	for _, k := range oauth2Reserved {
		if c.Params.Has(k) {
			f.add("Params", "%q is set by the source", k)
		}
	}
	if c.Params.Has("scope") && len(c.Scopes) > 0 {
		f.add("Params", `"scope" is set by the source from Scopes`)
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			f.add("Scopes", "want scopes without spaces, got %q", s)
		}
	}
	if c.DefaultTTL < 0 {
		f.add("DefaultTTL", "must not be negative, got %s", c.DefaultTTL)
	}
	return f.err()
}

// Check reports every problem of c, each a *FieldError, joined; nil if
// NewFileSource can use it.
func (c FileConfig) Check() error {
	var f fieldErrors
	if c.Path == "" {
		f.add("Path", "required")
	}
	if c.DefaultTTL < 0 {
		f.add("DefaultTTL", "must not be negative, got %s", c.DefaultTTL)
	}
	return f.err()
}
