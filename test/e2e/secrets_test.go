package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// Every sidecar that startSidecar starts is scanned for secrets when its test
// ends: its whole output (at LOG_LEVEL=debug unless the test chose another
// level), its /metrics, and the error bodies it made itself, for the client
// secret, the private keys and token files its configuration names, and every
// token the test's fakes issued. What the upstream received is not scanned:
// tokens legitimately go there.

// tracked is a source of secrets registered by a test: the tokens a fake
// issued, say, which are only known once the test has run.
type tracked struct {
	test    string
	secrets func() map[string]string // what → value
}

// trackedSecrets are all the sources registered so far. They are never
// removed: a fake's cleanup may run before a sidecar's, and secrets of
// another test do no harm.
var trackedSecrets struct {
	sync.Mutex
	all []tracked
}

// trackSecrets adds what secrets returns, when a sidecar of t (or of one of
// its subtests, or of its parent) is scanned, to what must not appear.
func trackSecrets(t *testing.T, secrets func() map[string]string) {
	trackedSecrets.Lock()
	defer trackedSecrets.Unlock()
	trackedSecrets.all = append(trackedSecrets.all, tracked{t.Name(), secrets})
}

// trackTezPay tracks the tokens p issues.
func trackTezPay(t *testing.T, p *fake.TezPay) {
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, tok := range p.Issued() {
			m[fmt.Sprintf("token #%d issued by the fake TezPay", i+1)] = tok
		}
		return m
	})
}

// trackPaygate tracks the AuthTokens and AuthLabels registered at p.
func trackPaygate(t *testing.T, p *fake.Paygate) {
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		i := 0
		for tok, label := range p.AuthTokens() {
			i++
			m[fmt.Sprintf("AuthToken #%d registered at the fake Paygate", i)] = tok
			m[fmt.Sprintf("AuthLabel #%d registered at the fake Paygate", i)] = label
		}
		return m
	})
}

// related reports whether tests a and b are the same or one is a subtest of
// the other.
func related(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

// scanned sums up the scans of the sidecars, for the figure TestMain prints.
var scanned struct {
	sync.Mutex
	sidecars, scrapes, bodies, outputBytes, secrets, hits int
}

// scanFigure describes the scans made so far.
func scanFigure() string {
	scanned.Lock()
	defer scanned.Unlock()
	return fmt.Sprintf("secrets scan: %d sidecars (LOG_LEVEL=debug unless a test chose another level) scanned as they stopped: "+
		"%d bytes of output, %d /metrics scrapes and %d error bodies they made, for %d secret values in all "+
		"(client secrets and Basic credentials as written, JSON-escaped and URL-encoded, private-key lines, token files, tokens the fakes issued and their parts): %d hits",
		scanned.sidecars, scanned.outputBytes, scanned.scrapes, scanned.bodies, scanned.secrets, scanned.hits)
}

// running maps the proxy address of every running sidecar to it, so that
// call can record the error bodies a sidecar made.
var running sync.Map // host:port → *sidecar

// sidecarBody is an error body a sidecar made, as the app received it.
type sidecarBody struct {
	what string // "503 GET /path"
	body []byte
}

// recordBody keeps body for the scan if it is an error the sidecar listening
// on host made itself: bodies from the upstream may hold anything.
func recordBody(host, method, path string, status int, body []byte) {
	v, ok := running.Load(host)
	if !ok || !sidecarMade(status, body) {
		return
	}
	s := v.(*sidecar)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = append(s.bodies, sidecarBody{fmt.Sprintf("%d %s %s", status, method, path), bytes.Clone(body)})
}

// sidecarStatuses are the statuses of the errors the sidecar makes itself.
var sidecarStatuses = []int{400, 403, 405, 413, 500, 502, 503, 504}

// sidecarMade reports whether a response looks like an error the sidecar
// made: one of its statuses and a JSON object with a string "error".
func sidecarMade(status int, body []byte) bool {
	if !slices.Contains(sidecarStatuses, status) {
		return false
	}
	var e struct {
		Error *string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error != nil
}

// secrets returns everything that must not appear in what the sidecar
// shows, by a name that does not give it away: the client secret (the
// fake's, the configured one, the file's) in the forms a log or a JSON body
// would give it, key material of the configured private keys, the content of
// a token file, and the tracked tokens.
func (s *sidecar) secrets() map[string]string {
	secrets := map[string]string{}
	add := func(what, v string) {
		if len(v) >= 8 { // shorter values would match by chance
			secrets[what] = v
		}
	}
	addSecret := func(what, v string) {
		add(what, v)
		for how, enc := range map[string]string{
			"JSON-escaped":                      jsonText(v, true),
			"JSON-escaped without HTML escapes": jsonText(v, false),
			"URL-encoded":                       url.QueryEscape(v),
			"path-encoded":                      url.PathEscape(v),
		} {
			if enc != v {
				add(what+", "+how+",", enc)
			}
		}
	}
	addSecret("client secret of the fake TezPay", clientSecret)
	for _, name := range s.settings("CLIENT_SECRET") {
		addSecret(fmt.Sprintf("configured client secret (%s)", name), s.env[name])
	}
	files := s.readFiles()
	for i, v := range files["CLIENT_SECRET_FILE"] {
		addSecret(fmt.Sprintf("client secret #%d read from CLIENT_SECRET_FILE", i+1), strings.TrimSpace(v))
	}
	for i, v := range files["SHARED_CACHE_PASSWORD_FILE"] {
		addSecret(fmt.Sprintf("Redis password #%d read from SHARED_CACHE_PASSWORD_FILE", i+1), strings.TrimSpace(v))
	}
	for _, k := range []string{"PAYGATE_KEY_FILE", "PAYGATE_HMAC_KEY_FILE"} {
		for i, v := range files[k] {
			addSecret(fmt.Sprintf("Paygate password #%d read from %s", i+1, k), strings.TrimSpace(v))
		}
	}
	for i, v := range files["API_KEY_FILE"] {
		key := strings.TrimSpace(v)
		addSecret(fmt.Sprintf("API key #%d read from API_KEY_FILE", i+1), key)
		add(fmt.Sprintf("API key #%d read from API_KEY_FILE, as HTTP Basic credentials", i+1), base64.StdEncoding.EncodeToString([]byte(key+":")))
	}
	// The Basic credentials: the user name too, Juspay's API key.
	users, passwords := []string{s.env["BASIC_USER"]}, []string{s.env["BASIC_PASSWORD"]}
	for _, name := range s.settings("BASIC_USER") {
		if name != "BASIC_USER" { // a route's
			users = append(users, s.env[name])
		}
	}
	for _, name := range s.settings("BASIC_PASSWORD") {
		if name != "BASIC_PASSWORD" {
			passwords = append(passwords, s.env[name])
		}
	}
	for _, v := range files["BASIC_USER_FILE"] {
		users = append(users, strings.TrimSpace(v))
	}
	for _, v := range files["BASIC_PASSWORD_FILE"] {
		passwords = append(passwords, strings.TrimSpace(v))
	}
	for i, u := range users {
		addSecret(fmt.Sprintf("Basic user name #%d (BASIC_USER or its file)", i+1), u)
		for j, p := range passwords {
			addSecret(fmt.Sprintf("Basic password #%d (BASIC_PASSWORD or its file)", j+1), p)
			if u != "" {
				add(fmt.Sprintf("Basic credentials of user #%d and password #%d, encoded", i+1, j+1), base64.StdEncoding.EncodeToString([]byte(u+":"+p)))
			}
		}
	}
	for i, v := range files["TOKEN_FILE"] {
		add(fmt.Sprintf("token #%d read from TOKEN_FILE", i+1), strings.TrimSpace(v))
	}
	for _, k := range keyFiles {
		for i, v := range files[k] {
			for j, line := range strings.Split(v, "\n") {
				if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
					add(fmt.Sprintf("line %d of the key #%d read from %s", j+1, i+1, k), line)
				}
			}
		}
	}

	trackedSecrets.Lock()
	all := slices.Clone(trackedSecrets.all)
	trackedSecrets.Unlock()
	for _, tr := range all {
		if !related(tr.test, s.t.Name()) {
			continue
		}
		for what, v := range tr.secrets() {
			add(what, v)
			// Part of a JWT is a leak too: the payload (the fake TezPay
			// puts the client secret in it) and the signature.
			if parts := strings.Split(v, "."); len(parts) == 3 {
				add("payload of the "+what, parts[1])
				add("signature of the "+what, parts[2])
			}
		}
	}
	return secrets
}

// keyFiles are the settings naming private keys, the shared cache's too.
var keyFiles = []string{"SIGNING_KEY_FILE", "CLIENT_ASSERTION_KEY_FILE", "CLIENT_KEY_FILE", "SHARED_CACHE_KEY_FILE"}

// secretFiles are the settings naming a file that holds a secret.
var secretFiles = append([]string{"CLIENT_SECRET_FILE", "TOKEN_FILE", "SHARED_CACHE_PASSWORD_FILE", "PAYGATE_KEY_FILE",
	"PAYGATE_HMAC_KEY_FILE", "API_KEY_FILE", "BASIC_USER_FILE", "BASIC_PASSWORD_FILE",
	"CLIENT_ASSERTION_FILE", "ASSERTION_FILE", "SUBJECT_TOKEN_FILE", "ACTOR_TOKEN_FILE"}, keyFiles...)

// settingKind is the setting a variable of the configuration sets, whoever
// it is for: CLIENT_SECRET_FILE for CLIENT_SECRET_FILE,
// AUTHSIDECAR_CLIENT_SECRET_FILE and ROUTE_TEZPAY_CLIENT_SECRET_FILE (a
// route's) alike.
func settingKind(name string) string {
	name = strings.TrimPrefix(name, "AUTHSIDECAR_")
	if rest, ok := strings.CutPrefix(name, "ROUTE_"); ok {
		if _, setting, ok := strings.Cut(rest, "_"); ok && setting != "" {
			return setting
		}
	}
	return name
}

// settings returns the variables of the configuration that set kind, the
// routes' included, by their names in s.env, sorted.
func (s *sidecar) settings(kind string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		if settingKind(k) == kind {
			out = append(out, k)
		}
	}
	return out
}

// readFiles returns the contents of the secret files the configuration
// names, the routes' included, by the setting that names them (a route's
// under the unprefixed name: CLIENT_SECRET_FILE for
// ROUTE_TEZPAY_CLIENT_SECRET_FILE), as read at the start and now (a test
// may rotate them).
func (s *sidecar) readFiles() map[string][]string {
	s.mu.Lock()
	files := map[string][]string{}
	for k, v := range s.files {
		files[k] = slices.Clone(v)
	}
	s.mu.Unlock()
	for _, k := range secretFiles {
		for _, name := range s.settings(k) {
			if b, err := os.ReadFile(s.env[name]); s.env[name] != "" && err == nil && !slices.Contains(files[k], string(b)) {
				files[k] = append(files[k], string(b))
			}
		}
	}
	return files
}

// jsonText is v as it reads inside a JSON string, without the quotes.
func jsonText(v string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	enc.Encode(v)
	out := strings.TrimSpace(b.String())
	return out[1 : len(out)-1]
}

// leaks returns where each secret appears in the sidecar's output, in
// metrics (its /metrics, if it could be scraped) and in the error bodies it
// made, naming the secret without showing it.
func (s *sidecar) leaks(secrets map[string]string, metrics string) []string {
	type place struct {
		where, text string
		decoded     bool // the strings of JSON text, one a line, in no set order
	}
	out := s.out.String()
	places := []place{
		{"process output", out, false},
		{"process output, JSON-decoded", jsonStrings([]byte(out)), true},
		{"/metrics", metrics, false},
	}
	s.mu.Lock()
	for _, b := range s.bodies {
		places = append(places,
			place{"error body of " + b.what, string(b.body), false},
			place{"error body of " + b.what + ", JSON-decoded", jsonStrings(b.body), true})
	}
	s.mu.Unlock()
	var found []string
	for what, v := range secrets {
		for _, p := range places {
			i := strings.Index(p.text, v)
			switch {
			case i < 0:
			case p.decoded:
				found = append(found, fmt.Sprintf("the %s appears in the %s", what, p.where))
			default:
				line := strings.Count(p.text[:i], "\n") + 1
				found = append(found, fmt.Sprintf("the %s appears in the %s (line %d)", what, p.where, line))
			}
		}
	}
	slices.Sort(found)
	return found
}

// scan fails the test for every secret that appears where leaks looks, and
// counts the scan for the figure.
func (s *sidecar) scan(secrets map[string]string, metrics string) {
	found := s.leaks(secrets, metrics)
	for _, leak := range found {
		s.t.Errorf("secrets scan: %s", leak)
	}
	s.mu.Lock()
	bodies := len(s.bodies)
	s.mu.Unlock()
	scanned.Lock()
	defer scanned.Unlock()
	scanned.sidecars++
	scanned.outputBytes += len(s.out.String())
	scanned.bodies += bodies
	scanned.secrets += len(secrets)
	scanned.hits += len(found)
	if metrics != "" {
		scanned.scrapes++
	}
}

// redact replaces every secret in text by its name.
func redact(text string, secrets map[string]string) string {
	whats := make([]string, 0, len(secrets))
	for what := range secrets {
		whats = append(whats, what)
	}
	// Longest first, so that no secret is left half-replaced by a part of it.
	slices.SortFunc(whats, func(a, b string) int { return len(secrets[b]) - len(secrets[a]) })
	for _, what := range whats {
		text = strings.ReplaceAll(text, secrets[what], "[the "+what+"]")
	}
	return text
}

// scrapeMetrics returns the sidecar's /metrics, or "" if it cannot be had.
func (s *sidecar) scrapeMetrics() string {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.Admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// The scan must be able to fail: each case feeds it one leak, as a sidecar
// could make it, and expects it to be reported, without the secret shown.
func TestSecretScanFindsLeaks(t *testing.T) {
	t.Parallel()
	p, srv := newTezPay(t, 0, nil)
	token := issueToken(t, srv.URL)
	const symbolSecret = `scan&S3cr3t<Qx7>+/="Vb2`
	keyLine := "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
	keyFile := t.TempDir() + "/key.pem"
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\n"+keyLine+"\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basicPasswordFile := t.TempDir() + "/basic_password"
	if err := os.WriteFile(basicPasswordFile, []byte("basic-pw-Zq8Lt3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basicEncoded := base64.StdEncoding.EncodeToString([]byte("key_scan_Hy6:basic-pw-Zq8Lt3"))
	routeSecretFile := t.TempDir() + "/alt_client_secret"
	if err := os.WriteFile(routeSecretFile, []byte("alt-scan-Jf5Rw2Nc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sig := token[strings.LastIndexByte(token, '.')+1:]
	if p.Fetches() != 1 {
		t.Fatalf("the fake issued %d tokens, want 1", p.Fetches())
	}

	// The app's view: the sidecar's error bodies are recorded by call, the
	// upstream's are not.
	errorBody, _ := json.Marshal(map[string]string{"error": "token_unavailable", "message": "provider refused: " + symbolSecret})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/sidecar-error" {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write(errorBody)
			return
		}
		fmt.Fprintf(w, `{"access_token":%q}`, token) // as an upstream may answer
	}))
	t.Cleanup(app.Close)

	tests := []struct {
		name    string
		env     map[string]string
		output  string
		metrics string
		calls   []string // paths of app called through call
		want    []string // parts of the findings expected, in order
	}{
		{name: "nothing leaked", output: `{"level":"INFO","msg":"token fetched"}` + "\n", metrics: "authsidecar_token_fetches_total 1\n"},
		{
			name:   "token in a log line",
			output: `{"level":"DEBUG","msg":"request","authorization":"Bearer ` + token + `"}` + "\n",
			want: []string{
				"the payload of the token #1 issued by the fake TezPay appears in the process output (line 1)",
				"the payload of the token #1 issued by the fake TezPay appears in the process output, JSON-decoded",
				"the signature of the token #1 issued by the fake TezPay appears in the process output (line 1)",
				"the signature of the token #1 issued by the fake TezPay appears in the process output, JSON-decoded",
				"the token #1 issued by the fake TezPay appears in the process output (line 1)",
				"the token #1 issued by the fake TezPay appears in the process output, JSON-decoded",
			},
		},
		{
			name:    "part of a token in a metric",
			metrics: "# HELP x\nauthsidecar_bad{token=\"" + sig + "\"} 1\n",
			want:    []string{"the signature of the token #1 issued by the fake TezPay appears in the /metrics (line 2)"},
		},
		{
			name:   "JSON-escaped client secret in a log line",
			env:    map[string]string{"CLIENT_SECRET": symbolSecret},
			output: "started\n" + `{"error":` + string(must(json.Marshal(symbolSecret))) + `}` + "\n",
			want: []string{
				"the configured client secret (CLIENT_SECRET) appears in the process output, JSON-decoded",
				"the configured client secret (CLIENT_SECRET), JSON-escaped, appears in the process output (line 2)",
			},
		},
		{
			name:   "private key line in the output",
			env:    map[string]string{"SIGNING_KEY_FILE": keyFile},
			output: "key: " + keyLine + "\n",
			want:   []string{"the line 2 of the key #1 read from SIGNING_KEY_FILE appears in the process output (line 1)"},
		},
		{
			name:   "Basic password from its file, and the encoded credentials",
			env:    map[string]string{"BASIC_USER": "key_scan_Hy6", "BASIC_PASSWORD_FILE": basicPasswordFile},
			output: `{"msg":"x","password":"basic-pw-Zq8Lt3"}` + "\n" + "Authorization: Basic " + basicEncoded + "\n",
			want: []string{
				"the Basic credentials of user #1 and password #2, encoded appears in the process output (line 2)",
				"the Basic password #2 (BASIC_PASSWORD or its file) appears in the process output (line 1)",
				"the Basic password #2 (BASIC_PASSWORD or its file) appears in the process output, JSON-decoded",
			},
		},
		{
			// A route's secret files are read like the unprefixed ones.
			name:   "a route's client secret from its file, and a route's API key",
			env:    map[string]string{"ROUTE_ALT_CLIENT_SECRET_FILE": routeSecretFile, "AUTHSIDECAR_ROUTE_JUSPAY_API_KEY_FILE": basicPasswordFile},
			output: "secret alt-scan-Jf5Rw2Nc\n" + `{"key":"basic-pw-Zq8Lt3"}` + "\n",
			want: []string{
				"the API key #1 read from API_KEY_FILE appears in the process output (line 2)",
				"the API key #1 read from API_KEY_FILE appears in the process output, JSON-decoded",
				"the client secret #1 read from CLIENT_SECRET_FILE appears in the process output (line 1)",
			},
		},
		{
			name:  "client secret in an error body the sidecar made",
			env:   map[string]string{"CLIENT_SECRET": symbolSecret},
			calls: []string{"/sidecar-error", "/upstream-ok"},
			want: []string{
				"the configured client secret (CLIENT_SECRET) appears in the error body of 503 GET /sidecar-error, JSON-decoded",
				"the configured client secret (CLIENT_SECRET), JSON-escaped, appears in the error body of 503 GET /sidecar-error (line 1)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &sidecar{t: t, out: &output{}, env: tc.env, listen: app.Listener.Addr().String()}
			s.out.Write([]byte(tc.output))
			running.Store(s.listen, s)
			c := newClient(t)
			for _, path := range tc.calls {
				call(c, http.MethodGet, app.URL+path, nil)
			}
			running.Delete(s.listen)
			secrets := s.secrets()
			got := s.leaks(secrets, tc.metrics)
			if !slices.Equal(got, tc.want) {
				t.Errorf("leaks() = %q, want %q", got, tc.want)
			}
			for _, f := range got {
				for what, v := range secrets {
					if strings.Contains(f, v) {
						t.Errorf("finding %q shows the %s", f, what)
					}
				}
			}
			if red := redact(s.out.String()+tc.metrics, secrets); len(tc.want) != 0 && (strings.Contains(red, token) || strings.Contains(red, keyLine)) {
				t.Errorf("redact() left a secret in %q", red)
			}
		})
	}
}

// issueToken asks the fake TezPay at base for a token, as a client would.
func issueToken(t *testing.T, base string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": clientID, "client_secret": clientSecret})
	r := call(newClient(t), http.MethodPost, base+fake.AuthenticatePath, body)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("POST %s = %v, want a token", fake.AuthenticatePath, r)
	}
	return tok.AccessToken
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
