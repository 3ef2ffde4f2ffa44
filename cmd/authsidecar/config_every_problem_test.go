package main

import (
	"slices"
	"testing"
)

// A problem that stops one check does not hide the others: every variable
// at fault is named.
func TestLoadConfigNamesEveryVariableAtFault(t *testing.T) {
	tests := []struct {
		name   string
		source string
		env    map[string]string
		want   []string
	}{
		{"an unknown INJECT beside a bad SIGN_PATH and a bad expiry field", "json",
			map[string]string{"INJECT": "bogus", "SIGN_PATH": "relative", "JSON_EXPIRES_AT_FIELD": "a..b"},
			[]string{"INJECT", "SIGN_PATH", "JSON_EXPIRES_AT_FIELD", "SIGNING_KEY_FILE", "SIGNING_KEY_ID", "MERCHANT_ID"}},
		{"private-key-jwt without a key beside a bad TOKEN_URL", "oauth2",
			map[string]string{"OAUTH2_AUTH_STYLE": "private-key-jwt", "CLIENT_SECRET": unset, "TOKEN_URL": "ftp://x"},
			[]string{"CLIENT_ASSERTION_KEY_FILE", "TOKEN_URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(minimal(tc.source, tc.env))
			lines := problemLines(err)
			for _, v := range tc.want {
				if linesNaming(lines, envPrefix+v) != 1 {
					t.Errorf("%s%s named %d times, want once, in:\n%q", envPrefix, v, linesNaming(lines, envPrefix+v), lines)
				}
			}
			if len(lines) != len(tc.want) {
				t.Errorf("loadConfig() reported %d problems, want %d:\n%q", len(lines), len(tc.want), lines)
			}
		})
	}
}

// SCOPES may be separated by spaces, as OAuth2 writes them, as well as by
// commas.
func TestScopesSeparatedBySpaces(t *testing.T) {
	c, err := loadConfig(minimal("oauth2", map[string]string{"SCOPES": "read write, payments:refund"}))
	if err != nil {
		t.Fatalf("loadConfig() error = %v", err)
	}
	if got, want := c.scopes(), []string{"read", "write", "payments:refund"}; !slices.Equal(got, want) {
		t.Errorf("scopes() = %q, want %q", got, want)
	}
}
