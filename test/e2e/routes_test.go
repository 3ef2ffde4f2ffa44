package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// Several providers in one sidecar (ROUTES): TezPay on a port of its own,
// Juspay and Alternative Payments under /juspay and /alt on the main
// listener, each from its PROVIDER preset, against fakes that record every
// request they receive.

// The credentials of the three providers: distinct, so that finding one at
// another provider is a leak.
const (
	routesTezPaySecret = "tez-route-secret-Hq3Nm8Vd"
	routesAltClientID  = "alt-route-client-7Kp2"
	routesAltSecret    = "alt-route-secret-Wz6Rb4Ty"
)

// juspayCustomers are the customers the fake Juspay knows.
var juspayCustomers = []string{"cust-a", "cust-b", "cust-c"}

// altFake is a fake of Alternative Payments (seed 004): an OAuth2
// client-credentials token endpoint, POST /oauth/token with the client's
// credentials in HTTP Basic (the alternative-payments preset's
// OAUTH2_AUTH_STYLE=header), issuing opaque access tokens valid for ttl; and
// an API on every other path that takes them as Bearer tokens and answers
// 200 {"provider":"alternative-payments","path":…}, or 401 invalid_token.
type altFake struct {
	ttl time.Duration

	mu              sync.Mutex
	issued          []string
	calls, rejected int
}

func newAltFake(t *testing.T, ttl time.Duration) *altFake {
	f := &altFake{ttl: ttl}
	trackSecrets(t, func() map[string]string {
		m := map[string]string{}
		for i, tok := range f.Issued() {
			m[fmt.Sprintf("access token #%d issued by the fake Alternative Payments", i+1)] = tok
		}
		return m
	})
	return f
}

func (f *altFake) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", f.token)
	mux.HandleFunc("/", f.api)
	return mux
}

// Issued returns the access tokens issued so far, oldest first.
func (f *altFake) Issued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.issued)
}

// Calls returns how many requests reached the API, and how many of them
// were rejected.
func (f *altFake) Calls() (total, rejected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.rejected
}

func (f *altFake) token(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSONBody(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if !ok || user != routesAltClientID || pass != routesAltSecret || r.PostForm.Has("client_secret") {
		writeJSONBody(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	tok := "alt_at_" + rand.Text()
	f.mu.Lock()
	f.issued = append(f.issued, tok)
	f.mu.Unlock()
	writeJSONBody(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(f.ttl.Seconds())})
}

func (f *altFake) api(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Values("Authorization")
	f.mu.Lock()
	ok := len(auth) == 1 && strings.HasPrefix(auth[0], "Bearer ") && slices.Contains(f.issued, strings.TrimPrefix(auth[0], "Bearer "))
	f.calls++
	if !ok {
		f.rejected++
	}
	f.mu.Unlock()
	if !ok {
		writeJSONBody(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSONBody(w, http.StatusOK, map[string]string{"provider": "alternative-payments", "path": r.URL.Path})
}

func writeJSONBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// wireLog keeps every request a provider received, as text (method,
// path, headers and body), for the check that no credential reached a
// provider that is not its own.
type wireLog struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path, text string
}

func (rec *wireLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
		r.Header.Write(&b)
		b.Write(body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recorded{path: r.URL.Path, text: b.String()})
		rec.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (rec *wireLog) requests() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

// threeProviders is the fakes of TezPay, Juspay and Alternative Payments,
// each recorded, and the sidecar's settings for them as three routes.
type threeProviders struct {
	tezpay *fake.TezPay
	juspay *fake.Juspay
	alt    *altFake
	// tezpayFaults can take TezPay's token endpoint down; altProxy stands
	// between the sidecar and Alternative Payments' token endpoint (not
	// its API), to make it hang.
	tezpayFaults *fake.HTTPFaults
	altProxy     *fake.FaultProxy
	rec          map[string]*wireLog // by route
	env          map[string]string
}

// routeNames are the routes of threeProviders, in ROUTES order.
var routeNames = []string{"tezpay", "juspay", "alt"}

// newThreeProviders serves the three fakes until the test ends. Juspay
// issues customer tokens valid for juspayTTL (15 minutes if zero).
func newThreeProviders(t *testing.T, juspayTTL time.Duration) *threeProviders {
	t.Helper()
	p := &threeProviders{rec: map[string]*wireLog{}}
	for _, r := range routeNames {
		p.rec[r] = &wireLog{}
	}

	p.tezpay = fake.NewTezPay(clientID, routesTezPaySecret, 0)
	trackTezPay(t, p.tezpay)
	p.tezpayFaults = fake.NewHTTPFaults(p.tezpay.Handler(), fake.AuthenticatePath)
	tezpaySrv := httptest.NewServer(p.rec["tezpay"].wrap(p.tezpayFaults))
	t.Cleanup(tezpaySrv.Close)

	j, juspayEnv := juspayFakeWrapped(t, juspayTTL, p.rec["juspay"].wrap, juspayCustomers...)
	p.juspay = j

	p.alt = newAltFake(t, time.Hour)
	altSrv := httptest.NewServer(p.rec["alt"].wrap(p.alt.Handler()))
	t.Cleanup(altSrv.Close)
	proxy, err := fake.NewFaultProxy(altSrv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	p.altProxy = proxy

	p.env = map[string]string{
		"ROUTES":                          strings.Join(routeNames, ","),
		"ROUTE_TEZPAY_PROVIDER":           "tezpay",
		"ROUTE_TEZPAY_LISTEN_ADDR":        "127.0.0.1:0",
		"ROUTE_TEZPAY_UPSTREAM_URL":       tezpaySrv.URL,
		"ROUTE_TEZPAY_CLIENT_ID":          clientID,
		"ROUTE_TEZPAY_CLIENT_SECRET_FILE": writeSecret(t, "tezpay_client_secret", routesTezPaySecret),
		"ROUTE_JUSPAY_PATH_PREFIX":        "/juspay",
		"ROUTE_ALT_PROVIDER":              "alternative-payments",
		"ROUTE_ALT_PATH_PREFIX":           "/alt",
		"ROUTE_ALT_UPSTREAM_URL":          altSrv.URL,
		"ROUTE_ALT_TOKEN_URL":             "http://" + proxy.Addr() + "/oauth/token",
		"ROUTE_ALT_CLIENT_ID_FILE":        writeSecret(t, "alt_client_id", routesAltClientID),
		"ROUTE_ALT_CLIENT_SECRET_FILE":    writeSecret(t, "alt_client_secret", routesAltSecret),
	}
	for k, v := range juspayEnv {
		p.env["ROUTE_JUSPAY_"+k] = v
	}
	return p
}

// credentials returns what only route's provider may receive, by a name
// that does not give it away: its client's credentials, in the forms the
// sidecar sends them, and the tokens it issued.
func (p *threeProviders) credentials(route string) map[string]string {
	m := map[string]string{}
	switch route {
	case "tezpay":
		m["TezPay's client secret"] = routesTezPaySecret
		m["TezPay's client id"] = clientID
		for i, tok := range p.tezpay.Issued() {
			m[fmt.Sprintf("TezPay's token #%d", i+1)] = tok
		}
	case "juspay":
		m["Juspay's API key"] = juspayAPIKey
		m["Juspay's API key as HTTP Basic"] = base64.StdEncoding.EncodeToString([]byte(juspayAPIKey + ":"))
		for i, tok := range p.juspay.Tokens() {
			m[fmt.Sprintf("Juspay's clientAuthToken #%d", i+1)] = tok
		}
	case "alt":
		m["Alternative Payments' client secret"] = routesAltSecret
		m["Alternative Payments' client id"] = routesAltClientID
		m["Alternative Payments' client credentials as HTTP Basic"] = base64.StdEncoding.EncodeToString([]byte(routesAltClientID + ":" + routesAltSecret))
		for i, tok := range p.alt.Issued() {
			m[fmt.Sprintf("Alternative Payments' token #%d", i+1)] = tok
		}
	}
	return m
}

// checkNoCrossLeak fails the test if a provider received another's
// credential or token, anywhere in a request.
func (p *threeProviders) checkNoCrossLeak(t *testing.T) {
	t.Helper()
	for _, at := range routeNames {
		reqs := p.rec[at].requests()
		for _, of := range routeNames {
			if of == at {
				continue
			}
			for what, v := range p.credentials(of) {
				for _, r := range reqs {
					if strings.Contains(r.text, v) {
						t.Errorf("route %s's provider received %s in a request for %s", at, what, r.path)
						break
					}
				}
			}
		}
	}
}

// TestRoutesThreeProviders: 300 requests, mixed and concurrent, each reach
// their route's provider with that provider's credential and never
// another's; a prefix route's prefix is stripped; a path on the main
// listener under no prefix is answered 404 no_route and goes nowhere.
func TestRoutesThreeProviders(t *testing.T) {
	t.Parallel()
	p := newThreeProviders(t, 0)
	s := startSidecar(t, p.env)
	s.waitReady(10 * time.Second)

	// The start-up log: TezPay on its own port, the others under their
	// prefixes on the main listener.
	if got := s.routes["tezpay"]; got.Listen == "" || got.Listen == s.listen || got.PathPrefix != "" {
		t.Errorf("start-up log: route tezpay = %+v, want its own listener (main: %s), no prefix", got, s.listen)
	}
	for name, prefix := range map[string]string{"juspay": "/juspay", "alt": "/alt"} {
		if got := s.routes[name]; got.Listen != s.listen || got.PathPrefix != prefix {
			t.Errorf("start-up log: route %s = %+v, want %s under %s", name, got, s.listen, prefix)
		}
	}

	c := newClient(t)
	const perRoute = 100
	check := map[string]func(i int) error{
		"tezpay": func(i int) error {
			id := fmt.Sprintf("tez-%d", i)
			r := call(c, http.MethodGet, s.routeURL("tezpay")+fake.GetStatusPath+"?transaction_id="+id, nil)
			var got struct {
				TransactionID string `json:"transaction_id"`
			}
			if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.TransactionID != id {
				return fmt.Errorf("GET tezpay %s?transaction_id=%s = %v, want 200 from TezPay for it", fake.GetStatusPath, id, r)
			}
			return nil
		},
		"juspay": func(i int) error {
			cust := juspayCustomers[i%len(juspayCustomers)]
			r := call(c, http.MethodPost, s.routeURL("juspay")+"/v4/sdk", initiate(cust))
			var got struct{ CustomerID string }
			if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.CustomerID != cust {
				return fmt.Errorf("POST /juspay/v4/sdk for %s = %v, want 200 from Juspay for it", cust, r)
			}
			return nil
		},
		"alt": func(i int) error {
			r := call(c, http.MethodPost, s.routeURL("alt")+"/v1/checkout-auth/init", []byte(fmt.Sprintf(`{"customer_id":"c%d"}`, i)))
			var got struct{ Provider, Path string }
			if r.status != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got.Provider != "alternative-payments" || got.Path != "/v1/checkout-auth/init" {
				return fmt.Errorf("POST /alt/v1/checkout-auth/init = %v, want 200 from Alternative Payments for /v1/checkout-auth/init", r)
			}
			return nil
		},
	}
	jobs := make(chan int)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for j := range jobs {
				if err := check[routeNames[j%3]](j / 3); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for j := range 3 * perRoute {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	for _, err := range errs[:min(len(errs), 10)] {
		t.Error(err)
	}
	if len(errs) > 10 {
		t.Errorf("… and %d more failed requests", len(errs)-10)
	}

	// Each provider saw its requests, with its own credential, prefix
	// stripped.
	if total, rejected := p.tezpay.Calls(); total != perRoute || rejected != 0 {
		t.Errorf("TezPay API calls = %d (%d rejected), want %d (0)", total, rejected, perRoute)
	}
	for _, u := range p.tezpay.Uses() {
		if !slices.Contains(p.tezpay.Issued(), u.Token) || !strings.HasPrefix(u.URI, fake.GetStatusPath+"?") {
			t.Errorf("TezPay saw %s with a token it did not issue, or at the wrong path", u.URI)
			break
		}
	}
	seen := p.juspay.Seen()
	if len(seen) != perRoute {
		t.Errorf("Juspay saw %d SDK calls, want %d", len(seen), perRoute)
	}
	for _, sc := range seen {
		if !sc.OK {
			t.Errorf("Juspay refused the clientAuthToken of customer %s", sc.CustomerID)
			break
		}
	}
	if n := p.juspay.TotalFetches(); n != len(juspayCustomers) {
		t.Errorf("Juspay customer token fetches = %d, want %d (one per customer)", n, len(juspayCustomers))
	}
	for _, r := range p.rec["juspay"].requests() {
		if !strings.HasPrefix(r.path, "/customers/") && r.path != "/v4/sdk" {
			t.Errorf("Juspay saw a request for %s, want /v4/sdk (the /juspay prefix stripped)", r.path)
			break
		}
	}
	if total, rejected := p.alt.Calls(); total != perRoute || rejected != 0 {
		t.Errorf("Alternative Payments API calls = %d (%d rejected), want %d (0)", total, rejected, perRoute)
	}
	if n := len(p.alt.Issued()); n != 1 {
		t.Errorf("Alternative Payments issued %d tokens, want 1", n)
	}
	p.checkNoCrossLeak(t)

	// What a route logs names it: here each token source's fetches.
	fetched := map[string]int{}
	for _, l := range s.logLines() {
		if route, _ := l["route"].(string); l["msg"] != "authsidecar started" && !slices.Contains(routeNames, route) {
			t.Errorf("log line %v names no route", l)
		}
		if msg, _ := l["msg"].(string); strings.HasSuffix(msg, "token fetched") {
			fetched[fmt.Sprint(l["route"])]++
		}
	}
	if want := map[string]int{"tezpay": 1, "alt": 1, "juspay": len(juspayCustomers)}; !maps.Equal(fetched, want) {
		t.Errorf(`"token fetched" log lines by route = %v, want %v`, fetched, want)
	}

	// No route: 404 no_route on the main listener, nothing upstream. On
	// TezPay's own port every path is TezPay's, unchanged.
	before := map[string]int{}
	for _, r := range routeNames {
		before[r] = len(p.rec[r].requests())
	}
	for _, path := range []string{
		"/tezpayx" + fake.GetStatusPath, "/juspayx/v4/sdk", "/altx/v1/checkout-auth/init",
		"/tezpay" + fake.GetStatusPath, // TezPay has no prefix: its own port
		"/Juspay/v4/sdk", "/%6Auspay/v4/sdk", "/", "/v4/sdk",
	} {
		r := call(c, http.MethodGet, s.URL+path, nil)
		var e struct{ Error string }
		if r.status != http.StatusNotFound || json.Unmarshal(r.body, &e) != nil || e.Error != "no_route" {
			t.Errorf("GET %s on the main listener = %v, want 404 no_route", path, r)
		}
	}
	if r := call(c, http.MethodPost, s.routeURL("tezpay")+"/juspay/v4/sdk", initiate("cust-a")); r.status != http.StatusNotFound {
		t.Errorf("POST /juspay/v4/sdk on TezPay's port = %v, want TezPay's 404", r)
	}
	for _, r := range routeNames {
		want := before[r]
		if r == "tezpay" {
			want++
		}
		if got := len(p.rec[r].requests()); got != want {
			t.Errorf("route %s's provider received %d requests after the no_route ones, want %d", r, got, want)
		}
	}
	if reqs := p.rec["tezpay"].requests(); reqs[len(reqs)-1].path != "/juspay/v4/sdk" {
		t.Errorf("TezPay's port forwarded %s, want /juspay/v4/sdk unchanged", reqs[len(reqs)-1].path)
	}
	p.checkNoCrossLeak(t)
}

// TestRoutesProviderDownOrHanging: TezPay's token endpoint answers 503 and
// Alternative Payments' hangs; Juspay's route goes on serving promptly and
// renewing its customers' tokens meanwhile, and /readyz says which routes
// hold no token.
func TestRoutesProviderDownOrHanging(t *testing.T) {
	t.Parallel()
	const altWait = 8 * time.Second
	p := newThreeProviders(t, 2*time.Second)
	p.tezpayFaults.Set(fake.Answer{Status: http.StatusServiceUnavailable, Body: `{"detail":"Service temporarily unavailable"}`})
	p.altProxy.Set(fake.Hang)
	env := maps.Clone(p.env)
	env["ROUTE_ALT_TOKEN_WAIT"] = altWait.String()
	s := startSidecar(t, env)
	c := newClient(t)

	// Alternative Payments' first fetch hangs, and the app's requests on
	// its route wait for it; TezPay's route waits for its retries.
	waitUntil(t, 10*time.Second, func() bool { return len(p.altProxy.Conns()) > 0 }, "no connection to Alternative Payments' token endpoint")
	type timed struct {
		route string
		result
		took time.Duration
	}
	failing := make(chan timed, 6)
	for i := range cap(failing) {
		go func() {
			route, url, body := "alt", s.routeURL("alt")+"/v1/checkout-auth/init", []byte(`{}`)
			if i%3 == 0 {
				route, url, body = "tezpay", s.routeURL("tezpay")+fake.ProcessPaymentPath, payment(fmt.Sprint("down-", i))
			}
			start := time.Now()
			r := call(c, http.MethodPost, url, body)
			failing <- timed{route, r, time.Since(start)}
		}()
	}

	// Juspay's route: every request answered promptly, and its customer
	// tokens (valid 2 s) renewed on the way.
	n := 0
	waitUntil(t, 15*time.Second, func() bool {
		cust := juspayCustomers[n%len(juspayCustomers)]
		n++
		start := time.Now()
		r := call(c, http.MethodPost, s.routeURL("juspay")+"/v4/sdk", initiate(cust))
		if took := time.Since(start); r.status != http.StatusOK || took > 2*time.Second {
			t.Errorf("POST /juspay/v4/sdk for %s while the other providers fail = %v in %s, want 200 within 2s", cust, r, took)
		}
		return p.juspay.Fetches("cust-a") >= 2 && p.juspay.Fetches("cust-b") >= 2
	}, "Juspay's customer tokens were not renewed while the other providers failed (%d requests)", n)
	var done []timed
	for len(failing) > 0 {
		r := <-failing
		done = append(done, r)
		if r.route == "alt" {
			t.Errorf("a request on the hanging route returned before Juspay's requests were done: %v after %s", r.result, r.took)
		}
	}

	// Readiness: the routes without a token, by name.
	status, body := s.adminGet("/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "tezpay") || !strings.Contains(body, "alt") || strings.Contains(body, "juspay") {
		t.Errorf("/readyz = %d %q, want 503 naming tezpay and alt, not juspay", status, body)
	}
	for route, want := range map[string]int{"juspay": http.StatusOK, "tezpay": http.StatusServiceUnavailable, "alt": http.StatusServiceUnavailable, "nope": http.StatusNotFound} {
		if got, body := s.adminGet("/readyz?route=" + route); got != want {
			t.Errorf("/readyz?route=%s = %d %q, want %d", route, got, body, want)
		}
	}

	// The failing routes' requests: 503 token_unavailable, the hanging
	// route's after its TOKEN_WAIT, not before.
	for len(done) < cap(failing) {
		done = append(done, <-failing)
	}
	for _, r := range done {
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "token_unavailable") {
			t.Errorf("POST on route %s without a token = %v, want 503 token_unavailable", r.route, r.result)
		}
		if r.route == "alt" && r.took < altWait-time.Second {
			t.Errorf("POST on the hanging route answered after %s, want after its TOKEN_WAIT (%s)", r.took, altWait)
		}
	}
	if total, _ := p.tezpay.Calls(); total != 0 {
		t.Errorf("TezPay's API got %d calls without a token, want 0", total)
	}
	if total, _ := p.alt.Calls(); total != 0 {
		t.Errorf("Alternative Payments' API got %d calls without a token, want 0", total)
	}
	p.checkNoCrossLeak(t)
}

// adminGet returns the status and body of a GET on the admin server.
func (s *sidecar) adminGet(path string) (int, string) {
	s.t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.Admin + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRoutesConfigErrors: one start reports every problem of the routes,
// each naming its variable, and exits 2 before listening.
func TestRoutesConfigErrors(t *testing.T) {
	t.Parallel()
	p := newThreeProviders(t, 0)
	env := maps.Clone(p.env)
	dup := heldAddr(t)
	maps.Copy(env, map[string]string{
		"LISTEN_ADDR":               heldAddr(t),
		"ADMIN_ADDR":                heldAddr(t),
		"ROUTES":                    "tezpay,juspay,alt,extra,Bad_Name",
		"ROUTE_TEZPAY_LISTEN_ADDR":  dup,
		"ROUTE_EXTRA_UPSTREAM_URL":  "https://extra.example.com",
		"ROUTE_EXTRA_TOKEN_SOURCE":  "none",
		"ROUTE_EXTRA_LISTEN_ADDR":   dup,                        // TezPay's address
		"ROUTE_ALT_PATH_PREFIX":     "/juspay/v2",               // under Juspay's /juspay
		"UPSTREAM_URL":              "https://api.example.com",  // a provider setting, unprefixed
		"ROUTE_TEZPAY_TOKN_TIMEOUT": "5s",                       // misspelt
		"ROUTE_NOPE_UPSTREAM_URL":   "https://nope.example.com", // a route not in ROUTES
	})
	want := []string{
		"AUTHSIDECAR_ROUTES",
		"AUTHSIDECAR_ROUTE_EXTRA_LISTEN_ADDR",
		"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX",
		"AUTHSIDECAR_UPSTREAM_URL",
		"AUTHSIDECAR_ROUTE_TEZPAY_TOKN_TIMEOUT",
		"AUTHSIDECAR_ROUTE_NOPE_UPSTREAM_URL",
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
	for _, v := range want {
		n := 0
		for _, l := range problems {
			if strings.HasPrefix(l, "  "+v+": ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("stderr names %s on %d lines, want 1", v, n)
		}
	}
	for _, l := range problems {
		if !strings.HasPrefix(l, "  AUTHSIDECAR_") {
			t.Errorf("problem %q does not start with the variable it concerns", l)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("stderr lists %d problems, want %d", len(problems), len(want))
	}
	for _, bad := range []string{"panic", "goroutine ", "authsidecar started", "address already in use", routesTezPaySecret, routesAltSecret, juspayAPIKey} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr contains %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr)
	}
}

// TestRoutesCheck: -check prints each route's effective configuration
// under "route NAME:", its settings named after the route's variables, and
// no secret.
func TestRoutesCheck(t *testing.T) {
	t.Parallel()
	p := newThreeProviders(t, 0)
	env := maps.Clone(p.env)
	env["LISTEN_ADDR"], env["ADMIN_ADDR"] = heldAddr(t), heldAddr(t)
	code, stdout, stderr := runToExit(t, env, "-check")
	if code != 0 || !strings.HasSuffix(stdout, "authsidecar: configuration OK\n") {
		t.Fatalf("authsidecar -check = %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	sections := map[string][]string{}
	var order []string
	current := ""
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "authsidecar: configuration OK\n"), "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "route ") && strings.HasSuffix(l, ":"):
			current = strings.TrimSuffix(strings.TrimPrefix(l, "route "), ":")
			order = append(order, current)
		case current == "" || !strings.HasPrefix(l, "  AUTHSIDECAR_"):
			t.Errorf("-check line %q is not a setting of a route", l)
		default:
			sections[current] = append(sections[current], strings.TrimPrefix(l, "  "))
		}
	}
	if !slices.Equal(order, routeNames) {
		t.Errorf("-check lists routes %q, want %q", order, routeNames)
	}
	tezpayURL := p.env["ROUTE_TEZPAY_UPSTREAM_URL"]
	for route, want := range map[string][]string{
		"tezpay": {
			"AUTHSIDECAR_ROUTE_TEZPAY_PROVIDER=tezpay (environment)",
			"AUTHSIDECAR_ROUTE_TEZPAY_UPSTREAM_URL=" + tezpayURL + " (environment)",
			"AUTHSIDECAR_ROUTE_TEZPAY_LISTEN_ADDR=127.0.0.1:0 (environment)",
			"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_SOURCE=json (preset tezpay)",
			"AUTHSIDECAR_ROUTE_TEZPAY_TOKEN_URL=" + tezpayURL + fake.AuthenticatePath + " (preset tezpay)",
			"AUTHSIDECAR_ROUTE_TEZPAY_CLIENT_SECRET_FILE=" + p.env["ROUTE_TEZPAY_CLIENT_SECRET_FILE"] + " (environment)",
		},
		"juspay": {
			"AUTHSIDECAR_ROUTE_JUSPAY_PATH_PREFIX=/juspay (environment)",
			"AUTHSIDECAR_ROUTE_JUSPAY_TOKEN_SOURCE=juspay-customer (environment)",
			"AUTHSIDECAR_ROUTE_JUSPAY_MERCHANT_ID_HEADER=x-merchantid (preset juspay)",
			"AUTHSIDECAR_LISTEN_ADDR=" + env["LISTEN_ADDR"] + " (environment)", // the main listener's, unprefixed
		},
		"alt": {
			"AUTHSIDECAR_ROUTE_ALT_PATH_PREFIX=/alt (environment)",
			"AUTHSIDECAR_ROUTE_ALT_OAUTH2_AUTH_STYLE=header (preset alternative-payments)",
			"AUTHSIDECAR_ROUTE_ALT_TOKEN_SOURCE=oauth2 (preset alternative-payments)",
		},
	} {
		for _, w := range want {
			if !slices.Contains(sections[route], w) {
				t.Errorf("-check: route %s lacks the line %q", route, w)
			}
		}
	}
	// Every provider setting of a route is named after the route; only the
	// process-wide ones are unprefixed.
	processWide := []string{"LISTEN_ADDR", "ADMIN_ADDR", "LOG_LEVEL", "LOG_FORMAT", "SHUTDOWN_TIMEOUT", "SHUTDOWN_DELAY", "MAX_CONNECTIONS", "PPROF", "REQUIRE_HEADER"}
	for route, lines := range sections {
		for _, l := range lines {
			name, _, _ := strings.Cut(l, "=")
			if !strings.HasPrefix(name, "AUTHSIDECAR_ROUTE_"+strings.ToUpper(route)+"_") && !slices.Contains(processWide, strings.TrimPrefix(name, "AUTHSIDECAR_")) {
				t.Errorf("-check: route %s shows %s, want it named after the route", route, name)
			}
		}
	}
	for what, secret := range map[string]string{"TezPay's client secret": routesTezPaySecret, "Alternative Payments' secret": routesAltSecret, "Juspay's API key": juspayAPIKey} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("-check shows %s", what)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s", stdout)
	}
}
