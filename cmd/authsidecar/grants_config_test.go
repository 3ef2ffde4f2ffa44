package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// workloadJWT writes a JWT such as the kubelet projects (iss, sub, aud,
// exp), signed with the package's test key, and returns its path.
func workloadJWT(t *testing.T, exp time.Time) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:pay:app",
		"aud": "https://auth.example.com", "exp": exp.Unix(), "iat": time.Now().Unix(),
	}).SignedString(signingKey())
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "token", tok)
}

// grantVars is a valid configuration of source (oauth2, jwt-bearer,
// token-exchange) without a stored secret; overrides applied.
func grantVars(t *testing.T, source string, overrides map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{"CLIENT_ID": unset, "CLIENT_SECRET": unset, "TOKEN_URL": "https://auth.example.com/token"}
	switch source {
	case "oauth2":
		vars["OAUTH2_AUTH_STYLE"] = "client-assertion-file"
		vars["CLIENT_ASSERTION_FILE"] = workloadJWT(t, time.Now().Add(time.Hour))
	case "jwt-bearer":
		vars["ASSERTION_FILE"] = workloadJWT(t, time.Now().Add(time.Hour))
	case "token-exchange":
		vars["SUBJECT_TOKEN_FILE"] = workloadJWT(t, time.Now().Add(time.Hour))
	}
	for k, v := range overrides {
		vars[k] = v
	}
	env := minimal(source, vars)
	for k, v := range env {
		if v == unset {
			delete(env, k)
		}
	}
	return env
}

func TestGrantsConfigValid(t *testing.T) {
	keys := writeKeyFiles(t)
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"oauth2 with a client assertion file, no client id", grantVars(t, "oauth2", nil)},
		{"oauth2 with a client assertion file and a client id", grantVars(t, "oauth2", map[string]string{"CLIENT_ID": "app"})},
		{"jwt-bearer, public client", grantVars(t, "jwt-bearer", nil)},
		{"jwt-bearer, public client with an id", grantVars(t, "jwt-bearer", map[string]string{"CLIENT_ID": "app", "SCOPES": "payments"})},
		{"jwt-bearer with a secret", grantVars(t, "jwt-bearer", map[string]string{"CLIENT_ID": "app", "CLIENT_SECRET": "s3cr3t"})},
		{"jwt-bearer, signed by the sidecar", grantVars(t, "jwt-bearer", map[string]string{
			"ASSERTION_FILE": unset, "ASSERTION_ISSUER": "sa@project.example", "ASSERTION_AUDIENCE": "https://oauth2.example/token", "CLIENT_ASSERTION_KEY_FILE": keys.pkcs8,
		})},
		{"jwt-bearer with private_key_jwt", grantVars(t, "jwt-bearer", map[string]string{"CLIENT_ID": "app", "OAUTH2_AUTH_STYLE": "private-key-jwt", "CLIENT_ASSERTION_KEY_FILE": keys.pkcs1})},
		{"jwt-bearer with a client assertion file", grantVars(t, "jwt-bearer", map[string]string{"OAUTH2_AUTH_STYLE": "client-assertion-file", "CLIENT_ASSERTION_FILE": workloadJWT(t, time.Now().Add(time.Hour))})},
		{"token-exchange, public client", grantVars(t, "token-exchange", map[string]string{"TOKEN_PARAMS": "audience=//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"})},
		{"token-exchange with an actor and a requested type", grantVars(t, "token-exchange", map[string]string{
			"ACTOR_TOKEN_FILE": workloadJWT(t, time.Now().Add(time.Hour)), "ACTOR_TOKEN_TYPE": "urn:ietf:params:oauth:token-type:jwt",
			"REQUESTED_TOKEN_TYPE": "urn:ietf:params:oauth:token-type:access_token",
		})},
		// An expired file at start: the sidecar starts, not ready, and
		// fetches once the kubelet rotates it.
		{"jwt-bearer with an expired assertion file", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_FILE": workloadJWT(t, time.Now().Add(-time.Hour))})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			s, err := build(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("build() error = %v", err)
			}
			s.close()
		})
	}
}

func TestGrantsConfigProblems(t *testing.T) {
	keys := writeKeyFiles(t)
	missing := t.TempDir() + "/missing"
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		want     string
	}{
		{"client assertion file missing", grantVars(t, "oauth2", map[string]string{"CLIENT_ASSERTION_FILE": missing}), "CLIENT_ASSERTION_FILE", "no such file"},
		{"client assertion file unset", grantVars(t, "oauth2", map[string]string{"CLIENT_ASSERTION_FILE": unset}), "CLIENT_ASSERTION_FILE", "required with AUTHSIDECAR_OAUTH2_AUTH_STYLE=client-assertion-file"},
		{"client assertion file beside a secret", grantVars(t, "oauth2", map[string]string{"CLIENT_SECRET": "s3cr3t"}), "CLIENT_SECRET", "not used with AUTHSIDECAR_OAUTH2_AUTH_STYLE=client-assertion-file"},
		{"client assertion file without its style", grantVars(t, "oauth2", map[string]string{"OAUTH2_AUTH_STYLE": "auto", "CLIENT_ID": "app", "CLIENT_SECRET": "s3cr3t"}), "CLIENT_ASSERTION_FILE", "not used: set AUTHSIDECAR_OAUTH2_AUTH_STYLE=client-assertion-file"},
		{"oauth2 client credentials still need a secret", minimal("oauth2", map[string]string{"CLIENT_SECRET": unset}), "CLIENT_SECRET", "required"},
		{"jwt-bearer without an assertion", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_FILE": unset}), "ASSERTION_FILE", "required with AUTHSIDECAR_TOKEN_SOURCE=jwt-bearer"},
		{"jwt-bearer with a file and an issuer", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_ISSUER": "sa@project.example", "CLIENT_ASSERTION_KEY_FILE": keys.pkcs1}), "ASSERTION_ISSUER", "not with AUTHSIDECAR_ASSERTION_FILE"},
		{"jwt-bearer signed without a key", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_FILE": unset, "ASSERTION_ISSUER": "sa@project.example"}), "CLIENT_ASSERTION_KEY_FILE", "required with AUTHSIDECAR_ASSERTION_ISSUER"},
		{"jwt-bearer subject without issuer", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_SUBJECT": "someone"}), "ASSERTION_SUBJECT", "only with AUTHSIDECAR_ASSERTION_ISSUER"},
		{"jwt-bearer with an EC key and RS256", grantVars(t, "jwt-bearer", map[string]string{"ASSERTION_FILE": unset, "ASSERTION_ISSUER": "sa", "CLIENT_ASSERTION_KEY_FILE": keys.ecPKCS8}), "TOKEN_SOURCE", "RS256 needs an RSA key"},
		{"token-exchange without a subject", grantVars(t, "token-exchange", map[string]string{"SUBJECT_TOKEN_FILE": unset}), "SUBJECT_TOKEN_FILE", "required with AUTHSIDECAR_TOKEN_SOURCE=token-exchange"},
		{"token-exchange actor without type", grantVars(t, "token-exchange", map[string]string{"ACTOR_TOKEN_FILE": workloadJWT(t, time.Now().Add(time.Hour))}), "ACTOR_TOKEN_TYPE", "required with AUTHSIDECAR_ACTOR_TOKEN_FILE"},
		{"token-exchange type not a URI", grantVars(t, "token-exchange", map[string]string{"REQUESTED_TOKEN_TYPE": "access token"}), "REQUESTED_TOKEN_TYPE", "must be a URI"},
		{"token-exchange with a reserved parameter", grantVars(t, "token-exchange", map[string]string{"TOKEN_PARAMS": "subject_token=x"}), "TOKEN_PARAMS", `"subject_token" is set by the source`},
		{"a grant's variable with another source", minimal("oauth2", map[string]string{"SUBJECT_TOKEN_FILE": "/var/run/token"}), "SUBJECT_TOKEN_FILE", "not used: set AUTHSIDECAR_TOKEN_SOURCE=token-exchange"},
		{"jwt-bearer's with another source", minimal("json", map[string]string{"ASSERTION_ISSUER": "x"}), "ASSERTION_ISSUER", "not used: set AUTHSIDECAR_TOKEN_SOURCE=jwt-bearer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			lines := problemLines(err)
			if n := linesNaming(lines, envPrefix+tc.variable); n != 1 {
				t.Fatalf("loadConfig() problems = %q, want one naming %s%s", lines, envPrefix, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig() error = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "eyJ") {
				t.Errorf("loadConfig() error = %v, shows a token", err)
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}
