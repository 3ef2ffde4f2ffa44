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
)

// KeyFile is a private key read from a PEM file and read again when the file
// changes, so that a rotated key (a Kubernetes Secret updated in place) is
// used without a restart. It is safe for concurrent use; Signer costs an
// atomic load, and at most one stat a second.
type KeyFile struct {
	w *Watched[crypto.Signer]
}

// LoadKeyFile reads the PEM private key at path: RSA (PKCS#1 or PKCS#8) or
// ECDSA (SEC 1 or PKCS#8). log receives rotation events; nil discards them.
func LoadKeyFile(path string, log *slog.Logger) (*KeyFile, error) {
	w, err := Watch("key file", []string{path}, func(files [][]byte, old *crypto.Signer) (crypto.Signer, error) {
		s, err := parsePrivateKey(files[0])
		if err != nil {
			return nil, err
		}
		if old != nil && fmt.Sprintf("%T", *old) != fmt.Sprintf("%T", s) {
			return nil, fmt.Errorf("tokens: key file: the new key is %T, the current one %T: a rotation must keep the key type", s, *old)
		}
		return s, nil
	}, log)
	if err != nil {
		return nil, err
	}
	return &KeyFile{w: w}, nil
}

// Signer returns the current key. A changed file holding a key of another
// type, or no key, is refused and the current key kept.
func (k *KeyFile) Signer() crypto.Signer { return k.w.Get() }

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
