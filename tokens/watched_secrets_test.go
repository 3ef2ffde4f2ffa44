package tokens

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// expireWatch makes w's next Get look at its files, as if the check interval
// had passed since the last look.
func expireWatch[T any](w *Watched[T]) {
	w.checked.Store(time.Now().Add(-2 * watchInterval).UnixNano())
}

func TestWatchSecrets(t *testing.T) {
	dir := t.TempDir()
	userFile, passwordFile := filepath.Join(dir, "user"), filepath.Join(dir, "password")
	writeFile(t, userFile, "  user-from-file\n")
	writeFile(t, passwordFile, "password-1\n")
	builds := 0
	join := func(v []string) (string, error) {
		builds++
		if slices.Contains(v, "broken") {
			return "", errors.New("tokens: test: a value is broken")
		}
		return strings.Join(v, "|"), nil
	}

	w, err := WatchSecrets("test secrets", []Secret{Literal("lit"), File(userFile), Literal(""), File(passwordFile)}, join, nil)
	if err != nil {
		t.Fatalf("WatchSecrets() error = %v", err)
	}
	if got, want := w.Get(), "lit|user-from-file||password-1"; got != want {
		t.Fatalf("Get() = %q, want %q", got, want)
	}

	replaceFile(t, passwordFile, []byte("password-2\n"))
	if got, want := w.Get(), "lit|user-from-file||password-1"; got != want {
		t.Errorf("Get() within the check interval = %q, want %q (files are looked at once a second)", got, want)
	}
	expireWatch(w)
	if got, want := w.Get(), "lit|user-from-file||password-2"; got != want {
		t.Errorf("Get() after the rotation = %q, want %q", got, want)
	}

	replaceFile(t, passwordFile, []byte("broken"))
	expireWatch(w)
	if got, want := w.Get(), "lit|user-from-file||password-2"; got != want {
		t.Errorf("Get() after a rotation build refuses = %q, want the previous %q", got, want)
	}
	if builds != 3 {
		t.Errorf("build called %d times, want 3 (start, rotation, refused rotation)", builds)
	}
}

func TestWatchSecretsLiteralIsConstant(t *testing.T) {
	builds := 0
	w, err := WatchSecrets("test secrets", []Secret{Literal("a"), {}}, func(v []string) ([]string, error) {
		builds++
		return v, nil
	}, nil)
	if err != nil {
		t.Fatalf("WatchSecrets() error = %v", err)
	}
	expireWatch(w)
	if got := w.Get(); !slices.Equal(got, []string{"a", ""}) {
		t.Errorf("Get() = %q, want [a \"\"]", got)
	}
	if builds != 1 {
		t.Errorf("build called %d times, want once", builds)
	}
	if n := testing.AllocsPerRun(100, func() { w.Get() }); n != 0 {
		t.Errorf("Get() allocates %v times, want 0", n)
	}
}

func TestWatchSecretsErrors(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	writeFile(t, secretFile, "s3cr3t-value\n")
	tests := []struct {
		name    string
		secrets []Secret
		wantErr string
	}{
		{"missing file", []Secret{File(filepath.Join(dir, "missing"))}, "tokens: test secrets: "},
		{"build refuses", []Secret{File(secretFile)}, "tokens: test: refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WatchSecrets("test secrets", tc.secrets, func([]string) (int, error) {
				return 0, errors.New("tokens: test: refused")
			}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("WatchSecrets() error = %v, want one starting %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("WatchSecrets() error = %v, quotes the secret", err)
			}
		})
	}
}
