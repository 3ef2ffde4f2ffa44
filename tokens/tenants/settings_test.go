package tenants

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var allowed = []string{"MERCHANT_ID", "SCOPES", "TOKEN_PARAMS"}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string // a part of the error; "" for none
	}{
		{"empty", "", map[string]string{}, ""},
		{"allowed keys", "MERCHANT_ID=m-123\nSCOPES=read write\n", map[string]string{"MERCHANT_ID": "m-123", "SCOPES": "read write"}, ""},
		{"comments and blank lines", "# the merchant\n\n  # indented\nMERCHANT_ID=m-1\n\n", map[string]string{"MERCHANT_ID": "m-1"}, ""},
		{"trimmed", "  SCOPES =  a b \r\n", map[string]string{"SCOPES": "a b"}, ""},
		{"'=' in the value", "TOKEN_PARAMS=audience=x&resource=y", map[string]string{"TOKEN_PARAMS": "audience=x&resource=y"}, ""},
		{"empty value", "SCOPES=", map[string]string{"SCOPES": ""}, ""},
		{"quotes kept", `SCOPES="a b"`, map[string]string{"SCOPES": `"a b"`}, ""},
		{"byte order mark", "\uFEFFMERCHANT_ID=m-1", map[string]string{"MERCHANT_ID": "m-1"}, ""},
		{"no final newline", "MERCHANT_ID=m-1", map[string]string{"MERCHANT_ID": "m-1"}, ""},
		{"unknown key", "MERCHANT_ID=m-1\nCLIENT_SECRET=hunter2-value", nil, `line 2: unknown key "CLIENT_SECRET"`},
		{"duplicate", "SCOPES=a\nMERCHANT_ID=m\nSCOPES=b", nil, `line 3: key "SCOPES" already set on line 1`},
		{"no '='", "MERCHANT_ID=m\nhunter2-value", nil, "line 2 is not KEY=value"},
		{"no key", "=hunter2-value", nil, "line 1 has no key"},
		{"lower-case key", "merchant_id=hunter2-value", nil, "line 1: a key is upper-case letters"},
		{"key with a space", "MERCHANT ID=hunter2-value", nil, "line 1: a key is upper-case"},
		{"long key", strings.Repeat("K", 65) + "=hunter2-value", nil, "line 1: key longer than 64 bytes"},
		{"control character", "SCOPES=a\x00hunter2-value", nil, `line 1: the value of "SCOPES" holds a control character`},
		{"huge", strings.Repeat("# padding\n", 7000), nil, "larger than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSettings([]byte(tc.in), allowed)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSettings(%q) = %v, want an error with %q", tc.in, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("parseSettings(%q) = %v: the error quotes a value", tc.in, err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tc.want) {
				t.Fatalf("parseSettings(%q) = %v, %v, want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestSettingsOfTenants reads settings files through a Dir: a bad one makes
// its tenant incomplete, with an error that names the tenant and the key but
// not the value, and no other tenant is affected.
func TestSettingsOfTenants(t *testing.T) {
	dir := t.TempDir()
	good := creds("id", "secret")
	writeTenant(t, dir, "m-ok", good)
	must(t, os.WriteFile(filepath.Join(dir, "m-ok", "settings"), []byte("# merchant\nMERCHANT_ID=m-123\nSCOPES = payments \n"), 0o644))
	writeTenant(t, dir, "m-none", good)
	writeTenant(t, dir, "m-unknown", good)
	must(t, os.WriteFile(filepath.Join(dir, "m-unknown", "settings"), []byte("MERCHANT_ID=m-1\nCLIENT_SECRET=hunter2-value\n"), 0o644))
	writeTenant(t, dir, "m-dup", good)
	must(t, os.WriteFile(filepath.Join(dir, "m-dup", "settings"), []byte("SCOPES=a\nSCOPES=hunter2-value\n"), 0o644))
	writeTenant(t, dir, "m-huge", good)
	must(t, os.WriteFile(filepath.Join(dir, "m-huge", "settings"), []byte("SCOPES="+strings.Repeat("x", 70<<10)), 0o644))
	writeTenant(t, dir, "m-dir", good)
	must(t, os.Mkdir(filepath.Join(dir, "m-dir", "settings"), 0o755))

	d := open(t, dir, nil, 0)
	tn, err := d.Lookup("m-ok")
	if err != nil {
		t.Fatalf("Lookup(m-ok) = %v", err)
	}
	if want := map[string]string{"MERCHANT_ID": "m-123", "SCOPES": "payments"}; !maps.Equal(tn.Settings, want) {
		t.Errorf("Lookup(m-ok).Settings = %v, want %v", tn.Settings, want)
	}
	if tn, err := d.Lookup("m-none"); err != nil || tn.Settings != nil {
		t.Errorf("Lookup(m-none) = %+v, %v, want nil settings", tn, err)
	}
	for name, want := range map[string]string{
		"m-unknown": `tenants: tenant "m-unknown" is incomplete: settings line 2: unknown key "CLIENT_SECRET"`,
		"m-dup":     `tenants: tenant "m-dup" is incomplete: settings line 2: key "SCOPES" already set on line 1`,
		"m-huge":    `tenants: tenant "m-huge" is incomplete: settings file is larger than 65536 bytes`,
		"m-dir":     `tenants: tenant "m-dir" is incomplete: settings file is not a regular file`,
	} {
		tn, err := d.Lookup(name)
		if tn != nil || !errors.Is(err, ErrIncompleteTenant) || err.Error() != want {
			t.Errorf("Lookup(%s) = %v, %v, want %q", name, tn, err, want)
		}
	}
}

// FuzzParseSettings feeds parseSettings any file: it must not panic; what
// it accepts has allowed keys and trimmed values free of control
// characters; and its error never quotes a value nor a line without '='.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		"MERCHANT_ID=m-123\nSCOPES=read write\n",
		"# c\n\nTOKEN_PARAMS=a=b&c=d\r\n",
		"FOO=bar", "SCOPES=a\nSCOPES=b", "novalue", "=x", "lower=x", "\uFEFFSCOPES=x", "SCOPES=\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSettings(data, allowed)
		if err == nil {
			for k, v := range m {
				if !validKey(k) || !strings.Contains(strings.Join(allowed, " "), k) {
					t.Fatalf("parseSettings(%q) accepted key %q", data, k)
				}
				if v != strings.TrimSpace(v) || hasControl(v) {
					t.Fatalf("parseSettings(%q)[%s] = %q: untrimmed or a control character", data, k, v)
				}
			}
		}
		// The same lines with every value, and every line without '=',
		// replaced by a canary: no error may quote it.
		lines := strings.Split(string(data), "\n")
		for i, line := range lines {
			trimmed := strings.TrimSpace(line)
			switch key, _, ok := strings.Cut(line, "="); {
			case trimmed == "" || trimmed[0] == '#':
			case ok:
				lines[i] = key + "=" + fmt.Sprint("canary-value-", i)
			default:
				lines[i] = fmt.Sprint("canary-line-", i)
			}
		}
		if _, err := parseSettings([]byte(strings.Join(lines, "\n")), allowed); err != nil && strings.Contains(err.Error(), "canary") {
			t.Fatalf("parseSettings(%q) = %v: the error quotes a value", lines, err)
		}
	})
}
