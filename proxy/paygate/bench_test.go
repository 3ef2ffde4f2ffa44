package paygate

import (
	"testing"
)

// BenchmarkCapture is the envelope's share of one proxied capture: seal
// and form-encode about 200 bytes of parameters with their MAC, then open
// an answer of about the same size and verify its MAC.
func BenchmarkCapture(b *testing.B) {
	hmacKey := []byte("hmac-password-of-the-merchant")
	call := Params{
		{Key: "PayID", Value: "a1b2c3d4e5f60718293a4b5c6d7e8f90"},
		{Key: "TransID", Value: "ORDER-2026-12-05-000123"},
		{Key: "RefNr", Value: "INV-000123"},
		{Key: "Amount", Value: "12345"},
		{Key: "Currency", Value: "EUR"},
		{Key: "Capture", Value: "MANUAL"},
	}
	answer := Params{
		{Key: "mid", Value: "m1"},
		{Key: "PayID", Value: "a1b2c3d4e5f60718293a4b5c6d7e8f90"},
		{Key: "TransID", Value: "ORDER-2026-12-05-000123"},
		{Key: "Status", Value: "OK"},
		{Key: "Description", Value: "success"},
		{Key: "Code", Value: "00000000"},
		{Key: "MAC", Value: ResponseMAC(hmacKey, "a1b2c3d4e5f60718293a4b5c6d7e8f90", "ORDER-2026-12-05-000123", "m1", "OK", "00000000")},
	}
	for _, name := range []string{"blowfish", "aes"} {
		c := ciphers(b)[name]
		reply, err := Seal(c, "m1", answer)
		if err != nil {
			b.Fatal(err)
		}
		rl, rd := reply.Len, reply.Data
		sealed, _ := Seal(c, "m1", append(call[:len(call):len(call)], Param{Key: "MAC", Value: RequestMAC(hmacKey, "", "", "", "", "")}))
		b.Logf("%s: call Len %s, answer Len %s", name, sealed.Len, rl)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				params := append(call[:len(call):len(call)], Param{Key: "MAC", Value: RequestMAC(hmacKey, call[0].Value, call[1].Value, "m1", call[3].Value, call[4].Value)})
				env, err := Seal(c, "m1", params)
				if err != nil || len(env.Encode()) == 0 {
					b.Fatal(err)
				}
				got, err := Open(c, rl, rd)
				if err != nil {
					b.Fatal(err)
				}
				payID, _ := got.Get("PayID")
				transID, _ := got.Get("TransID")
				status, _ := got.Get("Status")
				code, _ := got.Get("Code")
				m, _ := got.Get("MAC")
				if !VerifyMAC(m, ResponseMAC(hmacKey, payID, transID, "m1", status, code)) {
					b.Fatal("response MAC does not verify")
				}
			}
		})
	}
}
