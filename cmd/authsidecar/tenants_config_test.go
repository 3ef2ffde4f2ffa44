package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens/tenants"
)

// tenantSecrets are the secret values the tenants of tenantsDir hold; no
// problem may show one.
var tenantSecrets = []string{"secret-a", "secret-b", "secret-1", "value-not-shown"}

// tenantsDir writes a tenants directory of two tenants, a and b, each with
// client_id and client_secret files, b with a settings file; extra maps a
// path under the directory to its content ("" removes it).
func tenantsDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"a/client_id":     "client-a\n",
		"a/client_secret": "secret-a\n",
		"b/client_id":     "client-b\n",
		"b/client_secret": "secret-b\n",
		"b/settings":      "SCOPES=a b\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		if content == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, content)
	}
	return dir
}

// tenantVars is a valid tenanted configuration of source, without the
// route's own credentials unless TENANT_DEFAULT=route; overrides applied.
func tenantVars(t *testing.T, source string, overrides map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{
		"TENANT_HEADER": "X-Merchant",
		"TENANTS_DIR":   tenantsDir(t, nil),
		"CLIENT_ID":     unset,
		"CLIENT_SECRET": unset,
	}
	if overrides["TENANT_DEFAULT"] == "route" {
		delete(vars, "CLIENT_ID")
		delete(vars, "CLIENT_SECRET")
	}
	for k, v := range overrides {
		vars[k] = v
	}
	return minimal(source, vars)
}

// tenantParts names what a built tenant holds: t (tokens), i (its own
// injector), s (a signer), p (Paygate passwords), r (an SDK registrar).
func tenantParts(tn *proxy.Tenant) string {
	var b strings.Builder
	for _, part := range []struct {
		has  bool
		name string
	}{{tn.Tokens != nil, "t"}, {tn.Injector != nil, "i"}, {tn.Signer != nil, "s"}, {tn.PaygateMerchant != nil, "p"}, {tn.SDKAuth != nil, "r"}} {
		if part.has {
			b.WriteString(part.name)
		}
	}
	return b.String()
}

func TestTenantsConfigValid(t *testing.T) {
	key := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(signingKey())}))
	signers := tenantsDir(t, map[string]string{
		"a/signing_key.pem": key, "a/settings": "SIGNING_KEY_ID=k-a\nMERCHANT_ID=m-a\n",
		"b/signing_key.pem": key, "b/settings": "SIGNING_KEY_ID=k-b\nMERCHANT_ID=m-b\n",
	})
	merchants := tenantsDir(t, map[string]string{
		"a/paygate_key": "Xp9$eK2!rT7q\n", "a/settings": "MERCHANT_ID=m-a\n",
		"b/paygate_key": "another-password\n", "b/paygate_hmac_key": "hmac-b\n", "b/settings": "MERCHANT_ID=m-b\n",
	})
	juspay := tenantsDir(t, map[string]string{"a/api_key": "key-a\n", "a/settings": "MERCHANT_ID=m-a\n", "b/api_key": "key-b\n", "b/settings": "MERCHANT_ID=m-b\n"})
	tests := []struct {
		name         string
		env          map[string]string
		routeDefault bool
		parts        string // each tenant's, as tenantParts names them
	}{
		{"json", tenantVars(t, "json", nil), false, "t"},
		{"json with the route's default", tenantVars(t, "json", map[string]string{"TENANT_DEFAULT": "route"}), true, "t"},
		{"oauth2", tenantVars(t, "oauth2", nil), false, "t"},
		{"oauth2 with the route's default", tenantVars(t, "oauth2", map[string]string{"TENANT_DEFAULT": "route"}), true, "t"},
		{"signature and SIGN_PATH", tenantVars(t, "none", map[string]string{"INJECT": "signature", "SIGN_PATH": "/sign", "TENANTS_DIR": signers}), false, "is"},
		{"paygate, its codec and SDK authentication", tenantVars(t, "none", map[string]string{
			"INJECT": "paygate", "PAYGATE_PATH": "/paygate", "SDK_AUTH_PATH": "/sdk-auth", "SDK_AUTH_URL": "https://paygate.example/authtoken.aspx", "TENANTS_DIR": merchants,
		}), false, "ipr"},
		{"juspay-customer", tenantVars(t, "juspay-customer", map[string]string{"TOKEN_URL": "https://api.juspay.example", "TENANTS_DIR": juspay, "CLIENT_AUTH_TOKEN_PATH": "/cat"}), false, ""},
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
			defer s.close()
			if s.proxy.Tenants == nil {
				t.Fatalf("proxy.Tenants = nil, want the tenants")
			}
			if s.proxy.Signer != nil || s.proxy.PaygateMerchant != nil || s.proxy.SDKAuth != nil {
				t.Errorf("the route has a signer, passwords or a registrar of its own, want only its tenants")
			}
			if s.proxy.TenantHeader != "X-Merchant" || s.proxy.TenantDefault != tc.routeDefault {
				t.Errorf("proxy TenantHeader = %q, TenantDefault = %v, want X-Merchant, %v", s.proxy.TenantHeader, s.proxy.TenantDefault, tc.routeDefault)
			}
			if (s.cache != nil) != tc.routeDefault {
				t.Errorf("route's own cache built = %v, want %v", s.cache != nil, tc.routeDefault)
			}
			for _, name := range []string{"a", "b"} {
				tn, err := s.proxy.Tenants.Tenant(name)
				if err != nil || tn.Key != name || tenantParts(tn) != tc.parts {
					t.Fatalf("Tenants.Tenant(%q) = %+v, %v, want key %q with parts %q", name, tn, err, name, tc.parts)
				}
				if tn.PaygateMerchant != nil && tn.PaygateMerchant().ID != "m-"+name {
					t.Errorf("tenant %s: MerchantID = %q, want m-%s", name, tn.PaygateMerchant().ID, name)
				}
			}
		})
	}
}

func TestTenantsConfigProblems(t *testing.T) {
	file := writeFile(t, t.TempDir(), "file", "x")
	noSecret := tenantsDir(t, map[string]string{"a/client_secret": ""})
	unknownKey := tenantsDir(t, map[string]string{"b/settings": "SCOPES=a\nPASSWORD=value-not-shown\n"})
	twoBad := tenantsDir(t, map[string]string{"a/settings": "FOO=value-not-shown\n", "b/settings": "BAR=value-not-shown\n"})
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		want     []string
	}{
		{"header without dir", tenantVars(t, "json", map[string]string{"TENANTS_DIR": unset}), "TENANTS_DIR", []string{"required with AUTHSIDECAR_TENANT_HEADER"}},
		{"dir without header", tenantVars(t, "json", map[string]string{"TENANT_HEADER": unset}), "TENANT_HEADER", []string{"required with AUTHSIDECAR_TENANTS_DIR"}},
		{"header Authorization", tenantVars(t, "json", map[string]string{"TENANT_HEADER": "authorization"}), "TENANT_HEADER", []string{"choose a name of your own"}},
		{"header not a name", tenantVars(t, "json", map[string]string{"TENANT_HEADER": "X Merchant"}), "TENANT_HEADER", []string{"choose a name of your own"}},
		{"header the required one", tenantVars(t, "json", map[string]string{"TENANT_HEADER": "X-Gate", "REQUIRE_HEADER": "x-gate", "REQUIRE_VALUE": "v"}), "TENANT_HEADER", []string{"choose a name of your own"}},
		{"default other", tenantVars(t, "json", map[string]string{"TENANT_DEFAULT": "first"}), "TENANT_DEFAULT", []string{`must be route`, `"first"`}},
		{"default without tenants", minimal("json", map[string]string{"TENANT_DEFAULT": "route"}), "TENANT_DEFAULT", []string{"only with"}},
		{"dir missing", tenantVars(t, "json", map[string]string{"TENANTS_DIR": file + "-missing"}), "TENANTS_DIR", nil},
		{"dir a file", tenantVars(t, "json", map[string]string{"TENANTS_DIR": file}), "TENANTS_DIR", nil},
		{"tenant without client_secret", tenantVars(t, "json", map[string]string{"TENANTS_DIR": noSecret}), "TENANTS_DIR", []string{"tenant a: no client_secret file"}},
		// The route's own secret is another merchant's: never a tenant's.
		{"tenant without client_secret, route with one", tenantVars(t, "json", map[string]string{"TENANTS_DIR": noSecret, "TENANT_DEFAULT": "route"}), "TENANTS_DIR", []string{"tenant a: no client_secret file"}},
		{"tenant settings unknown key", tenantVars(t, "json", map[string]string{"TENANTS_DIR": unknownKey}), "TENANTS_DIR", []string{`"b"`, "PASSWORD"}},
		{"two tenants' unknown keys", tenantVars(t, "json", map[string]string{"TENANTS_DIR": twoBad}), "TENANTS_DIR", []string{`"a"`, "FOO", `"b"`, "BAR"}},
		{"source none with mode none", tenantVars(t, "none", nil), "INJECT", []string{`got "none"`}},
		{"source juspay-customer, tenant without api_key", tenantVars(t, "juspay-customer", map[string]string{"API_KEY": unset}), "TENANTS_DIR", []string{"tenant a: no api_key file"}},
		{"source juspay-customer with the route's default", tenantVars(t, "juspay-customer", map[string]string{"TENANT_DEFAULT": "route"}), "TENANT_DEFAULT", []string{"every request must name its tenant"}},
		{"inject basic, tenants without Basic credentials", tenantVars(t, "none", map[string]string{"INJECT": "basic"}), "TENANTS_DIR", []string{"tenant a: no basic_user file", "tenant b: no basic_user file"}},
		{"inject signature, tenants without keys", tenantVars(t, "none", map[string]string{"INJECT": "signature"}), "TENANTS_DIR", []string{"tenant a: no signing_key.pem file", "SIGNING_KEY_ID (its settings file): required", "MERCHANT_ID (its settings file): required"}},
		{"inject paygate, tenants without passwords", tenantVars(t, "none", map[string]string{"INJECT": "paygate"}), "TENANTS_DIR", []string{"tenant a: no paygate_key file", "tenant b: MERCHANT_ID (its settings file): required"}},
		// The pod's own identity would be every tenant's credential.
		{"jwt-bearer", tenantVars(t, "jwt-bearer", map[string]string{"ASSERTION_FILE": workloadJWT(t, time.Now().Add(time.Hour))}), "TOKEN_SOURCE", []string{"the pod's own identity"}},
		{"token-exchange", tenantVars(t, "token-exchange", map[string]string{"SUBJECT_TOKEN_FILE": workloadJWT(t, time.Now().Add(time.Hour))}), "TOKEN_SOURCE", []string{"the pod's own identity"}},
		{"client-assertion-file", tenantVars(t, "oauth2", map[string]string{"OAUTH2_AUTH_STYLE": "client-assertion-file", "CLIENT_ASSERTION_FILE": workloadJWT(t, time.Now().Add(time.Hour))}), "OAUTH2_AUTH_STYLE", []string{"the pod's own identity"}},
		// Tenants' tokens are not shared; the route has none to share.
		{"shared cache", tenantVars(t, "oauth2", map[string]string{"SHARED_CACHE": "redis://127.0.0.1:1", "SHARED_CACHE_KEY_FILE": writeFile(t, t.TempDir(), "key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n")}), "SHARED_CACHE", []string{"not shared"}},
		{"paygate cipher", tenantVars(t, "none", map[string]string{"INJECT": "paygate", "PAYGATE_CIPHER": "des"}), "PAYGATE_CIPHER", []string{`"des"`}},
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
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig() error = %v, want %q", err, w)
				}
			}
			for _, secret := range tenantSecrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("loadConfig() error = %v, shows a secret", err)
				}
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

func TestForTenant(t *testing.T) {
	route := Config{
		ClientID: "route-id", ClientSecret: "route-secret", Scopes: "route", TokenParams: "r=1",
		MerchantID: "route-m", SigningKeyID: "route-k", TokenURL: "https://auth.example/token",
	}
	root := tenantsDir(t, map[string]string{
		"a/token": "tok", "a/client_assertion_key.pem": "key",
		"a/settings":  "SCOPES=a b\nTOKEN_PARAMS=x=1\nMERCHANT_ID=m-a\nSIGNING_KEY_ID=k-a\n",
		"b/client_id": "", "b/client_secret": "", "b/settings": "CLIENT_ID=id-b\n",
		"c/client_id": "", "c/client_secret": "", "c/settings": "", "c/.keep": "x",
	})
	d, err := tenants.Open(tenants.Config{Dir: root, Optional: tenantFileNames(), Settings: tenantSettings})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) *tenants.Tenant {
		tn, err := d.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%s): %v", name, err)
		}
		return tn
	}
	c := route.forTenant(lookup("a"))
	in := func(f string) string { return filepath.Join(root, "a", f) }
	want := route
	want.ClientID, want.ClientIDFile = "", in("client_id")
	want.ClientSecret, want.ClientSecretFile = "", in("client_secret")
	want.TokenFile, want.AssertionKeyFile = in("token"), in("client_assertion_key.pem")
	want.Scopes, want.TokenParams, want.MerchantID, want.SigningKeyID = "a b", "x=1", "m-a", "k-a"
	if c != want {
		t.Errorf("forTenant() =\n%+v\nwant\n%+v", c, want)
	}
	if route.ClientID != "route-id" {
		t.Errorf("forTenant changed the route's configuration")
	}

	// CLIENT_ID in the settings in place of the file; the route's
	// credentials are never a tenant's.
	c = Config{ClientIDFile: "/route/id", ClientSecret: "route-secret", Scopes: "route"}.forTenant(lookup("b"))
	if c.ClientID != "id-b" || c.ClientIDFile != "" || c.ClientSecret != "" || c.ClientSecretFile != "" || c.Scopes != "route" {
		t.Errorf("forTenant() = %+v, want CLIENT_ID id-b, no secret, the route's scopes", c)
	}
	// Nor are the route's merchant id, key id, signing key or Paygate
	// passwords.
	c = Config{MerchantID: "route-m", SigningKeyID: "route-k", SigningKeyFile: "/route/key.pem", PaygateKeyFile: "/route/pg", PaygateHMACKeyFile: "/route/hmac"}.forTenant(lookup("c"))
	if c.MerchantID != "" || c.SigningKeyID != "" || c.SigningKeyFile != "" || c.PaygateKeyFile != "" || c.PaygateHMACKeyFile != "" {
		t.Errorf("forTenant() = %+v, want none of the route's merchant's", c)
	}
}

func TestTenantSourcesTenant(t *testing.T) {
	dir := tenantsDir(t, map[string]string{"c/client_id": "client-c", "c/settings": "NOPE=value-not-shown\n"})
	d, err := tenants.Open(tenants.Config{Dir: dir, Optional: tenantFileNames(), Settings: tenantSettings})
	if err != nil {
		t.Fatal(err)
	}
	s := &tenantSources{dir: d}
	if tn, err := s.Tenant("a"); err != nil || tn.Key != "a" {
		t.Errorf("Tenant(a) = %+v, %v, want a", tn, err)
	}
	for _, tc := range []struct {
		name, code string
		status     int
	}{
		{"../a", "bad_tenant", http.StatusBadRequest},
		{"", "bad_tenant", http.StatusBadRequest},
		{"zz", "unknown_tenant", http.StatusForbidden},
		{"c", "incomplete_tenant", http.StatusInternalServerError},
	} {
		_, err := s.Tenant(tc.name)
		var te *proxy.TenantError
		if !errors.As(err, &te) || te.Status != tc.status || te.Code != tc.code {
			t.Errorf("Tenant(%q) error = %#v, want %d %s", tc.name, err, tc.status, tc.code)
			continue
		}
		if strings.Contains(te.Message, "value-not-shown") {
			t.Errorf("Tenant(%q) message %q shows a value", tc.name, te.Message)
		}
	}
}

// TestTenantSourcesForgetRemovedTenants: the sources built for tenants that
// left the directory are dropped once they outnumber those it holds.
func TestTenantSourcesForgetRemovedTenants(t *testing.T) {
	root := tenantsDir(t, nil)
	d, err := tenants.Open(tenants.Config{Dir: root, Optional: tenantFileNames(), Settings: tenantSettings})
	if err != nil {
		t.Fatal(err)
	}
	src := &tenantSources{dir: d}
	for i := range 40 {
		src.built.Store(fmt.Sprintf("gone-%d", i), &builtTenant{})
	}
	src.built.Store("a", &builtTenant{})
	src.n = 41
	src.pruneLocked()
	kept := 0
	src.built.Range(func(any, any) bool { kept++; return true })
	if _, ok := src.built.Load("a"); !ok || kept != 1 || src.n != 1 {
		t.Errorf("after pruning, %d sources are kept (n %d, a kept: %v), want only a's", kept, src.n, ok)
	}
}
