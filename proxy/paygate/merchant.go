package paygate

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// ErrBadMAC is returned by Merchant.Open for an answer or a notification
// whose MAC does not verify, or that lacks the MAC it must carry.
var ErrBadMAC = errors.New("paygate: the MAC does not verify")

// Merchant is one merchant's Paygate identity: its id, its cipher and,
// optionally, its HMAC password. It is immutable and safe for concurrent use.
// NewMerchant's reuse their HMAC state; a Merchant written as a literal
// works too, and computes it again for each MAC.
type Merchant struct {
	// ID is the MerchantID. Required.
	ID string
	// Cipher encrypts and decrypts Data with the merchant's encryption
	// password. Required.
	Cipher Cipher
	// HMACKey is the merchant's HMAC password. If nil, Seal adds no MAC and
	// Open checks none.
	HMACKey []byte

	macs *sync.Pool // of hash.Hash, HMAC-SHA256 keyed with HMACKey; nil: none
}

// NewMerchant returns the Merchant of id, c and hmacKey (nil for none).
func NewMerchant(id string, c Cipher, hmacKey []byte) *Merchant {
	m := &Merchant{ID: id, Cipher: c, HMACKey: hmacKey}
	if hmacKey != nil {
		m.macs = &sync.Pool{New: func() any { return hmac.New(sha256.New, hmacKey) }}
	}
	return m
}

// mac computes the MAC of fields with the merchant's HMAC key.
func (m *Merchant) mac(fields ...string) string {
	if m.macs == nil {
		return mac(m.HMACKey, fields...)
	}
	h := m.macs.Get().(hash.Hash)
	defer m.macs.Put(h)
	h.Reset()
	return macWith(h, fields...)
}

// Seal returns the envelope of a call with params. With an HMAC key, and
// unless params already hold a MAC, the call's MAC is added last (see
// RequestMAC); fields the call lacks count as empty.
func (m *Merchant) Seal(params Params) (Envelope, error) {
	if m.HMACKey != nil {
		if _, ok := params.Get("MAC"); !ok {
			payID, _ := params.Get("PayID")
			transID, _ := params.Get("TransID")
			amount, _ := params.Get("Amount")
			currency, _ := params.Get("Currency")
			mac := m.mac(payID, transID, m.ID, amount, currency) // RequestMAC
			params = append(params[:len(params):len(params)], Param{Key: "MAC", Value: mac})
		}
	}
	return Seal(m.Cipher, m.ID, params)
}

// Open decrypts an answer's or a notification's Len and Data. With an HMAC
// key the MAC is checked (see ResponseMAC): one that does not verify is
// ErrBadMAC, and so is a missing one, except on a Status=FAILED answer,
// which Paygate may send before it knows the call (an envelope it could
// not decrypt). So is an answer that gives a field the MAC covers, or the
// MAC, twice: the MAC covers the first, and a reader may take the last.
func (m *Merchant) Open(length, data string) (Params, error) {
	params, err := Open(m.Cipher, length, data)
	if err != nil || m.HMACKey == nil {
		return params, err
	}
	for _, name := range [...]string{"PayID", "TransID", "Status", "Code", "MAC"} {
		if count(params, name) > 1 {
			return nil, fmt.Errorf("%w: the answer gives %s twice", ErrBadMAC, name)
		}
	}
	status, _ := params.Get("Status")
	got, ok := params.Get("MAC")
	if !ok {
		if strings.EqualFold(status, "FAILED") {
			return params, nil
		}
		return nil, fmt.Errorf("%w: the answer carries none", ErrBadMAC)
	}
	payID, _ := params.Get("PayID")
	transID, _ := params.Get("TransID")
	code, _ := params.Get("Code")
	if !VerifyMAC(got, m.mac(payID, transID, m.ID, status, code)) { // ResponseMAC
		return nil, ErrBadMAC
	}
	return params, nil
}

// count returns how many of params are named name, in any case.
func count(params Params, name string) int {
	n := 0
	for _, kv := range params {
		if strings.EqualFold(kv.Key, name) {
			n++
		}
	}
	return n
}
