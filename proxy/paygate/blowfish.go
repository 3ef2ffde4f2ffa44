package paygate

import (
	"fmt"

	//lint:ignore SA1019 Blowfish is Paygate's default cipher: the provider chose it, not us
	"golang.org/x/crypto/blowfish"
)

// NewBlowfish returns Paygate's default cipher: Blowfish in ECB mode over
// 8-byte blocks, the plain text padded with zero bytes to a multiple of 8,
// Data the upper-case hex of the cipher text. key is the merchant's
// encryption password, its bytes as they are, 1 to 56 of them.
func NewBlowfish(key []byte) (Cipher, error) {
	if len(key) < 1 || len(key) > 56 {
		return nil, fmt.Errorf("paygate: blowfish key must be 1 to 56 bytes, got %d", len(key))
	}
	b, err := blowfish.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("paygate: blowfish key: %d bytes refused", len(key))
	}
	return &blowfishCipher{b: b}, nil
}

type blowfishCipher struct {
	b *blowfish.Cipher
}

func (c *blowfishCipher) Encrypt(plain []byte) (string, error) {
	n := (len(plain) + blowfish.BlockSize - 1) / blowfish.BlockSize * blowfish.BlockSize
	buf := make([]byte, n, n+2*n)
	copy(buf, plain) // the rest stays zero: Paygate's padding
	for i := 0; i < n; i += blowfish.BlockSize {
		c.b.Encrypt(buf[i:i+blowfish.BlockSize], buf[i:i+blowfish.BlockSize])
	}
	return string(appendHex(buf[n:], buf[:n])), nil
}

func (c *blowfishCipher) Decrypt(data string, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative Len", ErrMalformed)
	}
	buf, err := decodeHex(data)
	if err != nil {
		return nil, err
	}
	if len(buf)%blowfish.BlockSize != 0 {
		return nil, fmt.Errorf("%w: blowfish Data is not a whole number of 8-byte blocks", ErrMalformed)
	}
	for i := 0; i < len(buf); i += blowfish.BlockSize {
		c.b.Decrypt(buf[i:i+blowfish.BlockSize], buf[i:i+blowfish.BlockSize])
	}
	return cut(buf, n)
}
