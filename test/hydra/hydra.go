// Package hydra runs Ory Hydra, a real OAuth 2.0 authorization server, for
// tests: Build compiles it from the Go module proxy (the version this module's
// go.mod requires as a tool) into a cache directory, and Start runs it on free
// loopback ports with an in-memory database, one server per test.
//
// This is a module of its own, used only by tests: Hydra and its dependencies
// never reach the sidecar's binary or the root module's go.mod.
//
// Hydra needs cgo (its in-memory database is SQLite), so a C compiler. With
// CI set in the environment, a Hydra that cannot be built fails the test;
// without it, a machine with no C compiler skips the test and says why. Any
// other build failure fails the test everywhere.
//
// What Hydra v2.3.0 does, as this package's tests show:
//
//   - The JWT-bearer grant (RFC 7523 section 2.1) needs client
//     authentication: a public client (token_endpoint_auth_method none)
//     sending client_id will do, and the client must be allowed the grant
//     (else 400 unauthorized_client). No client_id at all: 400
//     invalid_request.
//   - The assertion must have iss, sub, aud (the token URL, as a string or
//     in a list), exp, iat and jti; exp - iat may be at most
//     oauth2.grant.jwt.max_ttl, 720h by default; nbf, if present, must have
//     passed. Each is 400 invalid_grant otherwise, as are an unknown issuer
//     or subject and a signature by a key not trusted for them. A scope not
//     granted to the issuer is 400 invalid_scope.
//   - A jti is accepted once, until its assertion's exp: again, 400
//     jti_known. Client assertions and grant assertions share that list.
//   - private_key_jwt client authentication works with a key in the
//     client's jwks (RS256, PS256, ES256; the client's
//     token_endpoint_auth_signing_alg is the only alg accepted); a failure
//     is 401 invalid_client, a reused jti 400 jti_known.
//   - RFC 8693 token exchange is not implemented: a client can be registered
//     for the grant type, but the token endpoint answers 400
//     invalid_request.
package hydra

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Module is the Go module of Hydra's command, a tool of this module.
const Module = "github.com/ory/hydra/v2"

// buildTags give Hydra its SQLite driver (DSN=memory is refused without it)
// without SQLite's extension loading.
const buildTags = "sqlite,sqlite_omit_load_extension"

// Grant types and client authentication methods, as Hydra names them.
const (
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	ClientAssertionType    = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildSkip string // why Hydra cannot be built on this machine
	buildErr  error
)

// Build returns the path of a Hydra binary built from this module's go.mod,
// building it at most once per test binary. The binary is kept under the
// user's cache directory, keyed by this module's go.mod and go.sum, the Go
// version and the platform, so that a later run reuses it: a cold build takes
// minutes, a reuse nothing.
func Build(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildBin, buildSkip, buildErr = build() })
	switch {
	case buildSkip != "" && os.Getenv("CI") != "":
		t.Fatalf("hydra: cannot build Hydra (CI is set, so this fails rather than skips): %s", buildSkip)
	case buildSkip != "":
		t.Skipf("hydra: cannot build Hydra on this machine, skipping: %s", buildSkip)
	case buildErr != nil:
		t.Fatalf("hydra: %v", buildErr)
	}
	return buildBin
}

// goEnv reads the go command's settings in this module's directory.
func goEnv(names ...string) (map[string]string, error) {
	out, err := exec.Command("go", append([]string{"env", "-json"}, names...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("go env: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("go env: %v", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		return nil, fmt.Errorf("go env: %v", err)
	}
	return env, nil
}

// build compiles Hydra, or finds it already compiled, and returns its path;
// or why it cannot be built here (skip); or what went wrong (err).
func build() (bin, skip string, err error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", "no go command in PATH", nil
	}
	env, err := goEnv("GOMOD", "GOVERSION", "GOOS", "GOARCH", "CC")
	if err != nil {
		return "", "", err
	}
	gomod := env["GOMOD"]
	dir := filepath.Dir(gomod)
	mod, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", err
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		return "", "", err
	}
	version := requiredVersion(mod, Module)
	if version == "" {
		return "", "", fmt.Errorf("%s requires no version of %s: hydra.Build must run in the test/hydra module", gomod, Module)
	}
	h := sha256.New()
	for _, part := range [][]byte{mod, sum, []byte(env["GOVERSION"]), []byte(env["GOOS"] + "/" + env["GOARCH"]), []byte(buildTags)} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	key := version + "-" + hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	root := filepath.Join(cache, "authsidecar-hydra")
	bin = filepath.Join(root, key, "hydra")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, "", nil
	}
	cc := env["CC"]
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(strings.Fields(cc)[0]); err != nil {
		return "", fmt.Sprintf("no C compiler (%q not found): Hydra's SQLite needs cgo; install gcc", cc), nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.Command("go", "build", "-tags", buildTags, "-ldflags=-s -w", "-o", tmp, Module)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("building Hydra %s (%s in %s): %v\n%s", version, strings.Join(cmd.Args, " "), dir, err, tail(out.String(), 40))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", "", err
	}
	fmt.Fprintf(os.Stderr, "hydra: built Hydra %s in %v into %s\n", version, time.Since(start).Round(time.Second), bin)
	// Binaries built for other versions of go.mod are of no further use.
	if old, err := os.ReadDir(root); err == nil {
		for _, e := range old {
			if e.Name() != key {
				os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	return bin, "", nil
}

// requiredVersion returns the version of module that go.mod requires.
func requiredVersion(gomod []byte, module string) string {
	for line := range strings.Lines(string(gomod)) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Server is a running Hydra.
type Server struct {
	// PublicURL is the public interface (token endpoint, discovery), AdminURL
	// the administrative one (clients, trusted issuers, introspection); both
	// without a trailing slash.
	PublicURL, AdminURL string
	// Issuer is Hydra's issuer URL; TokenURL its token endpoint as its
	// discovery document names it, the audience that assertions must have.
	Issuer, TokenURL string
	// Ready is how long Hydra took, from its start, to answer as ready.
	Ready time.Duration
	// LogPath is the file that holds Hydra's output.
	LogPath string

	client *http.Client
}

// Start runs Hydra (building it first if need be) with an in-memory database
// on free loopback ports, waits until both its interfaces say they are
// ready, and stops it when the test ends. env adds settings, "KEY=value" in
// Hydra's environment form (OAUTH2_GRANT_JWT_MAX_TTL=1h, TTL_ACCESS_TOKEN=5m,
// …). If the test fails, the end of Hydra's log is logged.
func Start(t testing.TB, env ...string) *Server {
	t.Helper()
	bin := Build(t)
	for attempt := 1; ; attempt++ {
		s, retry, err := start(t, bin, env)
		if err == nil {
			return s
		}
		if !retry || attempt == 3 {
			t.Fatalf("hydra: %v", err)
		}
		t.Logf("hydra: %v; trying other ports", err)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start runs Hydra once; retry says whether another try on other ports may
// succeed (a port taken between freePorts and Hydra's listen).
func start(t testing.TB, bin string, extra []string) (s *Server, retry bool, err error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, false, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	s = &Server{
		PublicURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		AdminURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		LogPath:   filepath.Join(t.TempDir(), "hydra.log"),
		client:    &http.Client{Timeout: 10 * time.Second},
	}
	s.Issuer = s.PublicURL + "/"
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return nil, false, err
	}
	defer logf.Close()

	// Hydra reads its configuration from the environment: it gets only
	// these settings, none from the test's environment.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"TMPDIR=" + os.TempDir(),
		"DSN=memory",
		"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
		"SERVE_PUBLIC_HOST=127.0.0.1",
		fmt.Sprintf("SERVE_PUBLIC_PORT=%d", ports[0]),
		"SERVE_ADMIN_HOST=127.0.0.1",
		fmt.Sprintf("SERVE_ADMIN_PORT=%d", ports[1]),
		"URLS_SELF_ISSUER=" + s.Issuer,
		"URLS_SELF_PUBLIC=" + s.PublicURL + "/",
		"URLS_SELF_ADMIN=" + s.AdminURL + "/",
		"SQA_OPT_OUT=true",
		"LOG_LEVEL=info", // debug adds a stack trace to each refusal
		"LOG_FORMAT=text",
		// error_debug in error answers: a refusal's cause shows in a test's
		// failure message.
		"OAUTH2_EXPOSE_INTERNAL_ERRORS=true",
	}
	env = append(env, extra...)

	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, false, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.After(30 * time.Second)
	for _, u := range []string{s.AdminURL + "/health/ready", s.PublicURL + "/health/ready"} {
		for !s.ready(u) {
			select {
			case err := <-exited:
				log, _ := os.ReadFile(s.LogPath)
				return nil, strings.Contains(string(log), "address already in use"),
					fmt.Errorf("the Hydra process exited before it was ready (%v); its log:\n%s", err, tail(string(log), 40))
			case <-deadline:
				stop()
				log, _ := os.ReadFile(s.LogPath)
				return nil, false, fmt.Errorf("the Hydra process was not ready at %s within 30s; its log:\n%s", u, tail(string(log), 40))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	s.Ready = time.Since(begin)

	t.Cleanup(func() {
		stop()
		if t.Failed() {
			log, _ := os.ReadFile(s.LogPath)
			t.Logf("hydra: the end of Hydra's log (%s):\n%s", s.LogPath, tail(string(log), 60))
		}
	})

	var disc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if code, body := s.do(t, http.MethodGet, s.PublicURL+"/.well-known/openid-configuration", "", nil, &disc); code != http.StatusOK {
		return nil, false, fmt.Errorf("the discovery document: %d %s", code, body)
	}
	if disc.TokenEndpoint == "" {
		return nil, false, errors.New("the discovery document names no token endpoint")
	}
	s.Issuer, s.TokenURL = disc.Issuer, disc.TokenEndpoint
	return s, false, nil
}

// ready reports whether u answers 200.
func (s *Server) ready(u string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// do sends a request with body (JSON or form, per contentType) and decodes a
// JSON answer into out, if not nil; it returns the status and the raw answer.
func (s *Server) do(t testing.TB, method, u, contentType string, body io.Reader, out any, edit ...func(*http.Request)) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatalf("hydra: %v", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	for _, e := range edit {
		e(req)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("hydra: %s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("hydra: %s %s: reading the answer: %v", method, u, err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("hydra: %s %s: %d answer is not the JSON expected (%v): %s", method, u, resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode, raw
}

// admin posts v as JSON to the admin path and decodes the answer into out;
// any status but want fails the test.
func (s *Server) admin(t testing.TB, path string, v, out any, want int) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("hydra: %v", err)
	}
	if code, raw := s.do(t, http.MethodPost, s.AdminURL+path, "application/json", bytes.NewReader(body), out); code != want {
		t.Fatalf("hydra: POST %s: %d, want %d: %s\nrequest: %s", path, code, want, raw, body)
	}
}

// ClientSpec describes an OAuth 2.0 client to create.
type ClientSpec struct {
	// AuthMethod is how the client authenticates at the token endpoint:
	// "none" (a public client, which sends only client_id),
	// "client_secret_basic", "client_secret_post" or "private_key_jwt".
	// If empty, "none".
	AuthMethod string
	// GrantTypes the client may use. If empty, only the JWT-bearer grant.
	GrantTypes []string
	// Scopes the client may ask for.
	Scopes []string
	// Key is the client's public key, for private_key_jwt: KeyID its kid and
	// SigningAlg the one alg Hydra accepts for its assertions (if empty,
	// RS256 for an RSA key and ES256 for an ECDSA one).
	Key        crypto.PublicKey
	KeyID      string
	SigningAlg string
	// Audience the client may ask tokens for.
	Audience []string
}

// Client is a created OAuth 2.0 client. Secret is empty unless the client
// authenticates with a secret.
type Client struct {
	ID, Secret string
}

// CreateClient creates a client as spec says.
func (s *Server) CreateClient(t testing.TB, spec ClientSpec) Client {
	t.Helper()
	if spec.AuthMethod == "" {
		spec.AuthMethod = "none"
	}
	if len(spec.GrantTypes) == 0 {
		spec.GrantTypes = []string{GrantJWTBearer}
	}
	req := map[string]any{
		"client_name":                "authsidecar-test",
		"grant_types":                spec.GrantTypes,
		"response_types":             []string{"token"},
		"scope":                      strings.Join(spec.Scopes, " "),
		"token_endpoint_auth_method": spec.AuthMethod,
	}
	if len(spec.Audience) > 0 {
		req["audience"] = spec.Audience
	}
	if spec.Key != nil {
		alg := spec.SigningAlg
		if alg == "" {
			alg = defaultAlg(spec.Key)
		}
		jwk, err := JWK(spec.Key, spec.KeyID, alg)
		if err != nil {
			t.Fatalf("hydra: %v", err)
		}
		req["jwks"] = map[string]any{"keys": []any{jwk}}
		req["token_endpoint_auth_signing_alg"] = alg
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	s.admin(t, "/admin/clients", req, &out, http.StatusCreated)
	if out.ClientID == "" {
		t.Fatalf("hydra: the created client has no client_id")
	}
	c := Client{ID: out.ClientID}
	if strings.HasPrefix(spec.AuthMethod, "client_secret_") {
		c.Secret = out.ClientSecret
	}
	return c
}

// TrustIssuer makes Hydra accept, for the JWT-bearer grant, assertions whose
// iss is issuer, whose sub is subject (any subject if subject is empty),
// that are signed by the key whose public half is pub, with kid as its key
// id (kid is required), for the given scopes. The trust lasts an hour.
func (s *Server) TrustIssuer(t testing.TB, issuer, subject string, pub crypto.PublicKey, kid string, scopes []string) {
	t.Helper()
	jwk, err := JWK(pub, kid, defaultAlg(pub))
	if err != nil {
		t.Fatalf("hydra: %v", err)
	}
	req := map[string]any{
		"issuer":     issuer,
		"scope":      scopes,
		"jwk":        jwk,
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
	}
	if subject == "" {
		req["allow_any_subject"] = true
	} else {
		req["subject"] = subject
	}
	s.admin(t, "/admin/trust/grants/jwt-bearer/issuers", req, nil, http.StatusCreated)
}

// defaultAlg is the JWS alg for a key: RS256 for RSA, ES256 for ECDSA P-256.
func defaultAlg(pub crypto.PublicKey) string {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		switch k.Curve {
		case elliptic.P384():
			return "ES384"
		case elliptic.P521():
			return "ES512"
		}
		return "ES256"
	}
	return "RS256"
}

// JWK returns the public key pub (RSA or ECDSA) as a JSON Web Key for
// signatures with alg, named kid.
func JWK(pub crypto.PublicKey, kid, alg string) (map[string]any, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := map[string]any{"kid": kid, "use": "sig", "alg": alg}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		jwk["kty"] = "RSA"
		jwk["n"] = b64(k.N.Bytes())
		jwk["e"] = b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y, each the curve's size
		if err != nil {
			return nil, fmt.Errorf("hydra: JWK: %v", err)
		}
		size := (len(point) - 1) / 2
		jwk["kty"] = "EC"
		jwk["crv"] = k.Curve.Params().Name
		jwk["x"] = b64(point[1 : 1+size])
		jwk["y"] = b64(point[1+size:])
	default:
		return nil, fmt.Errorf("hydra: JWK: unsupported key type %T", pub)
	}
	return jwk, nil
}

// TokenResponse is the token endpoint's answer: a token, or an error
// (RFC 6749 section 5), with Hydra's error_hint and error_debug.
type TokenResponse struct {
	Status           int    `json:"-"`
	Raw              string `json:"-"`
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorHint        string `json:"error_hint"`
	ErrorDebug       string `json:"error_debug"`
}

// PostToken posts form to the token endpoint, with HTTP Basic client
// credentials if basicAuth is a client id and secret, and returns the answer
// whatever its status.
func (s *Server) PostToken(t testing.TB, form url.Values, basicAuth ...string) *TokenResponse {
	t.Helper()
	var edit []func(*http.Request)
	switch len(basicAuth) {
	case 0:
	case 2:
		edit = append(edit, func(r *http.Request) {
			r.SetBasicAuth(url.QueryEscape(basicAuth[0]), url.QueryEscape(basicAuth[1]))
		})
	default:
		t.Fatalf("hydra: PostToken: basicAuth is a client id and a secret, got %d strings", len(basicAuth))
	}
	var r TokenResponse
	code, raw := s.do(t, http.MethodPost, s.TokenURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), &r, edit...)
	r.Status, r.Raw = code, string(raw)
	return &r
}

// Introspect asks Hydra's admin interface about an access token and returns
// its answer (active, sub, client_id, scope, exp, …).
func (s *Server) Introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	out, err := s.IntrospectContext(context.Background(), token)
	if err != nil {
		t.Fatalf("hydra: %v", err)
	}
	return out
}

// IntrospectContext is Introspect returning its error rather than failing a
// test, for a handler (an upstream that accepts only the tokens Hydra says
// are active), which runs outside the test's goroutine.
func (s *Server) IntrospectContext(ctx context.Context, token string) (map[string]any, error) {
	form := url.Values{"token": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.AdminURL+"/admin/oauth2/introspect", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("introspection: reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: %d %s", resp.StatusCode, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("introspection: the answer is not JSON (%v): %s", err, raw)
	}
	return out, nil
}
