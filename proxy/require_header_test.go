package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// With RequireHeader, a request without the header is refused before
// anything happens (no token use, nothing upstream, no local endpoint), and
// the header never leaves the pod.
func TestRequireHeader(t *testing.T) {
	up := newUpstream(t, nil)
	src := &tokenSource{}
	_, m := newMetrics()
	srv := startProxy(t, proxy.Config{
		Upstream:      up.base(t, "/api"),
		Tokens:        startCache(t, src, tokens.CacheOptions{}),
		HandoffPath:   "/token",
		RequireHeader: "x-authsidecar-request",
		Metrics:       m,
	})
	for _, tc := range []struct {
		name, path, header, value string
		want                      int
	}{
		{"proxied, without", "/v1/pay", "", "", http.StatusForbidden},
		{"hand-off, without", "/token", "", "", http.StatusForbidden},
		{"proxied, with", "/v1/pay", "X-Authsidecar-Request", "1", http.StatusOK},
		{"proxied, with an empty value", "/v1/pay", "x-authsidecar-request", "", http.StatusOK},
		{"hand-off, with", "/token", "X-AUTHSIDECAR-REQUEST", "true", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if tc.header != "" {
				req.Header[tc.header] = []string{tc.value} // as sent, not canonicalized
			}
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, body, tc.want)
			}
			got := up.requests()[before:]
			switch {
			case tc.want == http.StatusForbidden:
				if !strings.Contains(string(body), `"error":"forbidden"`) || !strings.Contains(string(body), "X-Authsidecar-Request") {
					t.Errorf("body = %s, want a JSON forbidden error naming the header", body)
				}
				if len(got) != 0 {
					t.Errorf("a refused request reached the upstream")
				}
			case tc.path == "/token":
				if len(got) != 0 {
					t.Errorf("the hand-off endpoint reached the upstream")
				}
			default:
				if len(got) != 1 {
					t.Fatalf("upstream received %d requests, want 1", len(got))
				}
				if v, ok := got[0].Header["X-Authsidecar-Request"]; ok {
					t.Errorf("upstream received X-Authsidecar-Request %q: it must stay in the pod", v)
				}
				if got[0].Header.Get("Authorization") == "" {
					t.Errorf("upstream received no token")
				}
			}
		})
	}
}
