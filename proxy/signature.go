package proxy

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// SignerConfig describes Juspay-style payload signing.
type SignerConfig struct {
	// Key is the merchant's RSA private key.
	Key *tokens.KeyFile
	// KeyID becomes payload.merchantKeyId.
	KeyID string
	// MerchantID becomes merchant_id in the signature payload.
	MerchantID string
	// Service sets the outer payload's service when the app did not; empty
	// leaves it alone.
	Service string
	// Now tells the time of the signature. If nil, time.Now is used.
	Now func() time.Time
	// Metrics counts signatures. If nil, nothing is counted.
	Metrics *metrics.Metrics
}

// Signer signs Juspay outer payloads (../shared/seeds/001_…): it adds
// requestId and service when absent, builds signaturePayload from
// merchant_id, customer_id and timestamp (ms), signs exactly its serialized
// bytes with RSASSA-PKCS1-v1_5 SHA-256, and sets payload.signaturePayload
// (the string), payload.signature (standard base64) and payload.merchantKeyId.
// As an Injector, it signs each request body once.
type Signer struct{ c SignerConfig }

// NewSigner returns a Signer.
func NewSigner(c SignerConfig) *Signer {
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Signer{c: c}
}

// Inject implements Injector: it signs body; tok is not used.
func (s *Signer) Inject(_ http.Header, _ *tokens.Token, body []byte) ([]byte, error) {
	return s.Sign(body)
}

// Body implements Injector: a request is signed once, and a replay sends
// the same signed body.
func (s *Signer) Body() BodyUse { return BodyOnce }

// Sign returns the signed outer payload for body, the app's outer payload.
func (s *Signer) Sign(body []byte) ([]byte, error) {
	out, err := s.sign(body)
	if err != nil {
		s.c.Metrics.Signature("error")
		if _, ok := err.(*RequestError); !ok {
			err = &SigningError{err}
		}
		return nil, err
	}
	s.c.Metrics.Signature("success")
	return out, nil
}

func (s *Signer) sign(body []byte) ([]byte, error) {
	doc, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	payload, ok := doc["payload"].(map[string]any)
	if !ok {
		return nil, &RequestError{Reason: "no_payload", Message: `the request body has no "payload" object`}
	}
	customer, ok := customerID(payload)
	if !ok {
		return nil, &RequestError{Reason: "no_customer_id", Message: `the payload has no "customerId" or "customer_id"`}
	}
	if _, ok := doc["requestId"]; !ok {
		doc["requestId"] = uuid.NewString()
	}
	if _, ok := doc["service"]; !ok && s.c.Service != "" {
		doc["service"] = s.c.Service
	}
	sp, err := signaturePayload(payload)
	if err != nil {
		return nil, err
	}
	sp["merchant_id"] = s.c.MerchantID
	sp["customer_id"] = customer
	sp["timestamp"] = strconv.FormatInt(s.c.Now().UnixMilli(), 10)
	signed, err := encodeJSON(sp)
	if err != nil {
		return nil, err
	}
	key, ok := s.c.Key.Signer().(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("proxy: the signing key is not an RSA key")
	}
	digest := sha256.Sum256(signed)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("proxy: sign: %w", err)
	}
	payload["signaturePayload"] = string(signed)
	payload["signature"] = base64.StdEncoding.EncodeToString(sig)
	payload["merchantKeyId"] = s.c.KeyID
	return encodeJSON(doc)
}

// SigningError is a failure to sign that is not the app's fault (an unusable
// key); it is answered 500.
type SigningError struct{ err error }

func (e *SigningError) Error() string { return "proxy: signing failed: " + e.err.Error() }
func (e *SigningError) Unwrap() error { return e.err }

// customerID reads payload.customerId or payload.customer_id: a non-empty
// string, or a number kept as written.
func customerID(payload map[string]any) (string, bool) {
	for _, k := range []string{"customerId", "customer_id"} {
		switch v := payload[k].(type) {
		case string:
			if v != "" {
				return v, true
			}
		case json.Number:
			return v.String(), true
		}
	}
	return "", false
}

// signaturePayload is the object to start from: the app's own
// payload.signaturePayload (an object, or a string holding one), or a new one.
func signaturePayload(payload map[string]any) (map[string]any, error) {
	switch v := payload["signaturePayload"].(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return v, nil
	case string:
		if sp, err := decodeObject([]byte(v)); err == nil {
			return sp, nil
		}
	}
	return nil, &RequestError{Reason: "bad_field", Message: "payload.signaturePayload must be a JSON object"}
}
