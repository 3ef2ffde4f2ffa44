package proxy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// textBodies are app bodies whose strings encoding/json would not decode as
// written (refused), and bodies with non-ASCII text it keeps (accepted). An
// accepted body's name member must reach the upstream as want: byte for byte
// where the app wrote UTF-8; an escaped pair comes out as the same character
// in UTF-8, since the body is re-encoded.
var textBodies = []struct {
	name string
	body string // a payload object's members, after customerId
	want string // the name member as the upstream must see it; "" = refused
}{
	{name: "invalid UTF-8 in a string", body: "\"name\":\"caf\xe9\""},
	{name: "invalid UTF-8 in a key", body: "\"caf\xe9\":1"},
	{name: "truncated UTF-8 sequence", body: "\"name\":\"\xf0\x9f\x98\""},
	{name: "UTF-8 encoded surrogate", body: "\"name\":\"\xed\xa0\x80\""},
	{name: "lone high surrogate escape", body: `"name":"\ud800"`},
	{name: "lone low surrogate escape", body: `"name":"\udc00"`},
	{name: "high surrogate escape at the end of a string", body: `"name":"a\uD83D"`},
	{name: "high surrogate escape before a character", body: `"name":"\ud83dx"`},
	{name: "high surrogate escape before a non-surrogate escape", body: `"name":"\ud83d\u0041"`},
	{name: "two high surrogate escapes", body: `"name":"\ud83d\ud83d"`},
	{name: "pair escapes in the wrong order", body: `"name":"\ude00\ud83d"`},
	{name: "lone surrogate escape in a key", body: `"\ud800":1`},
	{name: "surrogate pair escape", body: `"name":"\ud83d\ude00"`, want: `"name":"😀"`},
	{name: "surrogate pair escape in upper case", body: `"name":"\uD83D\uDE00!"`, want: `"name":"😀!"`},
	{name: "UTF-8 kept byte for byte", body: `"name":"café 😀 ✓"`, want: `"name":"café 😀 ✓"`},
	{name: "U+FFFD written by the app", body: "\"name\":\"\xef\xbf\xbd\"", want: "\"name\":\"\xef\xbf\xbd\""},
	{name: "escaped backslash before u", body: `"name":"\\ud800"`, want: `"name":"\\ud800"`},
	{name: "other escapes beside a pair", body: `"name":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"`, want: `"name":"\"\\/\b\f\n\r\té😀"`},
}

// TestBodyModesRefuseTextTheyWouldChange sends each textBodies body in
// json-body and signature modes and to the local signing endpoint: a body
// whose text the decoder would change is refused with 400 and nothing goes
// upstream; others arrive with their text as written.
func TestBodyModesRefuseTextTheyWouldChange(t *testing.T) {
	modes := []struct {
		name string
		path string // the request's path
		// start returns the proxy and the signer or nil.
		start func(t *testing.T, up *bodyUpstream) *proxyWithMetrics
		// upstream: an accepted body goes upstream (else it comes back
		// signed to the app).
		upstream bool
	}{
		{name: "json-body", path: "/session", upstream: true, start: func(t *testing.T, up *bodyUpstream) *proxyWithMetrics {
			_, p := jsonBodyProxy(t, up, proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"), 64<<10)
			return p
		}},
		{name: "signature", path: "/session", upstream: true, start: func(t *testing.T, up *bodyUpstream) *proxyWithMetrics {
			reg, m := newMetrics()
			s := newSigner(t, proxy.SignerConfig{Metrics: m})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Injector: s, MaxReplayBody: 64 << 10, Metrics: m})
			return &proxyWithMetrics{Server: srv, reg: reg, m: m}
		}},
		{name: "signing endpoint", path: "/sign", start: func(t *testing.T, up *bodyUpstream) *proxyWithMetrics {
			reg, m := newMetrics()
			s := newSigner(t, proxy.SignerConfig{Metrics: m})
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Signer: s, SignPath: "/sign", MaxReplayBody: 64 << 10, Metrics: m})
			return &proxyWithMetrics{Server: srv, reg: reg, m: m}
		}},
	}
	for _, mode := range modes {
		for _, tc := range textBodies {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				up := newBodyUpstream(t, nil)
				p := mode.start(t, up)
				body := []byte(`{"payload":{"customerId":"c",` + tc.body + `}}`)
				resp, answer := do(t, p.Client(), bodyRequest(t, http.MethodPost, p.URL+mode.path, body, false))
				got := up.requests()
				if tc.want == "" {
					checkSidecarError(t, resp, answer, http.StatusBadRequest, "bad_request")
					var e sidecarError
					json.Unmarshal(answer, &e)
					if !strings.Contains(e.Message, "UTF-8") {
						t.Errorf("message = %q, want it to name UTF-8", e.Message)
					}
					if len(got) != 0 {
						t.Errorf("upstream received %d requests (%q), want none", len(got), got[0].Body)
					}
					want := map[string]float64{`reason="not_json_object"`: 1}
					if got := series(t, p.reg, "authsidecar_rejected_bodies_total"); !maps.Equal(got, want) {
						t.Errorf("authsidecar_rejected_bodies_total = %v, want %v", got, want)
					}
					return
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status = %d %q, want 200", resp.StatusCode, answer)
				}
				sent := answer
				if mode.upstream {
					if len(got) != 1 {
						t.Fatalf("upstream received %d requests, want 1", len(got))
					}
					sent = got[0].Body
				}
				if !bytes.Contains(sent, []byte(tc.want)) {
					t.Errorf("sent %q, want it to contain %q", sent, tc.want)
				}
				if !utf8.Valid(sent) {
					t.Errorf("sent %q, not valid UTF-8", sent)
				}
			})
		}
	}
}

// TestInjectorsRefuseTextTheyWouldChange calls the body injectors directly:
// a refusal is a *RequestError with reason not_json_object.
func TestInjectorsRefuseTextTheyWouldChange(t *testing.T) {
	injectors := map[string]proxy.Injector{
		"json-body": proxy.JSONBody("payload.clientAuthToken", ""),
		"signature": newSigner(t, proxy.SignerConfig{}),
	}
	tok := &tokens.Token{Value: "tok"}
	for name, inj := range injectors {
		for _, tc := range textBodies {
			body := []byte(`{"payload":{"customerId":"c",` + tc.body + `}}`)
			out, err := inj.Inject(http.Header{}, tok, body)
			var re *proxy.RequestError
			switch {
			case tc.want == "" && (!errors.As(err, &re) || re.Reason != "not_json_object" || out != nil):
				t.Errorf("%s: Inject(%q) = %q, %v; want a not_json_object *RequestError", name, body, out, err)
			case tc.want != "" && (err != nil || !bytes.Contains(out, []byte(tc.want))):
				t.Errorf("%s: Inject(%q) = %q, %v; want it to contain %q", name, body, out, err, tc.want)
			}
		}
	}
}

// mangled reports whether decoding body with encoding/json puts a U+FFFD in
// a key or string that the app did not write, as raw UTF-8 or as a \ufffd
// escape: the decoder replaced invalid UTF-8 or an unpaired surrogate. It
// counts rather than scans escapes, so as not to share the proxy's logic.
func mangled(body []byte) bool {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	written := bytes.Count(body, []byte("\uFFFD")) + strings.Count(strings.ToLower(string(body)), `\ufffd`)
	return countReplacement(v) > written
}

// countReplacement counts U+FFFD in the keys and strings of decoded JSON.
func countReplacement(v any) int {
	switch v := v.(type) {
	case string:
		return strings.Count(v, "\uFFFD")
	case []any:
		n := 0
		for _, e := range v {
			n += countReplacement(e)
		}
		return n
	case map[string]any:
		n := 0
		for k, e := range v {
			n += strings.Count(k, "\uFFFD") + countReplacement(e)
		}
		return n
	}
	return 0
}

// TestMangled checks the fuzz targets' oracle against the table.
func TestMangled(t *testing.T) {
	for _, tc := range textBodies {
		body := []byte(`{"payload":{"customerId":"c",` + tc.body + `}}`)
		if got, want := mangled(body), tc.want == ""; got != want {
			t.Errorf("mangled(%q) = %v, want %v", body, got, want)
		}
	}
}
