package tokens

import (
	"fmt"
	"os"
	"strings"
)

// Secret is a credential given either literally or as a file. A file is
// re-read at every use, so a rotated Kubernetes Secret is picked up at the
// next token fetch without a restart. The zero Secret is empty.
type Secret struct {
	value string
	path  string
}

// Literal returns a Secret holding v.
func Literal(v string) Secret { return Secret{value: v} }

// File returns a Secret read from path at each use, with surrounding white
// space trimmed.
func File(path string) Secret { return Secret{path: path} }

// Read returns the secret's current value.
func (s Secret) Read() (string, error) {
	if s.path == "" {
		return s.value, nil
	}
	b, err := ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("tokens: read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// IsZero reports whether s is the zero Secret: neither a value nor a file.
func (s Secret) IsZero() bool { return s.value == "" && s.path == "" }

// String hides the secret.
func (s Secret) String() string { return "[secret redacted]" }

// GoString hides the secret from %#v too.
func (s Secret) GoString() string { return s.String() }

// ReadFile reads a regular file of at most 1 MiB: a larger file, a directory
// or a device such as /dev/zero is an error rather than a hang.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
