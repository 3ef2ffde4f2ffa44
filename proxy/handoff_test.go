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
// POST, with or without a body or a query.
func handoffRequests(t *testing.T, srv string) map[string]*http.Request {
	return map[string]*http.Request{
		"GET":                bodyRequest(t, http.MethodGet, srv+"/auth", nil, false),
		"GET with a query":   bodyRequest(t, http.MethodGet, srv+"/auth?platform=ios", nil, false),
		"POST with a body":   bodyRequest(t, http.MethodPost, srv+"/auth", []byte(`{"platform":"web"}`), false),
		"POST chunked":       bodyRequest(t, http.MethodPost, srv+"/auth", []byte(`{"platform":"web"}`), true),
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
	// Extra must not leak into the OAuth2 shape.
	tok := &tokens.Token{Value: "tok-handoff", Expiry: expiry, Extra: map[string]string{"Code": "00000000"}}
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{tok}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/auth"})

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

func TestHandoffRefusesOtherMethods(t *testing.T) {
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{{Value: "tok-1", Expiry: time.Now().Add(time.Hour)}}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: src, HandoffPath: "/auth", MaxReplayBody: 1 << 10})
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		t.Run(method, func(t *testing.T) {
			resp, body := do(t, srv.Client(), bodyRequest(t, method, srv.URL+"/auth", []byte(`{"platform":"web"}`), false))
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
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, ""), Tokens: tc.ts, HandoffPath: "/auth"})
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				resp, body := do(t, srv.Client(), bodyRequest(t, method, srv.URL+"/auth", nil, false))
				checkSidecarError(t, resp, body, http.StatusServiceUnavailable, "token_unavailable")
			}
			if got := up.requests(); len(got) != 0 {
				t.Errorf("upstream got %d requests, want none", len(got))
			}
		})
	}
	if n := fromFake.tokenCalls(); n != 2 {
		t.Errorf("fake source asked %d times, want 2 (one per hand-off request)", n)
	}
}

// TestHandoffPathMatchesExactly checks that only the hand-off path itself is
// answered locally: anything else, a sub-path included, is proxied.
func TestHandoffPathMatchesExactly(t *testing.T) {
	up := newUpstream(t, nil)
	src := &handoffTokens{toks: []*tokens.Token{{Value: "tok-1", Expiry: time.Now().Add(time.Hour)}}}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), Tokens: src, HandoffPath: "/v1/auth"})

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
	decodeStrict(t, body, "access_token", "token_type", "expires_in", "expires_at")
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
		{name: "no token source", cfg: proxy.Config{HandoffPath: "/auth"}, auth: []string{"Bearer app"}},
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
				req := bodyRequest(t, method, srv.URL+"/auth", []byte(`{"platform":"web"}`), false)
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
				if r.RequestURI != "/api/auth" || string(r.Body) != `{"platform":"web"}` {
					t.Errorf("upstream got %s %s %q, want /api/auth with the app's body", r.Method, r.RequestURI, r.Body)
				}
				if a := r.Header.Values("Authorization"); !slices.Equal(a, tc.auth) {
					t.Errorf("upstream Authorization = %q, want %q", a, tc.auth)
				}
			}
		})
	}
}
