package tokens

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A token no header could carry must fail the fetch, not be served until
// it expires while every request fails.
func TestCacheRefusesTokensWithControlCharacters(t *testing.T) {
	tests := []struct {
		name string
		tok  Token
	}{
		{"CR LF in the value", Token{Value: "abc\r\nX-Injected: 1"}},
		{"NUL in the label", Token{Value: "abc", Label: "label\x00"}},
		{"DEL in the value", Token{Value: "abc\x7f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				tok := tc.tok
				tok.Expiry = time.Now().Add(time.Hour)
				c := NewCache(SourceFunc(func(context.Context) (*Token, error) { return &tok, nil }), CacheOptions{MaxWait: 200 * time.Millisecond})
				run(t, c)
				_, err := c.Token(context.Background())
				if !errors.Is(err, ErrNoToken) || c.Valid() {
					t.Errorf("Token() for %q/%q error = %v, Valid() = %v; want ErrNoToken and not valid", tok.Value, tok.Label, err, c.Valid())
				}
			})
		})
	}
}
