package e2e

// The token sources without a stored secret, through the binary, against
// fake.STS: RFC 8693 token exchange (TOKEN_SOURCE=token-exchange), the RFC
// 7523 JWT bearer grant (TOKEN_SOURCE=jwt-bearer, from a file or signed by
// the sidecar), and RFC 7523 client assertions from a file
// (OAUTH2_AUTH_STYLE=client-assertion-file). The files are laid out and
// rotated as the kubelet does a projected volume.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/test/redistest"
)

// The identities of the tests: the cluster's service-account issuer, and
// the audiences and scopes the fake STS serves.
const (
	clusterIssuer   = "https://oidc.e2e-cluster.example/id/7F3A"
	podSubject      = "system:serviceaccount:payments:api"
	stsAudience     = "sts.partner.example" // the projected token's audience
	partnerAudience = "https://api.partner.example"
	partnerScopes   = "payments:read payments:write"
)

// Messages of the sidecar's log the tests wait on.
const (
	msgFileChanged  = "token file changed"
	msgFileChecked  = "token file checked"
	msgFetchFailed  = "token fetch failed"
	msgRotatedRetry = "a file the token request reads was rotated: retrying the failed fetch"
)

// projectedVolume is a directory laid out as the kubelet writes a projected
// service-account token: token -> ..data/token, ..data -> the timestamped
// directory holding the file. Its methods are for the test's goroutine.
type projectedVolume struct {
	t   *testing.T
	dir string
	n   int
	cur string // the timestamped directory ..data points to
}

func newProjectedVolume(t *testing.T, token string) *projectedVolume {
	t.Helper()
	v := &projectedVolume{t: t, dir: t.TempDir()}
	v.cur = v.write(token)
	if err := os.Symlink(v.cur, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(v.dir, "token")); err != nil {
		t.Fatal(err)
	}
	return v
}

// path is the file a pod is given: the token symlink.
func (v *projectedVolume) path() string { return filepath.Join(v.dir, "token") }

// write makes a new timestamped directory holding token, as the kubelet
// writes it (no line break), and returns its name.
func (v *projectedVolume) write(token string) string {
	v.t.Helper()
	v.n++
	name := fmt.Sprintf("..%s.%09d", time.Now().UTC().Format("2006_01_02_15_04_05"), v.n)
	if err := os.Mkdir(filepath.Join(v.dir, name), 0o755); err != nil {
		v.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, name, "token"), []byte(token), 0o644); err != nil {
		v.t.Fatal(err)
	}
	return name
}

// rotate replaces the token as the kubelet does: a new timestamped
// directory, a ..data_tmp symlink to it renamed over ..data (atomic), the
// old directory removed.
func (v *projectedVolume) rotate(token string) {
	v.t.Helper()
	old := v.cur
	v.cur = v.write(token)
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(v.cur, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
		v.t.Fatal(err)
	}
}

// jwtIssuer signs JWTs as an issuer the STS may trust: the cluster's
// service-account issuer, say.
type jwtIssuer struct {
	iss string
	key *ecdsa.PrivateKey
}

func newJWTIssuer(t *testing.T, iss string) *jwtIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwtIssuer{iss: iss, key: key}
}

func (i *jwtIssuer) public() crypto.PublicKey { return &i.key.PublicKey }

// jwt returns a JWT of the issuer for sub and aud, expiring at exp, with a
// jti of its own, as the kubelet's projected tokens have.
func (i *jwtIssuer) jwt(t *testing.T, sub, aud string, exp time.Time) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": i.iss, "sub": sub, "aud": aud,
		"iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": exp.Unix(),
		"jti": rand.Text(),
	}).SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// secretList is the secrets a test made (subject tokens, assertions, …),
// tracked for the scan of every sidecar of the test (see secrets_test.go).
type secretList struct {
	mu sync.Mutex
	m  map[string]string
}

func newSecretList(t *testing.T) *secretList {
	l := &secretList{m: map[string]string{}}
	trackSecrets(t, l.all)
	return l
}

// add tracks v as what, and returns v.
func (l *secretList) add(what, v string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[what] = v
	return v
}

func (l *secretList) all() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m)
}

// startSTS serves a fake STS configured by c at /oauth2/token, its TokenURL,
// until the test ends; the tokens it issues are tracked for the scan.
func startSTS(t *testing.T, c fake.STSConfig) (*fake.STS, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	c.TokenURL = "http://" + srv.Listener.Addr().String() + "/oauth2/token"
	sts := fake.NewSTS(c)
	srv.Config.Handler = sts.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, tok := range sts.Issued() {
			m[fmt.Sprintf("token #%d issued by the fake STS", i+1)] = tok
		}
		return m
	})
	return sts, c.TokenURL
}

// bearerUpstream is an upstream that records the Authorization of each
// request and answers 401 to the tokens it was told to reject.
type bearerUpstream struct {
	*httptest.Server

	mu       sync.Mutex
	auths    []string
	rejected map[string]bool // Authorization values answered 401
}

func newBearerUpstream(t *testing.T) *bearerUpstream {
	u := &bearerUpstream{rejected: map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		u.mu.Lock()
		u.auths = append(u.auths, auth)
		reject := u.rejected[auth]
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if reject {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_token"}`))
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(u.Close)
	return u
}

// reject makes the upstream answer 401 to token, as to a revoked one.
func (u *bearerUpstream) reject(token string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rejected["Bearer "+token] = true
}

// last is the Authorization of the last request, "" if none came.
func (u *bearerUpstream) last() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.auths) == 0 {
		return ""
	}
	return u.auths[len(u.auths)-1]
}

// callOK sends a request through s and fails the test unless it gets 200;
// it returns the Authorization the upstream received.
func callOK(t *testing.T, c *http.Client, s *sidecar, up *bearerUpstream, path string) string {
	t.Helper()
	if r := call(c, http.MethodGet, s.URL+path, nil); r.status != http.StatusOK {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	return up.last()
}

// secretParams are the token request's parameters that carry a credential:
// formDiff does not show them.
var secretParams = []string{"subject_token", "actor_token", "assertion", "client_assertion", "client_secret"}

// formDiff describes how got differs from want, parameter by parameter,
// without showing a credential's value; empty if they are equal.
func formDiff(got, want url.Values) []string {
	var diffs []string
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		switch {
		case slices.Equal(got[k], want[k]):
		case slices.Contains(secretParams, k):
			diffs = append(diffs, fmt.Sprintf("%s: %d values, want %d: not the file's content (not shown)", k, len(got[k]), len(want[k])))
		default:
			diffs = append(diffs, fmt.Sprintf("%s = %q, want %q", k, got[k], want[k]))
		}
	}
	return diffs
}

// loggedWhere returns the log lines with msg for which match holds.
func (s *sidecar) loggedWhere(msg string, match func(fields map[string]any) bool) []logLine {
	var out []logLine
	for _, l := range s.logged(msg) {
		if match == nil || match(l.fields) {
			out = append(out, l)
		}
	}
	return out
}

// pathIs matches log lines about the file at path.
func pathIs(path string) func(map[string]any) bool {
	return func(f map[string]any) bool { return f["path"] == path }
}

// waitWatched waits until the sidecar watches the file at path: its first
// look, which a rotation must follow to be seen as one.
func waitWatched(t *testing.T, s *sidecar, path string) {
	t.Helper()
	waitUntil(t, 10*time.Second, func() bool {
		return len(s.loggedWhere(msgFileChecked, func(f map[string]any) bool { return f["path"] == path && f["trigger"] == "start" })) > 0
	}, "no %q log line with trigger start for %s: the file is not watched", msgFileChecked, path)
}

// waitBackoff waits until the sidecar logs a failed fetch whose retry is at
// least least away, and returns that line and its retry_in: a rotation that
// retries at once is then told apart from the backoff's own retry.
func waitBackoff(t *testing.T, s *sidecar, least time.Duration) (logLine, time.Duration) {
	t.Helper()
	var failed logLine
	var backoff time.Duration
	waitUntil(t, 20*time.Second, func() bool {
		for _, l := range s.logged(msgFetchFailed) {
			text, _ := l.fields["retry_in"].(string)
			if d, err := time.ParseDuration(text); err == nil && d >= least {
				failed, backoff = l, d
				return true
			}
		}
		return false
	}, "no %q log line with a retry_in of %s or more", msgFetchFailed, least)
	return failed, backoff
}

// checkRetriedAtOnce fails the test unless the token request at came at
// once after the rotation started at rotated, and the sidecar logged that the
// rotation retried the failed fetch (it says so only then, not when its
// backoff ends). When the test rotated early in the backoff of the fetch
// logged as failed (backoff, its retry_in), the request must also have come
// before that backoff's end; a test slowed down past that point cannot tell
// them apart by time, and says so.
func checkRetriedAtOnce(t *testing.T, s *sidecar, failed logLine, backoff time.Duration, rotated, at time.Time) {
	t.Helper()
	gapFailed, gapRotated := at.Sub(failed.at), at.Sub(rotated)
	t.Logf("the failed fetch logged retry_in %s; the test rotated %s later; the retry came %s after that log line, %s after the rotation",
		backoff, rotated.Sub(failed.at).Round(time.Millisecond), gapFailed.Round(time.Millisecond), gapRotated.Round(time.Millisecond))
	if gapRotated > backoff/2 {
		t.Errorf("the retry came %s after the rotation, want at once (the backoff was %s)", gapRotated.Round(time.Millisecond), backoff)
	}
	if rotated.Sub(failed.at) < backoff/2 {
		if gapFailed >= backoff {
			t.Errorf("the retry came %s after the failure that logged retry_in %s, want before the backoff's end: at once on the rotation", gapFailed.Round(time.Millisecond), backoff)
		}
	} else {
		t.Logf("the test rotated late in the backoff: the timing alone does not tell the rotation's retry from the backoff's")
	}
	said := slices.ContainsFunc(s.logged(msgRotatedRetry), func(l logLine) bool { return !l.at.Before(rotated) })
	if !said {
		t.Errorf("no %q log line after the rotation", msgRotatedRetry)
	}
}

// hasExited reports whether the sidecar's process has exited.
func (s *sidecar) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// TestTokenExchange: the STS receives exactly RFC 8693's parameters, the
// subject token being the file's content; the app's requests reach the
// upstream with the issued token as a Bearer token, whatever token_type the
// STS named (N_A for a token that is not an access token, RFC 8693 section
// 2.2.1).
func TestTokenExchange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		tokenType string // the STS's token_type
		actor     bool   // with an actor token
	}{
		{name: "token_type Bearer", tokenType: "Bearer"},
		{name: "token_type N_A", tokenType: "N_A"},
		{name: "with an actor token", tokenType: "Bearer", actor: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := newSecretList(t)
			k8s := newJWTIssuer(t, clusterIssuer)
			gateway := newJWTIssuer(t, "https://gateway.e2e.example") // the actor's issuer
			sts, tokenURL := startSTS(t, fake.STSConfig{
				Issuers:         map[string]crypto.PublicKey{k8s.iss: k8s.public(), gateway.iss: gateway.public()},
				SubjectAudience: stsAudience,
				Audiences:       []string{partnerAudience},
				Scopes:          strings.Fields(partnerScopes),
				TokenType:       tc.tokenType,
				Echo:            true,
			})
			subject := secrets.add("subject token", k8s.jwt(t, podSubject, stsAudience, time.Now().Add(time.Hour)))
			vol := newProjectedVolume(t, subject)
			up := newBearerUpstream(t)
			env := map[string]string{
				"UPSTREAM_URL":         up.URL,
				"TOKEN_SOURCE":         "token-exchange",
				"TOKEN_URL":            tokenURL,
				"SUBJECT_TOKEN_FILE":   vol.path(),
				"REQUESTED_TOKEN_TYPE": fake.TokenTypeAccessToken,
				"TOKEN_PARAMS":         "audience=" + partnerAudience,
				"SCOPES":               partnerScopes,
			}
			want := url.Values{
				"grant_type":           {fake.GrantTypeTokenExchange},
				"subject_token":        {subject},
				"subject_token_type":   {fake.TokenTypeJWT},
				"requested_token_type": {fake.TokenTypeAccessToken},
				"audience":             {partnerAudience},
				"scope":                {partnerScopes},
			}
			if tc.actor {
				actor := secrets.add("actor token", gateway.jwt(t, "spiffe://e2e.example/gateway", stsAudience, time.Now().Add(time.Hour)))
				env["ACTOR_TOKEN_FILE"] = newProjectedVolume(t, actor).path()
				env["ACTOR_TOKEN_TYPE"] = fake.TokenTypeJWT
				want["actor_token"] = []string{actor}
				want["actor_token_type"] = []string{fake.TokenTypeJWT}
			}
			s := startSidecar(t, env)
			s.waitReady(10 * time.Second)

			reqs := sts.Requests()
			if len(reqs) != 1 {
				t.Fatalf("STS requests = %d, want 1", len(reqs))
			}
			for _, d := range formDiff(reqs[0].Form, want) {
				t.Errorf("token request: %s", d)
			}
			if reqs[0].Authorization != "" {
				t.Errorf("token request Authorization = %q, want none (a public client)", reqs[0].Authorization)
			}
			issued := sts.Issued()
			if len(issued) != 1 {
				t.Fatalf("STS issued %d tokens, want 1", len(issued))
			}
			c := newClient(t)
			for i := range 3 {
				if got, want := callOK(t, c, s, up, fmt.Sprintf("/v1/payments/%d", i)), "Bearer "+issued[0]; got != want {
					t.Errorf("request %d: upstream Authorization = %q, want %q (the issued token)", i, got, want)
				}
			}
			if n := len(sts.Requests()); n != 1 {
				t.Errorf("STS requests after 3 app requests = %d, want 1", n)
			}
		})
	}
}

// TestTokenExchangeRefused: the STS refuses the exchange (RFC 8693 section
// 2.2.2); the sidecar stays up, not ready, logs the RFC error code, and the
// app gets 503 token_unavailable. The STS quotes the subject token in its
// description (Echo): the sidecar must not show it.
func TestTokenExchangeRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		audience string              // TOKEN_PARAMS's audience
		setup    func(sts *fake.STS) // before the sidecar starts
		code     string              // the RFC error code logged
	}{
		{name: "audience not served", audience: "https://elsewhere.example", code: "invalid_target"},
		{name: "FailWith invalid_target", audience: partnerAudience, code: "invalid_target", setup: func(sts *fake.STS) {
			sts.FailWith(&fake.STSError{Status: http.StatusBadRequest, Code: "invalid_target", Description: "the partner API is not served to this subject"})
		}},
		{name: "untrusted issuer", audience: partnerAudience, code: "invalid_request", setup: func(sts *fake.STS) { sts.Untrust(clusterIssuer) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := newSecretList(t)
			k8s := newJWTIssuer(t, clusterIssuer)
			sts, tokenURL := startSTS(t, fake.STSConfig{
				Issuers:         map[string]crypto.PublicKey{k8s.iss: k8s.public()},
				SubjectAudience: stsAudience,
				Audiences:       []string{partnerAudience},
				Echo:            true,
			})
			if tc.setup != nil {
				tc.setup(sts)
			}
			subject := secrets.add("subject token", k8s.jwt(t, podSubject, stsAudience, time.Now().Add(time.Hour)))
			vol := newProjectedVolume(t, subject)
			up := newBearerUpstream(t)
			s := startSidecar(t, map[string]string{
				"UPSTREAM_URL":       up.URL,
				"TOKEN_SOURCE":       "token-exchange",
				"TOKEN_URL":          tokenURL,
				"SUBJECT_TOKEN_FILE": vol.path(),
				"TOKEN_PARAMS":       "audience=" + tc.audience,
				"TOKEN_WAIT":         "1s",
			})
			waitUntil(t, 10*time.Second, func() bool {
				return len(s.loggedWhere(msgFetchFailed, func(f map[string]any) bool {
					e, _ := f["error"].(string)
					return strings.Contains(e, tc.code)
				})) > 0
			}, "no %q log line whose error names %q", msgFetchFailed, tc.code)
			if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d, want 503", got)
			}
			e := checkTokenUnavailable(t, call(newClient(t), http.MethodGet, s.URL+"/v1/payments", nil))
			t.Logf("the app got: %+v", e)
			if s.hasExited() {
				t.Fatalf("the sidecar exited (%v), want it up and not ready", s.state)
			}
			if n := len(sts.Issued()); n != 0 {
				t.Errorf("STS issued %d tokens, want 0", n)
			}
			if up.last() != "" {
				t.Errorf("the upstream got a request with Authorization %q, want none", up.last())
			}
		})
	}
}

// TestTokenExchangeRotation: the kubelet rotates the subject token while
// the token is healthy: no token request follows, for several of the
// watch's polls. Then the upstream rejects the token and the STS refuses
// the exchange: the sidecar retries with backoff; a rotation then retries
// at once, well before the backoff ends, and the sidecar recovers.
func TestTokenExchangeRotation(t *testing.T) {
	t.Parallel()
	secrets := newSecretList(t)
	k8s := newJWTIssuer(t, clusterIssuer)
	sts, tokenURL := startSTS(t, fake.STSConfig{
		Issuers:         map[string]crypto.PublicKey{k8s.iss: k8s.public()},
		SubjectAudience: stsAudience,
		Echo:            true,
	})
	subjects := []string{secrets.add("subject token #1", k8s.jwt(t, podSubject, stsAudience, time.Now().Add(time.Hour)))}
	vol := newProjectedVolume(t, subjects[0])
	up := newBearerUpstream(t)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":       up.URL,
		"TOKEN_SOURCE":       "token-exchange",
		"TOKEN_URL":          tokenURL,
		"SUBJECT_TOKEN_FILE": vol.path(),
		"TOKEN_WAIT":         "1s",
	})
	s.waitReady(10 * time.Second)
	c := newClient(t)
	issued := sts.Issued()
	if len(issued) != 1 {
		t.Fatalf("STS issued %d tokens, want 1", len(issued))
	}
	if got := callOK(t, c, s, up, "/v1/a"); got != "Bearer "+issued[0] {
		t.Fatalf("upstream Authorization = %q, want the issued token", got)
	}

	// 1. A rotation while the token is healthy: the watch sees it at once
	// (inotify), and no fetch follows, for two of its polls.
	waitWatched(t, s, vol.path())
	subjects = append(subjects, secrets.add("subject token #2", k8s.jwt(t, podSubject, stsAudience, time.Now().Add(time.Hour))))
	vol.rotate(subjects[1])
	waitUntil(t, 5*time.Second, func() bool { return len(s.loggedWhere(msgFileChanged, pathIs(vol.path()))) == 1 },
		"no %q log line for %s within 5s of the rotation", msgFileChanged, vol.path())
	changedAt := s.loggedWhere(msgFileChanged, pathIs(vol.path()))[0].at
	polls := func() int {
		return len(s.loggedWhere(msgFileChecked, func(f map[string]any) bool {
			return f["path"] == vol.path() && f["trigger"] == "poll"
		}))
	}
	base := polls()
	waitUntil(t, 15*time.Second, func() bool { return polls() >= base+2 }, "the watch did not poll %s twice after the rotation", vol.path())
	if n := len(sts.Requests()); n != 1 {
		t.Errorf("STS requests %s after a rotation while the token was healthy = %d, want 1 (none caused by the rotation)", time.Since(changedAt).Round(time.Millisecond), n)
	}
	if l := s.logged(msgRotatedRetry); len(l) != 0 {
		t.Errorf("%q logged while the token was healthy", msgRotatedRetry)
	}
	if got := callOK(t, c, s, up, "/v1/b"); got != "Bearer "+issued[0] {
		t.Errorf("upstream Authorization after the rotation = %q, want the same token", got)
	}

	// 2. The upstream rejects the token and the STS refuses: the refresh
	// fails, with the rotated file, and is retried with a growing backoff.
	sts.FailWith(&fake.STSError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "subject token revoked"})
	up.reject(issued[0])
	call(c, http.MethodGet, s.URL+"/v1/c", nil) // 401, then no token: the app's answer is not the point
	failed, backoff := waitBackoff(t, s, 1500*time.Millisecond)
	failures := len(sts.Requests()) - 1
	for i, r := range sts.Requests()[1:] {
		if got := r.Form.Get("subject_token"); got != subjects[1] {
			t.Errorf("failed token request %d: subject_token is not the rotated file's content", i+1)
		}
	}
	if e, _ := failed.fields["error"].(string); !strings.Contains(e, "invalid_grant") {
		t.Errorf("%q error = %q, want the RFC error code invalid_grant", msgFetchFailed, e)
	}

	// 3. The file rotates: the fetch is retried at once, and succeeds.
	sts.FailWith(nil)
	subjects = append(subjects, secrets.add("subject token #3", k8s.jwt(t, podSubject, stsAudience, time.Now().Add(time.Hour))))
	rotated := time.Now() // before: the watch may see the rename before rotate returns
	vol.rotate(subjects[2])
	waitUntil(t, 10*time.Second, func() bool { return len(sts.Issued()) == 2 }, "no token issued after the rotation")
	reqs := sts.Requests()
	retry := reqs[len(reqs)-1]
	if got := retry.Form.Get("subject_token"); got != subjects[2] {
		t.Errorf("the retry's subject_token is not the new file's content")
	}
	t.Logf("%d token requests failed", failures)
	checkRetriedAtOnce(t, s, failed, backoff, rotated, retry.At)
	s.waitReady(5 * time.Second)
	if got := callOK(t, c, s, up, "/v1/d"); got != "Bearer "+sts.Issued()[1] {
		t.Errorf("upstream Authorization after the recovery = %q, want the new issued token", got)
	}
}

// TestClientAssertionFile: OAUTH2_AUTH_STYLE=client-assertion-file
// authenticates the client credentials grant with the file's JWT (RFC 7523
// section 2.2), no secret; after a rotation, the next fetch (forced by the
// upstream rejecting the token) sends the new file's content.
func TestClientAssertionFile(t *testing.T) {
	t.Parallel()
	const client = "payments-api"
	for _, tc := range []struct {
		name     string
		clientID string // CLIENT_ID, optional
	}{
		{name: "without CLIENT_ID"},
		{name: "with CLIENT_ID", clientID: client},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := newSecretList(t)
			// The client's own issuer: RFC 7523 section 3 wants iss and sub
			// to be the client_id.
			ids := newJWTIssuer(t, client)
			sts, tokenURL := startSTS(t, fake.STSConfig{
				Clients: map[string]fake.STSClient{client: {Key: ids.public()}},
				Scopes:  strings.Fields(partnerScopes),
				Echo:    true,
			})
			assertion := func(n int) string {
				return secrets.add(fmt.Sprintf("client assertion #%d", n), ids.jwt(t, client, tokenURL, time.Now().Add(time.Hour)))
			}
			first := assertion(1)
			vol := newProjectedVolume(t, first)
			up := newBearerUpstream(t)
			env := map[string]string{
				"UPSTREAM_URL":          up.URL,
				"TOKEN_SOURCE":          "oauth2",
				"OAUTH2_AUTH_STYLE":     "client-assertion-file",
				"CLIENT_ASSERTION_FILE": vol.path(),
				"TOKEN_URL":             tokenURL,
				"SCOPES":                partnerScopes,
			}
			want := url.Values{
				"grant_type":            {fake.GrantTypeClientCredentials},
				"client_assertion_type": {fake.ClientAssertionTypeJWT},
				"client_assertion":      {first},
				"scope":                 {partnerScopes},
			}
			if tc.clientID != "" {
				env["CLIENT_ID"] = tc.clientID
				want["client_id"] = []string{tc.clientID}
			}
			s := startSidecar(t, env)
			checkFileRotation(t, s, sts, up, vol, want, "client_assertion", func() string { return assertion(2) })
			if reqs := sts.Requests(); reqs[0].Authorization != "" {
				t.Errorf("token request Authorization = %q, want none (no client secret)", reqs[0].Authorization)
			}
		})
	}
}

// TestJWTBearer: the JWT bearer grant (RFC 7523 section 2.1) with the
// assertion from a file, rotated, and with one the sidecar signs: every
// fetch is accepted by the STS, which takes each jti once.
func TestJWTBearer(t *testing.T) {
	t.Parallel()
	t.Run("assertion file", func(t *testing.T) {
		t.Parallel()
		secrets := newSecretList(t)
		k8s := newJWTIssuer(t, clusterIssuer)
		sts, tokenURL := startSTS(t, fake.STSConfig{Issuers: map[string]crypto.PublicKey{k8s.iss: k8s.public()}, Echo: true})
		assertion := func(n int) string {
			return secrets.add(fmt.Sprintf("assertion #%d", n), k8s.jwt(t, podSubject, tokenURL, time.Now().Add(time.Hour)))
		}
		first := assertion(1)
		vol := newProjectedVolume(t, first)
		up := newBearerUpstream(t)
		s := startSidecar(t, map[string]string{
			"UPSTREAM_URL":   up.URL,
			"TOKEN_SOURCE":   "jwt-bearer",
			"TOKEN_URL":      tokenURL,
			"ASSERTION_FILE": vol.path(),
		})
		want := url.Values{"grant_type": {fake.GrantTypeJWTBearer}, "assertion": {first}}
		checkFileRotation(t, s, sts, up, vol, want, "assertion", func() string { return assertion(2) })
	})

	t.Run("self-signed", func(t *testing.T) {
		t.Parallel()
		const issuer, subject = "payments-signer", "payments-api"
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		trackKey(t, "the assertion signing key", key)
		keyFile := filepath.Join(t.TempDir(), "assertion-key.pem")
		if err := os.WriteFile(keyFile, []byte(pemOf(t, key)), 0o600); err != nil {
			t.Fatal(err)
		}
		// Tokens live 3s, renewed at half their life: a fetch every 1.5s,
		// each with an assertion of its own.
		sts, tokenURL := startSTS(t, fake.STSConfig{
			Issuers: map[string]crypto.PublicKey{issuer: &key.PublicKey},
			TTL:     3 * time.Second,
			Echo:    true,
		})
		trackSecrets(t, func() map[string]string {
			m := map[string]string{}
			for i, r := range sts.Requests() {
				m[fmt.Sprintf("self-signed assertion #%d", i+1)] = r.Form.Get("assertion")
			}
			return m
		})
		up := newBearerUpstream(t)
		s := startSidecar(t, map[string]string{
			"UPSTREAM_URL":              up.URL,
			"TOKEN_SOURCE":              "jwt-bearer",
			"TOKEN_URL":                 tokenURL,
			"ASSERTION_ISSUER":          issuer,
			"ASSERTION_SUBJECT":         subject,
			"CLIENT_ASSERTION_KEY_FILE": keyFile,
			"RENEW_AT":                  "0.5",
		})
		s.waitReady(10 * time.Second)
		waitUntil(t, 15*time.Second, func() bool { return len(sts.Issued()) >= 3 }, "fewer than 3 tokens issued (got %d)", len(sts.Issued()))
		issued, reqs := sts.Issued(), sts.Requests()
		if len(reqs) > len(issued)+1 { // one may be in flight
			t.Errorf("%d STS requests, %d tokens issued: the STS refused some", len(reqs), len(issued))
		}
		if l := s.logged(msgFetchFailed); len(l) != 0 {
			t.Errorf("%d fetches failed, want none; first: %v", len(l), l[0].fields["error"])
		}
		jtis := map[string]bool{}
		for i, r := range reqs {
			if r.Form.Get("grant_type") != fake.GrantTypeJWTBearer {
				t.Errorf("request %d: grant_type = %q", i+1, r.Form.Get("grant_type"))
			}
			var claims jwt.RegisteredClaims
			if _, err := jwt.ParseWithClaims(r.Form.Get("assertion"), &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
				jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(tokenURL), jwt.WithIssuer(issuer), jwt.WithSubject(subject), jwt.WithExpirationRequired()); err != nil {
				t.Errorf("request %d: the assertion does not verify as RS256 by the key, iss %q, sub %q, aud the token URL: %v", i+1, issuer, subject, err)
				continue
			}
			if claims.ID == "" || jtis[claims.ID] {
				t.Errorf("request %d: jti %q, want a fresh one", i+1, claims.ID)
			}
			jtis[claims.ID] = true
		}
		c := newClient(t)
		if got := callOK(t, c, s, up, "/v1/a"); !slices.ContainsFunc(sts.Issued(), func(tok string) bool { return got == "Bearer "+tok }) {
			t.Errorf("upstream Authorization = %q, want an issued token", got)
		}
	})
}

// TestSecretlessExpiredFileAtStart: the file holds a JWT whose exp has
// passed when the sidecar starts: it stays up, not ready, logs the file and
// that it expired, and sends nothing to the STS; once the file rotates to a
// fresh JWT it is ready within the watch's poll interval.
func TestSecretlessExpiredFileAtStart(t *testing.T) {
	t.Parallel()
	const client = "payments-api"
	for _, tc := range []struct {
		name string
		// env configures the source reading path against the STS.
		env func(path, tokenURL string) map[string]string
		// jwt makes the file's JWT, expiring at exp.
		jwt func(t *testing.T, k8s *jwtIssuer, tokenURL string, exp time.Time) string
		// clients registers the client whose assertion the file holds; else
		// the STS serves public clients.
		clients bool
	}{
		{
			name: "ASSERTION_FILE",
			env: func(path, tokenURL string) map[string]string {
				return map[string]string{"TOKEN_SOURCE": "jwt-bearer", "TOKEN_URL": tokenURL, "ASSERTION_FILE": path}
			},
			jwt: func(t *testing.T, k8s *jwtIssuer, tokenURL string, exp time.Time) string {
				return k8s.jwt(t, podSubject, tokenURL, exp)
			},
		},
		{
			name: "CLIENT_ASSERTION_FILE",
			env: func(path, tokenURL string) map[string]string {
				return map[string]string{"TOKEN_SOURCE": "oauth2", "OAUTH2_AUTH_STYLE": "client-assertion-file", "TOKEN_URL": tokenURL, "CLIENT_ASSERTION_FILE": path}
			},
			jwt: func(t *testing.T, k8s *jwtIssuer, tokenURL string, exp time.Time) string {
				return (&jwtIssuer{iss: client, key: k8s.key}).jwt(t, client, tokenURL, exp)
			},
			clients: true,
		},
		{
			name: "SUBJECT_TOKEN_FILE",
			env: func(path, tokenURL string) map[string]string {
				return map[string]string{"TOKEN_SOURCE": "token-exchange", "TOKEN_URL": tokenURL, "SUBJECT_TOKEN_FILE": path}
			},
			jwt: func(t *testing.T, k8s *jwtIssuer, _ string, exp time.Time) string {
				return k8s.jwt(t, podSubject, stsAudience, exp)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := newSecretList(t)
			k8s := newJWTIssuer(t, clusterIssuer)
			cfg := fake.STSConfig{
				Issuers:         map[string]crypto.PublicKey{k8s.iss: k8s.public()},
				SubjectAudience: stsAudience,
				Echo:            true,
			}
			if tc.clients {
				cfg.Clients = map[string]fake.STSClient{client: {Key: k8s.public()}}
			}
			sts, tokenURL := startSTS(t, cfg)
			expired := secrets.add("expired JWT", tc.jwt(t, k8s, tokenURL, time.Now().Add(-time.Minute)))
			vol := newProjectedVolume(t, expired)
			up := newBearerUpstream(t)
			env := tc.env(vol.path(), tokenURL)
			env["UPSTREAM_URL"], env["TOKEN_WAIT"] = up.URL, "1s"
			s := startSidecar(t, env)

			waitUntil(t, 10*time.Second, func() bool { return len(s.logged(msgFetchFailed)) > 0 }, "no %q log line", msgFetchFailed)
			e, _ := s.logged(msgFetchFailed)[0].fields["error"].(string)
			if !strings.Contains(e, vol.path()) || !strings.Contains(e, "expired") {
				t.Errorf("%q error = %q, want it to name %s and say expired", msgFetchFailed, e, vol.path())
			}
			if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d, want 503", got)
			}
			checkTokenUnavailable(t, call(newClient(t), http.MethodGet, s.URL+"/v1/a", nil))
			if s.hasExited() {
				t.Fatalf("the sidecar exited (%v), want it up and not ready", s.state)
			}
			if n := len(sts.Requests()); n != 0 {
				t.Errorf("STS requests = %d, want 0: an expired JWT is refused unsent", n)
			}

			// Rotated once the backoff has grown: the fetch is retried at
			// once, not at the backoff's end.
			waitWatched(t, s, vol.path())
			failed, backoff := waitBackoff(t, s, 1500*time.Millisecond)
			if n := len(sts.Requests()); n != 0 {
				t.Errorf("STS requests after %d failed fetches = %d, want 0", len(s.logged(msgFetchFailed)), n)
			}
			fresh := secrets.add("fresh JWT", tc.jwt(t, k8s, tokenURL, time.Now().Add(time.Hour)))
			rotated := time.Now() // before: the watch may see the rename before rotate returns
			vol.rotate(fresh)
			s.waitReady(5 * time.Second) // the poll interval
			t.Logf("ready %s after the rotation", time.Since(rotated).Round(time.Millisecond))
			reqs := sts.Requests()
			if len(reqs) != 1 || len(sts.Issued()) != 1 {
				t.Fatalf("STS requests = %d, issued = %d, want 1 and 1", len(reqs), len(sts.Issued()))
			}
			checkRetriedAtOnce(t, s, failed, backoff, rotated, reqs[0].At)
			sent := reqs[0].Form.Get("assertion") + reqs[0].Form.Get("client_assertion") + reqs[0].Form.Get("subject_token")
			if sent != fresh {
				t.Errorf("the token request did not carry the fresh file's JWT")
			}
			if got := callOK(t, newClient(t), s, up, "/v1/b"); got != "Bearer "+sts.Issued()[0] {
				t.Errorf("upstream Authorization = %q, want the issued token", got)
			}
		})
	}
}

// TestTokenExchangeSharedCache: with SHARED_CACHE, sidecars whose subject
// tokens have the same iss and sub (different jti and exp: two pods of one
// service account) share one token, fetched once; another sub gets its own.
func TestTokenExchangeSharedCache(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	secrets := newSecretList(t)
	k8s := newJWTIssuer(t, clusterIssuer)
	sts, tokenURL := startSTS(t, fake.STSConfig{
		Issuers:         map[string]crypto.PublicKey{k8s.iss: k8s.public()},
		SubjectAudience: stsAudience,
	})
	up := newBearerUpstream(t)
	keyFile := writeFleetKey(t)
	start := func(what, sub string, exp time.Duration) *sidecar {
		t.Helper()
		subject := secrets.add("subject token of "+what, k8s.jwt(t, sub, stsAudience, time.Now().Add(exp)))
		s := startSidecar(t, map[string]string{
			"UPSTREAM_URL":          up.URL,
			"TOKEN_SOURCE":          "token-exchange",
			"TOKEN_URL":             tokenURL,
			"SUBJECT_TOKEN_FILE":    newProjectedVolume(t, subject).path(),
			"SHARED_CACHE":          rs.URL(),
			"SHARED_CACHE_KEY_FILE": keyFile,
		})
		s.waitReady(10 * time.Second)
		return s
	}
	lookup := func(s *sidecar) map[string]float64 {
		out := map[string]float64{}
		m := s.metrics()
		for _, r := range []string{"hit", "miss", "fallback"} {
			out[r], _ = metric(m, `authsidecar_shared_cache_lookups_total{result="`+r+`",route="default"}`)
		}
		return out
	}
	c := newClient(t)

	a := start("pod A", podSubject, time.Hour)
	b := start("pod B", podSubject, 50*time.Minute)
	if n := len(sts.Requests()); n != 1 {
		t.Errorf("STS requests for two pods of one service account = %d, want 1", n)
	}
	issued := sts.Issued()
	for name, s := range map[string]*sidecar{"A": a, "B": b} {
		if got := callOK(t, c, s, up, "/v1/a"); len(issued) == 0 || got != "Bearer "+issued[0] {
			t.Errorf("pod %s: upstream Authorization = %q, want the one issued token", name, got)
		}
	}
	if got := lookup(b); got["hit"] != 1 || got["miss"] != 0 {
		t.Errorf("pod B's shared-cache lookups = %v, want 1 hit", got)
	}

	other := start("pod C", "system:serviceaccount:payments:batch", time.Hour)
	if n := len(sts.Requests()); n != 2 {
		t.Errorf("STS requests after a pod of another service account started = %d, want 2", n)
	}
	issued = sts.Issued()
	if got := callOK(t, c, other, up, "/v1/c"); len(issued) != 2 || got != "Bearer "+issued[1] {
		t.Errorf("pod C: upstream Authorization = %q, want its own token", got)
	}
	if got := lookup(other); got["miss"] != 1 || got["hit"] != 0 {
		t.Errorf("pod C's shared-cache lookups = %v, want 1 miss", got)
	}
}

// TestClientAssertionFileSharedCache: with SHARED_CACHE, two sidecars
// authenticating as two different clients, each by its own client assertion
// file (iss and sub its client_id, RFC 7523 section 3), must not share a
// token: each client gets its own. CLIENT_ID is optional with
// client-assertion-file, and the README says these sources' tokens are keyed
// by the file's JWT iss and sub.
func TestClientAssertionFileSharedCache(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		clientID bool // CLIENT_ID set to the client's id
	}{
		{name: "with CLIENT_ID", clientID: true},
		// Without CLIENT_ID, the shared cache's identity of
		// TOKEN_SOURCE=oauth2 was the token URL, an empty client id, the
		// scopes and TOKEN_PARAMS: the second client was handed the first
		// client's token from Redis, and sent it upstream as its own. It
		// holds the assertion's iss and sub now.
		{name: "without CLIENT_ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := redistest.Start(t)
			secrets := newSecretList(t)
			clients := map[string]*jwtIssuer{"client-a": newJWTIssuer(t, "client-a"), "client-b": newJWTIssuer(t, "client-b")}
			sts, tokenURL := startSTS(t, fake.STSConfig{
				Clients: map[string]fake.STSClient{"client-a": {Key: clients["client-a"].public()}, "client-b": {Key: clients["client-b"].public()}},
				Echo:    true,
			})
			up := newBearerUpstream(t)
			keyFile := writeFleetKey(t)
			c := newClient(t)
			for i, id := range []string{"client-a", "client-b"} {
				assertion := secrets.add("client assertion of "+id, clients[id].jwt(t, id, tokenURL, time.Now().Add(time.Hour)))
				env := map[string]string{
					"UPSTREAM_URL":          up.URL,
					"TOKEN_SOURCE":          "oauth2",
					"OAUTH2_AUTH_STYLE":     "client-assertion-file",
					"CLIENT_ASSERTION_FILE": newProjectedVolume(t, assertion).path(),
					"TOKEN_URL":             tokenURL,
					"SHARED_CACHE":          rs.URL(),
					"SHARED_CACHE_KEY_FILE": keyFile,
				}
				if tc.clientID {
					env["CLIENT_ID"] = id
				}
				s := startSidecar(t, env)
				s.waitReady(10 * time.Second)
				got := callOK(t, c, s, up, "/v1/"+id)
				// The fake STS's tokens name whom they were issued to.
				if want := "Bearer sts-"; !strings.HasPrefix(got, want) || !strings.Contains(got, "-"+base64URL(id)+".") {
					t.Errorf("%s's request went upstream with a token issued to another client (token #%d of the STS's %d), want one issued to %s",
						id, slices.IndexFunc(sts.Issued(), func(tok string) bool { return got == "Bearer "+tok })+1, len(sts.Issued()), id)
				}
				if n := len(sts.Requests()); n != i+1 {
					t.Errorf("STS requests after %s's sidecar started = %d, want %d: one per client", id, n, i+1)
				}
			}
		})
	}
}

// base64URL is s as the fake STS writes a subject into its tokens.
func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// checkFileRotation checks a sidecar whose token request reads the JWT of
// vol: its one token request at start is want, and the upstream gets the
// token issued; a rotation (next's JWT) causes no request of its own, and
// the refresh forced by the upstream's rejection sends the new JWT as param
// (its jti is not the spent one's), and its token goes upstream.
func checkFileRotation(t *testing.T, s *sidecar, sts *fake.STS, up *bearerUpstream, vol *projectedVolume, want url.Values, param string, next func() string) {
	t.Helper()
	s.waitReady(10 * time.Second)
	reqs := sts.Requests()
	if len(reqs) != 1 {
		t.Fatalf("STS requests = %d, want 1", len(reqs))
	}
	for _, d := range formDiff(reqs[0].Form, want) {
		t.Errorf("token request: %s", d)
	}
	c := newClient(t)
	issued := sts.Issued()
	if len(issued) != 1 {
		t.Fatalf("STS issued %d tokens, want 1", len(issued))
	}
	if got := callOK(t, c, s, up, "/v1/a"); got != "Bearer "+issued[0] {
		t.Fatalf("upstream Authorization = %q, want the issued token", got)
	}

	waitWatched(t, s, vol.path())
	second := next()
	vol.rotate(second)
	waitUntil(t, 5*time.Second, func() bool { return len(s.loggedWhere(msgFileChanged, pathIs(vol.path()))) == 1 },
		"no %q log line for %s within 5s of the rotation", msgFileChanged, vol.path())
	if n := len(sts.Requests()); n != 1 {
		t.Errorf("STS requests after the rotation = %d, want 1: a rotation waits for a fetch", n)
	}
	up.reject(issued[0])
	got := callOK(t, c, s, up, "/v1/b") // 401, refresh, replay
	reqs, issued = sts.Requests(), sts.Issued()
	if len(reqs) != 2 || len(issued) != 2 {
		t.Fatalf("after the upstream rejected the token: %d STS requests, %d tokens issued, want 2 and 2", len(reqs), len(issued))
	}
	if reqs[1].Form.Get(param) != second {
		t.Errorf("the refresh's %s is not the rotated file's content", param)
	}
	if got != "Bearer "+issued[1] {
		t.Errorf("upstream Authorization after the refresh = %q, want the second issued token", got)
	}
}
