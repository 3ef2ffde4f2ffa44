package proxy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// decodeJSON decodes b as JSON, keeping numbers exactly as written.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("body %q has data after its JSON value", b)
	}
	return v
}

// at follows a dotted path through decoded JSON objects.
func at(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// expiryFormat is Juspay's authExpiry: RFC 3339, UTC, milliseconds.
var expiryFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// bodyUpstream is an upstream that records each request's Content-Length
// header as sent on the wire, besides what newUpstream records.
type bodyUpstream struct {
	*upstream
	mu      sync.Mutex
	lengths []int64
}

func newBodyUpstream(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, got received)) *bodyUpstream {
	u := &bodyUpstream{}
	u.upstream = newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		u.mu.Lock()
		u.lengths = append(u.lengths, r.ContentLength)
		u.mu.Unlock()
		if respond == nil {
			io.WriteString(w, "ok")
			return
		}
		respond(w, r, got)
	})
	return u
}

// checkLengths checks that every request received declared its body's
// length, not chunked.
func (u *bodyUpstream) checkLengths(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, r := range u.requests() {
		if u.lengths[i] != r.Len {
			t.Errorf("request %d: Content-Length = %d, want the body's length %d", i+1, u.lengths[i], r.Len)
		}
	}
}

// proxyWithMetrics is a running proxy and its metrics.
type proxyWithMetrics struct {
	*httptest.Server
	reg *prometheus.Registry
	m   *metrics.Metrics
}

// jsonBodyProxy starts a json-body proxy with a fake token source.
func jsonBodyProxy(t *testing.T, up *bodyUpstream, inj proxy.Injector, maxBody int64) (*tokenSource, *proxyWithMetrics) {
	t.Helper()
	reg, m := newMetrics()
	src := &tokenSource{}
	cache := startCache(t, src, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: cache, Injector: inj, MaxReplayBody: maxBody, Metrics: m})
	return src, &proxyWithMetrics{Server: srv, reg: reg, m: m}
}

func TestJSONBodyInjectsTokenAndExpiry(t *testing.T) {
	// {{tok}} and {{exp}} in want stand for the token and its expiry.
	tests := []struct {
		name string
		body string
		want string
	}{
		{
			name: "juspay initiate keeps every field and number exactly",
			body: `{"requestId":"8cbc3ad8-2a4d-4b6f-a1d3-1d2c0b7e9f10","service":"in.juspay.hyperapi","payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"abcde12345","amount":12345678901234567890,"fee":1.10,"rate":-0.000,"big":1e400,"flags":[true,false,null],"nested":{"k":[1,{"x":"y"}]}}}`,
			want: `{"requestId":"8cbc3ad8-2a4d-4b6f-a1d3-1d2c0b7e9f10","service":"in.juspay.hyperapi","payload":{"action":"initiate","clientId":"stock","environment":"sandbox","issuingPsp":"YES_BIZ","customerId":"abcde12345","amount":12345678901234567890,"fee":1.10,"rate":-0.000,"big":1e400,"flags":[true,false,null],"nested":{"k":[1,{"x":"y"}]},"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "no payload: created",
			body: `{"requestId":"r-1","service":"in.juspay.hyperapi"}`,
			want: `{"requestId":"r-1","service":"in.juspay.hyperapi","payload":{"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "null payload: replaced by an object",
			body: `{"payload":null}`,
			want: `{"payload":{"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "empty object",
			body: `{}`,
			want: `{"payload":{"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "the app's stale token and expiry are replaced",
			body: `{"payload":{"action":"process","clientAuthToken":"stale","authExpiry":"2021-07-19T07:20:53.318Z"}}`,
			want: `{"payload":{"action":"process","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "strings with HTML, escapes and non-ASCII are kept",
			body: `{"note":"<b>&amp;</b> \u00e9\t\"q\" ü \ud83d\ude00","payload":{"memo":"a\\b/c"}}`,
			want: `{"note":"<b>&amp;</b> é\t\"q\" ü 😀","payload":{"memo":"a\\b/c","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
		{
			name: "whitespace around the object",
			body: " \n\t{\"payload\" : { \"a\" : 1 } }\r\n ",
			want: `{"payload":{"a":1,"clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			src, srv := jsonBodyProxy(t, up, proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"), 64<<10)
			req := bodyRequest(t, http.MethodPost, srv.URL+"/session", []byte(tc.body), false)
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			tok := src.last()
			exp := tok.Expiry.UTC().Format("2006-01-02T15:04:05.000Z")
			want := strings.NewReplacer("{{tok}}", tok.Value, "{{exp}}", exp).Replace(tc.want)
			if g, w := decodeJSON(t, got[0].Body), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
				t.Errorf("upstream body = %s\nwant %s", got[0].Body, want)
			}
			gotExp, _ := at(decodeJSON(t, got[0].Body), "payload.authExpiry").(string)
			if !expiryFormat.MatchString(gotExp) {
				t.Errorf("payload.authExpiry = %q, want RFC 3339 UTC with milliseconds", gotExp)
			}
			if when, err := time.Parse(time.RFC3339Nano, gotExp); err != nil || !when.Equal(tok.Expiry) {
				t.Errorf("payload.authExpiry = %q (%v), want the token's expiry %v", gotExp, err, tok.Expiry)
			}
			if v := got[0].Header.Values("Authorization"); len(v) != 0 {
				t.Errorf("Authorization = %q, want none in json-body mode", v)
			}
			if got[0].RequestURI != "/api/session" || got[0].Header.Get("Content-Type") != "application/json" {
				t.Errorf("request = %s %s (Content-Type %q), want /api/session with the app's Content-Type", got[0].Method, got[0].RequestURI, got[0].Header.Get("Content-Type"))
			}
			up.checkLengths(t)
		})
	}
}

// TestJSONBodyInjectDirect calls the injector without the proxy: it sets no
// header and reports itself as rewriting each body per token.
func TestJSONBodyInjectDirect(t *testing.T) {
	inj := proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry")
	if got := inj.Body(); got != proxy.BodyPerToken {
		t.Errorf("Body() = %v, want BodyPerToken (%v)", got, proxy.BodyPerToken)
	}
	tok := &tokens.Token{Value: "tok-x", Expiry: time.Date(2021, 7, 19, 12, 50, 53, 318_999_999, time.FixedZone("IST", 5*3600+1800))}
	h := http.Header{"Authorization": {"Bearer app"}}
	app := []byte(`{"payload":{"amount":1.10}}`)
	out, err := inj.Inject(h, tok, app)
	if err != nil {
		t.Fatalf("Inject() error = %v", err)
	}
	want := `{"payload":{"amount":1.10,"authExpiry":"2021-07-19T07:20:53.318Z","clientAuthToken":"tok-x"}}`
	if g, w := decodeJSON(t, out), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("Inject() = %s, want %s", out, want)
	}
	if string(app) != `{"payload":{"amount":1.10}}` {
		t.Errorf("Inject() changed the app's body to %q", app)
	}
	if len(h) != 1 || h.Get("Authorization") != "Bearer app" {
		t.Errorf("Inject() left headers %v, want the app's only", h)
	}
}

func TestJSONBodyFieldPaths(t *testing.T) {
	tests := []struct {
		name                    string
		tokenField, expiryField string
		body                    string
		want                    string // {{tok}} and {{exp}} as above
	}{
		{
			name:       "empty expiry field: expiry not set",
			tokenField: "payload.clientAuthToken",
			body:       `{"payload":{"action":"initiate"}}`,
			want:       `{"payload":{"action":"initiate","clientAuthToken":"{{tok}}"}}`,
		},
		{
			name:       "empty expiry field: the app's own authExpiry is left alone",
			tokenField: "payload.clientAuthToken",
			body:       `{"payload":{"authExpiry":"app-value"}}`,
			want:       `{"payload":{"authExpiry":"app-value","clientAuthToken":"{{tok}}"}}`,
		},
		{
			name:       "top-level token field",
			tokenField: "clientAuthToken", expiryField: "authExpiry",
			body: `{"action":"updateAuth"}`,
			want: `{"action":"updateAuth","clientAuthToken":"{{tok}}","authExpiry":"{{exp}}"}`,
		},
		{
			name:       "deep paths create every intermediate object",
			tokenField: "a.b.c.token", expiryField: "a.meta.exp",
			body: `{"a":{"keep":true}}`,
			want: `{"a":{"keep":true,"b":{"c":{"token":"{{tok}}"}},"meta":{"exp":"{{exp}}"}}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			src, srv := jsonBodyProxy(t, up, proxy.JSONBody(tc.tokenField, tc.expiryField), 64<<10)
			resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/x", []byte(tc.body), false))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("response = %d %q, want 200", resp.StatusCode, body)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			tok := src.last()
			want := strings.NewReplacer("{{tok}}", tok.Value, "{{exp}}", tok.Expiry.UTC().Format("2006-01-02T15:04:05.000Z")).Replace(tc.want)
			if g, w := decodeJSON(t, got[0].Body), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
				t.Errorf("upstream body = %s\nwant %s", got[0].Body, want)
			}
			up.checkLengths(t)
		})
	}
}

func TestJSONBodyRefusesBadBodies(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      []byte // nil: no body
		chunked   bool
		field     string // BODY_TOKEN_FIELD; payload.clientAuthToken if empty
		reason    string
		inMessage string
	}{
		{name: "not JSON", method: "POST", body: []byte(`amount=100`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "truncated", method: "POST", body: []byte(`{"payload":{"a":`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "array", method: "POST", body: []byte(`[{"payload":{}}]`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "string", method: "POST", body: []byte(`"payload"`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "null", method: "POST", body: []byte(`null`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "two objects", method: "POST", body: []byte(`{"a":1}{"b":2}`), reason: "not_json_object", inMessage: "single JSON object"},
		{name: "object then garbage", method: "POST", body: []byte(`{"a":1} x`), reason: "not_json_object", inMessage: "JSON object"},
		{name: "empty body with length", method: "POST", body: []byte{}, reason: "not_json_object", inMessage: "JSON object"},
		{name: "empty chunked body", method: "POST", body: []byte{}, chunked: true, reason: "not_json_object", inMessage: "JSON object"},
		{name: "GET without body", method: "GET", reason: "not_json_object", inMessage: "no body"},
		{name: "payload is a string", method: "POST", body: []byte(`{"payload":"x"}`), reason: "bad_field", inMessage: "payload in the request body is not an object"},
		{name: "payload is an array", method: "POST", body: []byte(`{"payload":[{}]}`), reason: "bad_field", inMessage: "payload in the request body is not an object"},
		{name: "payload is a number", method: "POST", body: []byte(`{"payload":5}`), reason: "bad_field", inMessage: "payload in the request body is not an object"},
		{name: "deep intermediate not an object", method: "POST", body: []byte(`{"a":{"b":true}}`), field: "a.b.c", reason: "bad_field", inMessage: "a.b in the request body is not an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			field := tc.field
			if field == "" {
				field = "payload.clientAuthToken"
			}
			_, srv := jsonBodyProxy(t, up, proxy.JSONBody(field, "payload.authExpiry"), 64<<10)
			resp, body := do(t, srv.Client(), bodyRequest(t, tc.method, srv.URL+"/x", tc.body, tc.chunked))
			checkSidecarError(t, resp, body, http.StatusBadRequest, "bad_request")
			if !strings.Contains(string(body), tc.inMessage) {
				t.Errorf("body = %s, want a message containing %q", body, tc.inMessage)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
			if v := toFloat64(t, srv.m.RejectedBodies.WithLabelValues(tc.reason)); v != 1 {
				t.Errorf("authsidecar_rejected_bodies_total{reason=%q} = %v, want 1", tc.reason, v)
			}
			if v := toFloat64(t, srv.m.Errors.WithLabelValues("bad_request")); v != 1 {
				t.Errorf(`authsidecar_errors_total{reason="bad_request"} = %v, want 1`, v)
			}
		})
	}
}

func TestJSONBodyTooLarge(t *testing.T) {
	const limit = 1 << 10
	big := []byte(`{"payload":{"blob":"` + strings.Repeat("x", limit) + `"}}`)
	for _, chunked := range []bool{false, true} {
		t.Run(map[bool]string{false: "with length", true: "chunked"}[chunked], func(t *testing.T) {
			up := newBodyUpstream(t, nil)
			_, srv := jsonBodyProxy(t, up, proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"), limit)
			resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/x", big, chunked))
			checkSidecarError(t, resp, body, http.StatusRequestEntityTooLarge, "body_too_large")
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests, want none", n)
			}
			if v := toFloat64(t, srv.m.RejectedBodies.WithLabelValues("too_large")); v != 1 {
				t.Errorf(`authsidecar_rejected_bodies_total{reason="too_large"} = %v, want 1`, v)
			}
		})
	}
}

// TestJSONBodyReplayRewritesOriginalBody has the upstream reject tok-1: the
// replay must carry tok-2 and its expiry in the app's original body, not in
// the body rewritten for tok-1.
func TestJSONBodyReplayRewritesOriginalBody(t *testing.T) {
	up := newBodyUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		var doc struct {
			Payload struct {
				ClientAuthToken string `json:"clientAuthToken"`
			} `json:"payload"`
		}
		if json.Unmarshal(got.Body, &doc) != nil || doc.Payload.ClientAuthToken == "tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"session_expired"}`)
			return
		}
		io.WriteString(w, "accepted")
	})
	src, srv := jsonBodyProxy(t, up, proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"), 64<<10)
	app := `{"requestId":"r-1","payload":{"action":"process","clientAuthToken":"app-stale","amount":12345678901234567890,"fee":1.10}}`
	resp, body := do(t, srv.Client(), bodyRequest(t, http.MethodPost, srv.URL+"/process", []byte(app), false))
	if resp.StatusCode != http.StatusOK || string(body) != "accepted" {
		t.Fatalf("response = %d %q, want 200 %q", resp.StatusCode, body, "accepted")
	}
	got := up.requests()
	if len(got) != 2 {
		t.Fatalf("upstream got %d requests, want 2 (the 401 and its replay)", len(got))
	}
	src.mu.Lock()
	issued := append([]*tokens.Token(nil), src.issued...)
	src.mu.Unlock()
	if len(issued) != 2 {
		t.Fatalf("tokens issued = %d, want 2", len(issued))
	}
	for i, r := range got {
		tok := issued[i]
		want := `{"requestId":"r-1","payload":{"action":"process","clientAuthToken":"` + tok.Value +
			`","authExpiry":"` + tok.Expiry.UTC().Format("2006-01-02T15:04:05.000Z") + `","amount":12345678901234567890,"fee":1.10}}`
		if g, w := decodeJSON(t, r.Body), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
			t.Errorf("request %d body = %s\nwant %s", i+1, r.Body, want)
		}
		if bytes.Contains(r.Body, []byte("app-stale")) {
			t.Errorf("request %d body = %s, still holds the app's token", i+1, r.Body)
		}
		if !bytes.Contains(r.Body, []byte("12345678901234567890")) || !bytes.Contains(r.Body, []byte("1.10")) {
			t.Errorf("request %d body = %s, want the numbers exactly as the app wrote them", i+1, r.Body)
		}
	}
	up.checkLengths(t)
	if v := toFloat64(t, srv.m.Replays.WithLabelValues("success")); v != 1 {
		t.Errorf(`authsidecar_replays_total{result="success"} = %v, want 1`, v)
	}
}

// TestRequestErrorText checks the error's text, which the error handler
// does not show but logs and wrapping do.
func TestRequestErrorText(t *testing.T) {
	_, err := proxy.JSONBody("payload.x", "").Inject(http.Header{}, &tokens.Token{Value: "t"}, []byte(`[]`))
	var re *proxy.RequestError
	if !errors.As(err, &re) {
		t.Fatalf("Inject([]) error = %v, want a *RequestError", err)
	}
	if re.Reason != "not_json_object" || !strings.HasPrefix(re.Error(), "proxy: ") || !strings.Contains(re.Error(), re.Message) {
		t.Errorf("RequestError = {%q, %q}, Error() = %q; want reason not_json_object and a proxy: error holding the message", re.Reason, re.Message, re.Error())
	}
}
