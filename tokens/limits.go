package tokens

import (
	"fmt"
	"io"
	"strings"
)

// maxRead bounds what is read of a provider's answer and of a file: a token
// endpoint's answer, a token, credential or key file.
const maxRead = 1 << 20

// errTooLarge is the error of an answer or a file of more than maxRead
// bytes; callers say which one.
var errTooLarge = fmt.Errorf("larger than %d bytes (1 MiB)", maxRead)

// readLimited reads r to its end, and fails with errTooLarge after maxRead
// bytes: a huge answer, or a device such as /dev/zero, is an error rather
// than a hog or a hang.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxRead+1))
	if err == nil && len(b) > maxRead {
		return nil, errTooLarge
	}
	return b, err
}

// hasControl reports whether s holds a control character other than tab:
// no HTTP header can carry it.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}
