package tokens

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadLimited: up to 1 MiB is read whole; past it, and from a reader
// that never ends, errTooLarge; a reader's own error is returned as it is.
func TestReadLimited(t *testing.T) {
	readErr := errors.New("connection reset")
	tests := []struct {
		name    string
		r       io.Reader
		wantLen int
		wantErr error
	}{
		{"empty", strings.NewReader(""), 0, nil},
		{"1 MiB", strings.NewReader(strings.Repeat("x", maxRead)), maxRead, nil},
		{"1 MiB and a byte", strings.NewReader(strings.Repeat("x", maxRead+1)), 0, errTooLarge},
		{"endless", iotest.OneByteReader(zeros{}), 0, errTooLarge},
		{"read error", iotest.ErrReader(readErr), 0, readErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := readLimited(tc.r)
			if !errors.Is(err, tc.wantErr) || len(b) != tc.wantLen {
				t.Errorf("readLimited() = %d bytes, %v; want %d bytes, %v", len(b), err, tc.wantLen, tc.wantErr)
			}
		})
	}
}

// zeros reads as an endless run of zero bytes, like /dev/zero.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHasControl: the one check for what no header can carry.
func TestHasControl(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"opaque-token", false},
		{"Bearer a.b.c", false},
		{"with\ttab", false},
		{"café €", false},
		{"\xff\xfe invalid UTF-8", false},
		{"line\nbreak", true},
		{"carriage\rreturn", true},
		{"nul\x00", true},
		{"del\x7f", true},
		{"\x1b[31m", true},
	}
	for _, tc := range tests {
		if got := hasControl(tc.in); got != tc.want {
			t.Errorf("hasControl(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
