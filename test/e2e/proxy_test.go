package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// gate holds requests to the token endpoint until it is released. Register
// its release with t.Cleanup after the server it gates, so that it runs
// first: httptest.Server.Close waits for held requests.
type gate struct {
	open chan struct{}
	once sync.Once
	held atomic.Int64 // token requests that arrived at holdTokens
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// holdTokens wraps a TezPay handler so that its token endpoint answers only
// once g is open.
func (g *gate) holdTokens(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fake.AuthenticatePath {
			g.held.Add(1)
			select {
			case <-g.open:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	p, srv := newTezPay(t, 0, nil)
	s := startSidecar(t, tezPayEnv(srv.URL))
	s.waitReady(10 * time.Second)
	c := newClient(t)

	r := call(c, http.MethodPost, s.URL+fake.ProcessPaymentPath, payment("PAY123456"))
	var paid struct {
		Status            string `json:"status"`
		MerchantReference string `json:"merchant_reference"`
		TransactionAmount int    `json:"transaction_amount"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &paid) != nil {
		t.Fatalf("POST process-payment = %v, want 200 and the payment", r)
	}
	if paid.Status != "SUCCESS" || paid.MerchantReference != "PAY123456" || paid.TransactionAmount != 500 {
		t.Errorf("POST process-payment = %+v, want SUCCESS for PAY123456, 500", paid)
	}

	r = call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN123456", nil)
	var status struct {
		TransactionID string `json:"transaction_id"`
		Status        string `json:"status"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &status) != nil || status.TransactionID != "TXN123456" {
		t.Errorf("GET get-status = %v, want 200 for TXN123456", r)
	}

	// A token the app sends of its own is replaced, not forwarded.
	r = call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN1", nil, "Authorization", "Bearer forged")
	if r.status != http.StatusOK {
		t.Errorf("GET get-status with the app's own Authorization = %v, want 200", r)
	}

	// Nor can the app strip the injected token by naming it hop-by-hop.
	r = call(c, http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN2", nil, "Connection", "Authorization")
	if r.status != http.StatusOK {
		t.Errorf("GET get-status with Connection: Authorization = %v, want 200", r)
	}

	if total, rejected := p.Calls(); total != 4 || rejected != 0 {
		t.Errorf("provider calls = %d (%d rejected), want 4 (0 rejected)", total, rejected)
	}
	if n := p.Fetches(); n != 1 {
		t.Errorf("token fetches = %d, want 1", n)
	}
	if got := s.adminStatus("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", got)
	}
}

func TestReadyzWaitsForTheFirstToken(t *testing.T) {
	t.Parallel()
	g := &gate{open: make(chan struct{})}
	p, srv := newTezPay(t, 0, g.holdTokens)
	t.Cleanup(g.release)
	s := startSidecar(t, tezPayEnv(srv.URL, "TOKEN_TIMEOUT", "60s"))

	// The process is up, its first fetch has reached the token endpoint,
	// which has not answered yet.
	waitUntil(t, 10*time.Second, func() bool { return g.held.Load() > 0 }, "the first token request did not reach the provider")
	for range 5 {
		if got := s.adminStatus("/healthz"); got != http.StatusOK {
			t.Errorf("/healthz before the first token = %d, want 200", got)
		}
		if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
			t.Fatalf("/readyz before the first token = %d, want 503", got)
		}
	}
	if n := p.Fetches(); n != 0 {
		t.Fatalf("token fetches before release = %d, want 0", n)
	}

	g.release()
	s.waitReady(10 * time.Second)
	if r := call(newClient(t), http.MethodGet, s.URL+fake.GetStatusPath+"?transaction_id=TXN1", nil); r.status != http.StatusOK {
		t.Errorf("GET get-status once ready = %v, want 200", r)
	}
}

func TestOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	for _, style := range []string{"header", "params"} {
		t.Run(style, func(t *testing.T) {
			t.Parallel()
			type tokenRequest struct {
				form       url.Values
				user, pass string
				basic      bool
			}
			var mu sync.Mutex
			var tokenReqs []tokenRequest
			var upstreamAuth []string
			tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" || r.ParseForm() != nil {
					http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
					return
				}
				user, pass, basic := r.BasicAuth()
				mu.Lock()
				tokenReqs = append(tokenReqs, tokenRequest{r.PostForm, user, pass, basic})
				n := len(tokenReqs)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"access_token":"opaque-%s-%d","token_type":"Bearer","expires_in":3600}`, style, n)
			}))
			t.Cleanup(tokenSrv.Close)
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				upstreamAuth = append(upstreamAuth, r.Header.Get("Authorization"))
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"checkout_token":"ct"}`)
			}))
			t.Cleanup(upstream.Close)

			s := startSidecar(t, map[string]string{
				"UPSTREAM_URL":      upstream.URL,
				"TOKEN_SOURCE":      "oauth2",
				"TOKEN_URL":         tokenSrv.URL + "/oauth/token",
				"CLIENT_ID":         clientID,
				"CLIENT_SECRET":     clientSecret,
				"SCOPES":            "checkout:write, checkout:read",
				"TOKEN_PARAMS":      "audience=https://api.example.com,resource=urn:example:checkout",
				"OAUTH2_AUTH_STYLE": style,
			})
			s.waitReady(10 * time.Second)
			r := call(newClient(t), http.MethodPost, s.URL+"/v1/checkout-auth/init", []byte(`{"customer_id":"c1"}`))
			if r.status != http.StatusOK {
				t.Fatalf("POST /v1/checkout-auth/init = %v, want 200", r)
			}

			mu.Lock()
			defer mu.Unlock()
			if want := []string{"Bearer opaque-" + style + "-1"}; !slices.Equal(upstreamAuth, want) {
				t.Errorf("upstream Authorization = %q, want %q", upstreamAuth, want)
			}
			if len(tokenReqs) != 1 {
				t.Fatalf("token requests = %d, want 1", len(tokenReqs))
			}
			tr := tokenReqs[0]
			for k, want := range map[string]string{
				"grant_type": "client_credentials",
				"scope":      "checkout:write checkout:read",
				"audience":   "https://api.example.com",
				"resource":   "urn:example:checkout",
			} {
				if got := tr.form.Get(k); got != want {
					t.Errorf("token request %s = %q, want %q", k, got, want)
				}
			}
			switch style {
			case "header":
				if !tr.basic || tr.user != clientID || tr.pass != clientSecret {
					t.Errorf("token request Basic auth = %v %q, want the client's credentials", tr.basic, tr.user)
				}
				if tr.form.Has("client_secret") {
					t.Errorf("token request form has client_secret with OAUTH2_AUTH_STYLE=header")
				}
			case "params":
				if tr.basic {
					t.Errorf("token request has Basic auth with OAUTH2_AUTH_STYLE=params")
				}
				if tr.form.Get("client_id") != clientID || tr.form.Get("client_secret") != clientSecret {
					t.Errorf("token request form client_id = %q, want %q, and the secret", tr.form.Get("client_id"), clientID)
				}
			}
		})
	}
}

func TestConcurrentStartMakesOneFetch(t *testing.T) {
	t.Parallel()
	g := &gate{open: make(chan struct{})}
	p, srv := newTezPay(t, 0, g.holdTokens)
	t.Cleanup(g.release)
	s := startSidecar(t, tezPayEnv(srv.URL, "PPROF", "true")) // for handlersRunning
	c := newClient(t)

	const n = 64
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i] = call(c, http.MethodGet, fmt.Sprintf("%s%s?transaction_id=TXN%d", s.URL, fake.GetStatusPath, i), nil)
		})
	}
	// Every request reaches the sidecar while its first fetch is held.
	in := 0
	if !eventually(10*time.Second, func() bool { in = s.handlersRunning(); return in >= n }) {
		t.Fatalf("%d of %d requests in the sidecar after 10s while its first fetch is held", in, n)
	}
	if got := s.adminStatus("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the first fetch is held = %d, want 503", got)
	}
	g.release()
	wg.Wait()

	for i, r := range results {
		if r.status != http.StatusOK || !strings.Contains(string(r.body), fmt.Sprintf(`"TXN%d"`, i)) {
			t.Errorf("request %d = %v, want 200 for TXN%d", i, r, i)
		}
	}
	if got := p.Fetches(); got != 1 {
		t.Errorf("token fetches for %d concurrent requests = %d, want 1", n, got)
	}
	if total, rejected := p.Calls(); total != n || rejected != 0 {
		t.Errorf("provider calls = %d (%d rejected), want %d (0 rejected)", total, rejected, n)
	}
}

func TestUpstreamErrors(t *testing.T) {
	t.Parallel()
	_, provider := newTezPay(t, 0, nil)
	slow := newSlowUpstream(t) // answers only when released: never, here
	// An upstream that hangs up on every connection. (A closed port could be
	// taken by a parallel test.)
	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	tests := []struct {
		name     string
		upstream string
		status   int
		code     string
	}{
		{"upstream too slow", slow.URL, http.StatusGatewayTimeout, "upstream_timeout"},
		{"upstream hangs up", "http://" + hangup.Addr().String(), http.StatusBadGateway, "upstream_unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startSidecar(t, tezPayEnv(provider.URL, "UPSTREAM_URL", tc.upstream, "UPSTREAM_TIMEOUT", "500ms"))
			s.waitReady(10 * time.Second)
			start := time.Now()
			r := call(newClient(t), http.MethodGet, s.URL+"/anything", nil)
			var e sidecarError
			if r.status != tc.status || json.Unmarshal(r.body, &e) != nil || e.Error != tc.code {
				t.Errorf("GET = %v, want %d {\"error\":%q,…}", r, tc.status, tc.code)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("GET took %s with UPSTREAM_TIMEOUT=500ms", took)
			}
		})
	}
}
