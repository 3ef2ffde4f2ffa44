package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// signingKey is a 2048-bit RSA key, generated once for the package's tests.
var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// keyFiles writes the signing key in PKCS#1 and PKCS#8, and an EC key in
// SEC 1 and PKCS#8, in dir.
type keyFiles struct{ pkcs1, pkcs8, ecSEC1, ecPKCS8, notPEM string }

func writeKeyFiles(t *testing.T) keyFiles {
	t.Helper()
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	return keyFiles{
		pkcs1:   writeFile(t, dir, "rsa1.pem", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(signingKey())}))),
		pkcs8:   writeFile(t, dir, "rsa8.pem", string(pkcs8(signingKey()))),
		ecSEC1:  writeFile(t, dir, "ec1.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))),
		ecPKCS8: writeFile(t, dir, "ec8.pem", string(pkcs8(ec))),
		notPEM:  writeFile(t, dir, "not.pem", "MIIEowIBAAKCAQEAtruncated-key-material-do-not-print"),
	}
}

// signing returns the variables of a valid signature configuration with
// the key at keyFile, with overrides applied.
func signing(keyFile string, overrides map[string]string) map[string]string {
	vars := map[string]string{
		"INJECT":           "signature",
		"SIGNING_KEY_FILE": keyFile,
		"SIGNING_KEY_ID":   "key-1234",
		"MERCHANT_ID":      "stock",
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return vars
}

func TestLoadConfigInjectValid(t *testing.T) {
	keys := writeKeyFiles(t)
	tests := []struct {
		name   string
		source string
		env    map[string]string
		want   Config // only the injection fields are compared
	}{
		{
			name: "json defaults to bearer", source: "json",
			want: Config{Inject: "bearer", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "oauth2 with empty INJECT defaults to bearer", source: "oauth2", env: map[string]string{"INJECT": ""},
			want: Config{Inject: "bearer", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "none defaults to none", source: "none",
			want: Config{Inject: "none", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "explicit none with a token source", source: "json", env: map[string]string{"INJECT": "none"},
			want: Config{Inject: "none", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "header X-Api-Token without prefix", source: "json", env: map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token"},
			want: Config{Inject: "header", InjectHeader: "X-Api-Token", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "header with prefix and every token character", source: "oauth2", env: map[string]string{"INJECT": "header", "INJECT_HEADER": "x-tok!#$%&'*+.^_`|~9", "INJECT_PREFIX": "Token token="},
			want: Config{Inject: "header", InjectHeader: "x-tok!#$%&'*+.^_`|~9", InjectPrefix: "Token token=", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "header with an empty name means Authorization", source: "json", env: map[string]string{"INJECT": "header", "INJECT_HEADER": ""},
			want: Config{Inject: "header", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "json-body with default fields", source: "json", env: map[string]string{"INJECT": "json-body"},
			want: Config{Inject: "json-body", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry"},
		},
		{
			name: "json-body with BODY_EXPIRY_FIELD set empty: no expiry", source: "json", env: map[string]string{"INJECT": "json-body", "BODY_EXPIRY_FIELD": ""},
			want: Config{Inject: "json-body", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: ""},
		},
		{
			name: "json-body with custom fields and an absolute expiry from the provider", source: "json",
			env:  map[string]string{"INJECT": "json-body", "BODY_TOKEN_FIELD": "auth.token", "BODY_EXPIRY_FIELD": "auth.meta.expiry", "JSON_EXPIRES_AT_FIELD": "juspay.client_auth_token_expiry"},
			want: Config{Inject: "json-body", InjectHeader: "Authorization", BodyTokenField: "auth.token", BodyExpiryField: "auth.meta.expiry", JSONExpiresAtField: "juspay.client_auth_token_expiry"},
		},
		{
			name: "signature without a token source, PKCS#1 key", source: "none", env: signing(keys.pkcs1, map[string]string{"SERVICE": "in.juspay.hyperapi", "SIGN_PATH": "/v1/sign"}),
			want: Config{Inject: "signature", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry",
				SigningKeyFile: keys.pkcs1, SigningKeyID: "key-1234", MerchantID: "stock", Service: "in.juspay.hyperapi", SignPath: "/v1/sign"},
		},
		{
			name: "signature with a token source, PKCS#8 key", source: "json", env: signing(keys.pkcs8, nil),
			want: Config{Inject: "signature", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry",
				SigningKeyFile: keys.pkcs8, SigningKeyID: "key-1234", MerchantID: "stock"},
		},
		{
			name: "bearer with a signing endpoint", source: "json", env: signing(keys.pkcs8, map[string]string{"INJECT": "bearer", "SIGN_PATH": "/sign"}),
			want: Config{Inject: "bearer", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry",
				SigningKeyFile: keys.pkcs8, SigningKeyID: "key-1234", MerchantID: "stock", SignPath: "/sign"},
		},
		{
			name: "signing variables without signing are not checked", source: "json", env: map[string]string{"SIGNING_KEY_FILE": keys.ecSEC1},
			want: Config{Inject: "bearer", InjectHeader: "Authorization", BodyTokenField: "payload.clientAuthToken", BodyExpiryField: "payload.authExpiry", SigningKeyFile: keys.ecSEC1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(minimal(tc.source, tc.env))
			if err != nil {
				t.Fatalf("loadConfig() error = %v, want none", err)
			}
			got := []string{c.Inject, c.InjectHeader, c.InjectPrefix, c.BodyTokenField, c.BodyExpiryField, c.JSONExpiresAtField,
				c.SigningKeyFile, c.SigningKeyID, c.MerchantID, c.Service, c.SignPath}
			w := tc.want
			want := []string{w.Inject, w.InjectHeader, w.InjectPrefix, w.BodyTokenField, w.BodyExpiryField, w.JSONExpiresAtField,
				w.SigningKeyFile, w.SigningKeyID, w.MerchantID, w.Service, w.SignPath}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("config = %q,\nwant %q", got, want)
					break
				}
			}
		})
	}
}

func TestLoadConfigInjectBadValue(t *testing.T) {
	keys := writeKeyFiles(t)
	tests := []badInject{
		{"unknown mode", "json", map[string]string{"INJECT": "cookie"}, "INJECT", `got "cookie"`},
		{"mode is case-sensitive", "json", map[string]string{"INJECT": "Bearer"}, "INJECT", `got "Bearer"`},
		{"bearer without a token source", "none", map[string]string{"INJECT": "bearer"}, "INJECT", "bearer needs a token"},
		{"header without a token source", "none", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token"}, "INJECT", "header needs a token"},
		{"json-body without a token source", "none", map[string]string{"INJECT": "json-body"}, "INJECT", "json-body needs a token"},
		{"header name with a space", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X Api Token"}, "INJECT_HEADER", `"X Api Token"`},
		{"header name with a colon", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token:"}, "INJECT_HEADER", "not a valid header name"},
		{"header name with a newline", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api\nToken"}, "INJECT_HEADER", "not a valid header name"},
		{"header name not ASCII", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Tökén"}, "INJECT_HEADER", "not a valid header name"},
		{"header name with a slash", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X/Token"}, "INJECT_HEADER", "not a valid header name"},
		{"header Content-Length", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "content-length"}, "INJECT_HEADER", "not a valid header name"},
		{"header Host", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "Host"}, "INJECT_HEADER", "not a valid header name"},
		{"header Connection", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "Connection"}, "INJECT_HEADER", "not a valid header name"},
		{"header Transfer-Encoding", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "Transfer-Encoding"}, "INJECT_HEADER", "not a valid header name"},
		{"body token field with an empty segment", "json", map[string]string{"INJECT": "json-body", "BODY_TOKEN_FIELD": "payload..token"}, "BODY_TOKEN_FIELD", `got "payload..token"`},
		{"body token field starting with a dot", "json", map[string]string{"INJECT": "json-body", "BODY_TOKEN_FIELD": ".token"}, "BODY_TOKEN_FIELD", "want a dotted path"},
		{"body expiry field ending with a dot", "json", map[string]string{"INJECT": "json-body", "BODY_EXPIRY_FIELD": "payload."}, "BODY_EXPIRY_FIELD", `got "payload."`},
		{"expires-at field with an empty segment", "json", map[string]string{"JSON_EXPIRES_AT_FIELD": "juspay..expiry"}, "JSON_EXPIRES_AT_FIELD", "want a dotted path"},
		{"signature without SIGNING_KEY_FILE", "none", signing("", nil), "SIGNING_KEY_FILE", "required"},
		{"signature without SIGNING_KEY_ID", "none", signing(keys.pkcs1, map[string]string{"SIGNING_KEY_ID": ""}), "SIGNING_KEY_ID", "required"},
		{"signature without MERCHANT_ID", "none", signing(keys.pkcs1, map[string]string{"MERCHANT_ID": ""}), "MERCHANT_ID", "required"},
		{"signing key file missing", "none", signing(filepath.Join(t.TempDir(), "missing.pem"), nil), "SIGNING_KEY_FILE", "no such file"},
		{"signing key file not a key", "none", signing(keys.notPEM, nil), "SIGNING_KEY_FILE", "no PEM private key found"},
		{"signing key SEC 1 EC", "none", signing(keys.ecSEC1, nil), "SIGNING_KEY_FILE", "want an RSA private key"},
		{"signing key PKCS#8 EC", "json", signing(keys.ecPKCS8, nil), "SIGNING_KEY_FILE", "want an RSA private key"},
		{"signing endpoint alone needs the key", "json", map[string]string{"SIGN_PATH": "/sign", "SIGNING_KEY_ID": "k", "MERCHANT_ID": "m"}, "SIGNING_KEY_FILE", "AUTHSIDECAR_SIGN_PATH"},
		{"signing endpoint with an EC key", "json", map[string]string{"SIGN_PATH": "/sign", "SIGNING_KEY_FILE": keys.ecPKCS8, "SIGNING_KEY_ID": "k", "MERCHANT_ID": "m"}, "SIGNING_KEY_FILE", "want an RSA private key"},
		{"signing path relative", "none", signing(keys.pkcs1, map[string]string{"SIGN_PATH": "sign"}), "SIGN_PATH", `must be a path starting with /, got "sign"`},
		{"signing path a URL", "none", signing(keys.pkcs1, map[string]string{"SIGN_PATH": "http://localhost/sign"}), "SIGN_PATH", "starting with /"},
	}
	checkOneProblem(t, tests)
}

// TestLoadConfigRefusesUnusableInjection: settings that would make every
// request fail, or lose the token, are refused before anything listens.
// A prefix with a line break (a YAML block scalar's trailing newline) makes
// every request a 502, as net/http refuses the header value; overlapping body
// paths make every json-body request a 400 bad_field, or overwrite the token
// with its expiry; a MAX_REPLAY_BODY of 0 makes every body that must be
// rewritten or signed a 413.
func TestLoadConfigRefusesUnusableInjection(t *testing.T) {
	keys := writeKeyFiles(t)
	checkOneProblem(t, []badInject{
		{"header prefix with a line break", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token", "INJECT_PREFIX": "Token\n"}, "INJECT_PREFIX", ""},
		{"header prefix with a NUL", "json", map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token", "INJECT_PREFIX": "Token\x00 "}, "INJECT_PREFIX", ""},
		{"body expiry field the same as the token's", "json", map[string]string{"INJECT": "json-body", "BODY_EXPIRY_FIELD": "payload.clientAuthToken"}, "BODY_EXPIRY_FIELD", ""},
		{"body expiry field inside the token's", "json", map[string]string{"INJECT": "json-body", "BODY_TOKEN_FIELD": "payload.auth", "BODY_EXPIRY_FIELD": "payload.auth.expiry"}, "BODY_EXPIRY_FIELD", ""},
		{"body token field inside the expiry's", "json", map[string]string{"INJECT": "json-body", "BODY_TOKEN_FIELD": "payload.auth.token", "BODY_EXPIRY_FIELD": "payload.auth"}, "BODY_EXPIRY_FIELD", ""},
		{"json-body with MAX_REPLAY_BODY 0", "json", map[string]string{"INJECT": "json-body", "MAX_REPLAY_BODY": "0"}, "MAX_REPLAY_BODY", ""},
		{"signature with MAX_REPLAY_BODY 0", "none", signing(keys.pkcs1, map[string]string{"MAX_REPLAY_BODY": "0"}), "MAX_REPLAY_BODY", ""},
		{"signing endpoint with MAX_REPLAY_BODY 0", "json", signing(keys.pkcs1, map[string]string{"INJECT": "bearer", "SIGN_PATH": "/sign", "MAX_REPLAY_BODY": "0"}), "MAX_REPLAY_BODY", ""},
	})
}

// badInject is a configuration with one problem.
type badInject struct {
	name     string
	source   string
	env      map[string]string
	variable string // the one variable reported, without the prefix
	want     string // in its message
}

// checkOneProblem checks that loadConfig reports each configuration's one
// problem, naming its variable.
func checkOneProblem(t *testing.T, tests []badInject) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(minimal(tc.source, tc.env))
			if err == nil {
				t.Fatalf("loadConfig() error = nil, want one naming %s%s", envPrefix, tc.variable)
			}
			lines := problemLines(err)
			variable := envPrefix + tc.variable
			if len(lines) != 1 || linesNaming(lines, variable) != 1 {
				t.Fatalf("loadConfig() error = %q, want exactly one problem, naming %s", lines, variable)
			}
			if !strings.Contains(lines[0], tc.want) {
				t.Errorf("loadConfig() error = %q, want it to contain %q", lines[0], tc.want)
			}
			if strings.Contains(err.Error(), "do-not-print") || strings.Contains(err.Error(), "MIIE") {
				t.Errorf("loadConfig() error = %q quotes the key file", err)
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

// TestLoadConfigSigningReportsEveryProblem leaves out everything signing
// needs: each variable is named once.
func TestLoadConfigSigningReportsEveryProblem(t *testing.T) {
	for _, env := range []map[string]string{
		{"INJECT": "signature"},
		{"SIGN_PATH": "/v1/sign"},
	} {
		_, err := loadConfig(minimal("none", env))
		lines := problemLines(err)
		want := []string{"SIGNING_KEY_FILE", "SIGNING_KEY_ID", "MERCHANT_ID"}
		for _, v := range want {
			if n := linesNaming(lines, envPrefix+v); n != 1 {
				t.Errorf("with %v: %s%s reported %d times, want once, in:\n%s", env, envPrefix, v, n, err)
			}
		}
		if len(lines) != len(want) {
			t.Errorf("with %v: loadConfig() reported %d problems, want %d:\n%s", env, len(lines), len(want), err)
		}
		checkEveryLineNamesAVariable(t, err)
	}
}

// TestConfigureInjection checks that each mode builds the injector that
// does what it says, and that the signing endpoint gets the signer.
func TestBuildInjection(t *testing.T) {
	keys := writeKeyFiles(t)
	tok := &tokens.Token{Value: "tok-1", Expiry: time.Date(2021, 7, 19, 7, 20, 53, 318_000_000, time.UTC)}
	tests := []struct {
		name     string
		source   string
		env      map[string]string
		use      proxy.BodyUse
		header   http.Header // what Inject sets on an empty header
		body     string      // what Inject makes of {"payload":{"customerId":"c-1"}}, if the mode rewrites it per token
		signer   bool        // a signer is configured
		signPath string
	}{
		{name: "bearer", source: "json", use: proxy.BodyUntouched, header: http.Header{"Authorization": {"Bearer tok-1"}}},
		{name: "header", source: "json", env: map[string]string{"INJECT": "header", "INJECT_HEADER": "x-api-token"}, use: proxy.BodyUntouched, header: http.Header{"X-Api-Token": {"tok-1"}}},
		{name: "header with prefix", source: "json", env: map[string]string{"INJECT": "header", "INJECT_HEADER": "X-Api-Token", "INJECT_PREFIX": "Token "}, use: proxy.BodyUntouched, header: http.Header{"X-Api-Token": {"Token tok-1"}}},
		{name: "none", source: "none", use: proxy.BodyUntouched, header: http.Header{}},
		{name: "json-body", source: "json", env: map[string]string{"INJECT": "json-body"}, use: proxy.BodyPerToken, header: http.Header{},
			body: `{"payload":{"customerId":"c-1","authExpiry":"2021-07-19T07:20:53.318Z","clientAuthToken":"tok-1"}}`},
		{name: "json-body without expiry", source: "json", env: map[string]string{"INJECT": "json-body", "BODY_EXPIRY_FIELD": ""}, use: proxy.BodyPerToken, header: http.Header{},
			body: `{"payload":{"customerId":"c-1","clientAuthToken":"tok-1"}}`},
		{name: "signature", source: "none", env: signing(keys.pkcs8, map[string]string{"SERVICE": "in.juspay.hyperapi"}), use: proxy.BodyOnce, header: http.Header{}, signer: true},
		{name: "signature with endpoint", source: "json", env: signing(keys.pkcs1, map[string]string{"SIGN_PATH": "/v1/sign"}), use: proxy.BodyOnce, header: http.Header{}, signer: true, signPath: "/v1/sign"},
		{name: "basic", source: "none", env: map[string]string{"INJECT": "basic", "BASIC_USER": "Aladdin", "BASIC_PASSWORD": "open sesame"}, use: proxy.BodyUntouched, header: http.Header{"Authorization": {"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="}}}, // RFC 7617's example
		{name: "bearer with endpoint", source: "json", env: signing(keys.pkcs1, map[string]string{"INJECT": "bearer", "SIGN_PATH": "/v1/sign"}), use: proxy.BodyUntouched, header: http.Header{"Authorization": {"Bearer tok-1"}}, signer: true, signPath: "/v1/sign"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(minimal(tc.source, tc.env))
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			pc := built(t, cfg).proxy
			if pc.Injector == nil {
				t.Fatalf("build() set no injector")
			}
			if got := pc.Injector.Body(); got != tc.use {
				t.Errorf("Injector.Body() = %v, want %v", got, tc.use)
			}
			if (pc.Signer != nil) != tc.signer || pc.SignPath != tc.signPath {
				t.Errorf("Signer = %v, SignPath = %q; want a signer: %v, SignPath %q", pc.Signer, pc.SignPath, tc.signer, tc.signPath)
			}
			if tc.use == proxy.BodyOnce && pc.Injector != proxy.Injector(pc.Signer) {
				t.Errorf("Injector = %v, want the Signer %v", pc.Injector, pc.Signer)
			}

			h := http.Header{}
			out, err := pc.Injector.Inject(h, tok, []byte(`{"payload":{"customerId":"c-1"}}`))
			if err != nil {
				t.Fatalf("Inject() error = %v", err)
			}
			if got, want := h, tc.header; len(got) != len(want) || got.Get("Authorization") != want.Get("Authorization") || got.Get("X-Api-Token") != want.Get("X-Api-Token") {
				t.Errorf("Inject() headers = %v, want %v", got, want)
			}
			switch {
			case tc.body != "":
				var got, want any
				if json.Unmarshal(out, &got) != nil || json.Unmarshal([]byte(tc.body), &want) != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("Inject() body = %s, want %s", out, tc.body)
				}
			case tc.use == proxy.BodyOnce:
				checkSignedByConfig(t, out, cfg)
			}
			if tc.signer {
				signed, err := pc.Signer.Sign([]byte(`{"payload":{"customerId":"c-1"}}`))
				if err != nil {
					t.Fatalf("Signer.Sign() error = %v", err)
				}
				checkSignedByConfig(t, signed, cfg)
			}
		})
	}
}

// checkSignedByConfig checks a signed outer payload against the
// configuration's key and identities.
func checkSignedByConfig(t *testing.T, body []byte, cfg Config) {
	t.Helper()
	var doc struct {
		Service string `json:"service"`
		Payload struct {
			SignaturePayload string `json:"signaturePayload"`
			Signature        string `json:"signature"`
			MerchantKeyID    string `json:"merchantKeyId"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("signed body %q: %v", body, err)
	}
	sig, err := base64.StdEncoding.DecodeString(doc.Payload.Signature)
	digest := sha256.Sum256([]byte(doc.Payload.SignaturePayload))
	if err != nil || rsa.VerifyPKCS1v15(&signingKey().PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Errorf("signature of %s does not verify with the configured key", body)
	}
	var sp map[string]string
	json.Unmarshal([]byte(doc.Payload.SignaturePayload), &sp)
	if doc.Payload.MerchantKeyID != cfg.SigningKeyID || sp["merchant_id"] != cfg.MerchantID || doc.Service != cfg.Service {
		t.Errorf("signed body = %s, want merchantKeyId %q, merchant_id %q and service %q", body, cfg.SigningKeyID, cfg.MerchantID, cfg.Service)
	}
}

// TestBuildKeyGone checks that a key file that vanished after
// validation is reported naming its variable.
func TestBuildKeyGone(t *testing.T) {
	keys := writeKeyFiles(t)
	cfg, err := loadConfig(minimal("none", signing(keys.pkcs1, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keys.pkcs1); err != nil {
		t.Fatal(err)
	}
	_, err = build(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), envPrefix+"SIGNING_KEY_FILE: ") {
		t.Errorf("build() error = %v, want one naming %sSIGNING_KEY_FILE", err, envPrefix)
	}
}

// FuzzInjectConfig feeds injection modes, header names and prefixes, and
// body paths to loadConfig: whatever it accepts must give an injector whose
// header a request can carry, and whose body holds the token where
// BODY_TOKEN_FIELD says.
func FuzzInjectConfig(f *testing.F) {
	f.Add("header", "X-Api-Token", "", "payload.clientAuthToken", "payload.authExpiry")
	f.Add("header", "Authorization", "Bearer ", "a", "b")
	f.Add("header", "X Api", "T\r\n", "a..b", ".")
	f.Add("json-body", "", "", "auth.token", "auth.meta.exp")
	f.Add("json-body", "Content-Length", "\x00", "x", "")
	f.Add("bearer", "x", "y", "", "")
	f.Fuzz(func(t *testing.T, inject, header, prefix, tokenField, expiryField string) {
		c, err := loadConfig(minimal("json", map[string]string{
			"INJECT": inject, "INJECT_HEADER": header, "INJECT_PREFIX": prefix,
			"BODY_TOKEN_FIELD": tokenField, "BODY_EXPIRY_FIELD": expiryField,
		}))
		if err != nil {
			checkEveryLineNamesAVariable(t, err)
			return
		}
		pc := built(t, c).proxy
		tok := &tokens.Token{Value: "tok-1", Expiry: time.Now().Add(time.Hour)}
		req, _ := http.NewRequest(http.MethodPost, "http://upstream.test/x", nil)
		out, err := pc.Injector.Inject(req.Header, tok, []byte(`{}`))
		if err != nil {
			t.Fatalf("INJECT %q, BODY_TOKEN_FIELD %q, BODY_EXPIRY_FIELD %q accepted, but Inject({}) error = %v", inject, tokenField, expiryField, err)
		}
		if c.Inject == "json-body" {
			var doc any
			json.Unmarshal(out, &doc)
			for k := range strings.SplitSeq(c.BodyTokenField, ".") {
				m, _ := doc.(map[string]any)
				doc = m[k]
			}
			if doc != tok.Value {
				t.Errorf("BODY_TOKEN_FIELD %q, BODY_EXPIRY_FIELD %q accepted, but Inject({}) = %s, without the token there", c.BodyTokenField, c.BodyExpiryField, out)
			}
		}
		var wire strings.Builder
		if err := req.Write(&wire); err != nil {
			t.Errorf("INJECT_HEADER %q, INJECT_PREFIX %q accepted, but a request cannot carry them: %v", header, prefix, err)
		}
	})
}
