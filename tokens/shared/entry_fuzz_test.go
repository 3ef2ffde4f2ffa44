package shared

import (
	"bytes"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/tokens"
)

// FuzzOpenEntry: whatever Redis holds under the entry's name, open refuses
// it or returns a token with a value; it never panics. Sealed entries open
// to what was sealed.
func FuzzOpenEntry(f *testing.F) {
	s, err := newSealer(bytes.Repeat([]byte{3}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	const name = "authsidecar:token:fuzz"
	good, _ := s.seal(name, &tokens.Token{Value: "v", Label: "l", Expiry: time.UnixMilli(1700000000000)}, time.UnixMilli(1699999000000))
	f.Add(good, "v", "l")
	f.Add([]byte{}, "", "")
	f.Add([]byte{entryVersion}, "x", "")
	f.Add(append([]byte{entryVersion}, bytes.Repeat([]byte{0}, 40)...), "é", "\x00")
	f.Add([]byte("x"), "tok\xff\xfe", "label\x80") // bytes legal in a header, not UTF-8
	f.Fuzz(func(t *testing.T, stored []byte, value, label string) {
		if tok, _, err := s.open(name, stored); err == nil && tok.Value == "" {
			t.Errorf("open(%x) = empty token, no error", stored)
		}
		if value == "" {
			return
		}
		exp := time.UnixMilli(1700000000000)
		b, err := s.seal(name, &tokens.Token{Value: value, Label: label, Expiry: exp}, exp.Add(-time.Hour))
		if err != nil {
			t.Fatalf("seal() error = %v", err)
		}
		tok, issued, err := s.open(name, b)
		if err != nil {
			t.Fatalf("open(seal()) error = %v", err)
		}
		if tok.Value != value || tok.Label != label || !tok.Expiry.Equal(exp) || !issued.Equal(exp.Add(-time.Hour)) {
			t.Errorf("open(seal(%q)) = %q, %v, %v", value, tok.Value, tok.Expiry, issued)
		}
		if _, _, err := s.open(name+"x", b); err == nil {
			t.Errorf("an entry opened under another name")
		}
	})
}

// FuzzParseKey: a key file's content gives a 32-byte key or an error.
func FuzzParseKey(f *testing.F) {
	f.Add([]byte("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="))
	f.Add(bytes.Repeat([]byte("ab"), 32))
	f.Add(bytes.Repeat([]byte{0}, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseKey(b); err == nil && len(k) != KeySize {
			t.Errorf("ParseKey(%q) = %d bytes", b, len(k))
		}
	})
}
