package tokens

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rsaTestKeys are 2048-bit RSA keys, generated once for the package's tests.
var rsaTestKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var keys [2]*rsa.PrivateKey
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys[i] = k
	}
	return keys
})

// ecTestKey is a P-256 key, generated once.
var ecTestKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8PEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}

func pkcs1PEM(key *rsa.PrivateKey) []byte {
	return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

func sec1PEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("EC PRIVATE KEY", der)
}

// certPEM is a self-signed certificate for key.
func certPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "merchant.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("CERTIFICATE", der)
}

// knownKeyError matches every error parsePrivateKey may return: none quotes
// its input.
var knownKeyError = regexp.MustCompile(`^tokens: (no PEM private key found|malformed PKCS#1 RSA private key|malformed SEC 1 EC private key|malformed PKCS#8 private key|unsupported private key type \*?[a-z0-9]+\.[A-Za-z0-9]+)$`)

// pemLines returns the base64 lines of a PEM document, the parts of a key
// that must never be quoted.
func pemLines(doc []byte) []string {
	var out []string
	for l := range strings.SplitSeq(string(doc), "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") && !strings.Contains(l, ":") {
			out = append(out, l)
		}
	}
	return out
}

func sameKey(a, b crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PrivateKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func TestParsePrivateKey(t *testing.T) {
	rsaKey, ecKey := rsaTestKeys()[0], ecTestKey()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 1200)
	rand.Read(junk)
	legacyEncrypted := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   junk,
	})
	cert := certPEM(t, ecKey)

	tests := []struct {
		name    string
		data    []byte
		want    crypto.Signer // nil: an error is wanted
		wantErr string
	}{
		{name: "PKCS#1 RSA", data: pkcs1PEM(rsaKey), want: rsaKey},
		{name: "PKCS#8 RSA", data: pkcs8PEM(t, rsaKey), want: rsaKey},
		{name: "SEC 1 EC", data: sec1PEM(t, ecKey), want: ecKey},
		{name: "PKCS#8 EC", data: pkcs8PEM(t, ecKey), want: ecKey},
		{name: "text and a certificate before the key", data: append(append([]byte("subject=merchant.test\n"), cert...), pkcs1PEM(rsaKey)...), want: rsaKey},
		{name: "the first of two keys", data: append(sec1PEM(t, ecKey), pkcs1PEM(rsaKey)...), want: ecKey},
		{name: "CRLF line ends", data: bytes.ReplaceAll(pkcs8PEM(t, rsaKey), []byte("\n"), []byte("\r\n")), want: rsaKey},
		{name: "empty", data: nil, wantErr: "no PEM private key found"},
		{name: "garbage", data: []byte("hello, not a key"), wantErr: "no PEM private key found"},
		{name: "raw DER without PEM", data: x509.MarshalPKCS1PrivateKey(rsaKey), wantErr: "no PEM private key found"},
		{name: "a certificate only", data: cert, wantErr: "no PEM private key found"},
		{name: "a public key only", data: pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))), wantErr: "no PEM private key found"},
		{name: "encrypted PKCS#8", data: pemOf("ENCRYPTED PRIVATE KEY", junk), wantErr: "no PEM private key found"},
		{name: "OpenSSH key", data: pemOf("OPENSSH PRIVATE KEY", junk), wantErr: "no PEM private key found"},
		{name: "legacy encrypted PKCS#1", data: legacyEncrypted, wantErr: "malformed PKCS#1 RSA private key"},
		{name: "PKCS#8 under a PKCS#1 header", data: pemOf("RSA PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsaKey))), wantErr: "malformed PKCS#1 RSA private key"},
		{name: "truncated PKCS#1", data: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)[:600]), wantErr: "malformed PKCS#1 RSA private key"},
		{name: "SEC 1 header on junk", data: pemOf("EC PRIVATE KEY", junk), wantErr: "malformed SEC 1 EC private key"},
		{name: "PKCS#8 header on junk", data: pemOf("PRIVATE KEY", junk), wantErr: "malformed PKCS#8 private key"},
		{name: "PKCS#8 Ed25519", data: pkcs8PEM(t, edKey), wantErr: "unsupported private key type ed25519.PrivateKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePrivateKey(tc.data)
			if tc.want != nil {
				if err != nil || !sameKey(tc.want, got) {
					t.Fatalf("parsePrivateKey() = %T, %v; want the %T", got, err, tc.want)
				}
				return
			}
			if err == nil || got != nil {
				t.Fatalf("parsePrivateKey() = %T, %v; want an error", got, err)
			}
			if want := "tokens: " + tc.wantErr; err.Error() != want {
				t.Errorf("parsePrivateKey() error = %q, want %q", err, want)
			}
			for _, l := range append(pemLines(tc.data), pemLines(pkcs1PEM(rsaKey))...) {
				if strings.Contains(err.Error(), l) {
					t.Errorf("parsePrivateKey() error = %q quotes the input", err)
				}
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// expireCheck makes k's next Signer call look at its file, as if the check
// interval had passed since the last look.
func expireCheck(k *KeyFile) {
	k.w.checked.Store(time.Now().Add(-2 * watchInterval).UnixNano())
}

// rotations makes each replaced file's modification time distinct: file
// systems date files in ticks of some milliseconds, and a KeyFile takes a
// file of the same size and time for unchanged.
var rotations atomic.Int64

// replaceFile writes data at path through a rename, as a Secret update does,
// dated a second later than the previous replacement.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	writeFile(t, path+".new", string(data))
	mtime := time.Now().Add(time.Duration(rotations.Add(1)) * time.Second)
	if err := os.Chtimes(path+".new", mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// keyLog is a debug JSON logger into a buffer.
func keyLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content []byte // nil: no file
		wantErr string
	}{
		{name: "PKCS#1 RSA", content: pkcs1PEM(rsaTestKeys()[0])},
		{name: "PKCS#8 EC", content: pkcs8PEM(t, ecTestKey())},
		{name: "missing", wantErr: "tokens: key file: "},
		{name: "not a key", content: []byte("hello"), wantErr: "tokens: no PEM private key found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if tc.content != nil {
				writeFile(t, path, string(tc.content))
			}
			k, err := LoadKeyFile(path, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("LoadKeyFile() = %v, %v; want an error starting %q", k, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKeyFile() error = %v", err)
			}
			want, _ := parsePrivateKey(tc.content)
			if !sameKey(want, k.Signer()) {
				t.Errorf("Signer() = %T, want the file's key", k.Signer())
			}
		})
	}
}

func TestKeyFileRotation(t *testing.T) {
	oldKey, newKey := rsaTestKeys()[0], rsaTestKeys()[1]
	path := filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, path, string(pkcs1PEM(oldKey)))
	log, logs := keyLog()
	loaded := time.Now()
	k, err := LoadKeyFile(path, log)
	if err != nil {
		t.Fatal(err)
	}

	replaceFile(t, path, pkcs8PEM(t, newKey))
	if got := k.Signer(); time.Since(loaded) < watchInterval/2 && !sameKey(oldKey, got) {
		t.Errorf("Signer() within the check interval = a new key, want the old one: the file is looked at at most once a second")
	}

	expireCheck(k)
	if got := k.Signer(); !sameKey(newKey, got) {
		t.Fatalf("Signer() after the check interval = the old key, want the new one")
	}
	if !strings.Contains(logs.String(), "key file changed: using the new one") || !strings.Contains(logs.String(), path) {
		t.Errorf("log = %s\nwant the rotation logged with the path", logs)
	}

	// Unchanged: no new load, no new log line.
	before := logs.String()
	expireCheck(k)
	if got := k.Signer(); !sameKey(newKey, got) || logs.String() != before {
		t.Errorf("Signer() with the file unchanged = other key or new log lines %q", strings.TrimPrefix(logs.String(), before))
	}

	// A key of another type is refused: the RSA key stays.
	replaceFile(t, path, sec1PEM(t, ecTestKey()))
	expireCheck(k)
	if got := k.Signer(); !sameKey(newKey, got) {
		t.Errorf("Signer() after rotation to an EC key = %T, want the RSA key kept", got)
	}
	if !strings.Contains(logs.String(), "keeping the previous one") {
		t.Errorf("log = %s\nwant the refused rotation logged", logs)
	}
	checkNoKeyLines(t, logs.String(), pkcs1PEM(oldKey), pkcs8PEM(t, newKey), sec1PEM(t, ecTestKey()))
}

func TestKeyFileRotationECToEC(t *testing.T) {
	second, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, path, string(sec1PEM(t, ecTestKey())))
	k, err := LoadKeyFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, path, pkcs8PEM(t, second))
	expireCheck(k)
	if got := k.Signer(); !sameKey(second, got) {
		t.Errorf("Signer() after rotation to another EC key = the old key, want the new one")
	}
}

// TestKeyFileBrokenRotationKeepsOldKey rotates to files that cannot be used:
// the old key stays, the failure is logged without the file's content, and a
// good file after it is used.
func TestKeyFileBrokenRotationKeepsOldKey(t *testing.T) {
	oldKey, newKey := rsaTestKeys()[0], rsaTestKeys()[1]
	newPEM := pkcs1PEM(newKey)
	for _, tc := range []struct {
		name   string
		broken func(path string)
	}{
		{"garbage", func(path string) { replaceFile(t, path, []byte("not a key")) }},
		{"half a key", func(path string) { replaceFile(t, path, newPEM[:len(newPEM)/2]) }},
		{"key bytes mangled", func(path string) {
			replaceFile(t, path, bytes.Replace(newPEM, []byte("\n"), []byte("\nAAAA"), 3))
		}},
		{"empty", func(path string) { replaceFile(t, path, nil) }},
		{"deleted", func(path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			writeFile(t, path, string(pkcs1PEM(oldKey)))
			log, logs := keyLog()
			k, err := LoadKeyFile(path, log)
			if err != nil {
				t.Fatal(err)
			}
			tc.broken(path)
			expireCheck(k)
			if got := k.Signer(); !sameKey(oldKey, got) {
				t.Fatalf("Signer() after a broken rotation = %T, want the old key", got)
			}
			if !strings.Contains(logs.String(), "keeping the previous one") {
				t.Errorf("log = %s\nwant the failure logged", logs)
			}
			replaceFile(t, path, newPEM)
			expireCheck(k)
			if got := k.Signer(); !sameKey(newKey, got) {
				t.Errorf("Signer() after the file was fixed = the old key, want the new one")
			}
			checkNoKeyLines(t, logs.String(), pkcs1PEM(oldKey), newPEM)
		})
	}
}

// TestKeyFileConcurrent reads the key from many goroutines while the file
// rotates: each read is one of the keys, whole.
func TestKeyFileConcurrent(t *testing.T) {
	keys := rsaTestKeys()
	path := filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, path, string(pkcs1PEM(keys[0])))
	k, err := LoadKeyFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				if s := k.Signer(); !sameKey(keys[0], s) && !sameKey(keys[1], s) {
					t.Errorf("Signer() = %T, neither key", s)
					return
				}
			}
		})
	}
	for i := range 20 {
		replaceFile(t, path, pkcs8PEM(t, keys[(i+1)%2]))
		expireCheck(k)
		k.Signer()
	}
	stop.Store(true)
	wg.Wait()
	if got := k.Signer(); !sameKey(keys[0], got) {
		t.Errorf("Signer() after the last rotation = key 1, want key 0")
	}
}

// checkNoKeyLines fails the test if log quotes any line of the PEM docs.
func checkNoKeyLines(t *testing.T, log string, docs ...[]byte) {
	t.Helper()
	for _, doc := range docs {
		for _, l := range pemLines(doc) {
			if strings.Contains(log, l) {
				t.Errorf("log quotes key material %q:\n%s", l, log)
				return
			}
		}
	}
}

// FuzzParsePrivateKey checks that any input gives a usable RSA or ECDSA key,
// or one of the known errors, which never quote the input.
func FuzzParsePrivateKey(f *testing.F) {
	rsaKey, ecKey := rsaTestKeys()[0], ecTestKey()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, seed := range [][]byte{
		pkcs1PEM(rsaKey),
		pkcs8PEM(f, rsaKey),
		sec1PEM(f, ecKey),
		pkcs8PEM(f, ecKey),
		pkcs8PEM(f, edKey),
		certPEM(f, ecKey),
		append(certPEM(f, ecKey), sec1PEM(f, ecKey)...),
		pemOf("ENCRYPTED PRIVATE KEY", []byte("junk")),
		pemOf("RSA PRIVATE KEY", []byte("junk")),
		pemOf("EC PRIVATE KEY", nil),
		pemOf("PRIVATE KEY", []byte{0x30, 0x00}),
		[]byte("-----BEGIN RSA PRIVATE KEY-----\n"),
		[]byte("hello"),
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parsePrivateKey(data)
		if err != nil {
			if s != nil {
				t.Errorf("parsePrivateKey() = %T with error %v, want nil", s, err)
			}
			if !knownKeyError.MatchString(err.Error()) {
				t.Errorf("parsePrivateKey() error = %q, not one of the known errors", err)
			}
			return
		}
		switch k := s.(type) {
		case *rsa.PrivateKey:
			if k.Validate() != nil {
				t.Errorf("parsePrivateKey() = an invalid RSA key")
			}
		case *ecdsa.PrivateKey:
			if _, err := k.Bytes(); err != nil {
				t.Errorf("parsePrivateKey() = an unusable EC key: %v", err)
			}
		default:
			t.Errorf("parsePrivateKey() = %T, want an RSA or ECDSA key", s)
		}
		if !bytes.Contains(data, []byte("-----BEGIN ")) {
			t.Errorf("parsePrivateKey(%q) found a key without a PEM block", data)
		}
	})
}
