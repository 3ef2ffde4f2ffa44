package shared

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, KeySize)
	raw32 := []byte("correct horse battery staple 123") // 32 characters: not a key
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"base64", []byte(base64.StdEncoding.EncodeToString(key)), key},
		{"base64 with a newline", []byte(base64.StdEncoding.EncodeToString(key) + "\n"), key},
		{"base64 unpadded", []byte(base64.RawStdEncoding.EncodeToString(key)), key},
		{"base64url", []byte(base64.URLEncoding.EncodeToString(key)), key},
		{"hex", []byte(hex.EncodeToString(key)), key},
		{"hex upper case", []byte(strings.ToUpper(hex.EncodeToString(key)) + "\n"), key},
		{"raw bytes", key, nil},
		{"a 32-character passphrase", raw32, nil},
		{"16 bytes base64", []byte(base64.StdEncoding.EncodeToString(key[:16])), nil},
		{"31 raw bytes", key[:31], nil},
		{"33 raw bytes", append(bytes.Clone(key), 1), nil},
		{"empty", nil, nil},
		{"a passphrase", []byte("correct horse battery staple"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.in)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), "must hold 32 bytes") {
					t.Errorf("ParseKey() = %x, %v; want the 32-byte rule", got, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("ParseKey() = %x, %v; want %x", got, err, tc.want)
			}
		})
	}
}

func TestKeyNames(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	e, l := keyNames(k1, []string{"ab", "c"})
	if !strings.HasPrefix(e, "authsidecar:token:") || l != strings.Replace(e, ":token:", ":lock:", 1) {
		t.Errorf("keyNames() = %q, %q; want a token key and its lock", e, l)
	}
	for name, other := range map[string]string{
		"parts joined differently": first(keyNames(k1, []string{"a", "bc"})),
		"another key":              first(keyNames(k2, []string{"ab", "c"})),
		"another identity":         first(keyNames(k1, []string{"ab", "d"})),
	} {
		if other == e {
			t.Errorf("%s: same key name %q", name, e)
		}
	}
	if again, _ := keyNames(k1, []string{"ab", "c"}); again != e {
		t.Errorf("keyNames() is not stable: %q then %q", e, again)
	}
}

func first(a, _ string) string { return a }

func TestSubkeysDiffer(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeySize)
	seal, name, err := subkeys(key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(seal, name) || bytes.Equal(seal, key) || bytes.Equal(name, key) {
		t.Errorf("subkeys are not distinct from each other and from the key")
	}
	if _, _, err := subkeys(key[:16]); err == nil {
		t.Errorf("subkeys(16 bytes) error = nil, want one")
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		wantErr string
		addr    string
		tls     bool
		db      int
		user    string
	}{
		{url: "redis://redis:6379", addr: "redis:6379"},
		{url: "redis://redis", addr: "redis:6379"},
		{url: "rediss://cache.example:6380/3", addr: "cache.example:6380", tls: true, db: 3},
		{url: "redis://authsidecar@redis", addr: "redis:6379", user: "authsidecar"},
		{url: "redis://u:hunter2@redis", wantErr: "holds a password"},
		{url: "redis://:hunter2@redis", wantErr: "holds a password"},
		{url: "unix:///run/redis.sock", wantErr: "redis:// or rediss://"},
		{url: "http://redis", wantErr: "redis:// or rediss://"},
		{url: "redis://", wantErr: "names no host"},
		{url: "redis://redis/x", wantErr: "invalid database"},
		{url: "redis://re dis", wantErr: "not a URL"},
		{url: "rediss://redis?skip_verify=true", wantErr: "may not have a query"},
		{url: "redis://redis?dial_timeout=1m", wantErr: "may not have a query"},
	} {
		opts, err := ParseURL(tc.url)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseURL(%q) error = %v, want %q without the password", tc.url, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q) error = %v", tc.url, err)
			continue
		}
		if opts.Addr != tc.addr || (opts.TLSConfig != nil) != tc.tls || opts.DB != tc.db || opts.Username != tc.user {
			t.Errorf("ParseURL(%q) = addr %q, TLS %v, db %d, user %q; want %q, %v, %d, %q",
				tc.url, opts.Addr, opts.TLSConfig != nil, opts.DB, opts.Username, tc.addr, tc.tls, tc.db, tc.user)
		}
	}
}
