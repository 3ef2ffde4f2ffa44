package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/test/fake"
	"github.com/authsidecar/authsidecar/tokens"
)

// The pair the stub registrar hands out: secrets, which only a 200 may show.
const (
	sdkToken = "TOKENa1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8"
	sdkLabel = "LABELa1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6q7r8s9t0u1v2"
)

var sdkAuthOK = tokens.AxeptaAuth{AuthToken: sdkToken, AuthLabel: sdkLabel, ExpiryDate: "2025-09-17T20:55:44",
	Description: "success", Status: "OK", Code: "00000000"}

// stubRegistrar answers auth and err. With block set, each call waits for
// it to be closed (or for its ctx) after announcing itself on entered.
type stubRegistrar struct {
	auth    tokens.AxeptaAuth
	err     error
	block   chan struct{}
	entered chan struct{}

	mu    sync.Mutex
	calls int
}

func (s *stubRegistrar) Register(ctx context.Context) (tokens.AxeptaAuth, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return tokens.AxeptaAuth{}, fmt.Errorf("tokens: registration request: %w", ctx.Err())
		}
	}
	return s.auth, s.err
}

func (s *stubRegistrar) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// timeoutError is a net.Error that timed out, as a client's Timeout gives.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// logBuffer collects a logger's JSON lines; safe for the server's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func sdkRequest(t *testing.T, method, url, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// jsonKeys returns the keys of a JSON object in the order they are written.
func jsonKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("body %q is not a JSON object", body)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	return keys
}

func TestSDKAuth(t *testing.T) {
	const mid = "BNP_1"
	merchantBody := `{"merchantID":"` + mid + `"}`
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		merchantID  string // SDKAuthMerchantID; mid unless "-"
		auth        tokens.AxeptaAuth
		err         error
		wantStatus  int
		wantCalls   int
		wantResult  string // authsidecar_sdk_auth_total's result
		wantError   string // the JSON error code; empty for a 200
		wantLog     []string
	}{
		{name: "ok", method: "POST", contentType: "application/json", body: merchantBody, auth: sdkAuthOK,
			wantStatus: 200, wantCalls: 1, wantResult: metrics.SDKAuthOK},
		{name: "ok with a charset", method: "POST", contentType: "application/json; charset=utf-8", body: merchantBody, auth: sdkAuthOK,
			wantStatus: 200, wantCalls: 1, wantResult: metrics.SDKAuthOK},
		{name: "empty body accepted", method: "POST", auth: sdkAuthOK,
			wantStatus: 200, wantCalls: 1, wantResult: metrics.SDKAuthOK},
		{name: "object without merchantID accepted", method: "POST", contentType: "application/json", body: `{"platform":"ios"}`, auth: sdkAuthOK,
			wantStatus: 200, wantCalls: 1, wantResult: metrics.SDKAuthOK},
		{name: "any merchant without SDKAuthMerchantID", method: "POST", contentType: "application/json", body: `{"merchantID":"BNP_2"}`, merchantID: "-", auth: sdkAuthOK,
			wantStatus: 200, wantCalls: 1, wantResult: metrics.SDKAuthOK},
		{name: "failed", method: "POST", contentType: "application/json", body: merchantBody,
			err:        &tokens.RetrieveError{Status: 200, Code: "21500001", Description: "ExpiryDate is not within the next 24 hours"},
			wantStatus: 502, wantCalls: 1, wantResult: metrics.SDKAuthFailed, wantError: "registration_failed",
			wantLog: []string{`"code":"21500001"`, `"description":"ExpiryDate is not within the next 24 hours"`}},
		{name: "platform down", method: "POST", contentType: "application/json", body: merchantBody,
			err:        &tokens.RetrieveError{Status: 503, Code: "22000000", Description: "Service temporarily unavailable", RetryAfter: 1500 * time.Millisecond},
			wantStatus: 502, wantCalls: 1, wantResult: metrics.SDKAuthFailed, wantError: "registration_failed",
			wantLog: []string{`"code":"22000000"`, `"status":503`}},
		{name: "unreachable", method: "POST", contentType: "application/json", body: merchantBody,
			err:        errors.New("tokens: registration request: dial tcp 10.0.0.1:443: connect: connection refused"),
			wantStatus: 502, wantCalls: 1, wantResult: metrics.SDKAuthUnreachable, wantError: "upstream_unreachable",
			wantLog: []string{"connection refused"}},
		{name: "answer unusable", method: "POST", contentType: "application/json", body: merchantBody,
			err:        fmt.Errorf("tokens: registration answer: %w", paygate.ErrBadMAC),
			wantStatus: 502, wantCalls: 1, wantResult: metrics.SDKAuthUnreachable, wantError: "upstream_unreachable"},
		{name: "timeout: context deadline", method: "POST", contentType: "application/json", body: merchantBody,
			err:        fmt.Errorf("tokens: registration request: %w", context.DeadlineExceeded),
			wantStatus: 504, wantCalls: 1, wantResult: metrics.SDKAuthTimeout, wantError: "upstream_timeout"},
		{name: "timeout: client timeout", method: "POST", contentType: "application/json", body: merchantBody,
			err:        fmt.Errorf("tokens: registration request: %w", timeoutError{}),
			wantStatus: 504, wantCalls: 1, wantResult: metrics.SDKAuthTimeout, wantError: "upstream_timeout"},
		{name: "wrong merchant", method: "POST", contentType: "application/json", body: `{"merchantID":"BNP_2"}`, auth: sdkAuthOK,
			wantStatus: 400, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "merchantID twice", method: "POST", contentType: "application/json", body: `{"merchantID":"BNP_2","merchantID":"BNP_1"}`, auth: sdkAuthOK,
			wantStatus: 400, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "not a JSON object", method: "POST", contentType: "application/json", body: `["BNP_1"]`, auth: sdkAuthOK,
			wantStatus: 400, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "body over 64 KiB", method: "POST", contentType: "application/json", body: `{"pad":"` + strings.Repeat("x", 64<<10) + `","merchantID":"BNP_1"}`, auth: sdkAuthOK,
			wantStatus: 400, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "not application/json", method: "POST", contentType: "text/plain", body: merchantBody, auth: sdkAuthOK,
			wantStatus: 415, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "form", method: "POST", contentType: "application/x-www-form-urlencoded", body: "merchantID=BNP_1", auth: sdkAuthOK,
			wantStatus: 415, wantResult: metrics.SDKAuthBadRequest, wantError: "bad_request"},
		{name: "GET", method: "GET", auth: sdkAuthOK,
			wantStatus: 405, wantResult: metrics.SDKAuthBadRequest, wantError: "method_not_allowed"},
		{name: "PUT", method: "PUT", contentType: "application/json", body: merchantBody, auth: sdkAuthOK,
			wantStatus: 405, wantResult: metrics.SDKAuthBadRequest, wantError: "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			_, m := newMetrics()
			logs := &logBuffer{}
			stub := &stubRegistrar{auth: tc.auth, err: tc.err}
			merchantID := mid
			if tc.merchantID == "-" {
				merchantID = ""
			}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: stub,
				SDKAuthMerchantID: merchantID, Metrics: m, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			resp, body := do(t, srv.Client(), sdkRequest(t, tc.method, srv.URL+"/sdk/auth", tc.contentType, tc.body))

			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("%s /sdk/auth = %d %s, want %d", tc.method, resp.StatusCode, body, tc.wantStatus)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			switch {
			case tc.wantStatus == 200:
				want := `{"AuthToken":"` + sdkToken + `","AuthLabel":"` + sdkLabel + `","ExpiryDate":"2025-09-17T20:55:44","Description":"success","Status":"OK","Code":"00000000"}` + "\n"
				if string(body) != want {
					t.Errorf("body = %s, want %s", body, want)
				}
				if got := resp.Header.Values("Cache-Control"); !slices.Equal(got, []string{"no-store"}) {
					t.Errorf("Cache-Control = %q, want [no-store]", got)
				}
			case tc.wantError == "registration_failed":
				re := tc.err.(*tokens.RetrieveError)
				if keys := jsonKeys(t, body); !slices.Equal(keys, []string{"error", "message", "Status", "Code", "Description"}) {
					t.Errorf("body keys = %q, want error, message, Status, Code, Description", keys)
				}
				var got struct{ Error, Status, Code, Description string }
				json.Unmarshal(body, &got)
				if got.Error != tc.wantError || got.Status != "FAILED" || got.Code != re.Code || got.Description != re.Description {
					t.Errorf("body = %s, want Status FAILED, Code %q, Description %q", body, re.Code, re.Description)
				}
				if re.RetryAfter > 0 && resp.Header.Get("Retry-After") != "2" {
					t.Errorf("Retry-After = %q, want 2 (1.5s, rounded up)", resp.Header.Get("Retry-After"))
				}
			default:
				checkSidecarError(t, resp, body, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if tc.wantStatus != 200 && (bytes.Contains(body, []byte(sdkToken)) || bytes.Contains(body, []byte(sdkLabel))) {
				t.Errorf("refusal %s carries the pair", body)
			}
			if n := stub.count(); n != tc.wantCalls {
				t.Errorf("Register() called %d times, want %d", n, tc.wantCalls)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream got %d requests, want none: the endpoint is never forwarded", n)
			}
			for _, r := range []string{metrics.SDKAuthOK, metrics.SDKAuthFailed, metrics.SDKAuthUnreachable, metrics.SDKAuthTimeout, metrics.SDKAuthBusy, metrics.SDKAuthBadRequest, metrics.SDKAuthCanceled} {
				want := 0.0
				if r == tc.wantResult {
					want = 1
				}
				if got := testutil.ToFloat64(m.SDKAuths.WithLabelValues(r)); got != want {
					t.Errorf(`authsidecar_sdk_auth_total{result=%q} = %v, want %v`, r, got, want)
				}
			}
			if tc.wantError != "" {
				if got := testutil.ToFloat64(m.Errors.WithLabelValues(tc.wantError)); got != 1 {
					t.Errorf(`authsidecar_errors_total{reason=%q} = %v, want 1`, tc.wantError, got)
				}
			}
			logged := logs.String()
			if strings.Contains(logged, sdkToken) || strings.Contains(logged, sdkLabel) {
				t.Errorf("logs show the pair: %s", logged)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(logged, w) {
					t.Errorf("logs = %s, want them to contain %s", logged, w)
				}
			}
		})
	}
}

// TestSDKAuthBusy: beyond SDKAuthMaxInflight registrations in flight (16 by
// default), requests get 503 busy at once; the slots free up as
// registrations end.
func TestSDKAuthBusy(t *testing.T) {
	for _, tc := range []struct {
		max, want int
	}{{2, 2}, {0, 16}} {
		t.Run(fmt.Sprint(tc.max), func(t *testing.T) {
			up := newUpstream(t, nil)
			_, m := newMetrics()
			// entered has room for the request made once the slots are free.
			stub := &stubRegistrar{auth: sdkAuthOK, block: make(chan struct{}), entered: make(chan struct{}, tc.want+1)}
			srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: stub,
				SDKAuthMaxInflight: tc.max, Metrics: m})
			post := func() (*http.Response, []byte) {
				return do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{"merchantID":"BNP_1"}`))
			}
			statuses := make(chan int, tc.want)
			for range tc.want {
				go func() {
					resp, err := srv.Client().Do(sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{"merchantID":"BNP_1"}`))
					if err != nil {
						statuses <- 0
						return
					}
					resp.Body.Close()
					statuses <- resp.StatusCode
				}()
			}
			for range tc.want {
				<-stub.entered // every slot is taken
			}
			resp, body := post()
			checkSidecarError(t, resp, body, http.StatusServiceUnavailable, "busy")
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("busy answer has no Retry-After")
			}
			if got := testutil.ToFloat64(m.SDKAuths.WithLabelValues(metrics.SDKAuthBusy)); got != 1 {
				t.Errorf(`authsidecar_sdk_auth_total{result="busy"} = %v, want 1`, got)
			}
			if n := stub.count(); n != tc.want {
				t.Errorf("Register() called %d times, want %d: a busy request registers nothing", n, tc.want)
			}
			close(stub.block)
			for range tc.want {
				if s := <-statuses; s != http.StatusOK {
					t.Errorf("blocked request = %d, want 200", s)
				}
			}
			if resp, body := post(); resp.StatusCode != http.StatusOK {
				t.Errorf("request after the slots freed = %d %s, want 200", resp.StatusCode, body)
			}
			if got := testutil.ToFloat64(m.SDKAuths.WithLabelValues(metrics.SDKAuthOK)); got != float64(tc.want+1) {
				t.Errorf(`authsidecar_sdk_auth_total{result="ok"} = %v, want %d`, got, tc.want+1)
			}
		})
	}
}

// TestSDKAuthCanceled: an SDK that goes away ends its registration and
// frees its slot.
func TestSDKAuthCanceled(t *testing.T) {
	up := newUpstream(t, nil)
	_, m := newMetrics()
	stub := &stubRegistrar{auth: sdkAuthOK, block: make(chan struct{}), entered: make(chan struct{}, 1)}
	defer close(stub.block)
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: stub,
		SDKAuthMaxInflight: 1, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req := sdkRequest(t, "POST", srv.URL+"/sdk/auth", "", "").WithContext(ctx)
		_, err := srv.Client().Do(req)
		done <- err
	}()
	<-stub.entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled request error = %v, want context.Canceled", err)
	}
	// The handler sees the cancellation after the client does: wait for it
	// in the metric, on the real clock (the server runs on real sockets).
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.SDKAuths.WithLabelValues(metrics.SDKAuthCanceled)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf(`authsidecar_sdk_auth_total{result="canceled"} never reached 1`)
		}
		<-time.After(time.Millisecond)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues("canceled")); got != 1 {
		t.Errorf(`authsidecar_errors_total{reason="canceled"} = %v, want 1`, got)
	}
}

// TestSDKAuthRequiresHeader: the endpoint is behind RequireHeader like any
// other path.
func TestSDKAuthRequiresHeader(t *testing.T) {
	up := newUpstream(t, nil)
	stub := &stubRegistrar{auth: sdkAuthOK}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: stub, RequireHeader: "X-Sidecar"})
	resp, body := do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{}`))
	checkSidecarError(t, resp, body, http.StatusForbidden, "forbidden")
	req := sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{}`)
	req.Header.Set("X-Sidecar", "1")
	if resp, body := do(t, srv.Client(), req); resp.StatusCode != http.StatusOK {
		t.Errorf("POST with the header = %d %s, want 200", resp.StatusCode, body)
	}
	if n := stub.count(); n != 1 {
		t.Errorf("Register() called %d times, want 1", n)
	}
}

// TestSDKAuthPathMatchesExactly: other paths are forwarded as usual.
func TestSDKAuthPathMatchesExactly(t *testing.T) {
	up := newUpstream(t, nil)
	stub := &stubRegistrar{auth: sdkAuthOK}
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: stub})
	for _, p := range []string{"/sdk/auth/", "/sdk/authx", "/sdk"} {
		if resp, body := do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+p, "application/json", `{}`)); resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Errorf("POST %s = %d %q, want the upstream's 200 ok", p, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+"/sdk/auth?platform=ios", "application/json", `{}`)); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /sdk/auth?platform=ios = %d, want 200", resp.StatusCode)
	}
	if n, m := stub.count(), len(up.requests()); n != 1 || m != 3 {
		t.Errorf("Register() called %d times and upstream got %d requests, want 1 and 3", n, m)
	}
}

func TestSDKAuthPathWithoutRegistrarPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("New() with SDKAuthPath and no SDKAuth did not panic")
		}
	}()
	proxy.New(proxy.Config{Upstream: newUpstream(t, nil).base(t, "/"), SDKAuthPath: "/sdk/auth"})
}

// TestSDKAuthWithPaygate goes through a real registrar to the fake Paygate:
// each request registers a new pair, which the answer hands out.
func TestSDKAuthWithPaygate(t *testing.T) {
	const mid = "sidecar-test-merchant"
	c, err := paygate.NewAES([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	pg := fake.NewPaygate(mid, c, nil)
	platform := httptest.NewServer(pg.Handler())
	t.Cleanup(platform.Close)
	registrar := tokens.NewAxeptaRegistrar(tokens.AxeptaConfig{
		URL:      platform.URL + fake.PaygateAuthTokenPath,
		Merchant: func() *paygate.Merchant { return &paygate.Merchant{ID: mid, Cipher: c} },
		Client:   platform.Client(),
	})
	up := newUpstream(t, nil)
	_, m := newMetrics()
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/api"), SDKAuthPath: "/sdk/auth", SDKAuth: registrar,
		SDKAuthMerchantID: mid, Metrics: m})

	seen := map[string]bool{}
	for range 3 {
		resp, body := do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{"merchantID":"`+mid+`"}`))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /sdk/auth = %d %s, want 200", resp.StatusCode, body)
		}
		if keys := jsonKeys(t, body); !slices.Equal(keys, []string{"AuthToken", "AuthLabel", "ExpiryDate", "Description", "Status", "Code"}) {
			t.Errorf("answer keys = %q, want the SDK's, in order", keys)
		}
		var got tokens.AxeptaAuth
		json.Unmarshal(body, &got)
		label, expiry, ok := pg.Registered(got.AuthToken)
		if !ok || label != got.AuthLabel || expiry.Format("2006-01-02T15:04:05") != got.ExpiryDate {
			t.Errorf("answer %s is not what Paygate registered (%v, %v)", body, expiry, ok)
		}
		if got.Status != "OK" || got.Code != fake.PaygateCodeOK || got.Description != "success" {
			t.Errorf("answer %s, want Paygate's Status OK, Code %s, Description success", body, fake.PaygateCodeOK)
		}
		if seen[got.AuthToken] || seen[got.AuthLabel] {
			t.Errorf("answer %s repeats a pair already handed out", body)
		}
		seen[got.AuthToken], seen[got.AuthLabel] = true, true
	}

	pg.SetDown(true)
	resp, body := do(t, srv.Client(), sdkRequest(t, "POST", srv.URL+"/sdk/auth", "application/json", `{"merchantID":"`+mid+`"}`))
	var failed struct{ Error, Status, Code, Description string }
	json.Unmarshal(body, &failed)
	if resp.StatusCode != http.StatusBadGateway || failed.Status != "FAILED" || failed.Code != fake.PaygateCodeUnavailable {
		t.Errorf("POST /sdk/auth while Paygate is down = %d %s, want 502 FAILED %s", resp.StatusCode, body, fake.PaygateCodeUnavailable)
	}
	if n := pg.Registrations(); n != 3 {
		t.Errorf("Paygate has %d registrations, want 3", n)
	}
	if got := testutil.ToFloat64(m.SDKAuths.WithLabelValues(metrics.SDKAuthOK)); got != 3 {
		t.Errorf(`authsidecar_sdk_auth_total{result="ok"} = %v, want 3`, got)
	}
}
