// Package paygate is Computop Paygate's (BNP Paribas Axepta's)
// server-to-server envelope.
//
// A Paygate call is three form parameters: MerchantID in plain, Len and
// Data. Data encrypts the call's real parameters, written Key=value&…
// without any escaping, and Len is the length of that plain text in bytes.
// Two ciphers exist, chosen per merchant: Blowfish (the default, see
// NewBlowfish) and AES (NewAES). Calls that carry amounts, and Paygate's
// answers and notifications, also carry a MAC inside Data (RequestMAC,
// ResponseMAC).
//
// The package only encodes and decodes; it does no I/O and keeps no state
// beyond a Cipher's key schedule.
package paygate

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// ErrMalformed is wrapped by every error about an envelope that cannot be
// decoded: bad hex, a Data of the wrong length, a bad or too large Len, a
// parameter without a name. Such input came from outside; callers map it to
// a client or upstream error rather than an internal one.
var ErrMalformed = errors.New("paygate: malformed envelope")

// Cipher encrypts and decrypts a Paygate Data parameter. Implementations
// are safe for concurrent use.
type Cipher interface {
	// Encrypt returns Data for the plain text.
	Encrypt(plain []byte) (string, error)
	// Decrypt returns the first n bytes of Data's plain text. It accepts
	// upper- or lower-case hex and never uses padding to find the end of
	// the plain text.
	Decrypt(data string, n int) ([]byte, error)
}

// Envelope is the three form parameters of a Paygate call.
type Envelope struct {
	// MerchantID is the merchant's id, sent in plain.
	MerchantID string
	// Len is the length in bytes of the plain text, in decimal.
	Len string
	// Data is the encrypted parameters.
	Data string
}

// Values returns the envelope as form values.
func (e Envelope) Values() url.Values {
	return url.Values{"MerchantID": {e.MerchantID}, "Len": {e.Len}, "Data": {e.Data}}
}

// Encode returns the envelope form-urlencoded, MerchantID=…&Len=…&Data=…,
// ready for a request body or to follow payssl.aspx?.
func (e Envelope) Encode() string {
	id := url.QueryEscape(e.MerchantID)
	b := make([]byte, 0, len("MerchantID=&Len=&Data=")+len(id)+len(e.Len)+len(e.Data))
	b = append(b, "MerchantID="...)
	b = append(b, id...)
	b = append(b, "&Len="...)
	b = append(b, e.Len...)
	b = append(b, "&Data="...)
	b = append(b, e.Data...)
	return string(b)
}

// Seal writes params as Paygate's Key=value&… plain text, encrypts it and
// returns the call's envelope. MerchantID is also the first parameter
// inside Data unless params already holds one (in any case of its name);
// one that differs from merchantID is an error. merchantID must obey the
// same rules as a parameter value (see Encode).
func Seal(c Cipher, merchantID string, params Params) (Envelope, error) {
	if merchantID == "" {
		return Envelope{}, errors.New("paygate: empty merchant id")
	}
	var plain []byte
	if v, ok := params.Get("MerchantID"); ok {
		if v != merchantID {
			return Envelope{}, errors.New("paygate: parameters hold a MerchantID other than the merchant's")
		}
	} else {
		if !plainText(merchantID) {
			return Envelope{}, errors.New("paygate: merchant id holds '&', '=' or a control character")
		}
		plain = make([]byte, 0, len("MerchantID=")+len(merchantID)+1+paramsLen(params))
		plain = append(plain, "MerchantID="...)
		plain = append(plain, merchantID...)
	}
	plain, err := appendParams(plain, params)
	if err != nil {
		return Envelope{}, err
	}
	data, err := c.Encrypt(plain)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{MerchantID: merchantID, Len: strconv.Itoa(len(plain)), Data: data}, nil
}

// Open decrypts the Len and Data parameters of a Paygate answer or
// notification and parses the plain text. It does not check a MAC; see
// VerifyMAC.
func Open(c Cipher, length, data string) (Params, error) {
	n, err := parseLen(length)
	if err != nil {
		return nil, err
	}
	plain, err := c.Decrypt(data, n)
	if err != nil {
		return nil, err
	}
	return Parse(string(plain))
}

// parseLen reads Len: decimal digits only, no sign, no spaces.
func parseLen(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty Len", ErrMalformed)
	}
	if len(s) > 9 {
		return 0, fmt.Errorf("%w: Len too large", ErrMalformed)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: Len is not a non-negative decimal number", ErrMalformed)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

const upperHex = "0123456789ABCDEF"

// appendHex appends src as upper-case hex, as Paygate's own samples write
// Data.
func appendHex(dst, src []byte) []byte {
	for _, b := range src {
		dst = append(dst, upperHex[b>>4], upperHex[b&0x0f])
	}
	return dst
}

// decodeHex decodes upper- or lower-case hex into a new slice.
func decodeHex(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("%w: odd hex length", ErrMalformed)
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: not hex", ErrMalformed)
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// cut returns the first n bytes of plain, or an error when plain is shorter.
func cut(plain []byte, n int) ([]byte, error) {
	if n > len(plain) {
		return nil, fmt.Errorf("%w: Len %d exceeds the %d bytes of plain text", ErrMalformed, n, len(plain))
	}
	return plain[:n], nil
}
