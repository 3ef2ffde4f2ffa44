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
	for _, tok := range []*Token{
		{Value: "abc\r\nX-Injected: 1", Expiry: time.Now().Add(time.Hour)},
		{Value: "abc", Label: "label\x00", Expiry: time.Now().Add(time.Hour)},
		{Value: "abc\x7f", Expiry: time.Now().Add(time.Hour)},
	} {
		c := NewCache(SourceFunc(func(context.Context) (*Token, error) { return tok, nil }), CacheOptions{MaxWait: 200 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		_, err := c.Token(ctx)
		cancel()
		<-done
		if !errors.Is(err, ErrNoToken) || c.Valid() {
			t.Errorf("Token() for %q/%q error = %v, Valid() = %v; want ErrNoToken and not valid", tok.Value, tok.Label, err, c.Valid())
		}
	}
}
