package shared

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/authsidecar/authsidecar/tokens"
)

// KeySize is the size of the fleet's key: AES-256.
const KeySize = 32

// LoadKey reads the fleet's key from path: 32 bytes, in base64 (as `openssl
// rand -base64 32` writes it) or as 64 hex digits. Raw bytes are refused: a
// 32-character passphrase would pass for a key.
func LoadKey(path string) ([]byte, error) {
	b, err := tokens.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shared: key file: %w", err)
	}
	return ParseKey(b)
}

// ParseKey decodes a key file's content (see LoadKey).
func ParseKey(b []byte) ([]byte, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 2*KeySize {
		if k, err := hex.DecodeString(string(t)); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(t)); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, errors.New("shared: key file must hold 32 bytes in base64 (openssl rand -base64 32) or as 64 hex digits")
}

// subkeys derives from the fleet's key one key for encryption and one for
// naming entries, so that no key serves two purposes.
func subkeys(key []byte) (seal, name []byte, err error) {
	if len(key) != KeySize {
		return nil, nil, fmt.Errorf("shared: key is %d bytes, want %d", len(key), KeySize)
	}
	if seal, err = hkdf.Key(sha256.New, key, nil, "authsidecar shared cache: encryption", KeySize); err != nil {
		return nil, nil, err
	}
	if name, err = hkdf.Key(sha256.New, key, nil, "authsidecar shared cache: key names", KeySize); err != nil {
		return nil, nil, err
	}
	return seal, name, nil
}

// keyNames returns the Redis keys of the token entry and its lock for
// identity: an HMAC of the identity, so that Redis shows neither the token
// URL nor the client id, and sidecars holding different fleet keys (during a
// key rotation) use different entries instead of failing to read each other's.
func keyNames(nameKey []byte, identity []string) (entry, lock string) {
	m := hmac.New(sha256.New, nameKey)
	for _, part := range identity {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:]) // length-prefixed: ("ab","c") and ("a","bc") differ
		m.Write([]byte(part))
	}
	id := hex.EncodeToString(m.Sum(nil)[:16])
	return "authsidecar:token:" + id, "authsidecar:lock:" + id
}
