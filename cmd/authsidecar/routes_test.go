package main

import (
	"cmp"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authsidecar/authsidecar/proxy"
)

// threeRoutes is a valid configuration of three providers: TezPay on its
// own port, Juspay and Alternative Payments under prefixes on the main
// listener. overrides (full names) are applied; "\x00unset" removes one.
func threeRoutes(t *testing.T, overrides map[string]string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"AUTHSIDECAR_ROUTES":                          "tezpay,juspay,alt",
		"AUTHSIDECAR_LOG_LEVEL":                       "debug",
		"AUTHSIDECAR_SHUTDOWN_TIMEOUT":                "20s",
		"AUTHSIDECAR_ROUTE_TEZPAY_PROVIDER":           "tezpay",
		"AUTHSIDECAR_ROUTE_TEZPAY_UPSTREAM_URL":       "https://api.tezpay.example",
		"AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR":        "127.0.0.1:8081",
		"AUTHSIDECAR_ROUTE_TEZPAY_CLIENT_ID":          "tez-client",
		"AUTHSIDECAR_ROUTE_TEZPAY_CLIENT_SECRET_FILE": writeFile(t, dir, "tez_secret", "tez-secret-1"),
		"AUTHSIDECAR_ROUTE_TEZPAY_RENEW_AT":           "0.7",
		"AUTHSIDECAR_ROUTE_JUSPAY_PROVIDER":           "juspay",
		"AUTHSIDECAR_ROUTE_JUSPAY_UPSTREAM_URL":       "https://sandbox.juspay.in",
		"AUTHSIDECAR_ROUTE_JUSPAY_PATH_PREFIX":        "/juspay",
		"AUTHSIDECAR_ROUTE_JUSPAY_MERCHANT_ID":        "stock",
		"AUTHSIDECAR_ROUTE_JUSPAY_API_KEY_FILE":       writeFile(t, dir, "api_key", "juspay-key-1"),
		"AUTHSIDECAR_ROUTE_ALT_PROVIDER":              "alternative-payments",
		"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX":           "/alt",
		"AUTHSIDECAR_ROUTE_ALT_CLIENT_ID":             "alt-client",
		"AUTHSIDECAR_ROUTE_ALT_CLIENT_SECRET_FILE":    writeFile(t, dir, "alt_secret", "alt-secret-1"),
		"AUTHSIDECAR_ROUTE_ALT_RENEW_AT":              "0.9",
	}
	for k, v := range overrides {
		env[k] = v
	}
	for k, v := range env {
		if v == unset {
			delete(env, k)
		}
	}
	return env
}

func TestRoutesValid(t *testing.T) {
	st, err := loadSetup(threeRoutes(t, nil))
	if err != nil {
		t.Fatalf("loadSetup() error = %v", err)
	}
	if len(st.routes) != 3 {
		t.Fatalf("loadSetup() = %d routes, want 3", len(st.routes))
	}
	want := []struct {
		name, upstream, source, prefix, listen string
		own                                    bool
	}{
		{"tezpay", "https://api.tezpay.example", "json", "", "127.0.0.1:8081", true},
		{"juspay", "https://sandbox.juspay.in", "none", "/juspay", "127.0.0.1:8080", false}, // the preset's basic mode
		{"alt", "https://public-api.alternativepayments.io", "oauth2", "/alt", "127.0.0.1:8080", false},
	}
	for i, w := range want {
		r := st.routes[i]
		if r.name != w.name || r.cfg.UpstreamURL != w.upstream || r.cfg.TokenSource != w.source || r.cfg.PathPrefix != w.prefix || r.cfg.ListenAddr != w.listen || r.ownListener != w.own {
			t.Errorf("route %d = %s %s %s %q %s own=%v, want %+v", i, r.name, r.cfg.UpstreamURL, r.cfg.TokenSource, r.cfg.PathPrefix, r.cfg.ListenAddr, r.ownListener, w)
		}
		if r.cfg.LogLevel != "debug" || r.cfg.ShutdownTimeout.String() != "20s" {
			t.Errorf("route %s: LOG_LEVEL %q, SHUTDOWN_TIMEOUT %v; want the process-wide debug, 20s", r.name, r.cfg.LogLevel, r.cfg.ShutdownTimeout)
		}
	}
	if st.routes[0].cfg.RenewAt != 0.7 || st.routes[2].cfg.RenewAt != 0.9 {
		t.Errorf("RENEW_AT per route = %v, %v; want 0.7, 0.9", st.routes[0].cfg.RenewAt, st.routes[2].cfg.RenewAt)
	}
}

// TestRoutesEveryProblemAtOnce: every problem of the routes, and of what
// they share, is reported in one run, each naming its variable once.
func TestRoutesEveryProblemAtOnce(t *testing.T) {
	env := threeRoutes(t, map[string]string{
		"AUTHSIDECAR_ROUTES":                    "tezpay,juspay,alt,extra,Bad_Name",
		"AUTHSIDECAR_UPSTREAM_URL":              "https://unprefixed.example", // a provider setting without a route
		"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX":     "/juspay/v2",                 // under juspay's prefix
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_URL":    "not a url",                  // a route's own problem
		"AUTHSIDECAR_ROUTE_NOPE_UPSTREAM_URL":   "https://nope.example",       // a route not in ROUTES
		"AUTHSIDECAR_ROUTE_JUSPAY_ADMIN_ADDR":   ":9191",                      // process-wide, prefixed
		"AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR":  "127.0.0.1:9090",             // the admin address
		"AUTHSIDECAR_ADMIN_ADDR":                "127.0.0.1:9090",
		"AUTHSIDECAR_ROUTE_EXTRA_UPSTREAM_URL":  "https://extra.example",
		"AUTHSIDECAR_ROUTE_EXTRA_TOKEN_SOURCE":  "none",
		"AUTHSIDECAR_ROUTE_EXTRA_PATH_PREFIX":   "/extra",
		"AUTHSIDECAR_ROUTE_EXTRA_LISTEN_ADDR":   "127.0.0.1:8082", // and a prefix: both
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKN_TIMEOUT": "5s",             // misspelt
	})
	_, err := loadSetup(env)
	if err == nil {
		t.Fatal("loadSetup() accepted the configuration")
	}
	lines := problemLines(err)
	for _, v := range []string{
		"AUTHSIDECAR_ROUTES",
		"AUTHSIDECAR_UPSTREAM_URL",
		"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX",
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_URL",
		"AUTHSIDECAR_ROUTE_NOPE_UPSTREAM_URL",
		"AUTHSIDECAR_ROUTE_JUSPAY_ADMIN_ADDR",
		"AUTHSIDECAR_ROUTE_EXTRA_PATH_PREFIX",
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKN_TIMEOUT",
		"AUTHSIDECAR_ADMIN_ADDR",
	} {
		if n := linesNaming(lines, v); n != 1 {
			t.Errorf("%d problems name %s, want 1; problems:\n%s", n, v, strings.Join(lines, "\n"))
		}
	}
	checkEveryLineNamesAVariable(t, err)
	for _, secret := range []string{"tez-secret-1", "juspay-key-1", "alt-secret-1"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("problems show a secret: %v", err)
		}
	}
}

func TestRoutesProblems(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		variable  string
		want      string
	}{
		{"no route named", map[string]string{"AUTHSIDECAR_ROUTES": " , "}, "AUTHSIDECAR_ROUTES", "names no route"},
		{"a route named twice", map[string]string{"AUTHSIDECAR_ROUTES": "tezpay,juspay,alt,alt"}, "AUTHSIDECAR_ROUTES", `"alt" is named twice`},
		{"neither listener nor prefix", map[string]string{"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX": unset}, "AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX", "required"},
		{"the same prefix twice", map[string]string{"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX": "/juspay"}, "AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX", "overlaps route juspay's /juspay"},
		{"a trailing slash", map[string]string{"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX": "/alt/"}, "AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX", "no trailing /"},
		{"a dot segment", map[string]string{"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX": "/a/../b"}, "AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX", "no dot segments"},
		{"two routes on one port", map[string]string{"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX": unset, "AUTHSIDECAR_ROUTE_ALT_LISTEN_ADDR": "127.0.0.1:8081"}, "AUTHSIDECAR_ROUTE_ALT_LISTEN_ADDR", "also AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR's address"},
		{"a route on the main listener's port", map[string]string{"AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR": "0.0.0.0:8080"}, "AUTHSIDECAR_LISTEN_ADDR", "also AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR's address"},
		{"a route's own problem is named after the route", map[string]string{"AUTHSIDECAR_ROUTE_TEZPAY_CLIENT_SECRET_FILE": unset}, "AUTHSIDECAR_ROUTE_TEZPAY_CLIENT_SECRET", "required"},
		{"a process-wide problem is named once", map[string]string{"AUTHSIDECAR_LOG_LEVEL": "loud"}, "AUTHSIDECAR_LOG_LEVEL", `got "loud"`},
		{"PATH_PREFIX without ROUTES", nil, "AUTHSIDECAR_PATH_PREFIX", "only with AUTHSIDECAR_ROUTES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := threeRoutes(t, tc.overrides)
			if tc.overrides == nil {
				env = minimal("none", map[string]string{"PATH_PREFIX": "/x"})
			}
			_, err := loadSetup(env)
			lines := problemLines(err)
			if n := linesNaming(lines, tc.variable); n != 1 {
				t.Fatalf("%d problems name %s, want 1; problems:\n%s", n, tc.variable, strings.Join(lines, "\n"))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadSetup() error = %v, want %q", err, tc.want)
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

func TestUnder(t *testing.T) {
	for _, tc := range []struct {
		path, prefix, rest string
		ok                 bool
	}{
		{"/tezpay/api/v1", "/tezpay", "/api/v1", true},
		{"/tezpay", "/tezpay", "/", true},
		{"/tezpay/", "/tezpay", "/", true},
		{"/tezpayx/api", "/tezpay", "", false},
		{"/tez", "/tezpay", "", false},
		{"/a/b/c", "/a/b", "/c", true},
	} {
		rest, ok := under(tc.path, tc.prefix)
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("under(%q, %q) = %q, %v; want %q, %v", tc.path, tc.prefix, rest, ok, tc.rest, tc.ok)
		}
	}
}

// TestSingleRouteMetrics: without ROUTES, the one route counts on the
// registry /metrics serves, as before routes existed.
func TestSingleRouteMetrics(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	st, err := loadSetup(minimal("none", map[string]string{"UPSTREAM_URL": up.URL}))
	if err != nil {
		t.Fatalf("loadSetup() error = %v", err)
	}
	a, err := buildApp(st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("buildApp() error = %v", err)
	}
	t.Cleanup(a.close)
	rec := httptest.NewRecorder()
	proxy.New(a.routes[0].proxy).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/x = %d, want 200", rec.Code)
	}
	if n, err := testutil.GatherAndCount(a.registry, "authsidecar_requests_total"); err != nil || n != 1 {
		t.Errorf("authsidecar_requests_total series on the app's registry = %d, %v; want 1", n, err)
	}
}

// TestRoutesLogTheirName: with ROUTES, what a route logs carries route=NAME;
// without, nothing changes.
func TestRoutesLogTheirName(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string // the route attribute of each route's lines, "" for none
	}{
		{"three routes", threeRoutes(t, nil), []string{`"route":"tezpay"`, `"route":"juspay"`, `"route":"alt"`}},
		{"no ROUTES", minimal("none", nil), []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := loadSetup(tc.env)
			if err != nil {
				t.Fatalf("loadSetup() error = %v", err)
			}
			var buf strings.Builder
			a, err := buildApp(st, slog.New(slog.NewJSONHandler(&buf, nil)))
			if err != nil {
				t.Fatalf("buildApp() error = %v", err)
			}
			t.Cleanup(a.close)
			for i, s := range a.routes {
				buf.Reset()
				s.proxy.Logger.Info("probe")
				line := buf.String()
				if want := tc.want[i]; (want == "" && strings.Contains(line, `"route"`)) || !strings.Contains(line, want) {
					t.Errorf("route %s logs %s, want %s", s.name, line, cmp.Or(want, "no route attribute"))
				}
			}
		})
	}
}
