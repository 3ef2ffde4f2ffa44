package proxy_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// basicOf is the Authorization value RFC 7617 gives user and password,
// encoded here independently of the proxy.
func basicOf(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// constantAuth returns the credentials of user and password, as a literal
// configuration gives them to Basic.
func constantAuth(t *testing.T, user, password string) func() *proxy.BasicAuth {
	t.Helper()
	a, err := proxy.NewBasicAuth(user, password)
	if err != nil {
		t.Fatalf("NewBasicAuth() error = %v", err)
	}
	return func() *proxy.BasicAuth { return a }
}

// The app's Authorization, in whatever case and however many times it sent
// it, is replaced by exactly one Basic value; the rest of its headers pass.
func TestBasicReplacesAppAuthorization(t *testing.T) {
	up := newUpstream(t, nil)
	srv := startProxy(t, proxy.Config{
		Upstream: up.base(t, "/api"),
		Injector: proxy.Basic(constantAuth(t, "api-key-1", "")), // Juspay: the API key, no password
	})
	want := basicOf("api-key-1", "")
	for _, tc := range []struct {
		name   string
		header map[string][]string // as sent, not canonicalized
	}{
		{"none", nil},
		{"bearer", map[string][]string{"Authorization": {"Bearer app-token"}}},
		{"lower case", map[string][]string{"authorization": {"Basic YXBwOmFwcA=="}}},
		{"two values", map[string][]string{"Authorization": {"Basic YXBwOmFwcA==", "Bearer second"}}},
		{"two lines in two cases", map[string][]string{"Authorization": {"Bearer a"}, "AUTHORIZATION": {"Bearer b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(up.requests())
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/customers/c-1", nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			req.Header.Set("X-App", "kept")
			resp, body := do(t, srv.Client(), req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d %s, want 200", resp.StatusCode, body)
			}
			got := up.requests()[before:]
			if len(got) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(got))
			}
			if a := got[0].Header["Authorization"]; !slices.Equal(a, []string{want}) {
				t.Errorf("upstream Authorization = %q, want exactly [%q]", a, want)
			}
			if v := got[0].Header.Get("X-App"); v != "kept" {
				t.Errorf("upstream X-App = %q, want the app's kept", v)
			}
		})
	}
}

func TestNewBasicAuth(t *testing.T) {
	for _, tc := range []struct {
		name, user, password string
		wantErr              string
	}{
		{name: "user and password", user: "Aladdin", password: "open sesame"},
		{name: "empty password", user: "key_1"},
		{name: "colon in the password", user: "u", password: "a:b"},
		{name: "UTF-8", user: "tëst", password: "pässwörd"},
		{name: "empty user", password: "s3cr3t-p", wantErr: "user name is empty"},
		{name: "colon in the user", user: "s3cr3t:u", wantErr: "':'"},
		{name: "newline in the user", user: "s3cr3t\nu", wantErr: "control character"},
		{name: "DEL in the password", user: "u", password: "s3cr3t\x7f", wantErr: "password holds a control character"},
		{name: "tab in the password", user: "u", password: "s3cr3t\t", wantErr: "password holds a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := proxy.NewBasicAuth(tc.user, tc.password)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewBasicAuth() error = %v, want one saying %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("NewBasicAuth() error = %q quotes the credentials", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewBasicAuth() error = %v", err)
			}
			h := http.Header{}
			proxy.Basic(func() *proxy.BasicAuth { return a }).Inject(h, nil, nil)
			if got, want := h.Get("Authorization"), basicOf(tc.user, tc.password); got != want {
				t.Errorf("Inject() Authorization = %q, want %q", got, want)
			}
			if s := fmt.Sprintf("%v %+v %#v %s", a, a, a, a); strings.Contains(s, strings.TrimPrefix(basicOf(tc.user, tc.password), "Basic ")) {
				t.Errorf("formatting the credentials shows them: %s", s)
			}
		})
	}
}

// A rotated password file is used without a restart, within the watch's
// interval (a second, in a bubble's time): requests before it carry the old
// password, those after it the new one, each exactly once.
func TestBasicRotatedPasswordFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		passwordFile := filepath.Join(dir, "password")
		if err := os.WriteFile(passwordFile, []byte("password-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := tokens.WatchSecrets("Basic credentials", []tokens.Secret{tokens.Literal("user-1"), tokens.File(passwordFile)},
			func(v []string) (*proxy.BasicAuth, error) { return proxy.NewBasicAuth(v[0], v[1]) }, nil)
		if err != nil {
			t.Fatalf("WatchSecrets() error = %v", err)
		}
		// In memory, as a bubble wants: the upstream records each request's
		// Authorization.
		var seen [][]string
		h := proxy.New(proxy.Config{
			Upstream: &url.URL{Scheme: "http", Host: "api.example"},
			Injector: proxy.Basic(w.Get),
			Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				seen = append(seen, r.Header["Authorization"])
				return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
			}),
		})
		send := func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/a", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d %s, want 200", rec.Code, rec.Body)
			}
		}
		oldValue, newValue := basicOf("user-1", "password-1"), basicOf("user-1", "password-2")
		send()

		// As a Secret update does: a new file renamed over the old, dated later.
		next := passwordFile + ".new"
		if err := os.WriteFile(next, []byte("password-2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Minute)
		if err := os.Chtimes(next, later, later); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, passwordFile); err != nil {
			t.Fatal(err)
		}
		send() // within the second: the file is not looked at yet
		time.Sleep(time.Second + time.Millisecond)
		send()
		want := [][]string{{oldValue}, {oldValue}, {newValue}}
		if !slices.EqualFunc(seen, want, slices.Equal) {
			t.Errorf("upstream Authorization = %q, want %q", seen, want)
		}
	})
}

// roundTripFunc is an http.RoundTripper of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
