package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// keyCheckInterval is how often a KeyFile looks at its file for a new key.
const keyCheckInterval = time.Second

// KeyFile is a private key read from a PEM file and read again when the file
// changes, so that a rotated key (a Kubernetes Secret updated in place) is
// used without a restart. It is safe for concurrent use; Signer costs an
// atomic load, and at most one stat a second.
type KeyFile struct {
	path    string
	log     *slog.Logger
	signer  atomic.Pointer[crypto.Signer]
	checked atomic.Int64 // UnixNano of the last look at the file

	mu      sync.Mutex
	modTime time.Time
	size    int64
}

// LoadKeyFile reads the PEM private key at path: RSA (PKCS#1 or PKCS#8) or
// ECDSA (SEC 1 or PKCS#8). log receives rotation events; nil discards them.
func LoadKeyFile(path string, log *slog.Logger) (*KeyFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &KeyFile{path: path, log: log}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

// Signer returns the current key. A changed file holding a key of another
// type, or no key, is refused and the current key kept.
func (k *KeyFile) Signer() crypto.Signer {
	now := time.Now().UnixNano()
	if last := k.checked.Load(); now-last > int64(keyCheckInterval) && k.checked.CompareAndSwap(last, now) {
		if err := k.load(); err != nil {
			k.log.Error("signing key file changed but cannot be used: keeping the previous key", "path", k.path, "error", err)
		}
	}
	return *k.signer.Load()
}

// load reads the file if it changed since the last read.
func (k *KeyFile) load() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("tokens: key file: %w", err)
	}
	if k.signer.Load() != nil && fi.ModTime().Equal(k.modTime) && fi.Size() == k.size {
		return nil
	}
	raw, err := ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("tokens: key file: %w", err)
	}
	s, err := parsePrivateKey(raw)
	if err != nil {
		return err
	}
	if old := k.signer.Load(); old != nil {
		if fmt.Sprintf("%T", *old) != fmt.Sprintf("%T", s) {
			return fmt.Errorf("tokens: key file: the new key is %T, the current one %T: a rotation must keep the key type", s, *old)
		}
		k.log.Info("signing key file changed: using the new key", "path", k.path)
	}
	k.signer.Store(&s)
	k.modTime, k.size = fi.ModTime(), fi.Size()
	k.checked.Store(time.Now().UnixNano())
	return nil
}

// parsePrivateKey reads the first private key of a PEM document: RSA in
// PKCS#1 or PKCS#8, ECDSA in SEC 1 or PKCS#8. Errors never quote the key.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("tokens: no PEM private key found")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("tokens: malformed PKCS#1 RSA private key")
			}
			return k, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("tokens: malformed SEC 1 EC private key")
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("tokens: malformed PKCS#8 private key")
			}
			switch k := k.(type) {
			case *rsa.PrivateKey:
				return k, nil
			case *ecdsa.PrivateKey:
				return k, nil
			}
			return nil, fmt.Errorf("tokens: unsupported private key type %T", k)
		}
	}
}
