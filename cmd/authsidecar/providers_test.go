package main

import (
	"bytes"
	"strings"
	"testing"
)

// checkOutput runs authsidecar -check with environ (names without the
// prefix) and returns what it printed and its exit code.
func checkOutput(t *testing.T, vars map[string]string) (string, string, int) {
	t.Helper()
	var environ []string
	for k, v := range vars {
		environ = append(environ, envPrefix+k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	code := mainExit([]string{"-check"}, environ, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestProviderPresets(t *testing.T) {
	dir := t.TempDir()
	paygateKey := writeFile(t, dir, "paygate_key", "bf-password\n")
	apiKey := writeFile(t, dir, "api_key", "juspay-api-key-1\n")
	signingKey := writeKeyFiles(t).pkcs1
	tests := []struct {
		name string
		vars map[string]string
		want []string // lines of the effective configuration
		not  []string // text that must not appear
	}{
		{
			name: "tezpay: token URL from the upstream",
			vars: map[string]string{"PROVIDER": "tezpay", "UPSTREAM_URL": "https://api.tezpay.example/", "CLIENT_ID": "c1", "CLIENT_SECRET": "tez-secret-1"},
			want: []string{
				"AUTHSIDECAR_TOKEN_SOURCE=json (preset tezpay)",
				"AUTHSIDECAR_TOKEN_URL=https://api.tezpay.example/api/v1/tezpay/authenticate (preset tezpay)",
				"AUTHSIDECAR_INJECT=bearer (preset tezpay)",
				"AUTHSIDECAR_UPSTREAM_URL=https://api.tezpay.example/ (environment)",
				"AUTHSIDECAR_CLIENT_SECRET=[secret: not shown] (environment)",
			},
			not: []string{"tez-secret-1"},
		},
		{
			name: "tezpay: an explicit token URL wins",
			vars: map[string]string{"PROVIDER": "tezpay", "UPSTREAM_URL": "https://api.tezpay.example", "TOKEN_URL": "https://auth.tezpay.example/login", "CLIENT_ID": "c1", "CLIENT_SECRET_FILE": writeFile(t, dir, "secret", "tez-secret-2")},
			want: []string{
				"AUTHSIDECAR_TOKEN_URL=https://auth.tezpay.example/login (environment)",
				"AUTHSIDECAR_CLIENT_SECRET_FILE=" + dir + "/secret (environment)",
			},
			not: []string{"tez-secret-2"},
		},
		{
			name: "alternative-payments: its public API and its token endpoint",
			vars: map[string]string{"PROVIDER": "alternative-payments", "CLIENT_ID": "c1", "CLIENT_SECRET": "alt-secret-1"},
			want: []string{
				"AUTHSIDECAR_UPSTREAM_URL=https://public-api.alternativepayments.io (preset alternative-payments)",
				"AUTHSIDECAR_TOKEN_URL=https://public-api.alternativepayments.io/oauth/token (preset alternative-payments)",
				"AUTHSIDECAR_TOKEN_SOURCE=oauth2 (preset alternative-payments)",
				"AUTHSIDECAR_OAUTH2_AUTH_STYLE=header (preset alternative-payments)",
			},
			not: []string{"alt-secret-1"},
		},
		{
			name: "alternative-payments: a sandbox upstream moves the token URL too",
			vars: map[string]string{"PROVIDER": "alternative-payments", "UPSTREAM_URL": "https://sandbox.example", "OAUTH2_AUTH_STYLE": "params", "CLIENT_ID": "c1", "CLIENT_SECRET": "alt-secret-2"},
			want: []string{
				"AUTHSIDECAR_TOKEN_URL=https://sandbox.example/oauth/token (preset alternative-payments)",
				"AUTHSIDECAR_OAUTH2_AUTH_STYLE=params (environment)",
			},
		},
		{
			name: "juspay: its server API with HTTP Basic and x-merchantid",
			vars: map[string]string{"PROVIDER": "juspay", "API_KEY_FILE": apiKey, "MERCHANT_ID": "stock"},
			want: []string{
				"AUTHSIDECAR_UPSTREAM_URL=https://api.juspay.in (preset juspay)",
				"AUTHSIDECAR_TOKEN_SOURCE=none (preset juspay)",
				"AUTHSIDECAR_INJECT=basic (preset juspay)",
				"AUTHSIDECAR_BASIC_USER_FILE=" + apiKey + " (preset juspay)",
				"AUTHSIDECAR_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
			},
			not: []string{"juspay-api-key-1"},
		},
		{
			name: "juspay: tokens per customer",
			vars: map[string]string{"PROVIDER": "juspay", "TOKEN_SOURCE": "juspay-customer", "UPSTREAM_URL": "https://sandbox.juspay.in", "API_KEY": "juspay-api-key-2", "MERCHANT_ID": "stock"},
			want: []string{
				"AUTHSIDECAR_TOKEN_URL=https://sandbox.juspay.in (preset juspay)",
				"AUTHSIDECAR_INJECT=json-body (default)",
				"AUTHSIDECAR_CLIENT_AUTH_TOKEN_PATH=/juspay/client-auth-token (preset juspay)",
				"AUTHSIDECAR_API_KEY=[secret: not shown] (environment)",
			},
			not: []string{"juspay-api-key-2"},
		},
		{
			name: "juspay: tokens per customer at the endpoint, Basic to the server API",
			vars: map[string]string{"PROVIDER": "juspay", "TOKEN_SOURCE": "juspay-customer", "INJECT": "basic", "API_KEY_FILE": apiKey, "MERCHANT_ID": "stock"},
			want: []string{
				"AUTHSIDECAR_TOKEN_URL=https://api.juspay.in (preset juspay)",
				"AUTHSIDECAR_INJECT=basic (environment)",
				"AUTHSIDECAR_BASIC_USER_FILE=" + apiKey + " (preset juspay)",
				"AUTHSIDECAR_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
				"AUTHSIDECAR_CLIENT_AUTH_TOKEN_PATH=/juspay/client-auth-token (preset juspay)",
			},
			not: []string{"juspay-api-key-1"},
		},
		{
			name: "juspay: an explicit INJECT=none gets no Basic credential",
			vars: map[string]string{"PROVIDER": "juspay", "INJECT": "none", "API_KEY_FILE": apiKey, "MERCHANT_ID": "stock"},
			want: []string{
				"AUTHSIDECAR_INJECT=none (environment)",
				"AUTHSIDECAR_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
			},
			not: []string{"BASIC_USER", "juspay-api-key-1"},
		},
		{
			name: "juspay: the signature payload",
			vars: map[string]string{"PROVIDER": "juspay", "INJECT": "signature", "SIGNING_KEY_FILE": signingKey, "SIGNING_KEY_ID": "1234", "MERCHANT_ID": "stock"},
			want: []string{
				"AUTHSIDECAR_TOKEN_SOURCE=none (preset juspay)",
				"AUTHSIDECAR_SERVICE=in.juspay.hyperapi (preset juspay)",
			},
		},
		{
			name: "axepta: the Paygate mode",
			vars: map[string]string{"PROVIDER": "axepta", "MERCHANT_ID": "axepta_1", "PAYGATE_KEY_FILE": paygateKey},
			want: []string{
				"AUTHSIDECAR_UPSTREAM_URL=https://paymentpage.axepta.bnpparibas (preset axepta)",
				"AUTHSIDECAR_TOKEN_SOURCE=none (preset axepta)",
				"AUTHSIDECAR_INJECT=paygate (preset axepta)",
				"AUTHSIDECAR_PAYGATE_CIPHER=blowfish (preset axepta)",
				"AUTHSIDECAR_PAYGATE_KEY_FILE=" + paygateKey + " (environment)",
			},
			not: []string{"bf-password"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := checkOutput(t, tc.vars)
			if code != 0 {
				t.Fatalf("-check = %d, want 0; stderr:\n%s", code, errOut)
			}
			lines := strings.Split(out, "\n")
			for _, w := range tc.want {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("-check output lacks the line %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out+errOut, n) {
					t.Errorf("-check output shows %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestProviderUnknown(t *testing.T) {
	_, errOut, code := checkOutput(t, map[string]string{"PROVIDER": "stripe", "UPSTREAM_URL": "https://api.example", "TOKEN_SOURCE": "none"})
	if code != 2 || !strings.Contains(errOut, `AUTHSIDECAR_PROVIDER: must be tezpay, juspay, alternative-payments or axepta, got "stripe"`) {
		t.Errorf("-check with PROVIDER=stripe = %d, %q; want 2 naming AUTHSIDECAR_PROVIDER and the presets", code, errOut)
	}
}

// TestPresetNeverSuppliesASecret: a preset alone does not make a valid
// configuration where a secret is needed: the secret's variable is named.
func TestPresetNeverSuppliesASecret(t *testing.T) {
	for _, p := range []string{"tezpay", "alternative-payments"} {
		_, errOut, code := checkOutput(t, map[string]string{"PROVIDER": p, "UPSTREAM_URL": "https://api.example"})
		if code != 2 || !strings.Contains(errOut, "AUTHSIDECAR_CLIENT_SECRET") {
			t.Errorf("PROVIDER=%s without a secret: -check = %d, %q; want 2 naming AUTHSIDECAR_CLIENT_SECRET", p, code, errOut)
		}
	}
	_, errOut, code := checkOutput(t, map[string]string{"PROVIDER": "axepta", "MERCHANT_ID": "m"})
	if code != 2 || !strings.Contains(errOut, "AUTHSIDECAR_PAYGATE_KEY_FILE") {
		t.Errorf("PROVIDER=axepta without passwords: -check = %d, %q; want 2 naming AUTHSIDECAR_PAYGATE_KEY_FILE", code, errOut)
	}
}
