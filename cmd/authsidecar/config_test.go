package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
	"golang.org/x/oauth2"
)

// minimal returns the smallest valid configuration for a token source, with
// the given variables (named without the prefix) added or replaced; a value
// of "\x00unset" removes the variable.
func minimal(source string, overrides map[string]string) map[string]string {
	env := map[string]string{
		"AUTHSIDECAR_UPSTREAM_URL": "https://api.example.com/v1",
		"AUTHSIDECAR_TOKEN_SOURCE": source,
	}
	if source == "json" || source == "oauth2" {
		env["AUTHSIDECAR_TOKEN_URL"] = "https://auth.example.com/token"
		env["AUTHSIDECAR_CLIENT_ID"] = "client-1"
		env["AUTHSIDECAR_CLIENT_SECRET"] = "secret-1"
	}
	for k, v := range overrides {
		if v == unset {
			delete(env, envPrefix+k)
			continue
		}
		env[envPrefix+k] = v
	}
	return env
}

const unset = "\x00unset"

// problemLines splits a loadConfig error into the lines a user reads.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// linesNaming counts the problems reported for one variable.
func linesNaming(lines []string, variable string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, variable+": ") {
			n++
		}
	}
	return n
}

// checkEveryLineNamesAVariable fails the test if a problem line does not
// start with the full name of an AUTHSIDECAR_ variable.
func checkEveryLineNamesAVariable(t *testing.T, err error) {
	t.Helper()
	for _, l := range problemLines(err) {
		name, _, ok := strings.Cut(l, ": ")
		if !ok || !strings.HasPrefix(name, envPrefix) || len(name) == len(envPrefix) || strings.ContainsAny(name, " \t") {
			t.Errorf("problem %q does not start with an %s variable", l, envPrefix)
		}
	}
}

func TestLoadConfigValid(t *testing.T) {
	dir := t.TempDir()
	idFile := writeFile(t, dir, "client-id", "client-from-file\n")
	secretFile := writeFile(t, dir, "client-secret", "secret-from-file\n")

	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{
			name: "json minimal gets every default",
			env:  minimal("json", nil),
			check: func(t *testing.T, c Config) {
				checkDefaults(t, c)
				if got, want := built(t, c).proxy.Upstream.String(), "https://api.example.com/v1"; got != want {
					t.Errorf("upstream = %q, want %q", got, want)
				}
				if c.TokenURL != "https://auth.example.com/token" || c.ClientID != "client-1" || c.ClientSecret != "secret-1" {
					t.Errorf("token settings = %q %q %q, want the given ones", c.TokenURL, c.ClientID, c.ClientSecret)
				}
			},
		},
		{
			name: "oauth2 with scopes, params and auth style",
			env: minimal("oauth2", map[string]string{
				"SCOPES":            " payments:write, payments:read ,,",
				"TOKEN_PARAMS":      "audience=https://api.example.com, resource = urn:x",
				"OAUTH2_AUTH_STYLE": "params",
			}),
			check: func(t *testing.T, c Config) {
				if want := []string{"payments:write", "payments:read"}; !slices.Equal(c.scopes(), want) {
					t.Errorf("scopes = %q, want %q", c.scopes(), want)
				}
				want := url.Values{"audience": {"https://api.example.com"}, "resource": {"urn:x"}}
				if !reflect.DeepEqual(c.tokenParams(), want) {
					t.Errorf("params = %v, want %v", c.tokenParams(), want)
				}
				if authStyles[c.OAuth2AuthStyle] != oauth2.AuthStyleInParams {
					t.Errorf("authStyle = %v, want AuthStyleInParams", authStyles[c.OAuth2AuthStyle])
				}
			},
		},
		{
			name: "oauth2 header auth style",
			env:  minimal("oauth2", map[string]string{"OAUTH2_AUTH_STYLE": "header"}),
			check: func(t *testing.T, c Config) {
				if authStyles[c.OAuth2AuthStyle] != oauth2.AuthStyleInHeader {
					t.Errorf("authStyle = %v, want AuthStyleInHeader", authStyles[c.OAuth2AuthStyle])
				}
			},
		},
		{
			name: "none needs only the upstream",
			env:  minimal("none", nil),
			check: func(t *testing.T, c Config) {
				checkDefaults(t, c)
				if built(t, c).proxy.Upstream == nil {
					t.Errorf("upstream = nil, want it parsed")
				}
			},
		},
		{
			name: "credentials from files",
			env: minimal("json", map[string]string{
				"CLIENT_ID": unset, "CLIENT_SECRET": unset,
				"CLIENT_ID_FILE": idFile, "CLIENT_SECRET_FILE": secretFile,
			}),
			check: func(t *testing.T, c Config) {
				if c.ClientIDFile != idFile || c.ClientSecretFile != secretFile {
					t.Errorf("files = %q %q, want %q %q", c.ClientIDFile, c.ClientSecretFile, idFile, secretFile)
				}
			},
		},
		{
			name: "an empty value means the default",
			env: minimal("json", map[string]string{
				"JSON_TOKEN_FIELD": "", "RENEW_AT": "", "REFRESH_ON_STATUS": "", "LOG_LEVEL": "", "LISTEN_ADDR": "",
			}),
			check: checkDefaults,
		},
		{
			name: "every setting given",
			env: minimal("json", map[string]string{
				"LISTEN_ADDR":             "0.0.0.0:8000",
				"ADMIN_ADDR":              "127.0.0.1:9999",
				"JSON_TOKEN_FIELD":        "data.token",
				"JSON_EXPIRES_IN_FIELD":   "data.ttl",
				"TOKEN_DEFAULT_TTL":       "12h",
				"TOKEN_TIMEOUT":           "3s",
				"TOKEN_WAIT":              "1500ms",
				"RENEW_AT":                "0.5",
				"FORCED_REFRESH_INTERVAL": "1m",
				"REFRESH_ON_STATUS":       "401, 403",
				"MAX_REPLAY_BODY":         "0",
				"UPSTREAM_TIMEOUT":        "2m",
				"LOG_LEVEL":               "DEBUG",
				"LOG_FORMAT":              "text",
				"SHUTDOWN_TIMEOUT":        "5s",
			}),
			check: func(t *testing.T, c Config) {
				got := []any{c.ListenAddr, c.AdminAddr, c.JSONTokenField, c.JSONExpiresInField, c.TokenDefaultTTL,
					c.TokenTimeout, c.TokenWait, c.RenewAt, c.ForcedRefreshInterval, built(t, c).proxy.RefreshOn, c.MaxReplayBody,
					c.UpstreamTimeout, level(c), c.LogFormat, c.ShutdownTimeout}
				want := []any{"0.0.0.0:8000", "127.0.0.1:9999", "data.token", "data.ttl", 12 * time.Hour,
					3 * time.Second, 1500 * time.Millisecond, 0.5, time.Minute, []int{401, 403}, int64(0),
					2 * time.Minute, slog.LevelDebug, "text", 5 * time.Second}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("config = %v, want %v", got, want)
				}
			},
		},
		{
			name: "both listeners on a port the kernel chooses",
			env:  minimal("none", map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0"}),
			check: func(t *testing.T, c Config) {
				if c.ListenAddr != "127.0.0.1:0" || c.AdminAddr != "127.0.0.1:0" {
					t.Errorf("LISTEN_ADDR, ADMIN_ADDR = %q, %q; want both 127.0.0.1:0", c.ListenAddr, c.AdminAddr)
				}
			},
		},
		{
			name: "variables without the prefix and foreign AUTHSIDECAR_ ones are ignored",
			env: func() map[string]string {
				env := minimal("none", nil)
				env["LOG_LEVEL"] = "nonsense"
				env["RENEW_AT"] = "7"
				// Kubernetes' service links for a Service named authsidecar
				env["AUTHSIDECAR_PORT"] = "tcp://10.0.0.1:8080"
				env["AUTHSIDECAR_PORT_8080_TCP"] = "tcp://10.0.0.1:8080"
				env["AUTHSIDECAR_PORT_8080_TCP_PROTO"] = "tcp"
				env["AUTHSIDECAR_PORT_8080_TCP_PORT"] = "8080"
				env["AUTHSIDECAR_PORT_8080_TCP_ADDR"] = "10.0.0.1"
				env["AUTHSIDECAR_SERVICE_HOST"] = "10.0.0.1"
				env["AUTHSIDECAR_SERVICE_PORT"] = "8080"
				env["AUTHSIDECAR_SERVICE_PORT_HTTP"] = "8080"
				// and for a Service named authsidecar-metrics
				env["AUTHSIDECAR_METRICS_SERVICE_HOST"] = "10.0.0.2"
				env["AUTHSIDECAR_METRICS_SERVICE_PORT"] = "9090"
				env["AUTHSIDECAR_METRICS_PORT"] = "tcp://10.0.0.2:9090"
				env["AUTHSIDECAR_METRICS_PORT_9090_TCP_ADDR"] = "10.0.0.2"
				return env
			}(),
			check: checkDefaults,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig() error = %v, want none", err)
			}
			tc.check(t, c)
		})
	}
}

// checkDefaults checks the settings a minimal configuration leaves alone.
func checkDefaults(t *testing.T, c Config) {
	t.Helper()
	got := []any{c.ListenAddr, c.AdminAddr, authStyles[c.OAuth2AuthStyle], c.JSONTokenField, c.JSONExpiresInField, c.TokenDefaultTTL,
		c.TokenTimeout, c.TokenWait, c.RenewAt, c.ForcedRefreshInterval, built(t, c).proxy.RefreshOn, c.MaxReplayBody,
		c.UpstreamTimeout, level(c), c.LogFormat, c.ShutdownTimeout, upstreamTLS(t, c) == nil, len(c.scopes()), len(c.tokenParams())}
	want := []any{"127.0.0.1:8080", ":9090", oauth2.AuthStyleAutoDetect, "access_token", "expires_in", 15 * time.Minute,
		10 * time.Second, 10 * time.Second, 0.8, 10 * time.Second, []int{401}, int64(1 << 20),
		60 * time.Second, slog.LevelInfo, "json", 25 * time.Second, true, 0, 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %v,\nwant %v", got, want)
	}
}

func TestLoadConfigBadValue(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not.pem", "hello")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name     string
		source   string
		env      map[string]string
		variable string // the one variable reported, without the prefix
		want     string // in its message
	}{
		{"upstream missing", "none", map[string]string{"UPSTREAM_URL": unset}, "UPSTREAM_URL", "required"},
		{"upstream not http", "none", map[string]string{"UPSTREAM_URL": "ftp://files.example.com"}, "UPSTREAM_URL", "absolute http or https URL"},
		{"upstream relative", "none", map[string]string{"UPSTREAM_URL": "/api"}, "UPSTREAM_URL", `got "/api"`},
		{"upstream without host", "none", map[string]string{"UPSTREAM_URL": "http://"}, "UPSTREAM_URL", "absolute http or https URL"},
		{"upstream unparsable", "none", map[string]string{"UPSTREAM_URL": "http://[::1"}, "UPSTREAM_URL", "absolute http or https URL"},
		{"listen without port", "none", map[string]string{"LISTEN_ADDR": "8080"}, "LISTEN_ADDR", "want host:port"},
		{"listen empty port", "none", map[string]string{"LISTEN_ADDR": "127.0.0.1:"}, "LISTEN_ADDR", "want host:port"},
		{"listen port out of range", "none", map[string]string{"LISTEN_ADDR": "127.0.0.1:99999"}, "LISTEN_ADDR", "99999"},
		{"admin port not a port", "none", map[string]string{"ADMIN_ADDR": ":metrics-port"}, "ADMIN_ADDR", "metrics-port"},
		{"admin not an address", "none", map[string]string{"ADMIN_ADDR": "localhost"}, "ADMIN_ADDR", "want host:port"},
		{"admin on the proxy's address", "none", map[string]string{"ADMIN_ADDR": "127.0.0.1:8080", "LISTEN_ADDR": "127.0.0.1:8080"}, "ADMIN_ADDR", "must differ"},
		{"token source missing", "none", map[string]string{"TOKEN_SOURCE": unset}, "TOKEN_SOURCE", "required"},
		{"token source unknown", "none", map[string]string{"TOKEN_SOURCE": "jwt"}, "TOKEN_SOURCE", `got "jwt"`},
		{"token url missing", "json", map[string]string{"TOKEN_URL": unset}, "TOKEN_URL", "required"},
		{"token url bad", "oauth2", map[string]string{"TOKEN_URL": "auth.example.com/token"}, "TOKEN_URL", "absolute http or https URL"},
		{"client id missing", "json", map[string]string{"CLIENT_ID": unset}, "CLIENT_ID", "required (or AUTHSIDECAR_CLIENT_ID_FILE)"},
		{"client secret missing", "oauth2", map[string]string{"CLIENT_SECRET": unset}, "CLIENT_SECRET", "required (or AUTHSIDECAR_CLIENT_SECRET_FILE)"},
		{"client secret file missing", "json", map[string]string{"CLIENT_SECRET": unset, "CLIENT_SECRET_FILE": missing}, "CLIENT_SECRET_FILE", "no such file"},
		{"client secret file is a directory", "json", map[string]string{"CLIENT_SECRET": unset, "CLIENT_SECRET_FILE": dir}, "CLIENT_SECRET_FILE", "directory"},
		{"client id file missing", "oauth2", map[string]string{"CLIENT_ID": unset, "CLIENT_ID_FILE": missing}, "CLIENT_ID_FILE", "no such file"},
		{"token params without =", "oauth2", map[string]string{"TOKEN_PARAMS": "audience"}, "TOKEN_PARAMS", `got "audience"`},
		{"token params without key", "oauth2", map[string]string{"TOKEN_PARAMS": "a=1,=2"}, "TOKEN_PARAMS", `got "=2"`},
		{"auth style unknown", "oauth2", map[string]string{"OAUTH2_AUTH_STYLE": "basic"}, "OAUTH2_AUTH_STYLE", `got "basic"`},
		{"token field blank", "json", map[string]string{"JSON_TOKEN_FIELD": "  "}, "JSON_TOKEN_FIELD", "must not be empty"},
		{"expires_in field blank", "json", map[string]string{"JSON_EXPIRES_IN_FIELD": "\t"}, "JSON_EXPIRES_IN_FIELD", "must not be empty"},
		{"default ttl not a duration", "json", map[string]string{"TOKEN_DEFAULT_TTL": "900"}, "TOKEN_DEFAULT_TTL", "not a duration"},
		{"default ttl zero", "json", map[string]string{"TOKEN_DEFAULT_TTL": "0s"}, "TOKEN_DEFAULT_TTL", "must be positive"},
		{"token timeout negative", "json", map[string]string{"TOKEN_TIMEOUT": "-1s"}, "TOKEN_TIMEOUT", "must be positive, got -1s"},
		{"token wait not a duration", "json", map[string]string{"TOKEN_WAIT": "soon"}, "TOKEN_WAIT", "not a duration"},
		{"token wait zero", "json", map[string]string{"TOKEN_WAIT": "0"}, "TOKEN_WAIT", "must be positive"},
		{"forced refresh interval negative", "json", map[string]string{"FORCED_REFRESH_INTERVAL": "-10s"}, "FORCED_REFRESH_INTERVAL", "must be positive"},
		{"upstream timeout not a duration", "none", map[string]string{"UPSTREAM_TIMEOUT": "1 minute"}, "UPSTREAM_TIMEOUT", "not a duration"},
		{"shutdown timeout zero", "none", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, "SHUTDOWN_TIMEOUT", "must be positive"},
		{"shutdown delay negative", "none", map[string]string{"SHUTDOWN_DELAY": "-1s"}, "SHUTDOWN_DELAY", "must not be negative"},
		{"max connections zero", "none", map[string]string{"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS", "at least 1"},
		{"require header invalid", "none", map[string]string{"REQUIRE_HEADER": "X Bad"}, "REQUIRE_HEADER", "not a valid header name"},
		{"require header hop-by-hop", "none", map[string]string{"REQUIRE_HEADER": "connection"}, "REQUIRE_HEADER", "choose a name of your own"},
		{"require header authorization", "none", map[string]string{"REQUIRE_HEADER": "Authorization"}, "REQUIRE_HEADER", "choose a name of your own"},
		{"require header is the injected one", "none", map[string]string{"INJECT_HEADER": "X-Api-Token", "REQUIRE_HEADER": "x-api-token"}, "REQUIRE_HEADER", "choose a name of your own"},
		{"renew at one", "json", map[string]string{"RENEW_AT": "1"}, "RENEW_AT", "between 0 and 1"},
		{"renew at zero", "json", map[string]string{"RENEW_AT": "0"}, "RENEW_AT", "between 0 and 1"},
		{"renew at above one", "json", map[string]string{"RENEW_AT": "1.5"}, "RENEW_AT", "got 1.5"},
		{"renew at negative", "json", map[string]string{"RENEW_AT": "-0.2"}, "RENEW_AT", "between 0 and 1"},
		{"renew at NaN", "json", map[string]string{"RENEW_AT": "NaN"}, "RENEW_AT", "between 0 and 1"},
		{"renew at percent", "json", map[string]string{"RENEW_AT": "80%"}, "RENEW_AT", "not a number"},
		{"refresh status 2xx", "json", map[string]string{"REFRESH_ON_STATUS": "200"}, "REFRESH_ON_STATUS", `got "200"`},
		{"refresh status 600", "json", map[string]string{"REFRESH_ON_STATUS": "401,600"}, "REFRESH_ON_STATUS", `got "600"`},
		{"refresh status word", "json", map[string]string{"REFRESH_ON_STATUS": "unauthorized"}, "REFRESH_ON_STATUS", `got "unauthorized"`},
		{"max replay body negative", "json", map[string]string{"MAX_REPLAY_BODY": "-1"}, "MAX_REPLAY_BODY", "must not be negative"},
		{"max replay body with unit", "json", map[string]string{"MAX_REPLAY_BODY": "1MB"}, "MAX_REPLAY_BODY", "not a whole number"},
		{"max replay body too big", "json", map[string]string{"MAX_REPLAY_BODY": "99999999999999999999"}, "MAX_REPLAY_BODY", "not a whole number"},
		{"log level unknown", "none", map[string]string{"LOG_LEVEL": "verbose"}, "LOG_LEVEL", `got "verbose"`},
		{"log format unknown", "none", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT", `got "xml"`},
		{"ca file missing", "none", map[string]string{"UPSTREAM_CA_FILE": missing}, "UPSTREAM_CA_FILE", "no such file"},
		{"ca file not PEM", "none", map[string]string{"UPSTREAM_CA_FILE": notPEM}, "UPSTREAM_CA_FILE", "no PEM certificate"},
		{"cert without key", "none", map[string]string{"CLIENT_CERT_FILE": notPEM}, "CLIENT_CERT_FILE", "go together"},
		{"key without cert", "none", map[string]string{"CLIENT_KEY_FILE": notPEM}, "CLIENT_CERT_FILE", "go together"},
		{"cert and key unreadable", "none", map[string]string{"CLIENT_CERT_FILE": missing, "CLIENT_KEY_FILE": missing}, "CLIENT_CERT_FILE", "load client certificate"},
		{"cert and key not PEM", "none", map[string]string{"CLIENT_CERT_FILE": notPEM, "CLIENT_KEY_FILE": notPEM}, "CLIENT_CERT_FILE", "load client certificate"},
	}
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
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

func TestLoadConfigReportsEveryProblemOnce(t *testing.T) {
	secretFile := writeFile(t, t.TempDir(), "secret", "s")
	env := minimal("json", map[string]string{
		"UPSTREAM_URL":     unset,        // required
		"TOKEN_WAIT":       "abc",        // does not parse, and is then zero: must be reported once
		"RENEW_AT":         "eighty",     // does not parse, and is then zero: must be reported once
		"MAX_REPLAY_BODY":  "-5",         // negative
		"LOG_LEVEL":        "loud",       // unknown
		"CLIENT_SECRET":    "s",          // both literal…
		"TOKEN_PARAMS":     "a=1,broken", // malformed
		"LISTEN_ADDR":      "nohostport",
		"SHUTDOWN_TIMEOUT": "0s",
	})
	env["AUTHSIDECAR_CLIENT_SECRET_FILE"] = secretFile // …and file
	_, err := loadConfig(env)
	want := []string{"UPSTREAM_URL", "TOKEN_WAIT", "RENEW_AT", "MAX_REPLAY_BODY", "LOG_LEVEL", "CLIENT_SECRET",
		"TOKEN_PARAMS", "LISTEN_ADDR", "SHUTDOWN_TIMEOUT"}
	lines := problemLines(err)
	for _, v := range want {
		if n := linesNaming(lines, envPrefix+v); n != 1 {
			t.Errorf("%s%s reported %d times, want once, in:\n%s", envPrefix, v, n, err)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("loadConfig() reported %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	checkEveryLineNamesAVariable(t, err)
	if !strings.Contains(err.Error(), "AUTHSIDECAR_TOKEN_WAIT: not a duration") {
		t.Errorf("loadConfig() error = %q, want the parse problem of TOKEN_WAIT rather than its zero value", err)
	}
}

func TestLoadConfigLiteralOrFile(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "cred", "value")
	tests := []struct {
		name          string
		literal, path string
		want          string // "" for no problem
	}{
		{"literal only", "value", "", ""},
		{"file only", "", file, ""},
		{"both", "value", file, "set either AUTHSIDECAR_%[1]s or AUTHSIDECAR_%[1]s_FILE, not both"},
		{"neither", "", "", "required (or AUTHSIDECAR_%[1]s_FILE)"},
	}
	for _, name := range []string{"CLIENT_ID", "CLIENT_SECRET"} {
		for _, tc := range tests {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				env := minimal("oauth2", map[string]string{name: unset})
				if tc.literal != "" {
					env[envPrefix+name] = tc.literal
				}
				if tc.path != "" {
					env[envPrefix+name+"_FILE"] = tc.path
				}
				_, err := loadConfig(env)
				if tc.want == "" {
					if err != nil {
						t.Fatalf("loadConfig() error = %v, want none", err)
					}
					return
				}
				want := envPrefix + name + ": " + strings.ReplaceAll(tc.want, "%[1]s", name)
				if err == nil || err.Error() != want {
					t.Errorf("loadConfig() error = %v, want %q", err, want)
				}
			})
		}
	}
}

func TestLoadConfigTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	cert := writeFile(t, dir, "cert.pem", string(certPEM))
	key := writeFile(t, dir, "key.pem", string(keyPEM))

	c, err := loadConfig(minimal("none", map[string]string{
		"UPSTREAM_CA_FILE": cert, "CLIENT_CERT_FILE": cert, "CLIENT_KEY_FILE": key,
	}))
	if err != nil {
		t.Fatalf("loadConfig() error = %v, want none", err)
	}
	tlsConfig := upstreamTLS(t, c)
	if tlsConfig == nil {
		t.Fatal("tls = nil, want a TLS configuration")
	}
	if len(tlsConfig.Certificates) != 1 || len(tlsConfig.Certificates[0].Certificate) != 1 {
		t.Errorf("tls.Certificates = %d, want the one client certificate", len(tlsConfig.Certificates))
	}
	block, _ := pem.Decode(certPEM)
	parsed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.Verify(x509.VerifyOptions{Roots: tlsConfig.RootCAs, DNSName: "upstream.test"}); err != nil {
		t.Errorf("a certificate signed by UPSTREAM_CA_FILE does not verify with tls.RootCAs: %v", err)
	}

	// The key of another certificate does not match.
	_, otherKey := selfSigned(t)
	mismatched := writeFile(t, dir, "other-key.pem", string(otherKey))
	_, err = loadConfig(minimal("none", map[string]string{"CLIENT_CERT_FILE": cert, "CLIENT_KEY_FILE": mismatched}))
	if err == nil || !strings.HasPrefix(err.Error(), "AUTHSIDECAR_CLIENT_CERT_FILE: load client certificate") {
		t.Errorf("loadConfig() with a mismatched key: error = %v, want AUTHSIDECAR_CLIENT_CERT_FILE: load client certificate…", err)
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in      string
		want    url.Values
		wantErr bool
	}{
		{"", url.Values{}, false},
		{" , ,", url.Values{}, false},
		{"a=1", url.Values{"a": {"1"}}, false},
		{"a=1,b=2", url.Values{"a": {"1"}, "b": {"2"}}, false},
		{" a = 1 , b=2 ", url.Values{"a": {"1"}, "b": {"2"}}, false},
		{"a=1,a=2", url.Values{"a": {"1", "2"}}, false},
		{"a=", url.Values{"a": {""}}, false},
		{"a=b=c", url.Values{"a": {"b=c"}}, false},
		{"audience=https://api.example.com/?x=y", url.Values{"audience": {"https://api.example.com/?x=y"}}, false},
		{",,a=1,,", url.Values{"a": {"1"}}, false},
		{"a", nil, true},
		{"=1", nil, true},
		{" =1", nil, true},
		{"a=1,b", nil, true},
	}
	for _, tc := range tests {
		got, err := parseParams(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseParams(%q) error = %v, want error: %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseParams(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseStatuses(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"", nil, false},
		{"401", []int{401}, false},
		{"401,403", []int{401, 403}, false},
		{" 401 , 403 ", []int{401, 403}, false},
		{"401,,403,", []int{401, 403}, false},
		{"400,599", []int{400, 599}, false},
		{"399", nil, true},
		{"600", nil, true},
		{"200", nil, true},
		{"-401", nil, true},
		{"401;403", nil, true},
		{"4e2", nil, true},
		{"unauthorized", nil, true},
		{"401,abc", nil, true},
	}
	for _, tc := range tests {
		got, err := parseStatuses(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseStatuses(%q) error = %v, want error: %v", tc.in, err, tc.wantErr)
			continue
		}
		if !tc.wantErr && !slices.Equal(got, tc.want) {
			t.Errorf("parseStatuses(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzLoadConfig(f *testing.F) {
	f.Add("https://api.example.com", "0.8", "10s", "audience=x", "401,403", "info", "1024")
	f.Add("ftp://x", "1.5", "abc", "broken", "600", "loud", "-1")
	f.Add("http://[::1", "NaN", "-1s", "=", "4e2", "", "1MB")
	f.Add("", "", "", "", "", "", "")
	f.Add("http://h/\n", "0x1p-2", "1h\n", "a=\n,b", "401\n", "debug\n", "0x10")
	f.Fuzz(func(t *testing.T, upstream, renewAt, tokenWait, params, statuses, logLevel, maxBody string) {
		env := minimal("oauth2", map[string]string{
			"UPSTREAM_URL":      upstream,
			"RENEW_AT":          renewAt,
			"TOKEN_WAIT":        tokenWait,
			"TOKEN_PARAMS":      params,
			"REFRESH_ON_STATUS": statuses,
			"LOG_LEVEL":         logLevel,
			"MAX_REPLAY_BODY":   maxBody,
		})
		c, err := loadConfig(env)
		if err != nil {
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("loadConfig() error %q is not a list of problems", err)
			}
			for _, e := range joined.Unwrap() {
				if !strings.HasPrefix(e.Error(), envPrefix) {
					t.Errorf("problem %q does not name an %s variable", e, envPrefix)
				}
			}
			checkEveryLineNamesAVariable(t, err)
			return
		}
		// Accepted: the derived settings must be usable.
		if u := built(t, c).proxy.Upstream; u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Errorf("UPSTREAM_URL %q accepted as %v", upstream, u)
		}
		if !(c.RenewAt > 0 && c.RenewAt < 1) {
			t.Errorf("RENEW_AT %q accepted as %v", renewAt, c.RenewAt)
		}
		if c.TokenWait <= 0 {
			t.Errorf("TOKEN_WAIT %q accepted as %v", tokenWait, c.TokenWait)
		}
		if c.MaxReplayBody < 0 {
			t.Errorf("MAX_REPLAY_BODY %q accepted as %v", maxBody, c.MaxReplayBody)
		}
		for _, s := range built(t, c).proxy.RefreshOn {
			if s < 400 || s > 599 {
				t.Errorf("REFRESH_ON_STATUS %q accepted with %d", statuses, s)
			}
		}
		if c.tokenParams() == nil {
			t.Errorf("TOKEN_PARAMS %q accepted as nil", params)
		}
	})
}

func TestMainExitVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	// The environment is invalid: -version must not even look at it.
	code := mainExit([]string{"-version"}, []string{"AUTHSIDECAR_RENEW_AT=7"}, &stdout, &stderr)
	if code != 0 {
		t.Errorf("mainExit(-version) = %d, want 0", code)
	}
	if got, want := stdout.String(), "authsidecar "+version+"\n"; got != want {
		t.Errorf("mainExit(-version) stdout = %q, want %q", got, want)
	}
	if stderr.Len() != 0 {
		t.Errorf("mainExit(-version) stderr = %q, want nothing", stderr.String())
	}
}

func TestMainExitBadFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"-listen", ":80"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("mainExit(-listen) = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "-listen") {
		t.Errorf("mainExit(-listen) stderr = %q, want it to name the flag", stderr.String())
	}
}

func TestMainExitBadConfig(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin",
		"AUTHSIDECAR_TOKEN_SOURCE=json",
		"AUTHSIDECAR_TOKEN_URL=https://auth.example.com/token",
		"AUTHSIDECAR_CLIENT_ID=id",
		"AUTHSIDECAR_CLIENT_SECRET=do-not-print-me",
		"AUTHSIDECAR_RENEW_AT=1.5",
		"AUTHSIDECAR_TOKEN_WAIT=forever",
		"AUTHSIDECAR_LOG_FORMAT=yaml",
		"AUTHSIDECAR_REFRESH_ON_STATUS=200",
		"AUTHSIDECAR_LISTEN_ADDR=127.0.0.1:1", // would fail if it were listened on
	}
	var stdout, stderr bytes.Buffer
	code := mainExit(nil, environ, &stdout, &stderr)
	if code != 2 {
		t.Errorf("mainExit() = %d, want 2", code)
	}
	if stdout.Len() != 0 {
		t.Errorf("mainExit() stdout = %q, want nothing", stdout.String())
	}
	out := stderr.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != "authsidecar: invalid configuration:" {
		t.Errorf("first line = %q, want %q", lines[0], "authsidecar: invalid configuration:")
	}
	problems := lines[1:]
	for i, l := range problems {
		problems[i] = strings.TrimPrefix(l, "  ")
	}
	for _, v := range []string{"UPSTREAM_URL", "RENEW_AT", "TOKEN_WAIT", "LOG_FORMAT", "REFRESH_ON_STATUS"} {
		if n := linesNaming(problems, envPrefix+v); n != 1 {
			t.Errorf("stderr names %s%s on %d lines, want 1:\n%s", envPrefix, v, n, out)
		}
	}
	if len(problems) != 5 {
		t.Errorf("stderr lists %d problems, want 5:\n%s", len(problems), out)
	}
	for _, bad := range []string{"panic", "goroutine ", "do-not-print-me"} {
		if strings.Contains(out, bad) {
			t.Errorf("stderr contains %q:\n%s", bad, out)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// selfSigned returns a self-signed CA certificate for upstream.test and its
// key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := fake.SelfSigned("upstream.test")
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func TestMainExitCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		environ  []string
		code     int
		out, err string
	}{
		{"valid", []string{
			"AUTHSIDECAR_UPSTREAM_URL=https://api.example",
			"AUTHSIDECAR_TOKEN_SOURCE=none",
		}, 0, "AUTHSIDECAR_TOKEN_SOURCE=none (environment)\n", ""},
		{"invalid", []string{
			"AUTHSIDECAR_UPSTREAM_URL=https://api.example",
			"AUTHSIDECAR_TOKEN_SOURCE=none",
			"AUTHSIDECAR_RENEW_AT=7",
		}, 2, "", "AUTHSIDECAR_RENEW_AT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := mainExit([]string{"-check"}, tc.environ, &stdout, &stderr); code != tc.code {
				t.Errorf("mainExit(-check) = %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			if tc.code == 0 && (!strings.Contains(stdout.String(), tc.out) || !strings.HasSuffix(stdout.String(), "\nauthsidecar: configuration OK\n")) {
				t.Errorf("mainExit(-check) stdout = %q, want it to hold %q and end with the verdict", stdout.String(), tc.out)
			}
			if tc.code != 0 && stdout.Len() != 0 {
				t.Errorf("mainExit(-check) stdout = %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.err) || (tc.err == "" && stderr.Len() != 0) {
				t.Errorf("mainExit(-check) stderr = %q, want it to contain %q", stderr.String(), tc.err)
			}
		})
	}
}

func TestUnknownVariablesAreRefused(t *testing.T) {
	_, err := loadConfig(map[string]string{
		"AUTHSIDECAR_UPSTREAM_URL":  "https://api.example",
		"AUTHSIDECAR_TOKEN_SOURCE":  "none",
		"AUTHSIDECAR_SIGNING_KEYID": "1234", // misspelt SIGNING_KEY_ID
		"AUTHSIDECAR_RENEWAT":       "0.5",  // misspelt RENEW_AT
		"OTHER_VARIABLE":            "x",    // not ours: ignored
	})
	if err == nil {
		t.Fatal("misspelt variables accepted")
	}
	want := "AUTHSIDECAR_RENEWAT: not a setting of authsidecar (misspelt?)\nAUTHSIDECAR_SIGNING_KEYID: not a setting of authsidecar (misspelt?)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
