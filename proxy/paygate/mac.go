package paygate

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
)

// RequestMAC is the MAC of a call that carries an amount: the upper-case
// hex of HMAC-SHA256(hmacKey, PayID*TransID*MerchantID*Amount*Currency).
// payID is empty on a first call, so the text then starts with '*'.
func RequestMAC(hmacKey []byte, payID, transID, merchantID, amount, currency string) string {
	return mac(hmacKey, payID, transID, merchantID, amount, currency)
}

// ResponseMAC is the MAC Paygate puts in answers and notifications: the
// upper-case hex of HMAC-SHA256(hmacKey, PayID*TransID*MerchantID*Status*Code).
func ResponseMAC(hmacKey []byte, payID, transID, merchantID, status, code string) string {
	return mac(hmacKey, payID, transID, merchantID, status, code)
}

// VerifyMAC reports whether got, as a message carried it (either case of
// hex), equals want, as RequestMAC or ResponseMAC computed it. The
// comparison takes the same time wherever the first difference lies.
func VerifyMAC(got, want string) bool {
	if len(got) != len(want) {
		return false
	}
	var buf [2 * sha256.Size]byte
	var g []byte
	if len(got) <= len(buf) {
		g = buf[:len(got)]
	} else {
		g = make([]byte, len(got))
	}
	for i := 0; i < len(got); i++ {
		c := got[i]
		if 'a' <= c && c <= 'f' {
			c -= 'a' - 'A'
		}
		g[i] = c
	}
	return subtle.ConstantTimeCompare(g, []byte(want)) == 1
}

func mac(key []byte, fields ...string) string {
	return macWith(hmac.New(sha256.New, key), fields...)
}

// macWith is mac with h, a fresh or reset HMAC-SHA256 of the key.
func macWith(h hash.Hash, fields ...string) string {
	var text [256]byte
	t := text[:0]
	for i, f := range fields {
		if i > 0 {
			t = append(t, '*')
		}
		t = append(t, f...)
	}
	h.Write(t)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	return string(appendHex(out[:0], h.Sum(sum[:0])))
}
