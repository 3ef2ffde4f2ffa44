package paygate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"strings"
)

// NewAES returns Paygate's AES cipher: AES-CBC with a fresh random 16-byte
// IV per message and PKCS#7 padding, Data = hex(IV) + "-" + hex(cipher
// text), both upper-case. key is 16, 24 or 32 bytes (AES-128, -192, -256).
func NewAES(key []byte) (Cipher, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("paygate: aes key must be 16, 24 or 32 bytes, got %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("paygate: aes key: %d bytes refused", len(key))
	}
	return &aesCipher{b: b}, nil
}

type aesCipher struct {
	b cipher.Block
}

func (c *aesCipher) Encrypt(plain []byte) (string, error) {
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	n := len(plain) + pad
	// One buffer: IV, then the padded text, then room for the hex.
	buf := make([]byte, aes.BlockSize+n, aes.BlockSize+n+2*(aes.BlockSize+n)+1)
	iv, body := buf[:aes.BlockSize], buf[aes.BlockSize:]
	if _, err := rand.Read(iv); err != nil {
		return "", fmt.Errorf("paygate: aes iv: %w", err)
	}
	copy(body, plain)
	for i := len(plain); i < n; i++ {
		body[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.b, iv).CryptBlocks(body, body)
	out := appendHex(buf[len(buf):], iv)
	out = append(out, '-')
	out = appendHex(out, body)
	return string(out), nil
}

func (c *aesCipher) Decrypt(data string, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative Len", ErrMalformed)
	}
	ivHex, bodyHex, ok := strings.Cut(data, "-")
	if !ok {
		return nil, fmt.Errorf("%w: aes Data has no IV separator", ErrMalformed)
	}
	if len(ivHex) != 2*aes.BlockSize {
		return nil, fmt.Errorf("%w: aes IV is not 16 bytes", ErrMalformed)
	}
	iv, err := decodeHex(ivHex)
	if err != nil {
		return nil, err
	}
	body, err := decodeHex(bodyHex)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 || len(body)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: aes Data is not a whole number of 16-byte blocks", ErrMalformed)
	}
	cipher.NewCBCDecrypter(c.b, iv).CryptBlocks(body, body)
	return cut(body, n)
}
