package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// paygateVars is a valid INJECT=paygate configuration with its password
// files in a temporary directory, overrides applied.
func paygateVars(t *testing.T, overrides map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{
		"INJECT":                "paygate",
		"MERCHANT_ID":           "axepta_1",
		"PAYGATE_KEY_FILE":      writeFile(t, dir, "paygate_key", "bf-password\n"),
		"PAYGATE_HMAC_KEY_FILE": writeFile(t, dir, "paygate_hmac_key", "hmac-password\n"),
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return minimal("none", vars)
}

func TestPaygateConfigValid(t *testing.T) {
	dir := t.TempDir()
	aesKey := writeFile(t, dir, "aes", "0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"blowfish by default", paygateVars(t, nil)},
		{"aes", paygateVars(t, map[string]string{"PAYGATE_CIPHER": "aes", "PAYGATE_KEY_FILE": aesKey})},
		{"no hmac password", paygateVars(t, map[string]string{"PAYGATE_HMAC_KEY_FILE": unset})},
		{"codec and SDK endpoint", paygateVars(t, map[string]string{"PAYGATE_PATH": "/paygate", "SDK_AUTH_PATH": "/axepta/sdk-auth", "SDK_AUTH_URL": "https://paygate.example/AuthToken.aspx"})},
		{"SDK endpoint beside bearer", minimal("json", map[string]string{
			"SDK_AUTH_PATH": "/axepta/sdk-auth", "SDK_AUTH_URL": "https://paygate.example/AuthToken.aspx",
			"MERCHANT_ID": "axepta_1", "PAYGATE_KEY_FILE": aesKey, "PAYGATE_CIPHER": "aes",
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				if v == unset {
					delete(tc.env, k)
				}
			}
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			s, err := build(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatalf("build() error = %v", err)
			}
			defer s.close()
			if s.proxy.PaygateMerchant == nil || s.proxy.PaygateMerchant().ID != "axepta_1" {
				t.Errorf("proxy.s Paygate merchant is not axepta_1")
			}
			if (c.SDKAuthPath != "") != (s.proxy.SDKAuth != nil) {
				t.Errorf("SDK endpoint built = %v, want %v", s.proxy.SDKAuth != nil, c.SDKAuthPath != "")
			}
		})
	}
}

func TestPaygateConfigProblems(t *testing.T) {
	dir := t.TempDir()
	long := writeFile(t, dir, "long", strings.Repeat("k", 57))
	empty := writeFile(t, dir, "empty", "\n")
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		want     string
	}{
		{"a token source", paygateVars(t, map[string]string{"TOKEN_SOURCE": "json", "TOKEN_URL": "https://a.example/t", "CLIENT_ID": "c", "CLIENT_SECRET": "s"}), "TOKEN_SOURCE", "must be none with AUTHSIDECAR_INJECT=paygate"},
		{"no merchant", paygateVars(t, map[string]string{"MERCHANT_ID": unset}), "MERCHANT_ID", "required with Paygate"},
		{"merchant with &", paygateVars(t, map[string]string{"MERCHANT_ID": "a&b"}), "MERCHANT_ID", "must not hold '&'"},
		{"no password", paygateVars(t, map[string]string{"PAYGATE_KEY_FILE": unset}), "PAYGATE_KEY_FILE", "required with Paygate"},
		{"password missing", paygateVars(t, map[string]string{"PAYGATE_KEY_FILE": dir + "/missing"}), "PAYGATE_KEY_FILE", "no such file"},
		{"blowfish password too long", paygateVars(t, map[string]string{"PAYGATE_KEY_FILE": long}), "PAYGATE_KEY_FILE", "1 to 56 bytes, got 57"},
		{"aes password of 17 bytes", paygateVars(t, map[string]string{"PAYGATE_CIPHER": "aes", "PAYGATE_KEY_FILE": writeFile(t, dir, "p17", "seventeen-bytes!!")}), "PAYGATE_KEY_FILE", "17"},
		{"empty hmac password", paygateVars(t, map[string]string{"PAYGATE_HMAC_KEY_FILE": empty}), "PAYGATE_HMAC_KEY_FILE", "empty"},
		{"unknown cipher", paygateVars(t, map[string]string{"PAYGATE_CIPHER": "des"}), "PAYGATE_CIPHER", `got "des"`},
		{"password without paygate", minimal("none", map[string]string{"PAYGATE_KEY_FILE": long}), "PAYGATE_KEY_FILE", "not used"},
		{"codec path not a path", paygateVars(t, map[string]string{"PAYGATE_PATH": "paygate"}), "PAYGATE_PATH", "starting with /"},
		// The codec would serve /paygate//encrypt, and /paygate/encrypt would be forwarded upstream.
		{"codec path with a trailing slash", paygateVars(t, map[string]string{"PAYGATE_PATH": "/paygate/"}), "PAYGATE_PATH", "must not end with /"},
		// Every body would be a 413: a POST call's form, and every codec request.
		{"paygate with MAX_REPLAY_BODY 0", paygateVars(t, map[string]string{"MAX_REPLAY_BODY": "0"}), "MAX_REPLAY_BODY", "must be positive"},
		{"codec with MAX_REPLAY_BODY 0", minimal("none", map[string]string{"PAYGATE_PATH": "/paygate", "MERCHANT_ID": "axepta_1", "PAYGATE_KEY_FILE": writeFile(t, dir, "bf", "bf-password"), "MAX_REPLAY_BODY": "0"}), "MAX_REPLAY_BODY", "must be positive"},
		{"SDK endpoint under the codec", paygateVars(t, map[string]string{"PAYGATE_PATH": "/paygate", "SDK_AUTH_PATH": "/paygate/sdk", "SDK_AUTH_URL": "https://p.example/AuthToken.aspx"}), "SDK_AUTH_PATH", "overlaps AUTHSIDECAR_PAYGATE_PATH"},
		{"SDK endpoint on the signing path", paygateVars(t, map[string]string{"SIGN_PATH": "/sdk", "SDK_AUTH_PATH": "/sdk", "SDK_AUTH_URL": "https://p.example/AuthToken.aspx"}), "SDK_AUTH_PATH", "must differ from AUTHSIDECAR_SIGN_PATH"},
		{"SDK endpoint without URL", paygateVars(t, map[string]string{"SDK_AUTH_PATH": "/sdk"}), "SDK_AUTH_URL", "required with AUTHSIDECAR_SDK_AUTH_PATH"},
		{"SDK URL without endpoint", paygateVars(t, map[string]string{"SDK_AUTH_URL": "https://p.example/AuthToken.aspx"}), "SDK_AUTH_URL", "not used"},
		{"SDK TTL over a day", paygateVars(t, map[string]string{"SDK_AUTH_PATH": "/sdk", "SDK_AUTH_URL": "https://p.example/AuthToken.aspx", "SDK_AUTH_TTL": "25h"}), "SDK_AUTH_TTL", "24h"},
		{"SDK inflight zero", paygateVars(t, map[string]string{"SDK_AUTH_PATH": "/sdk", "SDK_AUTH_URL": "https://p.example/AuthToken.aspx", "SDK_AUTH_MAX_INFLIGHT": "0"}), "SDK_AUTH_MAX_INFLIGHT", "at least 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				if v == unset {
					delete(tc.env, k)
				}
			}
			_, err := loadConfig(tc.env)
			lines := problemLines(err)
			if n := linesNaming(lines, envPrefix+tc.variable); n != 1 {
				t.Fatalf("loadConfig() problems = %q, want one naming %s%s", lines, envPrefix, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig() error = %v, want %q", err, tc.want)
			}
			for _, secret := range []string{"bf-password", "hmac-password", strings.Repeat("k", 57), "seventeen-bytes!!"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("loadConfig() error = %v, shows a password", err)
				}
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}
