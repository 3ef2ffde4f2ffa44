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
// PROVIDER, and lines `authsidecar -check` must print for it: what the
// preset fills in, and what the example chose beside it.
var providerExamples = map[string]struct {
	provider string
	want     []string
}{
	"examples/tezpay": {"tezpay", []string{
		"AUTHSIDECAR_TOKEN_SOURCE=json (preset tezpay)",
		"AUTHSIDECAR_TOKEN_URL=https://api.tezpay.example/api/v1/tezpay/authenticate (preset tezpay)",
		"AUTHSIDECAR_INJECT=bearer (preset tezpay)",
	}},
	"examples/alternative": {"alternative-payments", alternativeLines},
	// The fleet example is examples/alternative with the shared cache.
	"examples/alternative-fleet": {"alternative-payments", alternativeLines},
	"examples/juspay": {"juspay", []string{
		"AUTHSIDECAR_UPSTREAM_URL=https://api.juspay.in (preset juspay)",
		"AUTHSIDECAR_TOKEN_SOURCE=juspay-customer (environment)",
		"AUTHSIDECAR_TOKEN_URL=https://api.juspay.in (preset juspay)",
		"AUTHSIDECAR_INJECT=json-body (default)",
		"AUTHSIDECAR_CLIENT_AUTH_TOKEN_PATH=/juspay/client-auth-token (preset juspay)",
		"AUTHSIDECAR_SET_HEADERS=x-merchantid=stock (preset juspay)",
	}},
	"examples/axepta": {"axepta", []string{
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
			if got := env["AUTHSIDECAR_PROVIDER"]; got != want.provider {
				t.Fatalf("AUTHSIDECAR_PROVIDER = %q, want %q", got, want.provider)
			}
			out, code := check(t, env)
			if code != 0 {
				t.Fatalf("authsidecar -check = %d\n%s", code, out)
			}
			lines := strings.Split(out, "\n")
			for _, w := range want.want {
				if !slices.Contains(lines, w) {
					t.Errorf("authsidecar -check lacks the line %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "example-authsidecar_") || strings.Contains(out, "example_api_key") {
				t.Errorf("authsidecar -check shows a credential file's content:\n%s", out)
			}
			for name, value := range env {
				if name == "AUTHSIDECAR_PROVIDER" || !strings.HasPrefix(name, "AUTHSIDECAR_") {
					continue
				}
				without := maps.Clone(env)
				delete(without, name)
				out, code := check(t, without)
				if code == 0 && slices.Contains(strings.Split(out, "\n"), name+"="+value+" (preset "+want.provider+")") {
					t.Errorf("%s=%s is what the %s preset fills in: leave it out", name, value, want.provider)
				}
			}
		})
	}
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
