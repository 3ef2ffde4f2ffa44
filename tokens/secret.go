package tokens

import (
	"fmt"
	"io"
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
	b, err := readLimited(s.path)
	if err != nil {
		return "", fmt.Errorf("tokens: read secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// String hides the secret.
func (s Secret) String() string { return "[secret redacted]" }

// GoString hides the secret from %#v too.
func (s Secret) GoString() string { return s.String() }

// readLimited reads at most 1 MiB of a file: more is an error, and a path
// such as /dev/zero cannot hang a fetch.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err == nil && len(b) > 1<<20 {
		err = fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return b, err
}
