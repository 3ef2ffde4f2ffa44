package main

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestSetHeadersValid(t *testing.T) {
	tests := []struct {
		name   string
		source string
		env    map[string]string
		want   http.Header
	}{
		{"Juspay's merchant", "none", map[string]string{"SET_HEADERS": "x-merchantid=stock"}, http.Header{"X-Merchantid": {"stock"}}},
		{"spaces, an empty entry, '=' in a value", "none", map[string]string{"SET_HEADERS": " X-A = 1 ,, x-b=k=v= ,"}, http.Header{"X-A": {"1"}, "X-B": {"k=v="}}},
		{"Authorization when the mode sets another header", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token", "SET_HEADERS": "Authorization=Basic eDp5"}, http.Header{"Authorization": {"Basic eDp5"}}},
		{"Authorization with no injection", "none", map[string]string{"SET_HEADERS": "authorization=Token t"}, http.Header{"Authorization": {"Token t"}}},
		{"unset", "none", nil, nil},
		{"blank", "none", map[string]string{"SET_HEADERS": " , "}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(minimal(tc.source, tc.env))
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			if got := built(t, c).proxy.SetHeaders; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("proxy SetHeaders = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetHeadersProblems(t *testing.T) {
	tests := []struct {
		name   string
		source string
		env    map[string]string
		want   []string // what the one problem naming SET_HEADERS says, in order
	}{
		{"no '='", "none", map[string]string{"SET_HEADERS": "x-merchantid: s3cr3t"}, []string{"entry 1: want name=value"}},
		{"invalid name", "none", map[string]string{"SET_HEADERS": "x-a=1,x merchant=s3cr3t"}, []string{"entry 2: the name is not a valid header name"}},
		{"empty name", "none", map[string]string{"SET_HEADERS": "=s3cr3t"}, []string{"entry 1: the name is not a valid header name"}},
		{"framing", "none", map[string]string{"SET_HEADERS": "content-length=5,Transfer-Encoding=chunked"}, []string{`"content-length" is a header HTTP itself`, `"Transfer-Encoding" is a header HTTP itself`}},
		{"hop-by-hop", "none", map[string]string{"SET_HEADERS": "connection=close,proxy-authorization=Basic s3cr3t,te=trailers"}, []string{`"connection"`, `"proxy-authorization"`, `"te"`}},
		{"Host", "none", map[string]string{"SET_HEADERS": "host=api.example"}, []string{`"host" is a header HTTP itself`}},
		{"Expect", "none", map[string]string{"SET_HEADERS": "Expect=100-continue"}, []string{`"Expect" is a header HTTP itself or the sidecar sets`}},
		{"Authorization with bearer", "json", map[string]string{"SET_HEADERS": "AUTHORIZATION=Bearer s3cr3t"}, []string{`"AUTHORIZATION" is set by AUTHSIDECAR_INJECT=bearer`}},
		{"the header mode's header", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token", "SET_HEADERS": "x-api-token=s3cr3t"}, []string{`"x-api-token" is set by AUTHSIDECAR_INJECT=header`}},
		{"REQUIRE_HEADER", "none", map[string]string{"REQUIRE_HEADER": "X-Authsidecar-Request", "SET_HEADERS": "x-authsidecar-request=1"}, []string{"is AUTHSIDECAR_REQUIRE_HEADER"}},
		{"twice", "none", map[string]string{"SET_HEADERS": "x-merchantid=a,X-MerchantId=s3cr3t"}, []string{`"X-MerchantId" is given twice`}},
		{"twice, the first bad", "none", map[string]string{"SET_HEADERS": "x-a=,x-a=1"}, []string{`"x-a" has no value`, `"x-a" is given twice`}},
		{"no value", "none", map[string]string{"SET_HEADERS": "x-merchantid= "}, []string{`"x-merchantid" has no value`}},
		{"control character", "none", map[string]string{"SET_HEADERS": "x-a=s3cr3t\r\nX-Injected: 1"}, []string{`the value of "x-a" holds a control character`}},
		{"tab", "none", map[string]string{"SET_HEADERS": "x-a=s3cr3t\tx"}, []string{`the value of "x-a" holds a control character`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(minimal(tc.source, tc.env))
			lines := problemLines(err)
			if len(lines) != 1 || linesNaming(lines, envPrefix+"SET_HEADERS") != 1 {
				t.Fatalf("loadConfig() problems = %q, want one naming %sSET_HEADERS", lines, envPrefix)
			}
			parts := strings.Split(strings.TrimPrefix(lines[0], envPrefix+"SET_HEADERS: "), "; ")
			if len(parts) != len(tc.want) {
				t.Fatalf("loadConfig() problem = %q, want %d parts: %q", lines[0], len(tc.want), tc.want)
			}
			for i, want := range tc.want {
				if !strings.Contains(parts[i], want) {
					t.Errorf("part %d of the problem = %q, want %q", i+1, parts[i], want)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("loadConfig() error = %v, shows a value", err)
			}
		})
	}
}

// FuzzSetHeaders feeds SET_HEADERS, beside a header-mode header and a
// REQUIRE_HEADER, to loadConfig: it never panics, each problem names its
// variable, and what it accepts sets only valid names, none the sidecar
// sets, with values a request can carry.
func FuzzSetHeaders(f *testing.F) {
	f.Add("x-merchantid=stock", "X-Api-Token", "X-Req")
	f.Add("x-a=1,,X-A=2", "Authorization", "")
	f.Add("connection=close,host=h,=v,x y=1,x-c", "x-c", "x-c")
	f.Add("x-a=\r\n,x-b= v=w ", "X-B", "x-a")
	f.Add("expect=100-continue,proxy-authorization=x,x-api-token=t", "x-api-token", "\x00")
	f.Fuzz(func(t *testing.T, setHeaders, injectHeader, requireHeader string) {
		c, err := loadConfig(minimal("json", map[string]string{
			"INJECT":         "header",
			"INJECT_HEADER":  injectHeader,
			"REQUIRE_HEADER": requireHeader,
			"SET_HEADERS":    setHeaders,
		}))
		if err != nil {
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("loadConfig() error %q is not a list of problems", err)
			}
			checkEveryLineNamesAVariable(t, err)
			return
		}
		var p problems
		set := c.setHeaders(&p)
		if p.err() != nil {
			t.Fatalf("setHeaders() = %v after loadConfig accepted SET_HEADERS %q", p.err(), setHeaders)
		}
		for name, values := range set {
			switch {
			case !validHeaderName(name), unsettableHeaders[name], name != http.CanonicalHeaderKey(name):
				t.Errorf("SET_HEADERS %q accepted with name %q", setHeaders, name)
			case strings.EqualFold(name, injectHeader), requireHeader != "" && strings.EqualFold(name, requireHeader):
				t.Errorf("SET_HEADERS %q accepted with %q, which the sidecar sets or removes", setHeaders, name)
			case len(values) != 1 || values[0] == "" || strings.ContainsFunc(values[0], isControl):
				t.Errorf("SET_HEADERS %q accepted with %q = %q", setHeaders, name, values)
			}
		}
	})
}
