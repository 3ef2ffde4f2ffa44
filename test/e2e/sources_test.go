package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jsonKeys returns the sorted keys of a JSON object, nil if body is not one.
func jsonKeys(body []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkNoSecrets fails the test if any of secrets (name → value) appears in
// the sidecar's output, as printed or once its JSON escaping is undone, or
// in its metrics.
func checkNoSecrets(t *testing.T, s *sidecar, secrets map[string]string) {
	t.Helper()
	out := s.output()
	places := map[string]string{"process output": out, "process output, decoded": jsonStrings([]byte(out)), "/metrics": s.metrics()}
	for what, secret := range secrets {
		if secret == "" {
			continue
		}
		for where, text := range places {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("the %s appears in the %s: …%s…", what, where, text[max(0, i-60):min(len(text), i+len(secret)+10)])
			}
		}
	}
}

// pemSecrets returns the lines of a PEM private key that are key material,
// each a distinctive piece of the key, plus its type line.
func pemSecrets(keyPEM []byte) map[string]string {
	secrets := map[string]string{}
	for i, line := range strings.Split(string(keyPEM), "\n") {
		switch {
		case strings.HasPrefix(line, "-----BEGIN"):
			secrets["PEM header"] = line
		case len(line) >= 16:
			secrets[fmt.Sprintf("PEM line %d", i)] = line
		}
	}
	return secrets
}

func TestFileSourceKubeletRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file string }{
		// As a pod mounts it: the token symlink, in the watched directory.
		{"token symlink", "token"},
		// Through ..data: the watched directory is the timestamped one,
		// which the rotation removes.
		{"through ..data", filepath.Join("..data", "token")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testFileRotation(t, tc.file)
		})
	}
}

// testFileRotation starts a sidecar reading tokenFile, relative to a
// projected-volume layout, and rotates the volume as the kubelet does.
func testFileRotation(t *testing.T, tokenFile string) {
	dir := t.TempDir()
	write := func(sub, token string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "token"), []byte(token+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The layout of a projected volume: token -> ..data/token, ..data ->
	// ..2026_a, the timestamped directory holding the file.
	first := "opaque-sa-token-" + rand.Text()
	write("..2026_a", first)
	if err := os.Symlink("..2026_a", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	// The next token is a JWT: its exp must become the token's expiry.
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	jwtKey := make([]byte, 32)
	rand.Read(jwtKey)
	second, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "system:serviceaccount:payments:legacy-app",
		"aud": "partner-api",
		"exp": exp.Unix(),
	}).SignedString(jwtKey)
	if err != nil {
		t.Fatal(err)
	}

	up := newRecordingUpstream(t, nil)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL,
		"TOKEN_SOURCE": "file",
		"TOKEN_FILE":   filepath.Join(dir, tokenFile),
		"HANDOFF_PATH": "/token",
		"LOG_LEVEL":    "debug",
	})
	s.waitReady(10 * time.Second)
	c := newClient(t)
	bearer := func() string {
		t.Helper()
		n := len(up.requests())
		if r := call(c, http.MethodGet, s.URL+"/api/accounts", nil); r.status != http.StatusOK {
			t.Fatalf("GET /api/accounts = %v, want 200", r)
		}
		reqs := up.requests()
		if len(reqs) != n+1 {
			t.Fatalf("upstream requests = %d, want %d", len(reqs), n+1)
		}
		return reqs[n].header.Get("Authorization")
	}
	handoff := func() (map[string]any, time.Time) {
		t.Helper()
		r := call(c, http.MethodGet, s.URL+"/token", nil)
		at := time.Now()
		var ho map[string]any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &ho) != nil {
			t.Fatalf("GET /token = %v, want 200 and a JSON object", r)
		}
		if want := []string{"access_token", "expires_at", "expires_in", "token_type"}; !slices.Equal(jsonKeys(r.body), want) {
			t.Errorf("GET /token keys = %q, want exactly %q", jsonKeys(r.body), want)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET /token Cache-Control = %q, want no-store", cc)
		}
		return ho, at
	}

	if got, want := bearer(), "Bearer "+first; got != want {
		t.Fatalf("Authorization before the rotation = %q, want %q", got, want)
	}
	// Not a JWT: it lives TOKEN_DEFAULT_TTL, 15m.
	ho, _ := handoff()
	if in, _ := ho["expires_in"].(float64); ho["access_token"] != first || ho["token_type"] != "Bearer" || in < 890 || in > 900 {
		t.Errorf("hand-off before the rotation = %v, want the first token, Bearer, expiring in about 900s", ho)
	}
	// Rotate once the watch is set up: Watch checks the file once it is.
	if !eventually(10*time.Second, func() bool {
		for _, l := range s.logLines() {
			if l["msg"] == "token file checked" && l["trigger"] == "start" {
				return true
			}
		}
		return false
	}) {
		t.Fatal(`no "token file checked" log line with trigger "start" after 10s: the file is not watched`)
	}

	// Rotate as the kubelet does: a new timestamped directory, a ..data_tmp
	// symlink to it renamed over ..data (atomic), the old directory removed.
	write("..2026_b", second)
	if err := os.Symlink("..2026_b", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_a")); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()

	// Within a few seconds (less than the 5s polling interval: the watch
	// sees it), requests carry the new token, and only it from then on.
	var last string
	if !eventually(3*time.Second, func() bool {
		last = bearer()
		return last == "Bearer "+second
	}) {
		t.Fatalf("Authorization 3s after the rotation = %q, want the new token", last)
	}
	t.Logf("new token in use %s after the rotation", time.Since(rotated).Round(time.Millisecond))
	for i := range 5 {
		if got := bearer(); got != "Bearer "+second {
			t.Errorf("request %d after the switch: Authorization = %q, want the new token", i, got)
		}
	}
	ho, at := handoff()
	if ho["access_token"] != second || ho["token_type"] != "Bearer" || ho["expires_at"] != exp.UTC().Format(time.RFC3339) {
		t.Errorf("hand-off after the rotation = %v, want the new token, Bearer, expiring at its exp %s", ho, exp.UTC().Format(time.RFC3339))
	}
	if in, ok := ho["expires_in"].(float64); !ok || in > exp.Sub(at).Seconds()+1 || in < exp.Sub(at).Seconds()-3 {
		t.Errorf("hand-off expires_in = %v, want about %.0f (the JWT's exp)", ho["expires_in"], exp.Sub(at).Seconds())
	}
	if got := s.adminStatus("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz after the rotation = %d, want 200", got)
	}
	if runtime.GOOS == "linux" {
		var triggers []any
		for _, l := range s.logLines() {
			if l["msg"] == "token file changed" {
				triggers = append(triggers, l["trigger"])
			}
		}
		if !slices.Equal(triggers, []any{"inotify"}) {
			t.Errorf(`"token file changed" log lines have triggers %v, want one, "inotify"`, triggers)
		}
	}
	checkNoSecrets(t, s, map[string]string{"first token": first, "second token": second, "second token's signature": second[strings.LastIndexByte(second, '.')+1:]})
}

// assertionRequest is what a private_key_jwt token endpoint saw in one
// request.
type assertionRequest struct {
	assertion, jti, token string
	problems              []string
}

// assertionEndpoint is an OAuth2 token endpoint that authenticates clients
// by private_key_jwt only, verifying each assertion with pub.
type assertionEndpoint struct {
	*httptest.Server
	tokenURL string

	mu   sync.Mutex
	reqs []assertionRequest
}

const assertionClientID = "e2e-jwt-client"

func newAssertionEndpoint(t *testing.T, pub crypto.PublicKey, alg, keyID string) *assertionEndpoint {
	e := &assertionEndpoint{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(e.serve(pub, alg, keyID)))
	e.tokenURL = "http://" + e.Listener.Addr().String() + "/oauth2/token"
	e.Start()
	t.Cleanup(e.Close)
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, req := range e.requests() {
			m[fmt.Sprintf("access token #%d of the private_key_jwt endpoint", i+1)] = req.token
			m[fmt.Sprintf("client assertion #%d sent to the private_key_jwt endpoint", i+1)] = req.assertion
		}
		return m
	})
	return e
}

func (e *assertionEndpoint) serve(pub crypto.PublicKey, alg, keyID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req assertionRequest
		bad := func(format string, args ...any) { req.problems = append(req.problems, fmt.Sprintf(format, args...)) }
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" {
			bad("%s %s, want POST /oauth2/token", r.Method, r.URL.Path)
		}
		if err := r.ParseForm(); err != nil {
			bad("form: %v", err)
		}
		if a := r.Header.Values("Authorization"); len(a) != 0 {
			bad("Authorization header sent: %d values", len(a))
		}
		if r.PostForm.Has("client_secret") {
			bad("client_secret sent")
		}
		if got := r.PostForm.Get("grant_type"); got != "client_credentials" {
			bad("grant_type = %q, want client_credentials", got)
		}
		if got := r.PostForm.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			bad("client_assertion_type = %q, want the RFC 7523 jwt-bearer type", got)
		}
		if r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != assertionClientID {
			bad("client_id = %q, want %q", r.PostForm.Get("client_id"), assertionClientID)
		}
		req.assertion = r.PostForm.Get("client_assertion")
		claims := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(req.assertion, claims, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(assertionClientID), jwt.WithSubject(assertionClientID),
			jwt.WithAudience(e.tokenURL), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
		if err != nil {
			bad("client_assertion does not verify: %v", err)
		} else {
			kid, hasKid := tok.Header["kid"]
			switch {
			case keyID != "" && kid != keyID:
				bad("kid = %v, want %q", kid, keyID)
			case keyID == "" && hasKid:
				bad("kid = %v, want none", kid)
			}
			if aud, ok := claims["aud"].(string); !ok || aud != e.tokenURL {
				bad("aud = %#v, want the token URL %q as a string", claims["aud"], e.tokenURL)
			}
			iat, _ := claims.GetIssuedAt()
			exp, _ := claims.GetExpirationTime()
			if iat == nil || exp.Sub(iat.Time) <= 0 || exp.Sub(iat.Time) > 5*time.Minute {
				bad("iat %v, exp %v: want exp shortly after iat", iat, exp)
			}
			req.jti, _ = claims["jti"].(string)
			if req.jti == "" {
				bad("no jti")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(req.problems) != 0 {
			e.reqs = append(e.reqs, req)
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "client assertion refused"})
			return
		}
		req.token = "at-" + rand.Text()
		e.reqs = append(e.reqs, req)
		// A short life, so that a second request, and a second assertion,
		// come soon.
		json.NewEncoder(w).Encode(map[string]any{"access_token": req.token, "token_type": "Bearer", "expires_in": 2})
	}
}

func (e *assertionEndpoint) requests() []assertionRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reqs)
}

func TestOAuth2PrivateKeyJWT(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKCS8PrivateKey(e2eSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, alg, keyID string
		pub              crypto.PublicKey
		pem              *pem.Block
	}{
		{"RS256 PKCS8 key with a kid", "RS256", "2026-11", &e2eSigningKey().PublicKey, &pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}},
		{"ES256 SEC1 key without a kid", "ES256", "", &ecKey.PublicKey, &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keyPEM := pem.EncodeToMemory(tc.pem)
			keyFile := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			ep := newAssertionEndpoint(t, tc.pub, tc.alg, tc.keyID)
			up := newRecordingUpstream(t, nil)
			env := map[string]string{
				"UPSTREAM_URL":              up.URL,
				"TOKEN_SOURCE":              "oauth2",
				"OAUTH2_AUTH_STYLE":         "private-key-jwt",
				"TOKEN_URL":                 ep.tokenURL,
				"CLIENT_ID":                 assertionClientID,
				"CLIENT_ASSERTION_KEY_FILE": keyFile,
				"CLIENT_ASSERTION_ALG":      tc.alg,
				"TOKEN_WAIT":                "3s",
				"LOG_LEVEL":                 "debug",
			}
			if tc.keyID != "" {
				env["CLIENT_ASSERTION_KEY_ID"] = tc.keyID
			}
			s := startSidecar(t, env)
			if !eventually(10*time.Second, func() bool { return s.adminStatus("/readyz") == http.StatusOK }) {
				var refusals [][]string
				for _, req := range ep.requests() {
					refusals = append(refusals, req.problems)
				}
				t.Fatalf("/readyz not 200 after 10s; the token endpoint's refusals: %q", refusals)
			}

			// Tokens live 2s: a renewal, with a fresh assertion, follows soon.
			if !eventually(10*time.Second, func() bool { return len(ep.requests()) >= 2 }) {
				t.Fatalf("token requests = %d after 10s, want at least 2", len(ep.requests()))
			}
			r := call(newClient(t), http.MethodPost, s.URL+"/v1/checkout", []byte(`{"amount":1}`))
			if r.status != http.StatusOK {
				t.Fatalf("POST /v1/checkout = %v, want 200", r)
			}

			reqs := ep.requests()
			secrets := pemSecrets(keyPEM)
			issued := map[string]bool{}
			jtis := map[string]bool{}
			assertions := map[string]bool{}
			for i, req := range reqs {
				if len(req.problems) != 0 {
					t.Errorf("token request #%d refused: %q", i, req.problems)
					continue
				}
				issued[req.token] = true
				if jtis[req.jti] || assertions[req.assertion] {
					t.Errorf("token request #%d reuses a jti or an assertion: want a fresh assertion per request", i)
				}
				jtis[req.jti], assertions[req.assertion] = true, true
				secrets[fmt.Sprintf("access token #%d", i)] = req.token
				secrets[fmt.Sprintf("client assertion #%d", i)] = req.assertion
				secrets[fmt.Sprintf("client assertion #%d's signature", i)] = req.assertion[strings.LastIndexByte(req.assertion, '.')+1:]
			}
			seen := up.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream requests = %d, want 1", len(seen))
			}
			auth := seen[0].header.Values("Authorization")
			if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") || !issued[strings.TrimPrefix(auth[0], "Bearer ")] {
				t.Errorf("upstream Authorization = %q, want Bearer and a token the endpoint issued", auth)
			}

			// At LOG_LEVEL=debug, neither the tokens, the assertions nor the
			// key are logged, though the fetches are.
			checkNoSecrets(t, s, secrets)
			if n := strings.Count(s.output(), `"msg":"token fetched"`); n < 2 {
				t.Errorf(`output has %d "token fetched" lines, want at least 2`, n)
			}
		})
	}
}

func TestSourceConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(e2eSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	rsaFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(rsaFile, rsaPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(source string, extra ...string) map[string]string {
		env := map[string]string{"UPSTREAM_URL": "https://api.example.com", "TOKEN_SOURCE": source}
		switch source {
		case "oauth2", "json":
			env["TOKEN_URL"], env["CLIENT_ID"] = "https://auth.example.com/oauth2/token", assertionClientID
		}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []string // the variables reported, without the prefix
		mention []string // what the report says besides
	}{
		{"file source without TOKEN_FILE", base("file"), []string{"TOKEN_FILE"}, nil},
		{"file source with a missing TOKEN_FILE", base("file", "TOKEN_FILE", filepath.Join(dir, "no-such-token")), []string{"TOKEN_FILE"}, []string{"no-such-token"}},
		{"private-key-jwt without CLIENT_ASSERTION_KEY_FILE", base("oauth2", "OAUTH2_AUTH_STYLE", "private-key-jwt"), []string{"CLIENT_ASSERTION_KEY_FILE"}, nil},
		{"ES256 with an RSA key", base("oauth2", "OAUTH2_AUTH_STYLE", "private-key-jwt", "CLIENT_ASSERTION_KEY_FILE", rsaFile, "CLIENT_ASSERTION_ALG", "ES256"), []string{"CLIENT_ASSERTION_ALG"}, []string{"ES256", "RSA"}},
		{"HANDOFF_PATH without a leading slash", base("json", "CLIENT_SECRET", clientSecret, "HANDOFF_PATH", "auth"), []string{"HANDOFF_PATH"}, []string{`"auth"`}},
		{"every problem at once", base("file", "MAX_CONNECTIONS", "0", "HANDOFF_PATH", "auth"), []string{"TOKEN_FILE", "MAX_CONNECTIONS", "HANDOFF_PATH"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"LISTEN_ADDR": heldAddr(t), "ADMIN_ADDR": heldAddr(t)}
			for k, v := range tc.env {
				if v != "" {
					env[k] = v
				}
			}
			code, stdout, stderr := runToExit(t, env)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if lines[0] != "authsidecar: invalid configuration:" {
				t.Errorf("stderr starts with %q, want %q", lines[0], "authsidecar: invalid configuration:")
			}
			problems := lines[1:]
			for _, v := range tc.want {
				n := 0
				for _, l := range problems {
					if strings.HasPrefix(l, "  AUTHSIDECAR_"+v+": ") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("stderr names AUTHSIDECAR_%s on %d lines, want 1", v, n)
				}
			}
			if len(problems) != len(tc.want) {
				t.Errorf("stderr lists %d problems, want %d (%q)", len(problems), len(tc.want), tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(stderr, m) {
					t.Errorf("stderr does not mention %q", m)
				}
			}
			for what, secret := range pemSecrets(rsaPEM) {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr holds the key's %s", what)
				}
			}
			if strings.Contains(stderr, "authsidecar started") || strings.Contains(stderr, "address already in use") {
				t.Errorf("authsidecar listened despite the invalid configuration")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}
