package paygate

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var (
	bfKey  = []byte("merchant-password") // 17 bytes: not a power of two
	aesKey = []byte("0123456789abcdef0123456789abcdef")
)

func ciphers(t testing.TB) map[string]Cipher {
	t.Helper()
	bf, err := NewBlowfish(bfKey)
	if err != nil {
		t.Fatalf("NewBlowfish() error = %v", err)
	}
	a, err := NewAES(aesKey)
	if err != nil {
		t.Fatalf("NewAES() error = %v", err)
	}
	return map[string]Cipher{"blowfish": bf, "aes": a}
}

func TestKeyLength(t *testing.T) {
	tests := []struct {
		name   string
		newC   func([]byte) (Cipher, error)
		keyLen int
		ok     bool
	}{
		{"blowfish empty", NewBlowfish, 0, false},
		{"blowfish 1", NewBlowfish, 1, true},
		{"blowfish 56", NewBlowfish, 56, true},
		{"blowfish 57", NewBlowfish, 57, false},
		{"aes 15", NewAES, 15, false},
		{"aes 16", NewAES, 16, true},
		{"aes 24", NewAES, 24, true},
		{"aes 32", NewAES, 32, true},
		{"aes 33", NewAES, 33, false},
		{"aes 0", NewAES, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := bytes.Repeat([]byte("K"), tc.keyLen)
			c, err := tc.newC(key)
			if tc.ok {
				if err != nil || c == nil {
					t.Fatalf("constructor(%d bytes) = %v, %v; want a cipher", tc.keyLen, c, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("constructor(%d bytes) error = nil, want one", tc.keyLen)
			}
			if !strings.HasPrefix(err.Error(), "paygate: ") {
				t.Errorf("error = %q, want prefix %q", err, "paygate: ")
			}
			if tc.keyLen > 0 && strings.Contains(err.Error(), string(key)) {
				t.Errorf("error = %q quotes the key", err)
			}
		})
	}
}

// Schneier's published Blowfish ECB vectors, through our zero-padding ECB.
func TestBlowfishKnownVectors(t *testing.T) {
	tests := []struct{ key, plain, want string }{
		{"0000000000000000", "0000000000000000", "4EF997456198DD78"},
		{"FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "51866FD5B85ECB8A"},
		{"FEDCBA9876543210", "0123456789ABCDEF", "0ACEAB0FC6A0A28D"},
	}
	for _, tc := range tests {
		key, _ := decodeHex(tc.key)
		plain, _ := decodeHex(tc.plain)
		c, err := NewBlowfish(key)
		if err != nil {
			t.Fatalf("NewBlowfish() error = %v", err)
		}
		got, _ := c.Encrypt(plain)
		if got != tc.want {
			t.Errorf("Encrypt(%s) with key %s = %q, want %q", tc.plain, tc.key, got, tc.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	plains := []string{
		"",
		"a",
		"MerchantID=Test",   // 15: one short of two blocks
		"MerchantID=Test&",  // 16: exactly two blocks
		"MerchantID=Test&T", // 17
		"Description=Zahlung für Café ✓ 😀", // UTF-8, odd byte length
		strings.Repeat("PayID=0123456789abcdef&", 9) + "Amount=100",
	}
	for name, c := range ciphers(t) {
		for _, plain := range plains {
			t.Run(name+"/"+plain, func(t *testing.T) {
				data, err := c.Encrypt([]byte(plain))
				if err != nil {
					t.Fatalf("Encrypt() error = %v", err)
				}
				for _, d := range []string{data, strings.ToLower(data)} {
					got, err := c.Decrypt(d, len(plain))
					if err != nil {
						t.Fatalf("Decrypt(%q) error = %v", d, err)
					}
					if string(got) != plain {
						t.Errorf("Decrypt(%q) = %q, want %q", d, got, plain)
					}
				}
			})
		}
	}
}

func TestDataShape(t *testing.T) {
	cs := ciphers(t)
	bf, err := cs["blowfish"].Encrypt([]byte("abcdefghi"))
	if err != nil || len(bf) != 32 || bf != strings.ToUpper(bf) {
		t.Errorf("blowfish Encrypt(9 bytes) = %q, %v; want 32 upper-case hex digits", bf, err)
	}
	a1, _ := cs["aes"].Encrypt([]byte("abcdefghijklmnop"))
	a2, _ := cs["aes"].Encrypt([]byte("abcdefghijklmnop"))
	iv, body, ok := strings.Cut(a1, "-")
	if !ok || len(iv) != 32 || len(body) != 64 {
		t.Errorf("aes Encrypt(16 bytes) = %q, want 32 hex digits, '-', 64 hex digits (a full padding block)", a1)
	}
	if a1 == a2 {
		t.Errorf("aes Encrypt() twice = %q both times, want a fresh IV each time", a1)
	}
}

func TestOpenMalformed(t *testing.T) {
	cs := ciphers(t)
	bfData, _ := cs["blowfish"].Encrypt([]byte("Status=OK")) // 16 bytes of plain text
	aesData, _ := cs["aes"].Encrypt([]byte("Status=OK"))     // 16 bytes of plain text
	noEq, _ := cs["blowfish"].Encrypt([]byte("Status"))      // a pair without '='
	noName, _ := cs["blowfish"].Encrypt([]byte("=OK"))       // a pair without a name
	control, _ := cs["aes"].Encrypt([]byte("Status=O\x01K")) // a control character
	iv, body, _ := strings.Cut(aesData, "-")
	tests := []struct {
		name, cipher, length, data string
	}{
		{"blowfish odd hex", "blowfish", "1", bfData[:31]},
		{"blowfish not hex", "blowfish", "1", "G" + bfData[1:]},
		{"blowfish not a block multiple", "blowfish", "1", bfData[:30]},
		{"blowfish Len beyond plain text", "blowfish", "17", bfData},
		{"blowfish negative Len", "blowfish", "-1", bfData},
		{"blowfish signed Len", "blowfish", "+9", bfData},
		{"blowfish non-numeric Len", "blowfish", "nine", bfData},
		{"blowfish empty Len", "blowfish", "", bfData},
		{"blowfish huge Len", "blowfish", "99999999999999999999", bfData},
		{"blowfish Len with space", "blowfish", " 9", bfData},
		{"blowfish pair without =", "blowfish", "6", noEq},
		{"blowfish pair without name", "blowfish", "3", noName},
		{"blowfish Len into the zero padding", "blowfish", "12", bfData},
		{"aes control character", "aes", "10", control},
		{"aes no separator", "aes", "9", iv + body},
		{"aes odd hex", "aes", "9", aesData[:len(aesData)-1]},
		{"aes short IV", "aes", "9", iv[:30] + "-" + body},
		{"aes IV not hex", "aes", "9", "Z" + iv[1:] + "-" + body},
		{"aes not a block multiple", "aes", "9", iv + "-" + body[:30]},
		{"aes empty body", "aes", "0", iv + "-"},
		{"aes Len beyond plain text", "aes", "17", aesData},
		{"aes negative Len", "aes", "-1", aesData},
		{"aes two separators", "aes", "9", iv + "-" + body[:32] + "-" + body[32:]},
		{"aes empty Data", "aes", "0", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Open(cs[tc.cipher], tc.length, tc.data)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Open(%q, %q) = %q, %v; want an error wrapping ErrMalformed", tc.length, tc.data, got, err)
			}
		})
	}
}

// Negative lengths reach Decrypt only through callers other than Open.
func TestDecryptNegativeLen(t *testing.T) {
	for name, c := range ciphers(t) {
		data, _ := c.Encrypt([]byte("x"))
		if got, err := c.Decrypt(data, -1); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s Decrypt(n = -1) = %q, %v; want ErrMalformed", name, got, err)
		}
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name    string
		params  Params
		want    string
		wantErr bool
	}{
		{"none", nil, "", false},
		{"one", Params{{"MerchantID", "m1"}}, "MerchantID=m1", false},
		{"order kept", Params{{"TransID", "t"}, {"Amount", "100"}, {"Currency", "EUR"}}, "TransID=t&Amount=100&Currency=EUR", false},
		{"empty value", Params{{"PayID", ""}}, "PayID=", false},
		{"non-ASCII", Params{{"Name", "Jürgen 😀"}}, "Name=Jürgen 😀", false},
		{"ampersand in value", Params{{"Description", "a&b"}}, "", true},
		{"equals in value", Params{{"Description", "a=b"}}, "", true},
		{"newline in value", Params{{"Description", "a\nb"}}, "", true},
		{"NUL in value", Params{{"Description", "a\x00b"}}, "", true},
		{"DEL in value", Params{{"Description", "a\x7fb"}}, "", true},
		{"ampersand in name", Params{{"A&B", "x"}}, "", true},
		{"equals in name", Params{{"A=B", "x"}}, "", true},
		{"tab in name", Params{{"A\tB", "x"}}, "", true},
		{"empty name", Params{{"", "x"}}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(tc.params)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Encode() = %q, want an error", got)
				}
				if !strings.HasPrefix(err.Error(), "paygate: ") {
					t.Errorf("Encode() error = %q, want prefix %q", err, "paygate: ")
				}
				for _, kv := range tc.params {
					if kv.Value != "" && strings.Contains(err.Error(), kv.Value) {
						t.Errorf("Encode() error = %q quotes the value", err)
					}
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Encode() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		plain string
		want  Params
	}{
		{"", nil},
		{"mid=m1&Status=OK&Code=00000000", Params{{"mid", "m1"}, {"Status", "OK"}, {"Code", "00000000"}}},
		{"Status=OK&", Params{{"Status", "OK"}}},
		{"A=&B=x", Params{{"A", ""}, {"B", "x"}}},
		{"Description=a=b", Params{{"Description", "a=b"}}},
		{"Name=Zoë", Params{{"Name", "Zoë"}}},
	}
	for _, tc := range tests {
		got, err := Parse(tc.plain)
		if err != nil || !equalParams(got, tc.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.plain, got, err, tc.want)
		}
	}
}

func TestParamsGet(t *testing.T) {
	p := Params{{"mid", "m1"}, {"STATUS", "OK"}, {"status", "FAILED"}, {"Code", ""}}
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"MID", "m1", true},
		{"mid", "m1", true},
		{"Status", "OK", true}, // the first one wins
		{"code", "", true},
		{"PayID", "", false},
	}
	for _, tc := range tests {
		got, ok := p.Get(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestSealOpen(t *testing.T) {
	for name, c := range ciphers(t) {
		t.Run(name, func(t *testing.T) {
			params := Params{{"TransID", "T-1"}, {"Amount", "100"}, {"Currency", "EUR"}, {"Name", "Ærø"}}
			env, err := Seal(c, "m1", params)
			if err != nil {
				t.Fatalf("Seal() error = %v", err)
			}
			const plain = "MerchantID=m1&TransID=T-1&Amount=100&Currency=EUR&Name=Ærø"
			if got := env.MerchantID; got != "m1" {
				t.Errorf("Seal() MerchantID = %q, want %q", got, "m1")
			}
			if got, want := env.Len, "60"; got != want || len(plain) != 60 {
				t.Errorf("Seal() Len = %q, want %q", got, want)
			}
			got, err := Open(c, env.Len, env.Data)
			if err != nil {
				t.Fatalf("Open() error = %v", err)
			}
			if enc, _ := Encode(got); enc != plain {
				t.Errorf("Open() = %q, want %q", enc, plain)
			}
			// A MerchantID already among the parameters is not repeated.
			env, err = Seal(c, "m1", Params{{"merchantid", "m1"}, {"TransID", "T-1"}})
			if err != nil {
				t.Fatalf("Seal() error = %v", err)
			}
			got, _ = Open(c, env.Len, env.Data)
			if enc, _ := Encode(got); enc != "merchantid=m1&TransID=T-1" {
				t.Errorf("Open() = %q, want %q", enc, "merchantid=m1&TransID=T-1")
			}
		})
	}
}

func TestSealRefuses(t *testing.T) {
	c := ciphers(t)["blowfish"]
	tests := []struct {
		name     string
		merchant string
		params   Params
	}{
		{"empty merchant", "", Params{{"TransID", "t"}}},
		{"other merchant inside", "m1", Params{{"MerchantID", "m2"}}},
		{"value with ampersand", "m1", Params{{"Description", "a&b"}}},
		{"merchant with ampersand", "m1&x=y", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if env, err := Seal(c, tc.merchant, tc.params); err == nil {
				t.Errorf("Seal() = %v, want an error", env)
			}
		})
	}
}

func TestMAC(t *testing.T) {
	key := []byte("hmac-password")
	req := RequestMAC(key, "", "T-1", "m1", "100", "EUR")
	resp := ResponseMAC(key, "P-1", "T-1", "m1", "OK", "00000000")
	for _, m := range []string{req, resp} {
		if len(m) != 64 || m != strings.ToUpper(m) {
			t.Errorf("MAC = %q, want 64 upper-case hex digits", m)
		}
	}
	// The fields are joined with '*' in order, PayID empty on a first call.
	if got, want := RequestMAC(key, "", "T-1", "m1", "100", "EUR"), mac(key, "*T-1*m1*100*EUR"); got != want {
		t.Errorf("RequestMAC() = %q, want %q", got, want)
	}
	if got, want := ResponseMAC(key, "P-1", "T-1", "m1", "OK", "00000000"), mac(key, "P-1*T-1*m1*OK*00000000"); got != want {
		t.Errorf("ResponseMAC() = %q, want %q", got, want)
	}
	tests := []struct {
		name string
		got  string
		ok   bool
	}{
		{"same", resp, true},
		{"lower-case", strings.ToLower(resp), true},
		{"other field", ResponseMAC(key, "P-1", "T-1", "m1", "FAILED", "00000000"), false},
		{"other key", ResponseMAC([]byte("x"), "P-1", "T-1", "m1", "OK", "00000000"), false},
		{"truncated", resp[:63], false},
		{"empty", "", false},
		{"long", resp + resp + resp, false},
	}
	for _, tc := range tests {
		if ok := VerifyMAC(tc.got, resp); ok != tc.ok {
			t.Errorf("%s: VerifyMAC(%q) = %v, want %v", tc.name, tc.got, ok, tc.ok)
		}
	}
}

func equalParams(a, b Params) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestEnvelopeEncode(t *testing.T) {
	e := Envelope{MerchantID: "Shop 1/ü", Len: "12", Data: "0A1B"}
	const want = "MerchantID=Shop+1%2F%C3%BC&Len=12&Data=0A1B"
	if got := e.Encode(); got != want {
		t.Errorf("Encode() = %q, want %q", got, want)
	}
	if got := e.Values().Encode(); got != "Data=0A1B&Len=12&MerchantID=Shop+1%2F%C3%BC" {
		t.Errorf("Values().Encode() = %q, want the same three values", got)
	}
}
