package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// providerExamples are the examples of a provider the project knows, its
// PROVIDER (or with ROUTES, each route's), and lines `authsidecar -check`
// must print for it: what the preset fills in, and what the example chose
// beside it.
var providerExamples = map[string]struct {
	provider string
	routes   map[string]string // route → its PROVIDER, for an example with ROUTES
	want     []string
}{
	"examples/tezpay": {"tezpay", nil, []string{
		"AUTHSIDECAR_TOKEN_SOURCE=json (preset tezpay)",
		"AUTHSIDECAR_TOKEN_URL=https://api.tezpay.example/api/v1/tezpay/authenticate (preset tezpay)",
		"AUTHSIDECAR_INJECT=bearer (preset tezpay)",
	}},
	"examples/alternative": {"alternative-payments", nil, alternativeLines},
	// The fleet example is examples/alternative with the shared cache.
	"examples/alternative-fleet": {"alternative-payments", nil, alternativeLines},
	"examples/juspay": {"juspay", nil, []string{
		"AUTHSIDECAR_UPSTREAM_URL=https://api.juspay.in (preset juspay)",
		"AUTHSIDECAR_TOKEN_SOURCE=juspay-customer (environment)",
		"AUTHSIDECAR_TOKEN_URL=https://api.juspay.in (preset juspay)",
		"AUTHSIDECAR_INJECT=json-body (default)",
		"AUTHSIDECAR_CLIENT_AUTH_TOKEN_PATH=/juspay/client-auth-token (preset juspay)",
		"AUTHSIDECAR_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
	}},
	// One sidecar, three routes: each from its preset, its lines named
	// after the route's variables.
	"examples/multi-provider": {routes: map[string]string{"tezpay": "tezpay", "juspay": "juspay", "alt": "alternative-payments"}, want: []string{
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_SOURCE=json (preset tezpay)",
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_URL=https://api.tezpay.example/api/v1/tezpay/authenticate (preset tezpay)",
		"AUTHSIDECAR_ROUTE_TEZPAY_INJECT=bearer (preset tezpay)",
		"AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR=127.0.0.1:8081 (environment)",
		"AUTHSIDECAR_ROUTE_JUSPAY_UPSTREAM_URL=https://api.juspay.in (preset juspay)",
		"AUTHSIDECAR_ROUTE_JUSPAY_TOKEN_SOURCE=none (preset juspay)",
		"AUTHSIDECAR_ROUTE_JUSPAY_INJECT=basic (preset juspay)",
		"AUTHSIDECAR_ROUTE_JUSPAY_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
		"AUTHSIDECAR_ROUTE_JUSPAY_PATH_PREFIX=/juspay (environment)",
		"AUTHSIDECAR_ROUTE_ALT_UPSTREAM_URL=https://public-api.alternativepayments.io (preset alternative-payments)",
		"AUTHSIDECAR_ROUTE_ALT_TOKEN_SOURCE=oauth2 (preset alternative-payments)",
		"AUTHSIDECAR_ROUTE_ALT_OAUTH2_AUTH_STYLE=header (preset alternative-payments)",
		"AUTHSIDECAR_ROUTE_ALT_TOKEN_URL=https://public-api.alternativepayments.io/oauth/token (preset alternative-payments)",
		"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX=/alt (environment)",
		"AUTHSIDECAR_LISTEN_ADDR=127.0.0.1:8080 (environment)",
	}},
	// No preset: a generic OAuth2 provider (Entra ID) without a stored
	// secret.
	"examples/secretless": {"", nil, []string{
		"AUTHSIDECAR_TOKEN_SOURCE=oauth2 (environment)",
		"AUTHSIDECAR_OAUTH2_AUTH_STYLE=client-assertion-file (environment)",
		"AUTHSIDECAR_SCOPES=api://partner-api/.default (environment)",
	}},
	"examples/axepta": {"axepta", nil, []string{
		"AUTHSIDECAR_UPSTREAM_URL=https://paymentpage.axepta.bnpparibas (preset axepta)",
		"AUTHSIDECAR_TOKEN_SOURCE=none (preset axepta)",
		"AUTHSIDECAR_INJECT=paygate (preset axepta)",
		"AUTHSIDECAR_PAYGATE_CIPHER=blowfish (preset axepta)",
	}},
}

var alternativeLines = []string{
	"AUTHSIDECAR_UPSTREAM_URL=https://public-api.alternativepayments.io (preset alternative-payments)",
	"AUTHSIDECAR_TOKEN_SOURCE=oauth2 (preset alternative-payments)",
	"AUTHSIDECAR_OAUTH2_AUTH_STYLE=header (preset alternative-payments)",
	"AUTHSIDECAR_TOKEN_URL=https://public-api.alternativepayments.io/oauth/token (preset alternative-payments)",
}

// Every example starts from its provider's preset, and sets nothing the
// preset would fill in with the same value: what `authsidecar -check` prints
// for it comes from the preset, and removing any one of the example's
// settings changes the configuration or makes it invalid.
func TestProviderExamplesUsePresets(t *testing.T) {
	for _, dir := range kustomizations(t) {
		if _, ok := providerExamples[dir]; strings.HasPrefix(dir, "examples/") && !ok {
			t.Errorf("%s is not in providerExamples: say which preset it starts from", dir)
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(providerExamples)) {
		want := providerExamples[dir]
		t.Run(dir, func(t *testing.T) {
			a := appOf(t, dir)
			c, _ := sidecar(t, &a.deployment.Spec.Template.Spec)
			env := withFiles(t, a.env(t, c))
			// The preset of each provider's variables, by their prefix.
			presets := map[string]string{"AUTHSIDECAR_": want.provider}
			if want.routes != nil {
				presets = map[string]string{}
				for route, provider := range want.routes {
					presets["AUTHSIDECAR_ROUTE_"+strings.ToUpper(route)+"_"] = provider
				}
				if got := providerPrefixes(env); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(maps.Keys(presets))) {
					t.Fatalf("AUTHSIDECAR_ROUTES = %q, want the routes %q", env["AUTHSIDECAR_ROUTES"], slices.Sorted(maps.Keys(want.routes)))
				}
			}
			for prefix, provider := range presets {
				if got := env[prefix+"PROVIDER"]; got != provider {
					t.Fatalf("%sPROVIDER = %q, want %q", prefix, got, provider)
				}
			}
			out, code := check(t, env)
			if code != 0 {
				t.Fatalf("authsidecar -check = %d\n%s", code, out)
			}
			lines := checkLines(out)
			for _, w := range want.want {
				if !slices.Contains(lines, w) {
					t.Errorf("authsidecar -check lacks the line %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "example-authsidecar_") || strings.Contains(out, "example_api_key") {
				t.Errorf("authsidecar -check shows a credential file's content:\n%s", out)
			}
			for name, value := range env {
				if unrouted(name) == "AUTHSIDECAR_PROVIDER" || !strings.HasPrefix(name, "AUTHSIDECAR_") {
					continue
				}
				provider, ok := presetOf(presets, name)
				if !ok {
					continue // a process-wide setting beside routes: no preset fills it in
				}
				without := maps.Clone(env)
				delete(without, name)
				out, code := check(t, without)
				if code == 0 && slices.Contains(checkLines(out), name+"="+value+" (preset "+provider+")") {
					t.Errorf("%s=%s is what the %s preset fills in: leave it out", name, value, provider)
				}
			}
		})
	}
}

// checkLines are the lines `authsidecar -check` printed, without the
// indentation of a route's lines under "route NAME:".
func checkLines(out string) []string {
	var lines []string
	for l := range strings.Lines(out) {
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}

// presetOf is the preset of the provider whose variable name is, given the
// presets by variable prefix (AUTHSIDECAR_ alone without ROUTES), and
// whether there is one.
func presetOf(presets map[string]string, name string) (string, bool) {
	for prefix, provider := range presets {
		if strings.HasPrefix(name, prefix) && name != "AUTHSIDECAR_ROUTES" {
			return provider, true
		}
	}
	return "", false
}

// createSecret matches the `kubectl create secret generic` commands in an
// example's comments, continuation lines joined.
var (
	createSecret = regexp.MustCompile(`kubectl create secret generic (\S+)((?:\s+--from-file=\S+)+)`)
	fromFile     = regexp.MustCompile(`--from-file=([^=\s]+)=`)
)

// The Secrets an example's comments tell the reader to create hold exactly
// the keys the sidecar's *_FILE settings read from them: none missing, none
// left over from an earlier set-up.
func TestExampleSecretsMatchTheirComments(t *testing.T) {
	for _, dir := range kustomizations(t) {
		if !strings.HasPrefix(dir, "examples/") {
			continue
		}
		t.Run(dir, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var comments []string
			for l := range strings.SplitSeq(string(raw), "\n") {
				if c, ok := strings.CutPrefix(strings.TrimSpace(l), "#"); ok {
					comments = append(comments, strings.TrimSuffix(strings.TrimSpace(c), `\`))
				}
			}
			documented := map[string][]string{}
			for _, m := range createSecret.FindAllStringSubmatch(strings.Join(comments, " "), -1) {
				for _, f := range fromFile.FindAllStringSubmatch(m[2], -1) {
					documented[m[1]] = append(documented[m[1]], f[1])
				}
			}
			a := appOf(t, dir)
			spec := &a.deployment.Spec.Template.Spec
			c, _ := sidecar(t, spec)
			read := map[string][]string{}
			for name, path := range a.env(t, c) {
				if !strings.HasSuffix(name, "_FILE") {
					continue
				}
				secret, key := secretFile(spec, c, path)
				if secret == "" && underProjectedToken(spec, c, path) {
					continue // the pod's own identity: no Secret to create
				}
				if secret == "" {
					t.Errorf("%s=%s is not in a Secret volume", name, path)
					continue
				}
				read[secret] = append(read[secret], key)
			}
			for secret, keys := range read {
				slices.Sort(keys)
				slices.Sort(documented[secret])
				if !slices.Equal(keys, documented[secret]) {
					t.Errorf("Secret %s: the sidecar reads keys %q, the comments create it with %q", secret, keys, documented[secret])
				}
			}
			for secret := range documented {
				if _, ok := read[secret]; !ok {
					t.Errorf("the comments create Secret %s, which the sidecar reads nothing from", secret)
				}
			}
		})
	}
}

// The multi-provider example: TezPay on a port of its own, Juspay and
// Alternative Payments under their prefixes on the main listener, and the
// app's base URL for each pointing at its route.
func TestMultiProviderExample(t *testing.T) {
	a := appOf(t, "examples/multi-provider")
	spec := &a.deployment.Spec.Template.Spec
	c, _ := sidecar(t, spec)
	env := a.env(t, c)
	main := env["AUTHSIDECAR_LISTEN_ADDR"]
	routeURL := map[string]string{}
	for _, prefix := range providerPrefixes(env) {
		route := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(prefix, "AUTHSIDECAR_ROUTE_"), "_"))
		listen, own := env[prefix+"LISTEN_ADDR"]
		switch pathPrefix := env[prefix+"PATH_PREFIX"]; {
		case own == (pathPrefix != ""):
			t.Errorf("route %s: %sLISTEN_ADDR %q, %sPATH_PREFIX %q; want exactly one", route, prefix, listen, prefix, pathPrefix)
		case own:
			routeURL[route] = "http://" + listen
		default:
			routeURL[route] = "http://" + main + pathPrefix
		}
	}
	want := map[string]string{"tezpay": "http://127.0.0.1:8081", "juspay": "http://127.0.0.1:8080/juspay", "alt": "http://127.0.0.1:8080/alt"}
	if !maps.Equal(routeURL, want) {
		t.Errorf("the routes are called at %v, want %v", routeURL, want)
	}
	var app map[string]string
	for _, ct := range spec.Containers {
		if ct.Name == "app" {
			app = map[string]string{}
			for _, e := range ct.Env {
				app[e.Name] = e.Value
			}
		}
	}
	for route, url := range want {
		if name := strings.ToUpper(route) + "_BASE_URL"; app[name] != url {
			t.Errorf("the app's %s = %q, want route %s's %q", name, app[name], route, url)
		}
	}
	if _, ok := app["PAYMENTS_BASE_URL"]; ok {
		t.Errorf("the app keeps the base's PAYMENTS_BASE_URL, which no route answers")
	}
}
