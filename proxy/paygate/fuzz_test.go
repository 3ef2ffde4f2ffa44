package paygate

import (
	"testing"
)

// FuzzOpen feeds the response decoder Len and Data it does not control: it
// must never panic, and whatever Seal produces from parameters Encode
// accepts, Open must read back.
func FuzzOpen(f *testing.F) {
	f.Add(true, "16", "", "Status=OK&mid=m1")
	f.Add(false, "9", "", "Code=00000000")
	f.Add(true, "-1", "0011", "")
	f.Add(false, "17", "00112233445566778899aabbccddeeff-00112233445566778899AABBCCDDEEFF", "A=b=c&&")
	f.Add(true, "3", "zz", "Description=Zahlung für Café")
	cs := ciphers(f)
	f.Fuzz(func(t *testing.T, blowfish bool, length, data, plain string) {
		c := cs["aes"]
		if blowfish {
			c = cs["blowfish"]
		}
		// Arbitrary envelopes: errors are fine, panics are not.
		_, _ = Open(c, length, data)

		// Arbitrary plain text that parses: Seal's envelope opens to the
		// same parameters.
		params, err := Parse(plain)
		if err != nil {
			return
		}
		env, err := Seal(c, "m1", params)
		if err != nil {
			return // a value Encode refuses
		}
		got, err := Open(c, env.Len, env.Data)
		if err != nil {
			t.Fatalf("Open(Seal(%q)) error = %v", plain, err)
		}
		want := params
		if _, ok := params.Get("MerchantID"); !ok {
			want = append(Params{{Key: "MerchantID", Value: "m1"}}, params...)
		}
		if !equalParams(got, want) {
			t.Fatalf("Open(Seal(%q)) = %q, want %q", plain, got, want)
		}
	})
}

// FuzzEncode checks the parameter encoder: it never panics, and what it
// accepts parses back to the same parameters.
func FuzzEncode(f *testing.F) {
	f.Add("TransID", "T-1", "Amount", "100")
	f.Add("Description", "a&b", "x", "")
	f.Add("", "v", "K=", "Zoë 😀")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		params := Params{{Key: k1, Value: v1}, {Key: k2, Value: v2}}
		plain, err := Encode(params)
		if err != nil {
			return
		}
		got, err := Parse(plain)
		if err != nil {
			t.Fatalf("Parse(Encode(%q)) error = %v", params, err)
		}
		if !equalParams(got, params) {
			t.Fatalf("Parse(Encode(%q)) = %q, want %q", params, got, params)
		}
	})
}
