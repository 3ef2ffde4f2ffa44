package hydra

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The tests in this file run the sidecar's binary, configured by its
// environment only, between an upstream that accepts only the tokens Hydra
// says are active and a real Hydra; they check what a user sees: statuses,
// /readyz, /metrics, log lines, and Hydra's word on the tokens.

// wantServed sends a request through the sidecar and checks that it reached
// the upstream with a token Hydra says is active for sub and client; it
// returns the token.
func wantServed(t *testing.T, sc *sidecar, up *upstream, sub, client string) string {
	t.Helper()
	before := up.count()
	if code, body := sc.call("/payments"); code != http.StatusOK {
		t.Fatalf("GET /payments through the sidecar = %d %s, want 200", code, body)
	}
	if up.count() != before+1 {
		t.Fatalf("the upstream got %d requests, want 1", up.count()-before)
	}
	got := up.last(t)
	if got.err != nil || got.intro["active"] != true || got.intro["sub"] != sub || got.intro["client_id"] != client {
		t.Fatalf("the token the upstream got: introspection %v (%v), want active for sub %q, client_id %q", got.intro, got.err, sub, client)
	}
	sc.secret("an access token", got.token)
	return got.token
}

// fetchFailed matches the sidecar's log of a failed token fetch whose error
// holds all of words.
func fetchFailed(words ...string) func(logLine) bool {
	return func(l logLine) bool {
		if l.str("msg") != "token fetch failed" {
			return false
		}
		for _, w := range words {
			if !strings.Contains(l.str("error"), w) {
				return false
			}
		}
		return true
	}
}

// TestSidecarJWTBearerFile: TOKEN_SOURCE=jwt-bearer with ASSERTION_FILE, a
// public client. Hydra burns the assertion's jti, so renewing with the same
// file fails (jti_known) while the token held still serves; the kubelet's
// rotation of the file then makes the sidecar fetch at once, not at the end
// of its backoff.
func TestSidecarJWTBearerFile(t *testing.T) {
	t.Parallel()
	// Tokens live 20s and are renewed at half of that: when the renewal
	// fails, the first token has 5s left before it goes stale (a quarter
	// of its life before its expiry).
	s := Start(t, "TTL_ACCESS_TOKEN=20s")
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", []string{"payments.read"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read"}})
	first := sign(t, key, "rsa-1", claims(s, issuer, subject))
	file := newProjected(t, first)
	up := newUpstream(t, s)

	sc := startSidecar(t, map[string]string{
		"UPSTREAM_URL":   up.URL,
		"TOKEN_SOURCE":   "jwt-bearer",
		"TOKEN_URL":      s.TokenURL,
		"ASSERTION_FILE": file.path(),
		"CLIENT_ID":      client.ID,
		"SCOPES":         "payments.read",
		"RENEW_AT":       "0.5",
	})
	sc.secret("the first assertion", first, signature(first))
	waitFor(t, 10*time.Second, func() bool { return sc.readyz() == http.StatusOK }, "/readyz not 200")
	tok1 := wantServed(t, sc, up, subject, client.ID)

	// The renewal sends the same assertion: Hydra refuses its jti; the
	// first token still serves.
	sc.waitLog(20*time.Second, 1, "of a failed renewal (jti_known)", fetchFailed("jti_known"))
	if code := sc.readyz(); code != http.StatusOK {
		t.Errorf("/readyz = %d while the first token is valid, want 200", code)
	}
	if got := wantServed(t, sc, up, subject, client.ID); got != tok1 {
		t.Errorf("after the failed renewal the upstream got another token; want the first, still valid")
	}
	// The third failure in a row waits at least a second: time enough to
	// tell a fetch caused by the rotation from one at the backoff's end.
	failed := sc.waitLog(10*time.Second, 3, "of the third failed fetch", fetchFailed())
	if got := wantServed(t, sc, up, subject, client.ID); got != tok1 {
		t.Errorf("after three failed renewals the upstream got another token; want the first, still valid")
	}
	if n := sc.fetches("success"); n != 1 {
		t.Fatalf("authsidecar_token_fetches_total{result=\"success\"} = %v before the rotation, want 1", n)
	}

	second := sign(t, key, "rsa-1", claims(s, issuer, subject))
	sc.secret("the second assertion", second, signature(second))
	rotated := time.Now()
	file.rotate(t, second)
	waitFor(t, 10*time.Second, func() bool { return sc.fetches("success") == 2 }, "no second token after the rotation")
	took := time.Since(rotated)

	// The fetch came from the rotation, not from the backoff's timer.
	if sc.findLog(msgIs("a file the token request reads was rotated: retrying the failed fetch")) == nil {
		t.Errorf("no log line saying the rotation retried the failed fetch")
	}
	var lastFailed, fetched logLine
	for _, l := range sc.logLines() {
		switch {
		case fetchFailed()(l) && fetched == nil:
			lastFailed = l
		case l.str("msg") == "token fetched" && lastFailed != nil:
			fetched = l
		}
	}
	if fetched == nil {
		t.Fatal("no \"token fetched\" log line after the failures")
	}
	backoff, err := time.ParseDuration(lastFailed.str("retry_in"))
	if err != nil {
		t.Fatalf("the last failure's retry_in %q: %v", lastFailed.str("retry_in"), err)
	}
	if due := lastFailed.time().Add(backoff); !fetched.time().Before(due) {
		t.Errorf("the second token was fetched at %v, not before the backoff's retry at %v", fetched.time(), due)
	}
	t.Logf("failures before the rotation: %v (the third's retry_in %s); the rotation to the second token took %v",
		sc.fetches("error"), failed.str("retry_in"), took.Round(time.Millisecond))
	if !strings.Contains(lastFailed.str("error"), "jti_known") {
		t.Errorf("the last failure before the rotation: %q, want Hydra's jti_known", lastFailed.str("error"))
	}

	if code := sc.readyz(); code != http.StatusOK {
		t.Errorf("/readyz = %d after the rotation, want 200", code)
	}
	tok2 := wantServed(t, sc, up, subject, client.ID)
	if tok2 == tok1 {
		t.Errorf("after the rotation the upstream still gets the first token, want the second")
	}
	if in := s.Introspect(t, tok1); in["active"] != true {
		t.Errorf("the first token: introspection %v, want still active (Hydra does not revoke it)", in)
	}

	// A rotation while the token renews fine causes no fetch of its own:
	// the renewal, at its time, reads the new file (the second assertion's
	// jti is burnt, so a renewal with it would fail).
	failedBefore := sc.fetches("error")
	third := sign(t, key, "rsa-1", claims(s, issuer, subject))
	sc.secret("the third assertion", third, signature(third))
	file.rotate(t, third)
	sc.waitLog(10*time.Second, 2, "saying the file changed again", msgIs("token file changed"))
	waitFor(t, 20*time.Second, func() bool { return sc.fetches("success") == 3 }, "no renewal with the third assertion")
	if n := sc.fetches("error"); n != failedBefore {
		t.Errorf("authsidecar_token_fetches_total{result=\"error\"} went from %v to %v across the renewal, want no failure", failedBefore, n)
	}
	fetchedLog := sc.waitLog(time.Second, 2, "of the second token", msgIs("token fetched"))
	renewedLog := sc.waitLog(time.Second, 3, "of the third token", msgIs("token fetched"))
	renewIn, err := time.ParseDuration(fetchedLog.str("renew_in"))
	if err != nil {
		t.Fatalf("the second token's renew_in %q: %v", fetchedLog.str("renew_in"), err)
	}
	// renew_in is logged rounded to the second.
	if gap := renewedLog.time().Sub(fetchedLog.time()); gap < renewIn-time.Second {
		t.Errorf("the third token came %v after the second, want its renewal's time, %v: the rotation caused a fetch", gap, renewIn)
	}
	if tok3 := wantServed(t, sc, up, subject, client.ID); tok3 == tok2 {
		t.Errorf("after the renewal the upstream still gets the second token, want the third")
	}
}

// TestSidecarJWTBearerSigned: TOKEN_SOURCE=jwt-bearer with ASSERTION_ISSUER
// and CLIENT_ASSERTION_KEY_FILE. The sidecar signs a new assertion (a new
// jti) for each fetch, so it renews again and again, each accepted.
func TestSidecarJWTBearerSigned(t *testing.T) {
	t.Parallel()
	s := Start(t, "TTL_ACCESS_TOKEN=4s") // renewed every 2s or so
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", []string{"payments.read"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read"}})
	up := newUpstream(t, s)

	sc := startSidecar(t, map[string]string{
		"UPSTREAM_URL":              up.URL,
		"TOKEN_SOURCE":              "jwt-bearer",
		"TOKEN_URL":                 s.TokenURL,
		"ASSERTION_ISSUER":          issuer,
		"ASSERTION_SUBJECT":         subject,
		"CLIENT_ASSERTION_KEY_FILE": writeKey(t, key),
		"CLIENT_ASSERTION_KEY_ID":   "rsa-1",
		"CLIENT_ID":                 client.ID,
		"SCOPES":                    "payments.read",
		"RENEW_AT":                  "0.5",
	})
	waitFor(t, 10*time.Second, func() bool { return sc.readyz() == http.StatusOK }, "/readyz not 200")

	seen := map[string]bool{}
	for i := 1; i <= 3; i++ {
		waitFor(t, 10*time.Second, func() bool { return sc.fetches("success") >= float64(i) }, "fewer than %d successful fetches", i)
		seen[wantServed(t, sc, up, subject, client.ID)] = true
	}
	if n := sc.fetches("error"); n != 0 {
		t.Errorf("authsidecar_token_fetches_total{result=\"error\"} = %v, want 0: every signed assertion is new", n)
	}
	if len(seen) < 3 {
		t.Errorf("the upstream got %d distinct tokens in 3 renewals, want 3", len(seen))
	}
	t.Logf("%v successful fetches", sc.fetches("success"))
}

// TestSidecarClientAssertionFile: TOKEN_SOURCE=oauth2 (client credentials)
// with OAUTH2_AUTH_STYLE=client-assertion-file: the client authenticates
// with the JWT in CLIENT_ASSERTION_FILE (private_key_jwt at Hydra).
func TestSidecarClientAssertionFile(t *testing.T) {
	t.Parallel()
	s := Start(t)
	key := ecKey(t)
	client := s.CreateClient(t, ClientSpec{
		AuthMethod: "private_key_jwt", GrantTypes: []string{GrantClientCredentials}, Scopes: []string{"payments.read"},
		Key: key.Public(), KeyID: "client-key",
	})
	assertion := sign(t, key, "client-key", claims(s, client.ID, client.ID))
	file := newProjected(t, assertion)
	up := newUpstream(t, s)

	sc := startSidecar(t, map[string]string{
		"UPSTREAM_URL":          up.URL,
		"TOKEN_SOURCE":          "oauth2",
		"TOKEN_URL":             s.TokenURL,
		"OAUTH2_AUTH_STYLE":     "client-assertion-file",
		"CLIENT_ASSERTION_FILE": file.path(),
		"CLIENT_ID":             client.ID,
		"SCOPES":                "payments.read",
	})
	sc.secret("the client assertion", assertion, signature(assertion))
	waitFor(t, 10*time.Second, func() bool { return sc.readyz() == http.StatusOK }, "/readyz not 200")
	tok := wantServed(t, sc, up, client.ID, client.ID)
	if in := s.Introspect(t, tok); in["scope"] != "payments.read" {
		t.Errorf("introspection %v, want scope payments.read", in)
	}
}

// TestSidecarUntrustedIssuer: an assertion signed by a key Hydra does not
// trust is refused (invalid_grant); the sidecar stays up, not ready, and
// shows the assertion nowhere.
func TestSidecarUntrustedIssuer(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.TrustIssuer(t, issuer, subject, rsaKey(t).Public(), "rsa-1", []string{"payments.read"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read"}})
	assertion := sign(t, rsaKey(t), "rsa-1", claims(s, issuer, subject)) // not the trusted key
	file := newProjected(t, assertion)
	up := newUpstream(t, s)

	sc := startSidecar(t, map[string]string{
		"UPSTREAM_URL":   up.URL,
		"TOKEN_SOURCE":   "jwt-bearer",
		"TOKEN_URL":      s.TokenURL,
		"ASSERTION_FILE": file.path(),
		"CLIENT_ID":      client.ID,
		"SCOPES":         "payments.read",
		"TOKEN_WAIT":     "1s", // how long a request waits for a token: not the default 10s
	})
	sc.secret("the assertion", assertion, signature(assertion))
	sc.waitLog(10*time.Second, 1, "of the refusal (invalid_grant)", fetchFailed("invalid_grant"))
	sc.waitLog(10*time.Second, 2, "of a second failed fetch", fetchFailed())

	if !sc.alive() {
		t.Fatal("the sidecar exited")
	}
	if code := sc.readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	code, body := sc.call("/payments")
	if code != http.StatusServiceUnavailable {
		t.Errorf("GET /payments through the sidecar = %d %s, want 503", code, body)
	}
	if leaked := sc.leaks(body); len(leaked) > 0 {
		t.Errorf("the app's answer shows %s", strings.Join(leaked, ", "))
	}
	if n := up.count(); n != 0 {
		t.Errorf("the upstream got %d requests, want none", n)
	}
	if leaked := sc.leaks(sc.out.String()); len(leaked) > 0 {
		t.Errorf("the sidecar's output shows %s", strings.Join(leaked, ", "))
	}
}

// TestSidecarExpiredAssertionFile: an assertion file whose JWT has expired
// at the start is not sent: the sidecar stays up, not ready, says which
// file expired, and Hydra gets no token request; once the file is rotated
// to a fresh JWT it becomes ready.
func TestSidecarExpiredAssertionFile(t *testing.T) {
	t.Parallel()
	s := Start(t)
	key := rsaKey(t)
	s.TrustIssuer(t, issuer, subject, key.Public(), "rsa-1", []string{"payments.read"})
	client := s.CreateClient(t, ClientSpec{Scopes: []string{"payments.read"}})
	c := claims(s, issuer, subject)
	c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-time.Minute).Unix()
	expired := sign(t, key, "rsa-1", c)
	file := newProjected(t, expired)
	hydra := newTokenRequests(t, s)
	up := newUpstream(t, s)

	sc := startSidecar(t, map[string]string{
		"UPSTREAM_URL":   up.URL,
		"TOKEN_SOURCE":   "jwt-bearer",
		"TOKEN_URL":      hydra.URL,
		"ASSERTION_FILE": file.path(),
		"CLIENT_ID":      client.ID,
		"SCOPES":         "payments.read",
	})
	sc.secret("the expired assertion", expired, signature(expired))
	l := sc.waitLog(10*time.Second, 2, "of a failed fetch naming the file and \"expired\"", fetchFailed(file.path(), "expired"))
	t.Logf("logged: %s", l.str("error"))
	if !sc.alive() {
		t.Fatal("the sidecar exited")
	}
	if code := sc.readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	if n := hydra.count(); n != 0 {
		t.Errorf("Hydra got %d token requests, want none: the expired assertion is not sent", n)
	}

	fresh := sign(t, key, "rsa-1", claims(s, issuer, subject))
	sc.secret("the fresh assertion", fresh, signature(fresh))
	file.rotate(t, fresh)
	waitFor(t, 10*time.Second, func() bool { return sc.readyz() == http.StatusOK }, "/readyz not 200 after the rotation")
	if n := hydra.count(); n != 1 {
		t.Errorf("Hydra got %d token requests, want 1", n)
	}
	wantServed(t, sc, up, subject, client.ID)
}
