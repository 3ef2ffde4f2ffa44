package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/authsidecar/authsidecar/tokens"
)

// privateKeyJWT returns the variables that turn minimal("oauth2", …) into a
// valid private_key_jwt configuration with the key at keyFile, with
// overrides applied.
func privateKeyJWT(keyFile string, overrides map[string]string) map[string]string {
	vars := map[string]string{
		"OAUTH2_AUTH_STYLE":         "private-key-jwt",
		"CLIENT_SECRET":             unset,
		"CLIENT_ASSERTION_KEY_FILE": keyFile,
	}
	maps.Copy(vars, overrides)
	return vars
}

// oddKeys are keys that suit no client assertion algorithm but their own
// kind: an ECDSA P-384 key, and an RSA key below 2048 bits.
type oddKeys struct{ ecP384, rsa1024 string }

func writeOddKeys(t *testing.T) oddKeys {
	t.Helper()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return oddKeys{
		ecP384:  writeFile(t, dir, "p384.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))),
		rsa1024: writeFile(t, dir, "rsa1024.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))),
	}
}

func TestLoadConfigSourcesValid(t *testing.T) {
	keys := writeKeyFiles(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "api-token", "file-token\n")
	idFile := writeFile(t, dir, "client-id", "client-from-file\n")

	tests := []struct {
		name   string
		source string
		env    map[string]string
		check  func(t *testing.T, c Config)
	}{
		{
			name: "file with a readable TOKEN_FILE", source: "file", env: map[string]string{"TOKEN_FILE": tokenFile, "HANDOFF_PATH": "/token"},
			check: func(t *testing.T, c Config) {
				if c.TokenFile != tokenFile || c.HandoffPath != "/token" || c.Inject != "bearer" {
					t.Errorf("TokenFile, HandoffPath, Inject = %q %q %q; want %q /token bearer", c.TokenFile, c.HandoffPath, c.Inject, tokenFile)
				}
			},
		},
		{
			name: "private-key-jwt defaults to RS256", source: "oauth2", env: privateKeyJWT(keys.pkcs1, nil),
			check: func(t *testing.T, c Config) { checkAssertion(t, c, "RS256", "") },
		},
		{
			name: "private-key-jwt PS256 with an RSA PKCS#8 key and a key id", source: "oauth2",
			env:   privateKeyJWT(keys.pkcs8, map[string]string{"CLIENT_ASSERTION_ALG": "PS256", "CLIENT_ASSERTION_KEY_ID": "2026-11"}),
			check: func(t *testing.T, c Config) { checkAssertion(t, c, "PS256", "2026-11") },
		},
		{
			name: "private-key-jwt ES256 with a SEC 1 P-256 key", source: "oauth2",
			env:   privateKeyJWT(keys.ecSEC1, map[string]string{"CLIENT_ASSERTION_ALG": "ES256"}),
			check: func(t *testing.T, c Config) { checkAssertion(t, c, "ES256", "") },
		},
		{
			name: "private-key-jwt ES256 with a PKCS#8 P-256 key and the client id from a file", source: "oauth2",
			env:   privateKeyJWT(keys.ecPKCS8, map[string]string{"CLIENT_ASSERTION_ALG": "ES256", "CLIENT_ID": unset, "CLIENT_ID_FILE": idFile}),
			check: func(t *testing.T, c Config) { checkAssertion(t, c, "ES256", "") },
		},
		{
			name: "assertion variables are not checked without private-key-jwt", source: "oauth2",
			env: map[string]string{"CLIENT_ASSERTION_KEY_FILE": filepath.Join(dir, "missing.pem"), "CLIENT_ASSERTION_ALG": "HS256"},
			check: func(t *testing.T, c Config) {
				if a := assertion(c); a != nil {
					t.Errorf("assertion = %v, want nil with a client secret", a)
				}
			},
		},
		{
			name: "hand-off with json beside a signing endpoint", source: "json",
			env: signing(keys.pkcs1, map[string]string{"INJECT": "bearer", "SIGN_PATH": "/sign", "HANDOFF_PATH": "/token"}),
			check: func(t *testing.T, c Config) {
				if c.HandoffPath != "/token" || c.SignPath != "/sign" {
					t.Errorf("HandoffPath, SignPath = %q %q; want /token /sign", c.HandoffPath, c.SignPath)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(minimal(tc.source, tc.env))
			if err != nil {
				t.Fatalf("loadConfig() error = %v, want none", err)
			}
			tc.check(t, c)
		})
	}
}

// checkAssertion checks the client assertion a private-key-jwt
// configuration derived.
func checkAssertion(t *testing.T, c Config, alg, kid string) {
	t.Helper()
	a := assertion(c)
	if a == nil {
		t.Fatal("assertion = nil, want one")
	}
	if a.Alg != alg || a.KeyID != kid || a.Key == nil {
		t.Errorf("assertion = alg %q, kid %q, key %v; want alg %q, kid %q and a key", a.Alg, a.KeyID, a.Key, alg, kid)
	}
	if err := a.Check(); err != nil {
		t.Errorf("assertion.Check() = %v, want nil", err)
	}
	if authStyles[c.OAuth2AuthStyle] != oauth2.AuthStyleInParams {
		t.Errorf("authStyle = %v, want AuthStyleInParams", authStyles[c.OAuth2AuthStyle])
	}
	if c.ClientSecret != "" || c.ClientSecretFile != "" {
		t.Errorf("client secret = %q / %q, want none", c.ClientSecret, c.ClientSecretFile)
	}
}

func TestLoadConfigSourcesBadValue(t *testing.T) {
	keys := writeKeyFiles(t)
	odd := writeOddKeys(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	secretFile := writeFile(t, dir, "secret", "s")

	checkOneProblem(t, []badInject{
		// file
		{"file without TOKEN_FILE", "file", nil, "TOKEN_FILE", "required with AUTHSIDECAR_TOKEN_SOURCE=file"},
		{"file with TOKEN_FILE missing", "file", map[string]string{"TOKEN_FILE": missing}, "TOKEN_FILE", "no such file"},
		{"file with TOKEN_FILE a directory", "file", map[string]string{"TOKEN_FILE": dir}, "TOKEN_FILE", "is a directory"},
		// private-key-jwt
		{"private-key-jwt without CLIENT_ID", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_ID": unset}), "CLIENT_ID", "required"},
		{"private-key-jwt without a key file", "oauth2", privateKeyJWT("", nil), "CLIENT_ASSERTION_KEY_FILE", "required with AUTHSIDECAR_OAUTH2_AUTH_STYLE=private-key-jwt"},
		{"private-key-jwt with CLIENT_SECRET set", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_SECRET": "secret-1"}), "CLIENT_SECRET", "not used with AUTHSIDECAR_OAUTH2_AUTH_STYLE=private-key-jwt"},
		{"private-key-jwt with CLIENT_SECRET_FILE set", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_SECRET_FILE": secretFile}), "CLIENT_SECRET", "not used"},
		{"private-key-jwt with a missing key file", "oauth2", privateKeyJWT(missing, nil), "CLIENT_ASSERTION_KEY_FILE", "no such file"},
		{"private-key-jwt with a key file that is not PEM", "oauth2", privateKeyJWT(keys.notPEM, nil), "CLIENT_ASSERTION_KEY_FILE", "no PEM private key found"},
		{"ES256 with an RSA key", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_ASSERTION_ALG": "ES256"}), "CLIENT_ASSERTION_ALG", "ES256 needs an ECDSA P-256 key"},
		{"ES256 with a P-384 key", "oauth2", privateKeyJWT(odd.ecP384, map[string]string{"CLIENT_ASSERTION_ALG": "ES256"}), "CLIENT_ASSERTION_ALG", "P-384"},
		{"RS256 with an EC key", "oauth2", privateKeyJWT(keys.ecSEC1, map[string]string{"CLIENT_ASSERTION_ALG": "RS256"}), "CLIENT_ASSERTION_ALG", "RS256 needs an RSA key"},
		{"default RS256 with an EC PKCS#8 key", "oauth2", privateKeyJWT(keys.ecPKCS8, nil), "CLIENT_ASSERTION_ALG", "needs an RSA key"},
		{"PS256 with an EC key", "oauth2", privateKeyJWT(keys.ecSEC1, map[string]string{"CLIENT_ASSERTION_ALG": "PS256"}), "CLIENT_ASSERTION_ALG", "PS256 needs an RSA key"},
		{"RS256 with a 1024-bit RSA key", "oauth2", privateKeyJWT(odd.rsa1024, nil), "CLIENT_ASSERTION_ALG", "at least 2048 bits"},
		{"unknown alg", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_ASSERTION_ALG": "HS256"}), "CLIENT_ASSERTION_ALG", `unsupported alg "HS256"`},
		{"alg is case-sensitive", "oauth2", privateKeyJWT(keys.ecSEC1, map[string]string{"CLIENT_ASSERTION_ALG": "es256"}), "CLIENT_ASSERTION_ALG", `"es256"`},
		// HANDOFF_PATH
		{"hand-off path relative", "oauth2", map[string]string{"HANDOFF_PATH": "auth"}, "HANDOFF_PATH", `must be a path starting with /, got "auth"`},
		{"hand-off path a URL", "json", map[string]string{"HANDOFF_PATH": "http://localhost/auth"}, "HANDOFF_PATH", "starting with /"},
		{"hand-off path the signing path", "json", signing(keys.pkcs1, map[string]string{"INJECT": "bearer", "SIGN_PATH": "/sign", "HANDOFF_PATH": "/sign"}), "HANDOFF_PATH", "must differ from AUTHSIDECAR_SIGN_PATH"},
		{"hand-off path without a token source", "none", map[string]string{"HANDOFF_PATH": "/auth"}, "HANDOFF_PATH", "needs a token source"},
		{"hand-off path with signing but no token source", "none", signing(keys.pkcs1, map[string]string{"HANDOFF_PATH": "/auth"}), "HANDOFF_PATH", "needs a token source"},
	})
}

// TestLoadConfigSourcesProblemNamedOnce checks that a variable is named in
// exactly one problem, and only at the start of it: the text after the name
// does not name it again.
func TestLoadConfigSourcesProblemNamedOnce(t *testing.T) {
	keys := writeKeyFiles(t)
	for _, tc := range []badInject{
		{"SDK_AUTH_TTL", "json", map[string]string{"SDK_AUTH_TTL": "a day"}, "SDK_AUTH_TTL", ""},
		{"TOKEN_FILE", "file", map[string]string{"TOKEN_FILE": filepath.Join(t.TempDir(), "gone")}, "TOKEN_FILE", ""},
		{"CLIENT_ASSERTION_KEY_FILE", "oauth2", privateKeyJWT(filepath.Join(t.TempDir(), "gone.pem"), nil), "CLIENT_ASSERTION_KEY_FILE", ""},
		{"CLIENT_ASSERTION_ALG", "oauth2", privateKeyJWT(keys.pkcs1, map[string]string{"CLIENT_ASSERTION_ALG": "ES256"}), "CLIENT_ASSERTION_ALG", ""},
		{"HANDOFF_PATH", "none", map[string]string{"HANDOFF_PATH": "/auth"}, "HANDOFF_PATH", ""},
	} {
		_, err := loadConfig(minimal(tc.source, tc.env))
		variable := envPrefix + tc.variable
		if err == nil {
			t.Errorf("%s: loadConfig() error = nil, want a problem", tc.name)
			continue
		}
		if n := strings.Count(err.Error(), variable); n != 1 {
			t.Errorf("%s: loadConfig() error = %q names %s %d times, want once", tc.name, err, variable, n)
		}
	}
}

// TestLoadConfigSourcesReportEveryProblemOnce leaves out or breaks
// everything at once: each variable is named once.
func TestLoadConfigSourcesReportEveryProblemOnce(t *testing.T) {
	keys := writeKeyFiles(t)
	tests := []struct {
		name   string
		source string
		env    map[string]string
		want   []string
	}{
		{
			name: "private-key-jwt", source: "oauth2",
			env:  privateKeyJWT("", map[string]string{"CLIENT_ID": unset, "CLIENT_SECRET": "s", "HANDOFF_PATH": "x"}),
			want: []string{"CLIENT_ID", "CLIENT_SECRET", "CLIENT_ASSERTION_KEY_FILE", "HANDOFF_PATH"},
		},
		{
			name: "private-key-jwt with a wrong key", source: "oauth2",
			env:  privateKeyJWT(keys.pkcs8, map[string]string{"CLIENT_ASSERTION_ALG": "ES256", "CLIENT_SECRET_FILE": "/nowhere", "TOKEN_URL": unset}),
			want: []string{"TOKEN_URL", "CLIENT_SECRET", "CLIENT_ASSERTION_ALG"},
		},
		{
			name: "file", source: "file",
			env:  map[string]string{"HANDOFF_PATH": "token"},
			want: []string{"TOKEN_FILE", "HANDOFF_PATH"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(minimal(tc.source, tc.env))
			lines := problemLines(err)
			for _, v := range tc.want {
				if n := linesNaming(lines, envPrefix+v); n != 1 {
					t.Errorf("%s%s reported %d times, want once, in:\n%s", envPrefix, v, n, err)
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("loadConfig() reported %d problems, want %d:\n%s", len(lines), len(tc.want), err)
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

// TestNewSourceKinds checks that each TOKEN_SOURCE builds its own kind of
// source, from the configuration as loadConfig read it.
func TestNewSourceKinds(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "api-token", "  file-token-1\n")
	client := &http.Client{Timeout: 10 * time.Second}

	c, err := loadConfig(minimal("none", nil))
	if err != nil {
		t.Fatal(err)
	}
	if src := newSource(c, client, nil); src != nil {
		t.Errorf("newSource(none) = %T, want nil", src)
	}

	c, err = loadConfig(minimal("file", map[string]string{"TOKEN_FILE": tokenFile, "TOKEN_DEFAULT_TTL": "7m"}))
	if err != nil {
		t.Fatal(err)
	}
	src := newSource(c, client, nil)
	fs, ok := src.(*tokens.FileSource)
	if !ok {
		t.Fatalf("newSource(file) = %T, want *tokens.FileSource (run watches it)", src)
	}
	before := time.Now()
	tok, err := fs.Token(context.Background())
	if err != nil {
		t.Fatalf("file source Token() error = %v", err)
	}
	if tok.Value != "file-token-1" {
		t.Errorf("file source Token().Value = %q, want %q", tok.Value, "file-token-1")
	}
	if tok.Expiry.Before(before.Add(7*time.Minute)) || tok.Expiry.After(time.Now().Add(7*time.Minute)) {
		t.Errorf("file source Token().Expiry = %v, want TOKEN_DEFAULT_TTL (7m) from now", tok.Expiry)
	}
	if fs.Changed() == nil {
		t.Error("file source Changed() = nil, want a channel for the cache")
	}

	for _, source := range []string{"json", "oauth2"} {
		c, err := loadConfig(minimal(source, nil))
		if err != nil {
			t.Fatal(err)
		}
		src := newSource(c, client, nil)
		if _, isFile := src.(*tokens.FileSource); src == nil || isFile {
			t.Errorf("newSource(%s) = %T, want a network source", source, src)
		}
	}
}

// tokenEndpoint is a fake OAuth2 token endpoint that records the forms and
// Authorization headers it receives and issues "at-n".
type tokenEndpoint struct {
	*httptest.Server
	mu    sync.Mutex
	forms []url.Values
	auth  []string
}

func newTokenEndpoint(t *testing.T) *tokenEndpoint {
	t.Helper()
	e := &tokenEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		e.mu.Lock()
		e.forms = append(e.forms, form)
		e.auth = append(e.auth, r.Header.Get("Authorization"))
		n := len(e.forms)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + strconv.Itoa(n), "token_type": "bearer", "expires_in": 600})
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *tokenEndpoint) seen() ([]url.Values, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.forms), slices.Clone(e.auth)
}

// TestNewSourcePrivateKeyJWT fetches a token through the oauth2 source
// newSource builds for private-key-jwt: the request carries a client
// assertion signed with the configured key and algorithm, and no secret.
func TestNewSourcePrivateKeyJWT(t *testing.T) {
	keys := writeKeyFiles(t)
	tests := []struct {
		alg, keyFile string
	}{
		{"ES256", keys.ecSEC1},
		{"PS256", keys.pkcs8},
		{"RS256", keys.pkcs1},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			e := newTokenEndpoint(t)
			kf, err := tokens.LoadKeyFile(tc.keyFile, nil)
			if err != nil {
				t.Fatal(err)
			}
			key := kf.Signer()
			c, err := loadConfig(minimal("oauth2", privateKeyJWT(tc.keyFile, map[string]string{
				"TOKEN_URL": e.URL + "/oauth2/token", "CLIENT_ID": "my-client",
				"CLIENT_ASSERTION_ALG": tc.alg, "CLIENT_ASSERTION_KEY_ID": "2026-11",
			})))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := newSource(c, e.Client(), nil).Token(context.Background())
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok.Value != "at-1" {
				t.Errorf("Token().Value = %q, want at-1", tok.Value)
			}
			forms, auth := e.seen()
			if len(forms) != 1 {
				t.Fatalf("token endpoint got %d requests, want 1", len(forms))
			}
			f := forms[0]
			if f.Get("grant_type") != "client_credentials" || f.Get("client_id") != "my-client" || f.Get("client_assertion_type") != tokens.ClientAssertionType {
				t.Errorf("form = %v, want grant_type client_credentials, client_id my-client and the JWT assertion type", f)
			}
			if f.Has("client_secret") || auth[0] != "" {
				t.Errorf("form = %v, Authorization = %q; want no secret sent", f, auth[0])
			}
			parsed, err := jwt.Parse(f.Get("client_assertion"), func(*jwt.Token) (any, error) { return key.Public(), nil },
				jwt.WithValidMethods([]string{tc.alg}), jwt.WithAudience(e.URL+"/oauth2/token"), jwt.WithIssuer("my-client"), jwt.WithSubject("my-client"), jwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("client_assertion does not verify with the configured key as %s: %v", tc.alg, err)
			}
			if kid := parsed.Header["kid"]; kid != "2026-11" {
				t.Errorf("client_assertion kid = %v, want 2026-11", kid)
			}
		})
	}
}
