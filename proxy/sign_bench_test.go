package proxy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authsidecar/authsidecar/tokens"
)

// signBenchKey is a 2048-bit RSA key, generated once for the benchmarks.
var signBenchKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// signBenchBody is a Juspay initiate outer payload, as an app sends it.
const signBenchBody = `{"service":"in.juspay.hyperapi","payload":{"action":"initiate","clientId":"stock","environment":"production","issuingPsp":"YES_BIZ","customerId":"abcde12345","merchantLoader":true,"betaAssets":false,"amount":"100.00","orderDetails":{"order_id":"ord-20240501-000123","amount":"100.00","currency":"INR","return_url":"https://merchant.example/return?o=ord-20240501-000123"}}}`

func benchSigner(b *testing.B) *Signer {
	b.Helper()
	path := filepath.Join(b.TempDir(), "key.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(signBenchKey())})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	k, err := tokens.LoadKeyFile(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	return NewSigner(SignerConfig{Key: k, KeyID: "key-1234", MerchantID: "stock", Service: "in.juspay.hyperapi"})
}

// BenchmarkSign is the whole of signing one outer payload.
func BenchmarkSign(b *testing.B) {
	s := benchSigner(b)
	body := []byte(signBenchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignRewriteOnly is BenchmarkSign's work without the RSA
// operation: decode, requestId, signature payload, serialize, digest, and
// the outer payload's encoding with a signature of the real size. Its
// difference from BenchmarkSign is the cost of RSA.
func BenchmarkSignRewriteOnly(b *testing.B) {
	body := []byte(signBenchBody)
	fakeSig := make([]byte, signBenchKey().Size())
	b.ReportAllocs()
	for b.Loop() {
		doc, err := decodeObject(body)
		if err != nil {
			b.Fatal(err)
		}
		payload := doc["payload"].(map[string]any)
		customer, ok := customerID(payload)
		if !ok {
			b.Fatal("no customer id")
		}
		if _, ok := doc["requestId"]; !ok {
			doc["requestId"] = uuid.NewString()
		}
		sp, err := signaturePayload(payload)
		if err != nil {
			b.Fatal(err)
		}
		sp["merchant_id"] = "stock"
		sp["customer_id"] = customer
		sp["timestamp"] = strconv.FormatInt(time.Now().UnixMilli(), 10)
		signed, err := encodeJSON(sp)
		if err != nil {
			b.Fatal(err)
		}
		digest := sha256.Sum256(signed)
		fakeSig[0] = digest[0]
		payload["signaturePayload"] = string(signed)
		payload["signature"] = base64.StdEncoding.EncodeToString(fakeSig)
		payload["merchantKeyId"] = "key-1234"
		out, err := encodeJSON(doc)
		if err != nil || len(out) == 0 {
			b.Fatal(err)
		}
	}
}
