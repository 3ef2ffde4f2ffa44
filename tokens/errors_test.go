package tokens

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRetrieveErrorError(t *testing.T) {
	tests := []struct {
		name string
		err  RetrieveError
		want string
	}{
		{"status only", RetrieveError{Status: 503}, "tokens: provider refused: status 503"},
		{"TezPay detail", RetrieveError{Status: 401, Description: "Invalid credentials"}, "tokens: provider refused: status 401: Invalid credentials"},
		{"OAuth2 code and description", RetrieveError{Status: 400, Code: "invalid_client", Description: "Client authentication failed"},
			"tokens: provider refused: status 400: invalid_client: Client authentication failed"},
		{"code only", RetrieveError{Status: 400, Code: "invalid_scope"}, "tokens: provider refused: status 400: invalid_scope"},
		{"Retry-After not shown", RetrieveError{Status: 429, RetryAfter: time.Minute}, "tokens: provider refused: status 429"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestErrNoTokenWraps: the cache's failures can be told apart with errors.Is
// and errors.As, as the proxy does.
func TestErrNoTokenWraps(t *testing.T) {
	refused := &RetrieveError{Status: 401, Description: "Invalid credentials"}
	err := fmt.Errorf("%w: %w", ErrNoToken, refused)
	var re *RetrieveError
	if !errors.Is(err, ErrNoToken) || !errors.As(err, &re) || re != refused {
		t.Errorf("errors.Is/As(%v) failed", err)
	}
	if got, want := ErrNoToken.Error(), "tokens: no valid token"; got != want {
		t.Errorf("ErrNoToken.Error() = %q, want %q", got, want)
	}
}

func TestCleanDescription(t *testing.T) {
	const secret = "example_client_secret_key_123456789abcdef"
	long := strings.Repeat("a", maxDescription+100)
	runes := strings.Repeat("a", maxDescription-1) + "€€" // the cut falls inside a 3-byte rune
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"plain", "Invalid credentials", nil, "Invalid credentials"},
		{"trimmed", "\n  Invalid credentials \t", nil, "Invalid credentials"},
		{"secret redacted", "client_secret=" + secret + " is not valid", []string{secret}, "client_secret=[redacted] is not valid"},
		{"every occurrence", secret + "/" + secret, []string{secret}, "[redacted]/[redacted]"},
		{"several secrets", "id=abc secret=xyz", []string{"abc", "xyz"}, "id=[redacted] secret=[redacted]"},
		{"empty secret ignored", "Invalid credentials", []string{""}, "Invalid credentials"},
		{"long", long, nil, long[:maxDescription] + "…"},
		{"secret beyond the cut", long + secret, []string{secret}, long[:maxDescription] + "…"},
		{"cut inside a rune", runes, nil, runes[:maxDescription-1] + "…"},
		{"invalid UTF-8 dropped", "bad \xff\xfe byte", nil, "bad  byte"},
		// The invalid byte is dropped after redaction, which joins the
		// secret together again: redaction must not depend on it.
		{"secret split by an invalid byte", "echo example_client_secret\xff_key_123456789abcdef", []string{secret}, "echo [redacted]"},
		{"JSON-escaped echo", `request was {"client_secret":"s3\"cr\u003c3t"}`, []string{`s3"cr<3t`}, `request was {"client_secret":"[redacted]"}`},
		{"URL-encoded echo", "body: grant_type=client_credentials&client_secret=s3+cr%26t", []string{"s3 cr&t"}, "body: grant_type=client_credentials&client_secret=[redacted]"},
		// A secret read from a binary file may not be UTF-8; replacing its
		// bytes must not leave half a rune behind.
		{"secret not UTF-8", "café", []string{"\xc3"}, "café"},
		// The JSON-escaped form of `dir"` is `dir\"`, not `dir\`: text that
		// is not an echo of the secret stays.
		{"no echo of a secret ending in a quote", `C:\dir\file`, []string{`dir"`}, `C:\dir\file`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cleanDescription(tc.in, tc.secrets...)
			if got != tc.want {
				t.Errorf("cleanDescription() = %q, want %q", got, tc.want)
			}
			if !utf8.ValidString(got) || len(got) > maxDescription+len("…") {
				t.Errorf("cleanDescription() = %q: %d bytes, valid UTF-8 %v", got, len(got), utf8.ValidString(got))
			}
			for _, s := range tc.secrets {
				if s != "" && utf8.ValidString(s) && strings.Contains(got, s) {
					t.Errorf("cleanDescription() = %q, which contains the secret %q", got, s)
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		want    time.Duration
		atLeast bool // want is a lower bound
	}{
		{name: "none", header: "", want: 0},
		{name: "seconds", header: "120", want: 2 * time.Minute},
		{name: "zero", header: "0", want: 0},
		{name: "negative", header: "-5", want: 0},
		{name: "junk", header: "soon", want: 0},
		{name: "date", header: time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), want: time.Hour},
		{name: "date in the past", header: time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), want: 0},
		// A provider asking for an absurdly long wait must get the longest
		// one, not a wrapped-around int64: 18446744074s*1e9 wraps to 290ms.
		{name: "huge seconds", header: "18446744074", want: maxRetryAfter, atLeast: true},
		{name: "larger seconds", header: "9223372037", want: maxRetryAfter, atLeast: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := retryAfter(tc.header)
			switch {
			case tc.atLeast && got < tc.want:
				t.Errorf("retryAfter(%q) = %v, want at least %v", tc.header, got, tc.want)
			case !tc.atLeast && (got > tc.want || got < tc.want-2*time.Second):
				t.Errorf("retryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}
