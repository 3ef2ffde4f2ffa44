package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// handoffTokens is a TokenSource whose tokens the test sets: Token returns
// the first of toks, or fails with err when err is set. Invalidate of the
// current token moves on to the next one, if there is one. It counts calls.
type handoffTokens struct {
	mu    sync.Mutex
	toks  []*tokens.Token
	err   error
	calls int
}

func (s *handoffTokens) Token(context.Context) (*tokens.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return s.toks[0], nil
}

func (s *handoffTokens) Invalidate(tok *tokens.Token) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.toks[0] && len(s.toks) > 1 {
		s.toks = s.toks[1:]
		return true
	}
	return false
}

func (s *handoffTokens) Accepted(*tokens.Token) {}
func (s *handoffTokens) Replayed(tok *tokens.Token, ok bool) {
	if !ok {
		s.Invalidate(tok)
	}
}

func (s *handoffTokens) tokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// inZone is an expiry an hour ahead, to the second, in a zone other than UTC,
// so that an answer that forgets to convert it to UTC is caught.
func inZone() time.Time {
	return time.Now().Add(time.Hour).Truncate(time.Second).In(time.FixedZone("UTC+5:30", 5*3600+1800))
}

// decodeStrict decodes a JSON object answer, keeping numbers as written,
// and fails the test unless its keys are exactly want.
func decodeStrict(t *testing.T, body []byte, want ...string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", body, err)
	}
	if dec.More() {
		t.Fatalf("body %q has data after its JSON object", body)
	}
	got := slices.Sorted(maps.Keys(doc))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("answer keys = %q, want exactly %q (body %s)", got, want, body)
	}
	return doc
}

// checkHandoffHeaders checks the headers of a successful hand-off answer.
func checkHandoffHeaders(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200 (body %q)", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q, want %q", got, "application/json")
	}
	if got := resp.Header.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
		t.Errorf("Cache-Control = %q, want [no-store]", got)
	}
}

// handoffRequests are the requests the hand-off endpoint answers: GET and
// POST (the Axepta SDK POSTs {"merchantID": …}), with or without a query.
func handoffRequests(t *testing.T, srv string) map[string]*http.Request {
	return map[string]*http.Request{
		"GET":                bodyRequest(t, http.MethodGet, srv+"/auth", nil, false),
		"GET with a query":   bodyRequest(t, http.MethodGet, srv+"/auth?platform=ios", nil, false),
		"POST with a body":   bodyRequest(t, http.MethodPost, srv+"/auth", []byte(`{"merchantID":"BNP_MERCHANT_1"}`), false),
		"POST chunked":       bodyRequest(t, http.MethodPost, srv+"/auth", []byte(`{"merchantID":"BNP_MERCHANT_1"}`), true),
		"POST without body":  bodyRequest(t, http.MethodPost, srv+"/auth", nil, false),
		"GET with app token": withHeader(bodyRequest(t, http.MethodGet, srv+"/auth", nil, false), "Authorization", "Bearer app"),
	}
}

func withHeader(r *http.Request, name, value string) *http.Request {
	r.Header.Set(name, value)
	return r
}

func TestHandoffOAuth2(t *testing.T) {
	expiry := inZone()
	// A Label and Extra must not leak into the OAuth2 shape.
	tok := &tokens.Token{Value: "tok-handoff", Expiry: expiry, Label: "label-not-for-oauth2", Extra: map[string]string{"Code": "00000000"}}
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{tok}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/auth", HandoffFormat: proxy.HandoffOAuth2})

	for name, req := range handoffRequests(t, srv.URL) {
		t.Run(name, func(t *testing.T) {
			resp, body := do(t, srv.Client(), req)
			checkHandoffHeaders(t, resp, body)
			doc := decodeStrict(t, body, "access_token", "token_type", "expires_in", "expires_at")
			if got := doc["access_token"]; got != tok.Value {
				t.Errorf("access_token = %#v, want %q", got, tok.Value)
			}
			if got := doc["token_type"]; got != "Bearer" {
				t.Errorf("token_type = %#v, want %q", got, "Bearer")
			}
			n, ok := doc["expires_in"].(json.Number)
			if !ok {
				t.Fatalf("expires_in = %#v, want a JSON number", doc["expires_in"])
			}
			secs, err := n.Int64()
			if err != nil || strings.ContainsAny(n.String(), ".eE") {
				t.Errorf("expires_in = %s, want a whole number of seconds", n)
			}
			// The token expires an hour after it was made, to the second below.
			if secs < 3600-60 || secs > 3600 {
				t.Errorf("expires_in = %d, want the seconds left of a one-hour token (3540 to 3600)", secs)
			}
			at, ok := doc["expires_at"].(string)
			if want := expiry.UTC().Format(time.RFC3339); !ok || at != want {
				t.Errorf("expires_at = %#v, want %q (RFC 3339, UTC)", doc["expires_at"], want)
			}
			if parsed, err := time.Parse(time.RFC3339, at); err != nil || !parsed.Equal(expiry) || !strings.HasSuffix(at, "Z") {
				t.Errorf("expires_at = %q does not read back as %v in UTC (err %v)", at, expiry, err)
			}
			if d := time.Until(expiry) - time.Duration(secs)*time.Second; d < -time.Second || d > time.Minute {
				t.Errorf("expires_in = %d disagrees with expires_at %s by %v", secs, at, d)
			}
		})
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("upstream got %d requests for the hand-off endpoint, want none", len(got))
	}
}

// TestHandoffOAuth2ExpiresInFollowsTheToken checks that expires_in is the
// time left of the token handed out, not a constant.
func TestHandoffOAuth2ExpiresInFollowsTheToken(t *testing.T) {
	up := newUpstream(t, nil)
	for _, left := range []time.Duration{90 * time.Second, 10 * time.Minute, 11 * time.Hour} {
		tok := &tokens.Token{Value: "tok-x", Expiry: time.Now().Add(left)}
		srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: &handoffTokens{toks: []*tokens.Token{tok}}, HandoffPath: "/token"})
		resp, body := get(t, srv, "/token")
		checkHandoffHeaders(t, resp, body)
		doc := decodeStrict(t, body, "access_token", "token_type", "expires_in", "expires_at")
		n, _ := doc["expires_in"].(json.Number)
		secs, err := n.Int64()
		if want := int64(left / time.Second); err != nil || secs > want || secs < want-30 {
			t.Errorf("token with %v left: expires_in = %s, want about %d", left, n, want)
		}
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("upstream got %d requests for the hand-off endpoint, want none", len(got))
	}
}

// axeptaDate is Axepta's dttm: YYYY-MM-DDThh:mm:ss, no zone, no fraction.
var axeptaDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`)

func TestHandoffAxepta(t *testing.T) {
	expiry := inZone()
	full := &tokens.Token{
		Value:  "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCd",
		Label:  "LabelLabelLabelLabelLabelLabelLabelLabel01234567",
		Expiry: expiry,
		Extra:  map[string]string{"Code": "00000000", "Description": "AuthToken registered", "Other": "not handed out"},
	}
	bare := &tokens.Token{Value: "tok-bare", Expiry: expiry}
	tests := []struct {
		name                    string
		tok                     *tokens.Token
		label, code, descripton string
	}{
		{name: "registered token", tok: full, label: full.Label, code: "00000000", descripton: "AuthToken registered"},
		{name: "token without label or extra", tok: bare},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			src := &handoffTokens{toks: []*tokens.Token{tc.tok}}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/auth", HandoffFormat: proxy.HandoffAxepta})
			for name, req := range handoffRequests(t, srv.URL) {
				resp, body := do(t, srv.Client(), req)
				checkHandoffHeaders(t, resp, body)
				doc := decodeStrict(t, body, "AuthToken", "AuthLabel", "ExpiryDate", "Description", "Status", "Code")
				want := map[string]any{
					"AuthToken":   tc.tok.Value,
					"AuthLabel":   tc.label,
					"ExpiryDate":  expiry.UTC().Format("2006-01-02T15:04:05"),
					"Description": tc.descripton,
					"Status":      "OK",
					"Code":        tc.code,
				}
				if !maps.Equal(doc, want) {
					t.Errorf("%s: answer = %v,\nwant %v", name, doc, want)
				}
				if s, _ := doc["ExpiryDate"].(string); !axeptaDate.MatchString(s) {
					t.Errorf("%s: ExpiryDate = %#v, want YYYY-MM-DDThh:mm:ss", name, doc["ExpiryDate"])
				} else if d, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC); err != nil || !d.Equal(expiry) {
					t.Errorf("%s: ExpiryDate = %q read as UTC is %v, want %v", name, s, d, expiry.UTC())
				}
			}
			if got := up.requests(); len(got) != 0 {
				t.Errorf("upstream got %d requests for the hand-off endpoint, want none", len(got))
			}
		})
	}
}

func TestHandoffRefusesOtherMethods(t *testing.T) {
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{{Value: "tok-1", Expiry: time.Now().Add(time.Hour)}}}
	for _, format := range []proxy.HandoffFormat{proxy.HandoffOAuth2, proxy.HandoffAxepta} {
		srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: src, HandoffPath: "/auth", HandoffFormat: format, MaxReplayBody: 1 << 10})
		for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
			t.Run(fmt.Sprintf("format %d %s", format, method), func(t *testing.T) {
				resp, body := do(t, srv.Client(), bodyRequest(t, method, srv.URL+"/auth", []byte(`{"merchantID":"m"}`), false))
				checkSidecarError(t, resp, body, http.StatusMethodNotAllowed, "method_not_allowed")
				var allowed []string
				for m := range strings.SplitSeq(resp.Header.Get("Allow"), ",") {
					allowed = append(allowed, strings.TrimSpace(m))
				}
				slices.Sort(allowed)
				if !slices.Equal(allowed, []string{"GET", "POST"}) {
					t.Errorf("Allow = %q, want GET and POST", resp.Header.Get("Allow"))
				}
				if bytes.Contains(body, []byte("tok-1")) {
					t.Errorf("405 answer %q holds the token", body)
				}
			})
		}
	}
	if n := src.tokenCalls(); n != 0 {
		t.Errorf("token source called %d times for refused methods, want none", n)
	}
	if got := up.requests(); len(got) != 0 {
		t.Errorf("upstream got %d requests for the hand-off endpoint, want none", len(got))
	}
}

func TestHandoffWithoutTokenAnswers503(t *testing.T) {
	fromFake := &handoffTokens{err: fmt.Errorf("%w: provider down", tokens.ErrNoToken)}

	// A real cache over a provider that always fails, as in production.
	failing := &tokenSource{err: errors.New("provider down")}
	cache := startCache(t, failing, tokens.CacheOptions{MaxWait: 50 * time.Millisecond, MinBackoff: time.Hour})

	for _, tc := range []struct {
		name string
		ts   proxy.TokenSource
	}{
		{"fake source failing with ErrNoToken", fromFake},
		{"cache over a failing provider", cache},
	} {
		for _, format := range []proxy.HandoffFormat{proxy.HandoffOAuth2, proxy.HandoffAxepta} {
			t.Run(fmt.Sprintf("%s, format %d", tc.name, format), func(t *testing.T) {
				up := newUpstream(t, nil)
				srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: tc.ts, HandoffPath: "/auth", HandoffFormat: format})
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					resp, body := do(t, srv.Client(), bodyRequest(t, method, srv.URL+"/auth", nil, false))
					checkSidecarError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
				}
				if got := up.requests(); len(got) != 0 {
					t.Errorf("upstream got %d requests, want none", len(got))
				}
			})
		}
	}
	if n := fromFake.tokenCalls(); n != 4 {
		t.Errorf("fake source asked %d times, want 4 (one per hand-off request)", n)
	}
}

// TestHandoffPathMatchesExactly checks that only the hand-off path itself is
// answered locally: anything else, a sub-path included, is proxied.
func TestHandoffPathMatchesExactly(t *testing.T) {
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{{Value: "tok-1", Expiry: time.Now().Add(time.Hour), Label: "lbl"}}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/v1/auth", HandoffFormat: proxy.HandoffAxepta})

	for _, path := range []string{"/v1/auth/", "/v1/auth/x", "/v1/authx", "/v1/Auth", "/v1", "/auth", "/x/v1/auth"} {
		t.Run(path, func(t *testing.T) {
			before := len(up.requests())
			resp, body := get(t, srv, path)
			if resp.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("GET %s = %d %q, want the upstream's 200 %q", path, resp.StatusCode, body, "ok")
			}
			got := up.requests()
			if len(got) != before+1 {
				t.Fatalf("upstream got %d new requests, want 1", len(got)-before)
			}
			r := got[len(got)-1]
			if r.RequestURI != "/api"+path {
				t.Errorf("upstream RequestURI = %q, want %q", r.RequestURI, "/api"+path)
			}
			if a := r.Header.Values("Authorization"); !slices.Equal(a, []string{"Bearer tok-1"}) {
				t.Errorf("upstream Authorization = %q, want [Bearer tok-1]", a)
			}
		})
	}
	// The path itself is still the hand-off endpoint.
	resp, body := get(t, srv, "/v1/auth")
	checkHandoffHeaders(t, resp, body)
	decodeStrict(t, body, "AuthToken", "AuthLabel", "ExpiryDate", "Description", "Status", "Code")
}

// TestHandoffOffIsProxied checks that the hand-off path is an ordinary path
// without HandoffPath, or without a token source.
func TestHandoffOffIsProxied(t *testing.T) {
	tok := &tokens.Token{Value: "tok-1", Expiry: time.Now().Add(time.Hour)}
	tests := []struct {
		name string
		cfg  proxy.Config
		auth []string // the Authorization the upstream gets
	}{
		{name: "no HandoffPath", cfg: proxy.Config{Tokens: &handoffTokens{toks: []*tokens.Token{tok}}}, auth: []string{"Bearer tok-1"}},
		{name: "no HandoffPath, Axepta format", cfg: proxy.Config{Tokens: &handoffTokens{toks: []*tokens.Token{tok}}, HandoffFormat: proxy.HandoffAxepta}, auth: []string{"Bearer tok-1"}},
		{name: "no token source", cfg: proxy.Config{HandoffPath: "/auth"}, auth: []string{"Bearer app"}},
		{name: "no token source, Axepta format", cfg: proxy.Config{HandoffPath: "/auth", HandoffFormat: proxy.HandoffAxepta, Injector: proxy.None()}, auth: []string{"Bearer app"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, "from upstream")
			})
			tc.cfg.Upstream = up.base(t, "/api")
			tc.cfg.MaxReplayBody = 1 << 10
			srv := startProxy(t, tc.cfg)
			for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
				req := bodyRequest(t, method, srv.URL+"/auth", []byte(`{"merchantID":"m"}`), false)
				req.Header.Set("Authorization", "Bearer app")
				resp, body := do(t, srv.Client(), req)
				if resp.StatusCode != http.StatusOK || string(body) != "from upstream" {
					t.Errorf("%s /auth = %d %q, want the upstream's 200 %q", method, resp.StatusCode, body, "from upstream")
				}
			}
			got := up.requests()
			if len(got) != 3 {
				t.Fatalf("upstream got %d requests, want 3", len(got))
			}
			for _, r := range got {
				if r.RequestURI != "/api/auth" || string(r.Body) != `{"merchantID":"m"}` {
					t.Errorf("upstream got %s %s %q, want /api/auth with the app's body", r.Method, r.RequestURI, r.Body)
				}
				if a := r.Header.Values("Authorization"); !slices.Equal(a, tc.auth) {
					t.Errorf("upstream Authorization = %q, want %q", a, tc.auth)
				}
			}
		})
	}
}

func TestWithLabelInject(t *testing.T) {
	tok := &tokens.Token{Value: "tok-abc", Label: "label-abc", Expiry: time.Now().Add(time.Hour)}
	noLabel := &tokens.Token{Value: "tok-abc", Expiry: time.Now().Add(time.Hour)}
	tests := []struct {
		name   string
		inj    proxy.Injector
		tok    *tokens.Token
		app    http.Header
		want   http.Header
		absent []string
	}{
		{
			name: "label and bearer, replacing the app's values",
			inj:  proxy.WithLabel(proxy.Bearer(), "X-Auth-Label"),
			tok:  tok,
			app:  http.Header{"X-Auth-Label": {"app-1", "app-2"}, "Authorization": {"Bearer app"}, "Accept": {"*/*"}},
			want: http.Header{"X-Auth-Label": {"label-abc"}, "Authorization": {"Bearer tok-abc"}, "Accept": {"*/*"}},
		},
		{
			name: "lower-case label header is canonicalized",
			inj:  proxy.WithLabel(proxy.Bearer(), "x-auth-label"),
			tok:  tok,
			app:  http.Header{"X-Auth-Label": {"app-1"}},
			want: http.Header{"X-Auth-Label": {"label-abc"}, "Authorization": {"Bearer tok-abc"}},
		},
		{
			name: "label beside a custom token header",
			inj:  proxy.WithLabel(proxy.Header("X-Api-Token", "T "), "X-Auth-Label"),
			tok:  tok,
			app:  http.Header{},
			want: http.Header{"X-Auth-Label": {"label-abc"}, "X-Api-Token": {"T tok-abc"}},
		},
		{
			name:   "token without label adds no label header",
			inj:    proxy.WithLabel(proxy.Bearer(), "X-Auth-Label"),
			tok:    noLabel,
			app:    http.Header{"Accept": {"*/*"}},
			want:   http.Header{"Authorization": {"Bearer tok-abc"}, "Accept": {"*/*"}},
			absent: []string{"X-Auth-Label"},
		},
		{
			name:   "no token adds nothing",
			inj:    proxy.WithLabel(proxy.Bearer(), "X-Auth-Label"),
			tok:    nil,
			app:    http.Header{"Accept": {"*/*"}},
			want:   http.Header{"Accept": {"*/*"}},
			absent: []string{"X-Auth-Label", "Authorization"},
		},
		{
			name: "label with none",
			inj:  proxy.WithLabel(proxy.None(), "X-Auth-Label"),
			tok:  tok,
			app:  http.Header{"Authorization": {"Bearer app"}},
			want: http.Header{"X-Auth-Label": {"label-abc"}, "Authorization": {"Bearer app"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.app.Clone()
			body, err := tc.inj.Inject(h, tc.tok, nil)
			if err != nil || body != nil {
				t.Fatalf("Inject() = %q, %v; want nil, nil", body, err)
			}
			for k, want := range tc.want {
				if got := h[k]; !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if len(h) != len(tc.want) {
				t.Errorf("headers = %v, want %v", h, tc.want)
			}
			for _, k := range tc.absent {
				if _, ok := h[k]; ok {
					t.Errorf("%s = %q, want it absent", k, h[k])
				}
			}
		})
	}
}

// TestWithLabelFollowsTokenChanges checks that the label is the current
// token's, from any goroutine.
func TestWithLabelFollowsTokenChanges(t *testing.T) {
	inj := proxy.WithLabel(proxy.Bearer(), "X-Auth-Label")
	toks := []*tokens.Token{
		{Value: "tok-1", Label: "label-1", Expiry: time.Now().Add(time.Hour)},
		{Value: "tok-2", Label: "label-2", Expiry: time.Now().Add(time.Hour)},
		{Value: "tok-3", Expiry: time.Now().Add(time.Hour)},
	}
	check := func(h http.Header, tok *tokens.Token) error {
		want := []string(nil)
		if tok.Label != "" {
			want = []string{tok.Label}
		}
		if got := h["X-Auth-Label"]; !slices.Equal(got, want) {
			return fmt.Errorf("X-Auth-Label = %q, want %q", got, want)
		}
		if got := h.Get("Authorization"); got != "Bearer "+tok.Value {
			return fmt.Errorf("Authorization = %q, want %q", got, "Bearer "+tok.Value)
		}
		return nil
	}
	for i, tok := range []*tokens.Token{toks[0], toks[1], toks[1], toks[2], toks[0]} {
		h := http.Header{}
		inj.Inject(h, tok, nil)
		if err := check(h, tok); err != nil {
			t.Errorf("injection %d: %v", i+1, err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				tok := toks[(g+i)%len(toks)]
				h := http.Header{}
				inj.Inject(h, tok, nil)
				if err := check(h, tok); err != nil {
					t.Errorf("concurrent injection: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestWithLabelKeepsBodyUse checks that the wrapped injector's body handling
// is kept: a label does not stop a json-body or signature injector from
// rewriting bodies.
func TestWithLabelKeepsBodyUse(t *testing.T) {
	signer := newSigner(t, proxy.SignerConfig{})
	for _, tc := range []struct {
		name  string
		inner proxy.Injector
	}{
		{"bearer", proxy.Bearer()},
		{"header", proxy.Header("X-Api-Token", "")},
		{"none", proxy.None()},
		{"json-body", proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry")},
		{"signature", signer},
	} {
		if got, want := proxy.WithLabel(tc.inner, "X-Auth-Label").Body(), tc.inner.Body(); got != want {
			t.Errorf("WithLabel(%s).Body() = %v, want %v", tc.name, got, want)
		}
	}
	if got := proxy.WithLabel(proxy.JSONBody("a", ""), "X-Auth-Label").Body(); got != proxy.BodyPerToken {
		t.Errorf("WithLabel(JSONBody).Body() = %v, want BodyPerToken (%v)", got, proxy.BodyPerToken)
	}

	inj := proxy.WithLabel(proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry"), "X-Auth-Label")
	expiry := time.Date(2031, 7, 19, 7, 20, 53, 318_000_000, time.UTC)
	tok := &tokens.Token{Value: "tok-1", Label: "label-1", Expiry: expiry}
	h := http.Header{"X-Auth-Label": {"app"}}
	out, err := inj.Inject(h, tok, []byte(`{"payload":{"customerId":"c-1"}}`))
	if err != nil {
		t.Fatalf("Inject() error = %v", err)
	}
	doc := decodeJSON(t, out)
	if at(doc, "payload.clientAuthToken") != "tok-1" || at(doc, "payload.authExpiry") != "2031-07-19T07:20:53.318Z" || at(doc, "payload.customerId") != "c-1" {
		t.Errorf("Inject() body = %s, want the token, its expiry and the app's customerId", out)
	}
	if got := h["X-Auth-Label"]; !slices.Equal(got, []string{"label-1"}) {
		t.Errorf("X-Auth-Label = %q, want [label-1]", got)
	}

	// A body the wrapped injector refuses stays refused, as a RequestError.
	h = http.Header{}
	out, err = inj.Inject(h, tok, []byte(`not json`))
	var re *proxy.RequestError
	if !errors.As(err, &re) || out != nil {
		t.Errorf("Inject(not json) = %q, %v; want a *proxy.RequestError", out, err)
	}
}

// TestWithLabelThroughProxy sends requests through the proxy with a labelled
// injector, and a replay after the upstream rejects the first token: each
// attempt carries its own token's label, once, and bodies are still rewritten.
func TestWithLabelThroughProxy(t *testing.T) {
	tests := []struct {
		name   string
		inj    proxy.Injector
		tokOf  func(r received) string // the token the upstream sees
		bearer bool
	}{
		{
			name:   "bearer",
			inj:    proxy.WithLabel(proxy.Bearer(), "X-Auth-Label"),
			tokOf:  func(r received) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") },
			bearer: true,
		},
		{
			name: "json-body",
			inj:  proxy.WithLabel(proxy.JSONBody("payload.clientAuthToken", ""), "x-auth-label"),
			tokOf: func(r received) string {
				var doc struct {
					Payload struct {
						ClientAuthToken string `json:"clientAuthToken"`
						Amount          int    `json:"amount"`
					} `json:"payload"`
				}
				json.Unmarshal(r.Body, &doc)
				if doc.Payload.Amount != 7 {
					return "app field lost"
				}
				return doc.Payload.ClientAuthToken
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				if tc.tokOf(got) == "tok-1" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, "accepted")
			})
			src := &handoffTokens{toks: []*tokens.Token{
				{Value: "tok-1", Label: "label-1", Expiry: time.Now().Add(time.Hour)},
				{Value: "tok-2", Label: "label-2", Expiry: time.Now().Add(time.Hour)},
			}}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: src, Injector: tc.inj, MaxReplayBody: 1 << 10})

			req := bodyRequest(t, http.MethodPost, srv.URL+"/pay", []byte(`{"payload":{"amount":7}}`), false)
			req.Header.Add("X-Auth-Label", "app-label-1")
			req.Header.Add("X-Auth-Label", "app-label-2")
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK || string(body) != "accepted" {
				t.Fatalf("response = %d %q, want 200 %q", resp.StatusCode, body, "accepted")
			}
			got := up.requests()
			if len(got) != 2 {
				t.Fatalf("upstream got %d requests, want 2 (the 401 and its replay)", len(got))
			}
			for i, r := range got {
				n := i + 1
				if tok := tc.tokOf(r); tok != fmt.Sprintf("tok-%d", n) {
					t.Errorf("request %d: token = %q, want tok-%d", n, tok, n)
				}
				if v := r.Header.Values("X-Auth-Label"); !slices.Equal(v, []string{fmt.Sprintf("label-%d", n)}) {
					t.Errorf("request %d: X-Auth-Label = %q, want [label-%d]", n, v, n)
				}
				if a := r.Header.Values("Authorization"); tc.bearer != (len(a) == 1) {
					t.Errorf("request %d: Authorization = %q, want a bearer token: %v", n, a, tc.bearer)
				}
			}
		})
	}
}

func TestHandoffAxeptaChecksMerchantID(t *testing.T) {
	tok := &tokens.Token{Value: "tok-1", Label: "label-1", Expiry: inZone()}
	tests := []struct {
		name, body string
		want       int
	}{
		{name: "same merchant", body: `{"merchantID":"BNP_1"}`, want: http.StatusOK},
		{name: "no merchantID", body: `{}`, want: http.StatusOK},
		{name: "another merchant", body: `{"merchantID":"BNP_2"}`, want: http.StatusBadRequest},
		{name: "another merchant, then a syntax error", body: `{"merchantID":"BNP_2","amount":[}`, want: http.StatusBadRequest},
		{name: "merchantID twice", body: `{"merchantID":"BNP_2","merchantID":"BNP_1"}`, want: http.StatusBadRequest},
		{name: "merchantID not a string", body: `{"merchantID":"BNP_2","x":{"y":1},"merchantID":12}`, want: http.StatusBadRequest},
		{name: "not an object", body: `["BNP_1"]`, want: http.StatusBadRequest},
		{name: "two objects", body: `{"merchantID":"BNP_1"}{}`, want: http.StatusBadRequest},
		{name: "empty body", body: ``, want: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			src := &handoffTokens{toks: []*tokens.Token{tok}}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/auth",
				HandoffFormat: proxy.HandoffAxepta, HandoffMerchantID: "BNP_1"})
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/auth", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want != http.StatusOK && strings.Contains(string(body), tok.Value) {
				t.Errorf("refusal %s carries the token", body)
			}
		})
	}
}
