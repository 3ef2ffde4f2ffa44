package main

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// basicVars is a valid INJECT=basic configuration, overrides applied.
func basicVars(overrides map[string]string) map[string]string {
	vars := map[string]string{"INJECT": "basic", "BASIC_USER": "key_live_1"}
	for k, v := range overrides {
		vars[k] = v
	}
	return minimal("none", vars)
}

// basicSecrets are the user names and passwords the tests below configure:
// none may appear in a problem.
var basicSecrets = []string{"key_live_1", "key-from-file", "pw-literal", "pw-from-file", "key:colon", "pw\tctl"}

func TestBasicConfigValid(t *testing.T) {
	dir := t.TempDir()
	userFile := writeFile(t, dir, "user", "key-from-file\n")
	passwordFile := writeFile(t, dir, "password", "pw-from-file\n")
	tests := []struct {
		name string
		env  map[string]string
		want string // the Authorization upstream
	}{
		{"user alone (Juspay)", basicVars(nil), "key_live_1:"},
		{"user and password", basicVars(map[string]string{"BASIC_PASSWORD": "pw-literal"}), "key_live_1:pw-literal"},
		{"both from files", basicVars(map[string]string{"BASIC_USER": unset, "BASIC_USER_FILE": userFile, "BASIC_PASSWORD_FILE": passwordFile}), "key-from-file:pw-from-file"},
		{"with SET_HEADERS", basicVars(map[string]string{"SET_HEADERS": "x-merchantid=stock, x-routing-id=c-1"}), "key_live_1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.env)
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			pc := built(t, c).proxy
			h := http.Header{"Authorization": {"Bearer app"}}
			if _, err := pc.Injector.Inject(h, nil, nil); err != nil {
				t.Fatalf("Inject() error = %v", err)
			}
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(tc.want))
			if got := h["Authorization"]; !slices.Equal(got, []string{want}) {
				t.Errorf("Inject() Authorization = %q, want [%q]", got, want)
			}
			if c.SetHeaders != "" && pc.SetHeaders.Get("X-Merchantid") != "stock" {
				t.Errorf("proxy SetHeaders = %v, want X-Merchantid: stock", pc.SetHeaders)
			}
		})
	}
}

// A password file rotated after start-up is used without a restart: from
// the watch's next look at it, a second later (in a bubble's time).
func TestBasicConfigRotatedFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		passwordFile := writeFile(t, dir, "password", "pw-1\n")
		c, err := loadConfig(basicVars(map[string]string{"BASIC_PASSWORD_FILE": passwordFile}))
		if err != nil {
			t.Fatalf("loadConfig() error = %v", err)
		}
		inj := built(t, c).proxy.Injector
		later := time.Now().Add(time.Minute)
		next := writeFile(t, dir, "password.new", "pw-2\n")
		if err := os.Chtimes(next, later, later); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(next, passwordFile); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second + time.Millisecond)
		h := http.Header{}
		inj.Inject(h, nil, nil)
		if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("key_live_1:pw-2")); h.Get("Authorization") != want {
			t.Errorf("Authorization = %q a second after the rotation, want %q", h.Get("Authorization"), want)
		}
	})
}

func TestBasicConfigProblems(t *testing.T) {
	dir := t.TempDir()
	userFile := writeFile(t, dir, "user", "key-from-file\n")
	passwordFile := writeFile(t, dir, "password", "pw-from-file\n")
	emptyFile := writeFile(t, dir, "empty", "\n")
	colonFile := writeFile(t, dir, "colon", "key:colon\n")
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		want     string
	}{
		{"a token source", basicVars(map[string]string{"TOKEN_SOURCE": "json", "TOKEN_URL": "https://a.example/t", "CLIENT_ID": "c", "CLIENT_SECRET": "s"}), "TOKEN_SOURCE", "must be none with AUTHSIDECAR_INJECT=basic"},
		{"no user", basicVars(map[string]string{"BASIC_USER": unset, "BASIC_PASSWORD": "pw-literal"}), "BASIC_USER", "required (or AUTHSIDECAR_BASIC_USER_FILE)"},
		{"user twice", basicVars(map[string]string{"BASIC_USER_FILE": userFile}), "BASIC_USER", "not both"},
		{"password twice", basicVars(map[string]string{"BASIC_PASSWORD": "pw-literal", "BASIC_PASSWORD_FILE": passwordFile}), "BASIC_PASSWORD", "not both"},
		{"user file missing", basicVars(map[string]string{"BASIC_USER": unset, "BASIC_USER_FILE": filepath.Join(dir, "missing")}), "BASIC_USER_FILE", "no such file"},
		{"password file missing", basicVars(map[string]string{"BASIC_PASSWORD_FILE": filepath.Join(dir, "missing")}), "BASIC_PASSWORD_FILE", "no such file"},
		{"user file empty", basicVars(map[string]string{"BASIC_USER": unset, "BASIC_USER_FILE": emptyFile}), "BASIC_USER_FILE", "user name is empty"},
		{"user with a colon", basicVars(map[string]string{"BASIC_USER": "key:colon"}), "BASIC_USER", "':'"},
		{"user file with a colon", basicVars(map[string]string{"BASIC_USER": unset, "BASIC_USER_FILE": colonFile}), "BASIC_USER_FILE", "':'"},
		{"password with a tab", basicVars(map[string]string{"BASIC_PASSWORD": "pw\tctl"}), "BASIC_PASSWORD", "control character"},
		{"user without basic", minimal("none", map[string]string{"BASIC_USER": "key_live_1"}), "BASIC_USER", "not used: set AUTHSIDECAR_INJECT=basic"},
		{"password file without basic", minimal("json", map[string]string{"BASIC_PASSWORD_FILE": passwordFile}), "BASIC_PASSWORD_FILE", "not used"},
		{"SET_HEADERS sets Authorization", basicVars(map[string]string{"SET_HEADERS": "authorization=Basic a2V5X2xpdmVfMTo="}), "SET_HEADERS", `"authorization" is set by AUTHSIDECAR_INJECT=basic`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.env)
			lines := problemLines(err)
			if n := linesNaming(lines, envPrefix+tc.variable); n != 1 || len(lines) != 1 {
				t.Fatalf("loadConfig() problems = %q, want one, naming %s%s", lines, envPrefix, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig() error = %v, want %q", err, tc.want)
			}
			for _, secret := range append(basicSecrets, "a2V5X2xpdmVfMTo") {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("loadConfig() error = %v, shows a credential", err)
				}
			}
			checkEveryLineNamesAVariable(t, err)
		})
	}
}

// A credential file that vanished after the configuration was checked is
// reported by build, naming its variable.
func TestBuildBasicFileGone(t *testing.T) {
	dir := t.TempDir()
	passwordFile := writeFile(t, dir, "password", "pw-from-file\n")
	c, err := loadConfig(basicVars(map[string]string{"BASIC_PASSWORD_FILE": passwordFile}))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(passwordFile); err != nil {
		t.Fatal(err)
	}
	if _, err := build(c, slog.New(slog.DiscardHandler)); err == nil || !strings.HasPrefix(err.Error(), envPrefix+"BASIC_PASSWORD_FILE: ") {
		t.Errorf("build() error = %v, want one naming %sBASIC_PASSWORD_FILE", err, envPrefix)
	}
}
