package tokens

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSecretRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		secret  Secret
		content string // written to dir/secret first, if not empty
		want    string
		wantErr error
	}{
		{name: "literal", secret: Literal("  kept as is "), want: "  kept as is "},
		{name: "zero", secret: Secret{}, want: ""},
		{name: "file, trimmed", secret: File(filepath.Join(dir, "secret")), content: "\n  s3cret\r\n", want: "s3cret"},
		{name: "missing file", secret: File(filepath.Join(dir, "missing")), wantErr: fs.ErrNotExist},
		{name: "file over 1 MiB", secret: File(filepath.Join(dir, "secret")), content: strings.Repeat("s", maxRead+1), wantErr: errTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.content != "" {
				writeFile(t, filepath.Join(dir, "secret"), tc.content)
			}
			got, err := tc.secret.Read()
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Read() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "tokens: read secret file: ") {
				t.Errorf("Read() error = %q, want a tokens: read secret file: error", err)
			}
			if got != tc.want {
				t.Errorf("Read() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSecretFileRotation: a file is read at every use, not once.
func TestSecretFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	s := File(path)
	for _, v := range []string{"first", "second", "third"} {
		writeFile(t, path, v+"\n")
		if got, err := s.Read(); err != nil || got != v {
			t.Errorf("Read() = %q, %v, want %q", got, err, v)
		}
	}
}

// TestCredentialsRedacted: printing a Secret or a Token by mistake, or
// logging one, does not reveal it.
func TestCredentialsRedacted(t *testing.T) {
	const value = "s3cret-token-value"
	tok := &Token{Value: value, Expiry: tezpayEpoch}
	for _, format := range []string{"%v", "%+v", "%s"} {
		if got := fmt.Sprintf(format, Literal(value)); strings.Contains(got, value) {
			t.Errorf("Sprintf(%q, secret) = %q, which reveals it", format, got)
		}
		if got := fmt.Sprintf(format, tok); strings.Contains(got, value) {
			t.Errorf("Sprintf(%q, token) = %q, which reveals it", format, got)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("fetched", "token", tok, "secret", Literal(value))
	if got := buf.String(); strings.Contains(got, value) || !strings.Contains(got, tezpayEpoch.Format(time.RFC3339)) {
		t.Errorf("log line = %s, want the expiry and not the value", got)
	}
}
