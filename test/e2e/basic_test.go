package e2e

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The Basic credentials the tests below configure: Juspay's shape, an API
// key as the user name and no password, and a user with a rotated password.
const (
	basicAPIKey    = "key_e2e_Wm4Pq9Zr2"
	basicUser      = "user_e2e_Hb7"
	basicPassword1 = "pw-e2e-1-Tn5Ks8"
	basicPassword2 = "pw-e2e-2-Gd3Vx6"
)

// basicOf is the Authorization RFC 7617 gives user and password.
func basicOf(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// writeSecret writes a secret file with a trailing newline, as a Secret
// written by hand often has.
func writeSecret(t *testing.T, name, value string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// INJECT=basic with SET_HEADERS, through the binary: the upstream gets
// exactly one Authorization, the configured Basic one, and the fixed
// headers, whatever the app sent under those names; the app's other
// headers pass. A rejection is passed on, not replayed: there is no token to
// refresh.
func TestBasicMode(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t, func(w http.ResponseWriter, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}`))
	})
	rejecting := newRecordingUpstream(t, func(w http.ResponseWriter, _ []byte) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	tests := []struct {
		name     string
		upstream *recordingUpstream
		env      map[string]string
		want     string // the upstream's Authorization
		status   int
	}{
		{"API key file, no password (Juspay)", up, map[string]string{"BASIC_USER_FILE": writeSecret(t, "api_key", basicAPIKey)}, basicOf(basicAPIKey, ""), http.StatusOK},
		{"user and password literally", up, map[string]string{"BASIC_USER": basicUser, "BASIC_PASSWORD": basicPassword1}, basicOf(basicUser, basicPassword1), http.StatusOK},
		{"rejected: passed on once", rejecting, map[string]string{"BASIC_USER": basicUser, "BASIC_PASSWORD_FILE": writeSecret(t, "password", basicPassword1)}, basicOf(basicUser, basicPassword1), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"UPSTREAM_URL": tc.upstream.URL,
				"TOKEN_SOURCE": "none",
				"INJECT":       "basic",
				"SET_HEADERS":  "x-merchantid=stock,x-routing-id=customer-1",
			}
			for k, v := range tc.env {
				env[k] = v
			}
			s := startSidecar(t, env)
			before := len(tc.upstream.requests())
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/orders", nil)
			req.Header["authorization"] = []string{"Bearer app-token", "Basic YXBwOmFwcA=="} // as sent, lower case
			req.Header["x-merchantid"] = []string{"app-merchant"}
			req.Header.Set("X-App", "kept")
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatalf("POST /orders: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("POST /orders = %d, want %d", resp.StatusCode, tc.status)
			}
			seen := tc.upstream.requests()[before:]
			if len(seen) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(seen))
			}
			h := seen[0].header
			for name, want := range map[string][]string{
				"Authorization": {tc.want},
				"X-Merchantid":  {"stock"},
				"X-Routing-Id":  {"customer-1"},
				"X-App":         {"kept"},
			} {
				if got := h[name]; !slices.Equal(got, want) {
					t.Errorf("upstream %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// A rotated BASIC_PASSWORD_FILE is used without a restart, and never seen
// in the sidecar's output (the secrets scan covers both passwords).
func TestBasicModeRotatedPassword(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t, nil)
	passwordFile := writeSecret(t, "password", basicPassword1)
	s := startSidecar(t, map[string]string{
		"UPSTREAM_URL":        up.URL,
		"TOKEN_SOURCE":        "none",
		"INJECT":              "basic",
		"BASIC_USER":          basicUser,
		"BASIC_PASSWORD_FILE": passwordFile,
	})
	c := newClient(t)
	if r := call(c, http.MethodGet, s.URL+"/status", nil); r.status != http.StatusOK {
		t.Fatalf("GET /status = %v, want 200", r)
	}
	// As a Secret update does: a new file renamed over the old.
	next := passwordFile + ".new"
	if err := os.WriteFile(next, []byte(basicPassword2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(next, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, passwordFile); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() bool {
		call(c, http.MethodGet, s.URL+"/status", nil)
		seen := up.requests()
		return seen[len(seen)-1].header.Get("Authorization") == basicOf(basicUser, basicPassword2)
	}, "the upstream still gets the old password after the rotation")
	for i, r := range up.requests() {
		if a := r.header["Authorization"]; len(a) != 1 || (a[0] != basicOf(basicUser, basicPassword1) && a[0] != basicOf(basicUser, basicPassword2)) {
			t.Errorf("request %d: Authorization = %q, want one value, of the old password or the new", i+1, a)
		}
	}
}
