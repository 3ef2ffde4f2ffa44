package paygate

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// These tests check the envelope against an implementation that is not
// ours: the openssl command line. OpenSSL 3 keeps Blowfish in its legacy
// provider, hence -provider legacy -provider default. Under CI (the
// environment variable CI set) a missing openssl or legacy provider fails
// the test; elsewhere it skips.

var bfProviders = []string{"-provider", "legacy", "-provider", "default"}

// requireOpenSSL checks that openssl can run Blowfish-ECB.
func requireOpenSSL(t *testing.T) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err == nil {
		args := append([]string{"enc", "-bf-ecb", "-nopad", "-K", strings.Repeat("00", 16)}, bfProviders...)
		cmd := exec.Command(path, args...)
		cmd.Stdin = bytes.NewReader(make([]byte, 8))
		var out []byte
		out, err = cmd.Output()
		if err == nil && len(out) != 8 {
			err = exec.ErrNotFound
		}
	}
	if err == nil {
		return
	}
	const msg = "openssl with the legacy provider (for bf-ecb) is needed to check the envelope against another implementation: %v"
	if os.Getenv("CI") != "" {
		t.Fatalf(msg, err)
	}
	t.Skipf(msg+" (CI unset, so skipping)", err)
}

func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

var opensslPlains = []string{
	"a",
	"MerchantID=Test&", // exactly two blocks
	"MerchantID=Test&TransID=T-1&Amount=100&Currency=EUR",
	"Description=Zahlung für Café ✓ 😀",
	strings.Repeat("PayID=0123456789abcdef&", 9) + "Amount=100",
}

func zeroPad(b []byte, block int) []byte {
	n := (len(b) + block - 1) / block * block
	out := make([]byte, n)
	copy(out, b)
	return out
}

func TestBlowfishMatchesOpenSSL(t *testing.T) {
	requireOpenSSL(t)
	// openssl enc -bf-ecb always uses a 16-byte key: a shorter -K is padded
	// with zero bytes, a longer one cut. Blowfish's key schedule repeats the
	// key cyclically, so a key of 1, 2, 4 or 8 bytes is the same cipher as
	// that key repeated to 16 bytes; those lengths are checked that way.
	// Other lengths (e.g. 17, 56) cannot be given to openssl enc.
	keys := [][]byte{
		[]byte("k"),
		[]byte("pw"),
		[]byte("pass"),
		[]byte("password"),
		[]byte("sixteen-byte-key"),
		{0x00, 0xff, 0x10, 0x80, 0x7f, 0x01, 0xfe, 0x55, 0xaa, 0x33, 0xcc, 0x0f, 0xf0, 0x99, 0x66, 0x42},
	}
	for _, key := range keys {
		c, err := NewBlowfish(key)
		if err != nil {
			t.Fatalf("NewBlowfish(%d bytes) error = %v", len(key), err)
		}
		k16 := bytes.Repeat(key, 16/len(key))
		for _, plain := range opensslPlains {
			args := append([]string{"enc", "-bf-ecb", "-nopad", "-K", hex.EncodeToString(k16)}, bfProviders...)
			want := openssl(t, zeroPad([]byte(plain), 8), args...)
			got, err := c.Encrypt([]byte(plain))
			if err != nil {
				t.Fatalf("Encrypt() error = %v", err)
			}
			if wantHex := strings.ToUpper(hex.EncodeToString(want)); got != wantHex {
				t.Errorf("key %d bytes: Encrypt(%q) = %q, want openssl's %q", len(key), plain, got, wantHex)
			}
			// And openssl's cipher text, in lower-case hex, opens with ours.
			dec, err := c.Decrypt(hex.EncodeToString(want), len(plain))
			if err != nil || string(dec) != plain {
				t.Errorf("key %d bytes: Decrypt(openssl's) = %q, %v; want %q", len(key), dec, err, plain)
			}
		}
	}
}

func TestAESMatchesOpenSSL(t *testing.T) {
	requireOpenSSL(t)
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"aes-128-cbc", []byte("0123456789abcdef")},
		{"aes-192-cbc", []byte("0123456789abcdef01234567")},
		{"aes-256-cbc", []byte("0123456789abcdef0123456789abcdef")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewAES(tc.key)
			if err != nil {
				t.Fatalf("NewAES() error = %v", err)
			}
			keyHex := hex.EncodeToString(tc.key)
			for _, plain := range opensslPlains {
				data, err := c.Encrypt([]byte(plain))
				if err != nil {
					t.Fatalf("Encrypt() error = %v", err)
				}
				ivHex, bodyHex, _ := strings.Cut(data, "-")
				// openssl pads with PKCS#7 by default: same IV, same text.
				want := openssl(t, []byte(plain), "enc", "-"+tc.name, "-K", keyHex, "-iv", ivHex)
				if wantHex := strings.ToUpper(hex.EncodeToString(want)); bodyHex != wantHex {
					t.Errorf("Encrypt(%q) = %q, want IV-%q", plain, data, wantHex)
				}
				// openssl decrypts ours, checking the padding.
				body, _ := hex.DecodeString(bodyHex)
				if got := openssl(t, body, "enc", "-d", "-"+tc.name, "-K", keyHex, "-iv", ivHex); string(got) != plain {
					t.Errorf("openssl -d of Encrypt(%q) = %q, want %q", plain, got, plain)
				}
				// Ours opens openssl's, in lower-case hex, with an IV of its choosing.
				iv := "f0e1d2c3b4a5968778695a4b3c2d1e0f"
				ct := openssl(t, []byte(plain), "enc", "-"+tc.name, "-K", keyHex, "-iv", iv)
				got, err := c.Decrypt(iv+"-"+hex.EncodeToString(ct), len(plain))
				if err != nil || string(got) != plain {
					t.Errorf("Decrypt(openssl's) = %q, %v; want %q", got, err, plain)
				}
			}
		})
	}
}

func TestMACMatchesOpenSSL(t *testing.T) {
	requireOpenSSL(t)
	key := []byte("hmac-pässword*")
	tests := []struct {
		name, got, text string
	}{
		{"request, first call", RequestMAC(key, "", "T-1", "m1", "100", "EUR"), "*T-1*m1*100*EUR"},
		{"request", RequestMAC(key, "P-9", "T-1", "m1", "100", "EUR"), "P-9*T-1*m1*100*EUR"},
		{"response", ResponseMAC(key, "P-9", "T-1", "m1", "OK", "00000000"), "P-9*T-1*m1*OK*00000000"},
	}
	for _, tc := range tests {
		want := strings.TrimSpace(string(openssl(t, []byte(tc.text),
			"mac", "-digest", "SHA256", "-macopt", "hexkey:"+hex.EncodeToString(key), "HMAC")))
		if tc.got != want {
			t.Errorf("%s: MAC = %q, want openssl's %q", tc.name, tc.got, want)
		}
	}
}
