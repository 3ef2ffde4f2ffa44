package main

import (
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// unsettableHeaders are the headers SET_HEADERS may not name beside the
// framing ones: hop-by-hop headers, meant for the next proxy only, and
// Expect, which the sidecar answers itself.
var unsettableHeaders = map[string]bool{
	"Proxy-Authorization": true, "Proxy-Authenticate": true, "Expect": true,
}

// setHeaders is every fixed header of upstream requests, replacing the
// app's values: SET_HEADERS, and MERCHANT_ID in MERCHANT_ID_HEADER when both
// are set. It reports each problem naming its variable, never quoting a
// value, and returns the headers when there is none; nil when there are no
// fixed headers.
func (c Config) setHeaders(p *problems) http.Header {
	var injected string // the header the mode sets
	if m, ok := lookupMode(c.Inject); ok && m.header != nil {
		injected = http.CanonicalHeaderKey(m.header(c))
	}
	out := c.parseSetHeaders(injected, p)
	h := c.MerchantIDHeader
	if h == "" {
		return out
	}
	key := http.CanonicalHeaderKey(h)
	switch {
	case !httpguts.ValidHeaderFieldName(h), !validHeaderName(h), unsettableHeaders[key], key == injected,
		c.RequireHeader != "" && strings.EqualFold(h, c.RequireHeader):
		p.add("MERCHANT_ID_HEADER", "%q is not a header name of your own: HTTP, the sidecar or %sINJECT sets it", h, envPrefix)
	case out[key] != nil:
		p.add("MERCHANT_ID_HEADER", "%q is also in %sSET_HEADERS: set it in one", h, envPrefix)
	case strings.ContainsFunc(c.MerchantID, isControl):
		p.add("MERCHANT_ID", "holds a control character: it is sent in %q", h)
	case c.MerchantID != "":
		if out == nil {
			out = http.Header{}
		}
		out[key] = []string{c.MerchantID}
	}
	return out
}

// parseSetHeaders parses SET_HEADERS, "name=value,name=value"; injected is
// the header the mode sets, which SET_HEADERS may not.
func (c Config) parseSetHeaders(injected string, p *problems) http.Header {
	if strings.TrimSpace(c.SetHeaders) == "" {
		return nil
	}
	out, seen := http.Header{}, map[string]bool{}
	var bad []string // one problem lists them all: loadConfig reports one a variable
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	for i, entry := range strings.Split(c.SetHeaders, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		name, value, ok := strings.Cut(entry, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		key := http.CanonicalHeaderKey(name)
		twice := seen[key]
		seen[key] = true
		switch {
		case !ok:
			add("entry %d: want name=value,name=value", i+1)
		case !httpguts.ValidHeaderFieldName(name):
			add("entry %d: the name is not a valid header name", i+1)
		case !validHeaderName(name), unsettableHeaders[key]:
			add("%q is a header HTTP itself or the sidecar sets", name)
		case key == injected:
			add("%q is set by %sINJECT=%s", name, envPrefix, c.Inject)
		case c.RequireHeader != "" && strings.EqualFold(name, c.RequireHeader):
			add("%q is %sREQUIRE_HEADER, which is never forwarded", name, envPrefix)
		case twice:
			add("%q is given twice", name)
		case value == "":
			add("%q has no value", name)
		case strings.ContainsFunc(value, isControl):
			add("the value of %q holds a control character", name)
		default:
			out[key] = []string{value}
		}
	}
	if bad != nil {
		p.add("SET_HEADERS", "%s", strings.Join(bad, "; "))
		return nil
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
