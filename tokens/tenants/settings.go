package tenants

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// maxKeyLen is the longest settings key.
const maxKeyLen = 64

// parseSettings parses a settings file: KEY=value lines, where KEY is one of
// allowed and value is everything after the first '=', with surrounding
// white space trimmed and no quoting; blank lines and lines starting with
// '#' are skipped. A file of no setting gives an empty map. Its error names
// a line or a key, never a value.
func parseSettings(b []byte, allowed []string) (map[string]string, error) {
	if len(b) > maxSettings {
		return nil, fmt.Errorf("settings file is larger than %d bytes", maxSettings)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF")) // a byte order mark, from an editor
	m := map[string]string{}
	lineOf := map[string]int{}
	for n, line := range strings.Split(string(b), "\n") {
		n++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("settings line %d is not KEY=value", n)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case key == "":
			return nil, fmt.Errorf("settings line %d has no key", n)
		case len(key) > maxKeyLen:
			return nil, fmt.Errorf("settings line %d: key longer than %d bytes", n, maxKeyLen)
		case !validKey(key):
			return nil, fmt.Errorf("settings line %d: a key is upper-case letters, digits and '_'", n)
		case !slices.Contains(allowed, key):
			return nil, fmt.Errorf("settings line %d: unknown key %q", n, key)
		case lineOf[key] != 0:
			return nil, fmt.Errorf("settings line %d: key %q already set on line %d", n, key, lineOf[key])
		case hasControl(value):
			return nil, fmt.Errorf("settings line %d: the value of %q holds a control character", n, key)
		}
		// The map keeps the configured key and a copy of the value, not the
		// whole file they are part of.
		key = allowed[slices.Index(allowed, key)]
		m[key], lineOf[key] = strings.Clone(value), n
	}
	return m, nil
}

// validKey reports whether k is a settings key: 1 to 64 upper-case ASCII
// letters, digits and '_'.
func validKey(k string) bool {
	if k == "" || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// hasControl reports whether s holds a control character other than tab: no
// HTTP header can carry it.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}
