package deploy

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every example's configuration is accepted by authsidecar itself
// (`authsidecar -check`), with its credential files in place.
func TestExampleConfigurationsAreAccepted(t *testing.T) {
	for _, dir := range appDirs(t) {
		if dir == "base" {
			continue // not a complete configuration: the examples complete it
		}
		t.Run(dir, func(t *testing.T) {
			a := appOf(t, dir)
			c, _ := sidecar(t, &a.deployment.Spec.Template.Spec)
			env := withFiles(t, a.env(t, c))
			if out, code := check(t, env); code != 0 || !strings.HasSuffix(out, "authsidecar: configuration OK\n") {
				t.Errorf("authsidecar -check = %d\n%s", code, out)
			}
			// The check is real: with an upstream that is not a URL it fails
			// (a preset may supply one when none is set), and with the shared
			// cache, with a fleet key one byte short.
			if path, ok := env["AUTHSIDECAR_SHARED_CACHE_KEY_FILE"]; ok {
				short := base64.StdEncoding.EncodeToString(make([]byte, 31))
				if err := os.WriteFile(path, []byte(short), 0o600); err != nil {
					t.Fatal(err)
				}
				if out, code := check(t, env); code != 2 || !strings.Contains(out, "AUTHSIDECAR_SHARED_CACHE_KEY_FILE") {
					t.Errorf("authsidecar -check with a 31-byte fleet key = %d\n%s", code, out)
				}
				if err := os.WriteFile(path, fleetKey(t), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			for _, prefix := range providerPrefixes(env) {
				bad := maps.Clone(env)
				bad[prefix+"UPSTREAM_URL"] = "api.example.com"
				if out, code := check(t, bad); code != 2 || !strings.Contains(out, prefix+"UPSTREAM_URL: ") {
					t.Errorf("authsidecar -check with %sUPSTREAM_URL=api.example.com = %d\n%s", prefix, code, out)
				}
			}
		})
	}
}

// unrouted is a variable's name as a sidecar without ROUTES has it: a
// route's AUTHSIDECAR_ROUTE_<NAME>_<SETTING> is AUTHSIDECAR_<SETTING>; any
// other name is unchanged.
func unrouted(name string) string {
	if rest, ok := strings.CutPrefix(name, "AUTHSIDECAR_ROUTE_"); ok {
		if _, setting, ok := strings.Cut(rest, "_"); ok && setting != "" {
			return "AUTHSIDECAR_" + setting
		}
	}
	return name
}

// providerPrefixes are what each provider's variables start with in env:
// AUTHSIDECAR_ without ROUTES, AUTHSIDECAR_ROUTE_<NAME>_ for each route
// with.
func providerPrefixes(env map[string]string) []string {
	routes, ok := env["AUTHSIDECAR_ROUTES"]
	if !ok {
		return []string{"AUTHSIDECAR_"}
	}
	var out []string
	for r := range strings.SplitSeq(routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, "AUTHSIDECAR_ROUTE_"+strings.ToUpper(r)+"_")
		}
	}
	return out
}

// withFiles moves every *_FILE path under a temporary directory and writes a
// stand-in there: a fleet key as `openssl rand -base64 32` writes it for the
// shared cache's key file, a fresh RSA key for other key files (the API
// key's excepted), text otherwise. A route's files are written as the
// unprefixed settings' are.
func withFiles(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	root := t.TempDir()
	out := map[string]string{}
	for name, v := range env {
		out[name] = v
		if !strings.HasSuffix(name, "_FILE") {
			continue
		}
		path := filepath.Join(root, v)
		content := []byte("example-" + strings.ToLower(name))
		switch setting := unrouted(name); {
		case setting == "AUTHSIDECAR_SHARED_CACHE_KEY_FILE":
			content = fleetKey(t)
		case strings.HasPrefix(setting, "AUTHSIDECAR_PAYGATE_"):
			// Paygate's passwords are text; 32 bytes suit both ciphers.
			content = []byte("example-paygate-password-32bytes\n")
		case setting == "AUTHSIDECAR_API_KEY_FILE":
			// An API key is text, however its name ends.
			content = []byte("example_api_key\n")
		case strings.HasSuffix(setting, "KEY_FILE"):
			content = rsaKeyPEM(t)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		out[name] = path
	}
	return out
}

// fleetKey is 32 random bytes in base64, with openssl's newline.
func fleetKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
}

func rsaKeyPEM(t *testing.T) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// check runs authsidecar -check with exactly env and returns its output and
// exit code.
func check(t *testing.T, env map[string]string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, "-check")
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %s -check: %v", binary, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}
