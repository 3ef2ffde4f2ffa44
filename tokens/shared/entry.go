package shared

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/authsidecar/authsidecar/tokens"
)

// entryVersion is the first byte of every stored entry, so that a later
// format can be told apart.
const entryVersion = 1

// entry is what is stored, encrypted, for a token.
type entry struct {
	Value  []byte            `json:"v"` // bytes, not a string: JSON would mangle invalid UTF-8
	Label  []byte            `json:"l,omitempty"`
	Extra  map[string]string `json:"x,omitempty"`
	Expiry int64             `json:"e"` // Unix milliseconds
	Issued int64             `json:"i"` // Unix milliseconds, when the fetch that got it ended
}

// sealer encrypts and decrypts entries with AES-256-GCM. The format version
// and the entry's Redis key are the additional data: an entry copied under
// another key is refused.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("shared: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, fmt.Errorf("shared: %w", err)
	}
	return sealer{aead}, nil
}

// seal returns tok, fetched at issued, encrypted for the Redis key name.
func (s sealer) seal(name string, tok *tokens.Token, issued time.Time) ([]byte, error) {
	plain, err := json.Marshal(entry{
		Value: []byte(tok.Value), Label: []byte(tok.Label), Extra: tok.Extra,
		Expiry: tok.Expiry.UnixMilli(), Issued: issued.UnixMilli(),
	})
	if err != nil {
		return nil, fmt.Errorf("shared: encode entry: %w", err)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = entryVersion
	rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plain, additional(name)), nil
}

// errEntry is an entry that cannot be used: another format, another key, or
// tampered with.
var errEntry = errors.New("shared: unreadable entry")

// open decrypts an entry read from the Redis key name.
func (s sealer) open(name string, b []byte) (*tokens.Token, time.Time, error) {
	n := s.aead.NonceSize()
	if len(b) < 1+n+s.aead.Overhead() || b[0] != entryVersion {
		return nil, time.Time{}, errEntry
	}
	plain, err := s.aead.Open(nil, b[1:1+n], b[1+n:], additional(name))
	if err != nil {
		return nil, time.Time{}, errEntry
	}
	var e entry
	if err := json.Unmarshal(plain, &e); err != nil || len(e.Value) == 0 {
		return nil, time.Time{}, errEntry
	}
	tok := &tokens.Token{Value: string(e.Value), Label: string(e.Label), Extra: e.Extra, Expiry: time.UnixMilli(e.Expiry)}
	return tok, time.UnixMilli(e.Issued), nil
}

// additional is the data authenticated with an entry: its version and name.
func additional(name string) []byte {
	return append([]byte{entryVersion}, name...)
}
