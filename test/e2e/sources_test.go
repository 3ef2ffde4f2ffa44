package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsidecar/authsidecar/test/fake"
)

// axeptaMerchant is the merchant the fake Axepta knows.
const axeptaMerchant = "BNP_MERCHANT_E2E"

// axeptaDTTMText is Axepta's dttm, YYYY-MM-DDThh:mm:ss, as text.
var axeptaDTTMText = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`)

// newAxeptaServer serves a fake Axepta that knows merchants until the test
// ends.
func newAxeptaServer(t *testing.T, merchants ...string) (*fake.Axepta, *httptest.Server) {
	a := fake.NewAxepta(merchants...)
	trackAxepta(t, a)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return a, srv
}

// axeptaEnv configures the registered source against an Axepta at base for
// merchant, forwarding to upstream.
func axeptaEnv(base, merchant, upstream string, extra ...string) map[string]string {
	env := map[string]string{
		"UPSTREAM_URL": upstream,
		"TOKEN_SOURCE": "registered",
		"TOKEN_URL":    base + fake.AxeptaRegisterPath,
		"MERCHANT_ID":  merchant,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// jsonKeys returns the sorted keys of a JSON object, nil if body is not one.
func jsonKeys(body []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkNoSecrets fails the test if any of secrets (name → value) appears in
// the sidecar's output, as printed or once its JSON escaping is undone, or
// in its metrics.
func checkNoSecrets(t *testing.T, s *sidecar, secrets map[string]string) {
	t.Helper()
	out := s.output()
	places := map[string]string{"process output": out, "process output, decoded": jsonStrings([]byte(out)), "/metrics": s.metrics()}
	for what, secret := range secrets {
		if secret == "" {
			continue
		}
		for where, text := range places {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("the %s appears in the %s: …%s…", what, where, text[max(0, i-60):min(len(text), i+len(secret)+10)])
			}
		}
	}
}

// pemSecrets returns the lines of a PEM private key that are key material,
// each a distinctive piece of the key, plus its type line.
func pemSecrets(keyPEM []byte) map[string]string {
	secrets := map[string]string{}
	for i, line := range strings.Split(string(keyPEM), "\n") {
		switch {
		case strings.HasPrefix(line, "-----BEGIN"):
			secrets["PEM header"] = line
		case len(line) >= 16:
			secrets[fmt.Sprintf("PEM line %d", i)] = line
		}
	}
	return secrets
}

func TestRegisteredRefusal(t *testing.T) {
	t.Parallel()
	a, srv := newAxeptaServer(t, axeptaMerchant)
	up := newRecordingUpstream(t, nil)
	s := startSidecar(t, axeptaEnv(srv.URL, "UNKNOWN_MERCHANT_42", up.URL,
		"TOKEN_WAIT", "1s", "HANDOFF_PATH", "/auth"))

	// The refusal is logged with the platform's 8-digit Code and its
	// Description.
	if !regexp.MustCompile(`^\d{8}$`).MatchString(fake.AxeptaCodeUnknownMerchant) {
		t.Fatalf("fake.AxeptaCodeUnknownMerchant = %q, want 8 digits", fake.AxeptaCodeUnknownMerchant)
	}
	var refusal string
	if !eventually(10*time.Second, func() bool {
		for _, l := range s.logLines() {
			if e, _ := l["error"].(string); l["msg"] == "token fetch failed" {
				refusal = e
				return true
			}
		}
		return false
	}) {
		t.Fatalf(`no "token fetch failed" log line after 10s; fake refusals = %d`, a.Refused())
	}
	for _, want := range []string{fake.AxeptaCodeUnknownMerchant, "Unknown MerchantID"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("logged error = %q, want it to contain %q", refusal, want)
		}
	}

	// The sidecar stays up and keeps trying, but is not ready.
	if !eventually(10*time.Second, func() bool { return a.Refused() >= 2 }) {
		t.Errorf("fake refusals = %d after 10s, want at least 2: the sidecar retries", a.Refused())
	}
	if got := s.adminStatus("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz after a refusal = %d, want 200", got)
	}
	if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz after a refusal = %d, want 503", got)
	}
	c := newClient(t)
	checkTokenUnavailable(t, call(c, http.MethodPost, s.URL+"/api/pay", []byte(`{"amount":1}`)))
	checkTokenUnavailable(t, call(c, http.MethodPost, s.URL+"/auth", []byte(`{"merchantID":"UNKNOWN_MERCHANT_42"}`)))
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream requests = %d, want 0: nothing is forwarded without a token", n)
	}
	if n := a.Registrations(); n != 0 {
		t.Errorf("fake registrations = %d, want 0", n)
	}
	if code, exited := s.waitExit(0); exited {
		t.Errorf("authsidecar exited with %d after a refusal, want it to stay up", code)
	}
}

// labelCheckingUpstream is an upstream that checks each request's token and
// label against the fake Axepta, as the platform would.
type labelCheckingUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	tokens   map[string]string // AuthToken → AuthLabel, as seen
	last     [2]string         // the last request's token and label
	requests int
	problems []string
}

func newLabelCheckingUpstream(t *testing.T, a *fake.Axepta) *labelCheckingUpstream {
	u := &labelCheckingUpstream{tokens: map[string]string{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		auth, label := r.Header.Values("Authorization"), r.Header.Values("X-Auth-Label")
		var problem string
		switch {
		case len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer "):
			problem = fmt.Sprintf("Authorization = %q, want one Bearer token", auth)
		case len(label) != 1:
			problem = fmt.Sprintf("X-Auth-Label = %q, want one label", label)
		default:
			tok := strings.TrimPrefix(auth[0], "Bearer ")
			regLabel, expiry, ok := a.Registered(tok)
			switch {
			case !ok:
				problem = "the Bearer token is not registered at the fake"
			case regLabel != label[0]:
				problem = "X-Auth-Label is not the label the token was registered with"
			case !expiry.After(now):
				problem = fmt.Sprintf("the token expired at %s, received at %s", expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339Nano))
			}
			u.mu.Lock()
			u.tokens[tok] = label[0]
			u.last = [2]string{tok, label[0]}
			u.mu.Unlock()
		}
		u.mu.Lock()
		u.requests++
		if problem != "" {
			u.problems = append(u.problems, problem)
		}
		u.mu.Unlock()
		if problem != "" {
			// 403, not 401: a refresh and replay would hide the problem.
			http.Error(w, problem, http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	t.Cleanup(u.Close)
	return u
}

// axeptaHandout is the hand-off endpoint's answer for the registered source.
type axeptaHandout struct {
	AuthToken, AuthLabel, ExpiryDate, Description, Status, Code string
}

// handoutAt is one hand-off answer and when it was received.
type handoutAt struct {
	at time.Time
	r  result
}

// checkAxeptaHandout returns what is wrong with one hand-off answer received
// at at, or "" if nothing is, and the answer decoded.
func checkAxeptaHandout(a *fake.Axepta, ttl time.Duration, h handoutAt) (axeptaHandout, string) {
	var ho axeptaHandout
	r := h.r
	if r.err != nil || r.status != http.StatusOK {
		return ho, fmt.Sprintf("answer = %v, want 200", r)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		return ho, fmt.Sprintf("Cache-Control = %q, want no-store", cc)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return ho, fmt.Sprintf("Content-Type = %q, want application/json", ct)
	}
	want := []string{"AuthLabel", "AuthToken", "Code", "Description", "ExpiryDate", "Status"}
	if got := jsonKeys(r.body); !slices.Equal(got, want) {
		return ho, fmt.Sprintf("keys = %q, want exactly %q", got, want)
	}
	if err := json.Unmarshal(r.body, &ho); err != nil {
		return ho, fmt.Sprintf("values are not all strings: %v", err)
	}
	if ho.Status != "OK" || ho.Code != fake.AxeptaCodeOK || ho.Description != "AuthToken registered" {
		return ho, fmt.Sprintf("Status, Code, Description = %q, %q, %q; want %q, %q, %q (the platform's)",
			ho.Status, ho.Code, ho.Description, "OK", fake.AxeptaCodeOK, "AuthToken registered")
	}
	if !axeptaDTTMText.MatchString(ho.ExpiryDate) {
		return ho, fmt.Sprintf("ExpiryDate = %q, want YYYY-MM-DDThh:mm:ss", ho.ExpiryDate)
	}
	expiry, err := time.ParseInLocation("2006-01-02T15:04:05", ho.ExpiryDate, time.UTC)
	switch {
	case err != nil:
		return ho, fmt.Sprintf("ExpiryDate = %q: %v", ho.ExpiryDate, err)
	case !expiry.After(h.at):
		return ho, fmt.Sprintf("ExpiryDate %s is not after the moment the token was received, %s", ho.ExpiryDate, h.at.UTC().Format(time.RFC3339Nano))
	case expiry.After(h.at.Add(ttl)):
		return ho, fmt.Sprintf("ExpiryDate %s is more than TOKEN_TTL=%s after the moment the token was received, %s", ho.ExpiryDate, ttl, h.at.UTC().Format(time.RFC3339Nano))
	}
	label, regExpiry, ok := a.Registered(ho.AuthToken)
	switch {
	case !ok:
		return ho, "AuthToken is not registered at the fake"
	case label != ho.AuthLabel:
		return ho, "AuthLabel is not the label the AuthToken was registered with"
	case !regExpiry.Equal(expiry):
		return ho, fmt.Sprintf("ExpiryDate = %s, the fake registered the token until %s", ho.ExpiryDate, regExpiry.Format(time.RFC3339))
	}
	return ho, ""
}

func TestRegisteredHandoffUnderRenewal(t *testing.T) {
	t.Parallel()
	const ttl = 5 * time.Second
	a, srv := newAxeptaServer(t, axeptaMerchant)
	up := newLabelCheckingUpstream(t, a)
	s := startSidecar(t, axeptaEnv(srv.URL, axeptaMerchant, up.URL,
		"TOKEN_TTL", ttl.String(), "RENEW_AT", "0.5", "TOKEN_WAIT", "3s",
		"HANDOFF_PATH", "/auth", "INJECT_LABEL_HEADER", "X-Auth-Label", "LOG_LEVEL", "debug"))
	s.waitReady(10 * time.Second)
	c := newClient(t)
	sdkRequest := []byte(`{"merchantID":"` + axeptaMerchant + `"}`)

	// Mobile SDKs ask for tokens, and the app sends requests, for 8s: the 5s
	// tokens are renewed at about half their life, 3 or 4 times meanwhile.
	const sdks, load = 4, 8 * time.Second
	var mu sync.Mutex
	var handouts []handoutAt
	var proxied []result
	end := time.Now().Add(load)
	var wg sync.WaitGroup
	for range sdks {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond) // a steady pace
			defer tick.Stop()
			for time.Now().Before(end) {
				r := call(c, http.MethodPost, s.URL+"/auth", sdkRequest)
				h := handoutAt{at: time.Now(), r: r}
				mu.Lock()
				handouts = append(handouts, h)
				mu.Unlock()
				<-tick.C
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; time.Now().Before(end); i++ {
			r := call(c, http.MethodPost, fmt.Sprintf("%s/api/pay?i=%d", s.URL, i), []byte(`{"amount":1}`))
			mu.Lock()
			proxied = append(proxied, r)
			mu.Unlock()
			<-tick.C
		}
	})
	wg.Wait()

	secrets := map[string]string{}
	handedOut := map[string]string{} // AuthToken → AuthLabel
	var failures []string
	for _, h := range handouts {
		ho, problem := checkAxeptaHandout(a, ttl, h)
		if problem != "" {
			failures = append(failures, fmt.Sprintf("%s: %s", h.at.Format("15:04:05.000"), problem))
			continue
		}
		if _, dup := handedOut[ho.AuthToken]; !dup {
			n := len(handedOut) + 1
			secrets[fmt.Sprintf("AuthToken #%d handed out", n)] = ho.AuthToken
			secrets[fmt.Sprintf("AuthLabel #%d handed out", n)] = ho.AuthLabel
		}
		handedOut[ho.AuthToken] = ho.AuthLabel
	}
	t.Logf("%d hand-off answers, %d proxied requests, %d registrations in %s", len(handouts), len(proxied), a.Registrations(), load)
	if len(failures) != 0 {
		t.Errorf("%d of %d hand-off answers are wrong; first: %q", len(failures), len(handouts), failures[:min(5, len(failures))])
	}
	if len(handouts) < 100 {
		t.Errorf("only %d hand-off answers in %s: the load did not happen", len(handouts), load)
	}
	if n := len(handedOut); n < 3 {
		t.Errorf("distinct AuthTokens handed out in %s of %s tokens renewed at half life = %d, want at least 3", load, ttl, n)
	}
	if n := a.Registrations(); n < 3 || n > 12 {
		t.Errorf("registrations in %s = %d, want about 4 (3 to 12)", load, n)
	}
	if n := a.Refused(); n != 0 {
		t.Errorf("registrations refused by the fake = %d, want 0", n)
	}

	// Every proxied request carried a registered, unexpired token, and its
	// label.
	bad := 0
	for _, r := range proxied {
		if r.status != http.StatusOK {
			bad++
		}
	}
	up.mu.Lock()
	if bad != 0 || len(up.problems) != 0 {
		t.Errorf("%d of %d proxied requests failed; upstream problems: %q", bad, len(proxied), up.problems[:min(5, len(up.problems))])
	}
	if len(proxied) < 50 || up.requests != len(proxied) {
		t.Errorf("proxied requests = %d, reaching the upstream = %d; want at least 50, all of them", len(proxied), up.requests)
	}
	i := 0
	for tok, label := range up.tokens {
		i++
		secrets[fmt.Sprintf("AuthToken #%d seen upstream", i)] = tok
		secrets[fmt.Sprintf("AuthLabel #%d seen upstream", i)] = label
		if l, ok := handedOut[tok]; ok && l != label {
			t.Errorf("a token went upstream with another label than the hand-off gave")
		}
	}
	up.mu.Unlock()

	// Outside renewals, the proxy and the hand-off use the same token: a
	// hand-off, a proxied request, a hand-off; if both hand-offs agree, the
	// request carried that token and its label.
	agreed := false
	for range 5 {
		r1 := call(c, http.MethodPost, s.URL+"/auth", sdkRequest)
		h1, p1 := checkAxeptaHandout(a, ttl, handoutAt{time.Now(), r1})
		// The app's own Authorization and X-Auth-Label are replaced.
		r := call(c, http.MethodGet, s.URL+"/api/status", nil, "Authorization", "Bearer forged", "X-Auth-Label", "forged")
		r2 := call(c, http.MethodPost, s.URL+"/auth", sdkRequest)
		h2, p2 := checkAxeptaHandout(a, ttl, handoutAt{time.Now(), r2})
		if p1 != "" || p2 != "" {
			t.Fatalf("hand-off answers after the load: %q, %q", p1, p2)
		}
		if h1.AuthToken != h2.AuthToken {
			continue // a renewal came between
		}
		agreed = true
		if r.status != http.StatusOK {
			t.Errorf("GET /api/status = %v, want 200", r)
		}
		up.mu.Lock()
		last := up.last
		up.mu.Unlock()
		if last != [2]string{h1.AuthToken, h1.AuthLabel} {
			t.Errorf("the proxied request did not carry Authorization: Bearer <AuthToken> and X-Auth-Label: <AuthLabel> of the hand-off")
		}
		break
	}
	if !agreed {
		t.Errorf("two hand-offs around a proxied request never gave the same token in 5 tries")
	}

	// At LOG_LEVEL=debug, neither tokens nor labels are logged, though the
	// renewals are.
	checkNoSecrets(t, s, secrets)
	if n := strings.Count(s.output(), `"msg":"token fetched"`); n < 3 {
		t.Errorf(`output has %d "token fetched" lines, want at least 3`, n)
	}
}

func TestFileSourceKubeletRotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file string }{
		// As a pod mounts it: the token symlink, in the watched directory.
		{"token symlink", "token"},
		// Through ..data: the watched directory is the timestamped one,
		// which the rotation removes.
		{"through ..data", filepath.Join("..data", "token")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testFileRotation(t, tc.file)
		})
	}
}

// testFileRotation starts a sidecar reading tokenFile, relative to a
// projected-volume layout, and rotates the volume as the kubelet does.
func testFileRotation(t *testing.T, tokenFile string) {
	dir := t.TempDir()
	write := func(sub, token string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "token"), []byte(token+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The layout of a projected volume: token -> ..data/token, ..data ->
	// ..2026_a, the timestamped directory holding the file.
	first := "opaque-sa-token-" + rand.Text()
	write("..2026_a", first)
	if err := os.Symlink("..2026_a", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	// The next token is a JWT: its exp must become the token's expiry.
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	jwtKey := make([]byte, 32)
	rand.Read(jwtKey)
	second, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "system:serviceaccount:payments:legacy-app",
		"aud": "partner-api",
		"exp": exp.Unix(),
	}).SignedString(jwtKey)
	if err != nil {
		t.Fatal(err)
	}

	up := newRecordingUpstream(t, nil)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL": up.URL,
		"TOKEN_SOURCE": "file",
		"TOKEN_FILE":   filepath.Join(dir, tokenFile),
		"HANDOFF_PATH": "/token",
		"LOG_LEVEL":    "debug",
	})
	s.waitReady(10 * time.Second)
	c := newClient(t)
	bearer := func() string {
		t.Helper()
		n := len(up.requests())
		if r := call(c, http.MethodGet, s.URL+"/api/accounts", nil); r.status != http.StatusOK {
			t.Fatalf("GET /api/accounts = %v, want 200", r)
		}
		reqs := up.requests()
		if len(reqs) != n+1 {
			t.Fatalf("upstream requests = %d, want %d", len(reqs), n+1)
		}
		return reqs[n].header.Get("Authorization")
	}
	handoff := func() (map[string]any, time.Time) {
		t.Helper()
		r := call(c, http.MethodGet, s.URL+"/token", nil)
		at := time.Now()
		var ho map[string]any
		if r.status != http.StatusOK || json.Unmarshal(r.body, &ho) != nil {
			t.Fatalf("GET /token = %v, want 200 and a JSON object", r)
		}
		if want := []string{"access_token", "expires_at", "expires_in", "token_type"}; !slices.Equal(jsonKeys(r.body), want) {
			t.Errorf("GET /token keys = %q, want exactly %q", jsonKeys(r.body), want)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET /token Cache-Control = %q, want no-store", cc)
		}
		return ho, at
	}

	if got, want := bearer(), "Bearer "+first; got != want {
		t.Fatalf("Authorization before the rotation = %q, want %q", got, want)
	}
	// Not a JWT: it lives TOKEN_DEFAULT_TTL, 15m.
	ho, _ := handoff()
	if in, _ := ho["expires_in"].(float64); ho["access_token"] != first || ho["token_type"] != "Bearer" || in < 890 || in > 900 {
		t.Errorf("hand-off before the rotation = %v, want the first token, Bearer, expiring in about 900s", ho)
	}
	// Rotate once the watch is set up: Watch checks the file once it is.
	if !eventually(10*time.Second, func() bool {
		for _, l := range s.logLines() {
			if l["msg"] == "token file checked" && l["trigger"] == "start" {
				return true
			}
		}
		return false
	}) {
		t.Fatal(`no "token file checked" log line with trigger "start" after 10s: the file is not watched`)
	}

	// Rotate as the kubelet does: a new timestamped directory, a ..data_tmp
	// symlink to it renamed over ..data (atomic), the old directory removed.
	write("..2026_b", second)
	if err := os.Symlink("..2026_b", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_a")); err != nil {
		t.Fatal(err)
	}
	rotated := time.Now()

	// Within a few seconds (less than the 5s polling interval: the watch
	// sees it), requests carry the new token, and only it from then on.
	var last string
	if !eventually(3*time.Second, func() bool {
		last = bearer()
		return last == "Bearer "+second
	}) {
		t.Fatalf("Authorization 3s after the rotation = %q, want the new token", last)
	}
	t.Logf("new token in use %s after the rotation", time.Since(rotated).Round(time.Millisecond))
	for i := range 5 {
		if got := bearer(); got != "Bearer "+second {
			t.Errorf("request %d after the switch: Authorization = %q, want the new token", i, got)
		}
	}
	ho, at := handoff()
	if ho["access_token"] != second || ho["token_type"] != "Bearer" || ho["expires_at"] != exp.UTC().Format(time.RFC3339) {
		t.Errorf("hand-off after the rotation = %v, want the new token, Bearer, expiring at its exp %s", ho, exp.UTC().Format(time.RFC3339))
	}
	if in, ok := ho["expires_in"].(float64); !ok || in > exp.Sub(at).Seconds()+1 || in < exp.Sub(at).Seconds()-3 {
		t.Errorf("hand-off expires_in = %v, want about %.0f (the JWT's exp)", ho["expires_in"], exp.Sub(at).Seconds())
	}
	if got := s.adminStatus("/readyz"); got != http.StatusOK {
		t.Errorf("/readyz after the rotation = %d, want 200", got)
	}
	if runtime.GOOS == "linux" {
		var triggers []any
		for _, l := range s.logLines() {
			if l["msg"] == "token file changed" {
				triggers = append(triggers, l["trigger"])
			}
		}
		if !slices.Equal(triggers, []any{"inotify"}) {
			t.Errorf(`"token file changed" log lines have triggers %v, want one, "inotify"`, triggers)
		}
	}
	checkNoSecrets(t, s, map[string]string{"first token": first, "second token": second, "second token's signature": second[strings.LastIndexByte(second, '.')+1:]})
}

// assertionRequest is what a private_key_jwt token endpoint saw in one
// request.
type assertionRequest struct {
	assertion, jti, token string
	problems              []string
}

// assertionEndpoint is an OAuth2 token endpoint that authenticates clients
// by private_key_jwt only, verifying each assertion with pub.
type assertionEndpoint struct {
	*httptest.Server
	tokenURL string

	mu   sync.Mutex
	reqs []assertionRequest
}

const assertionClientID = "e2e-jwt-client"

func newAssertionEndpoint(t *testing.T, pub crypto.PublicKey, alg, keyID string) *assertionEndpoint {
	e := &assertionEndpoint{}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(e.serve(pub, alg, keyID)))
	e.tokenURL = "http://" + e.Listener.Addr().String() + "/oauth2/token"
	e.Start()
	t.Cleanup(e.Close)
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, req := range e.requests() {
			m[fmt.Sprintf("access token #%d of the private_key_jwt endpoint", i+1)] = req.token
			m[fmt.Sprintf("client assertion #%d sent to the private_key_jwt endpoint", i+1)] = req.assertion
		}
		return m
	})
	return e
}

func (e *assertionEndpoint) serve(pub crypto.PublicKey, alg, keyID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req assertionRequest
		bad := func(format string, args ...any) { req.problems = append(req.problems, fmt.Sprintf(format, args...)) }
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" {
			bad("%s %s, want POST /oauth2/token", r.Method, r.URL.Path)
		}
		if err := r.ParseForm(); err != nil {
			bad("form: %v", err)
		}
		if a := r.Header.Values("Authorization"); len(a) != 0 {
			bad("Authorization header sent: %d values", len(a))
		}
		if r.PostForm.Has("client_secret") {
			bad("client_secret sent")
		}
		if got := r.PostForm.Get("grant_type"); got != "client_credentials" {
			bad("grant_type = %q, want client_credentials", got)
		}
		if got := r.PostForm.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			bad("client_assertion_type = %q, want the RFC 7523 jwt-bearer type", got)
		}
		if r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != assertionClientID {
			bad("client_id = %q, want %q", r.PostForm.Get("client_id"), assertionClientID)
		}
		req.assertion = r.PostForm.Get("client_assertion")
		claims := jwt.MapClaims{}
		tok, err := jwt.ParseWithClaims(req.assertion, claims, func(*jwt.Token) (any, error) { return pub, nil },
			jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(assertionClientID), jwt.WithSubject(assertionClientID),
			jwt.WithAudience(e.tokenURL), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(5*time.Second))
		if err != nil {
			bad("client_assertion does not verify: %v", err)
		} else {
			kid, hasKid := tok.Header["kid"]
			switch {
			case keyID != "" && kid != keyID:
				bad("kid = %v, want %q", kid, keyID)
			case keyID == "" && hasKid:
				bad("kid = %v, want none", kid)
			}
			if aud, ok := claims["aud"].(string); !ok || aud != e.tokenURL {
				bad("aud = %#v, want the token URL %q as a string", claims["aud"], e.tokenURL)
			}
			iat, _ := claims.GetIssuedAt()
			exp, _ := claims.GetExpirationTime()
			if iat == nil || exp.Sub(iat.Time) <= 0 || exp.Sub(iat.Time) > 5*time.Minute {
				bad("iat %v, exp %v: want exp shortly after iat", iat, exp)
			}
			req.jti, _ = claims["jti"].(string)
			if req.jti == "" {
				bad("no jti")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(req.problems) != 0 {
			e.reqs = append(e.reqs, req)
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "client assertion refused"})
			return
		}
		req.token = "at-" + rand.Text()
		e.reqs = append(e.reqs, req)
		// A short life, so that a second request, and a second assertion,
		// come soon.
		json.NewEncoder(w).Encode(map[string]any{"access_token": req.token, "token_type": "Bearer", "expires_in": 2})
	}
}

func (e *assertionEndpoint) requests() []assertionRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.reqs)
}

func TestOAuth2PrivateKeyJWT(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKCS8PrivateKey(e2eSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, alg, keyID string
		pub              crypto.PublicKey
		pem              *pem.Block
	}{
		{"RS256 PKCS8 key with a kid", "RS256", "2026-11", &e2eSigningKey().PublicKey, &pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}},
		{"ES256 SEC1 key without a kid", "ES256", "", &ecKey.PublicKey, &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			keyPEM := pem.EncodeToMemory(tc.pem)
			keyFile := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			ep := newAssertionEndpoint(t, tc.pub, tc.alg, tc.keyID)
			up := newRecordingUpstream(t, nil)
			env := map[string]string{
				"UPSTREAM_URL":              up.URL,
				"TOKEN_SOURCE":              "oauth2",
				"OAUTH2_AUTH_STYLE":         "private-key-jwt",
				"TOKEN_URL":                 ep.tokenURL,
				"CLIENT_ID":                 assertionClientID,
				"CLIENT_ASSERTION_KEY_FILE": keyFile,
				"CLIENT_ASSERTION_ALG":      tc.alg,
				"TOKEN_WAIT":                "3s",
				"LOG_LEVEL":                 "debug",
			}
			if tc.keyID != "" {
				env["CLIENT_ASSERTION_KEY_ID"] = tc.keyID
			}
			s := startSidecar(t, env)
			if !eventually(10*time.Second, func() bool { return s.adminStatus("/readyz") == http.StatusOK }) {
				var refusals [][]string
				for _, req := range ep.requests() {
					refusals = append(refusals, req.problems)
				}
				t.Fatalf("/readyz not 200 after 10s; the token endpoint's refusals: %q", refusals)
			}

			// Tokens live 2s: a renewal, with a fresh assertion, follows soon.
			if !eventually(10*time.Second, func() bool { return len(ep.requests()) >= 2 }) {
				t.Fatalf("token requests = %d after 10s, want at least 2", len(ep.requests()))
			}
			r := call(newClient(t), http.MethodPost, s.URL+"/v1/checkout", []byte(`{"amount":1}`))
			if r.status != http.StatusOK {
				t.Fatalf("POST /v1/checkout = %v, want 200", r)
			}

			reqs := ep.requests()
			secrets := pemSecrets(keyPEM)
			issued := map[string]bool{}
			jtis := map[string]bool{}
			assertions := map[string]bool{}
			for i, req := range reqs {
				if len(req.problems) != 0 {
					t.Errorf("token request #%d refused: %q", i, req.problems)
					continue
				}
				issued[req.token] = true
				if jtis[req.jti] || assertions[req.assertion] {
					t.Errorf("token request #%d reuses a jti or an assertion: want a fresh assertion per request", i)
				}
				jtis[req.jti], assertions[req.assertion] = true, true
				secrets[fmt.Sprintf("access token #%d", i)] = req.token
				secrets[fmt.Sprintf("client assertion #%d", i)] = req.assertion
				secrets[fmt.Sprintf("client assertion #%d's signature", i)] = req.assertion[strings.LastIndexByte(req.assertion, '.')+1:]
			}
			seen := up.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream requests = %d, want 1", len(seen))
			}
			auth := seen[0].header.Values("Authorization")
			if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") || !issued[strings.TrimPrefix(auth[0], "Bearer ")] {
				t.Errorf("upstream Authorization = %q, want Bearer and a token the endpoint issued", auth)
			}

			// At LOG_LEVEL=debug, neither the tokens, the assertions nor the
			// key are logged, though the fetches are.
			checkNoSecrets(t, s, secrets)
			if n := strings.Count(s.output(), `"msg":"token fetched"`); n < 2 {
				t.Errorf(`output has %d "token fetched" lines, want at least 2`, n)
			}
		})
	}
}

func TestSourceConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(e2eSigningKey())
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	rsaFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(rsaFile, rsaPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(source string, extra ...string) map[string]string {
		env := map[string]string{"UPSTREAM_URL": "https://api.example.com", "TOKEN_SOURCE": source}
		switch source {
		case "registered":
			env["TOKEN_URL"], env["MERCHANT_ID"] = "https://axepta.example.com/registertoken", axeptaMerchant
		case "oauth2", "json":
			env["TOKEN_URL"], env["CLIENT_ID"] = "https://auth.example.com/oauth2/token", assertionClientID
		}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []string // the variables reported, without the prefix
		mention []string // what the report says besides
	}{
		{"registered TOKEN_TTL above 24h", base("registered", "TOKEN_TTL", "25h"), []string{"TOKEN_TTL"}, []string{"24h"}},
		{"registered TOKEN_TTL zero", base("registered", "TOKEN_TTL", "0s"), []string{"TOKEN_TTL"}, nil},
		{"file source without TOKEN_FILE", base("file"), []string{"TOKEN_FILE"}, nil},
		{"file source with a missing TOKEN_FILE", base("file", "TOKEN_FILE", filepath.Join(dir, "no-such-token")), []string{"TOKEN_FILE"}, []string{"no-such-token"}},
		{"private-key-jwt without CLIENT_ASSERTION_KEY_FILE", base("oauth2", "OAUTH2_AUTH_STYLE", "private-key-jwt"), []string{"CLIENT_ASSERTION_KEY_FILE"}, nil},
		{"ES256 with an RSA key", base("oauth2", "OAUTH2_AUTH_STYLE", "private-key-jwt", "CLIENT_ASSERTION_KEY_FILE", rsaFile, "CLIENT_ASSERTION_ALG", "ES256"), []string{"CLIENT_ASSERTION_ALG"}, []string{"ES256", "RSA"}},
		{"HANDOFF_PATH without a leading slash", base("json", "CLIENT_SECRET", clientSecret, "HANDOFF_PATH", "auth"), []string{"HANDOFF_PATH"}, []string{`"auth"`}},
		{"every problem at once", base("registered", "MERCHANT_ID", "", "TOKEN_TTL", "25h", "HANDOFF_PATH", "auth"), []string{"MERCHANT_ID", "TOKEN_TTL", "HANDOFF_PATH"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"LISTEN_ADDR": heldAddr(t), "ADMIN_ADDR": heldAddr(t)}
			for k, v := range tc.env {
				if v != "" {
					env[k] = v
				}
			}
			code, stdout, stderr := runToExit(t, env)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if lines[0] != "authsidecar: invalid configuration:" {
				t.Errorf("stderr starts with %q, want %q", lines[0], "authsidecar: invalid configuration:")
			}
			problems := lines[1:]
			for _, v := range tc.want {
				n := 0
				for _, l := range problems {
					if strings.HasPrefix(l, "  AUTHSIDECAR_"+v+": ") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("stderr names AUTHSIDECAR_%s on %d lines, want 1", v, n)
				}
			}
			if len(problems) != len(tc.want) {
				t.Errorf("stderr lists %d problems, want %d (%q)", len(problems), len(tc.want), tc.want)
			}
			for _, m := range tc.mention {
				if !strings.Contains(stderr, m) {
					t.Errorf("stderr does not mention %q", m)
				}
			}
			for what, secret := range pemSecrets(rsaPEM) {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr holds the key's %s", what)
				}
			}
			if strings.Contains(stderr, "authsidecar started") || strings.Contains(stderr, "address already in use") {
				t.Errorf("authsidecar listened despite the invalid configuration")
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", stderr)
			}
		})
	}
}
