package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// sharedFiles are a fleet key in each accepted form, a password and a CA.
type sharedFiles struct{ keyB64, keyHex, keyRaw, shortKey, password, emptyPassword, ca, notPEM string }

var testFleetKey = bytes.Repeat([]byte{0x5a}, shared.KeySize)

func writeSharedFiles(t *testing.T) sharedFiles {
	t.Helper()
	dir := t.TempDir()
	return sharedFiles{
		keyB64:        writeFile(t, dir, "key.b64", base64.StdEncoding.EncodeToString(testFleetKey)+"\n"),
		keyHex:        writeFile(t, dir, "key.hex", hex.EncodeToString(testFleetKey)),
		keyRaw:        writeFile(t, dir, "key.raw", string(testFleetKey)),
		shortKey:      writeFile(t, dir, "key.short", base64.StdEncoding.EncodeToString(testFleetKey[:16])),
		password:      writeFile(t, dir, "password", "redis-password-do-not-print\n"),
		emptyPassword: writeFile(t, dir, "empty", "\n"),
		ca:            writeFile(t, dir, "ca.pem", string(certPEM(t))),
		notPEM:        writeFile(t, dir, "ca.txt", "not a certificate"),
	}
}

func TestLoadConfigSharedCacheValid(t *testing.T) {
	f := writeSharedFiles(t)
	for _, tc := range []struct {
		name   string
		source string
		env    map[string]string
	}{
		{"base64 key", "oauth2", map[string]string{"SHARED_CACHE": "redis://redis.cache:6379", "SHARED_CACHE_KEY_FILE": f.keyB64}},
		{"hex key", "json", map[string]string{"SHARED_CACHE": "redis://redis.cache", "SHARED_CACHE_KEY_FILE": f.keyHex}},
		{"database 2", "json", map[string]string{"SHARED_CACHE": "redis://redis.cache/2", "SHARED_CACHE_KEY_FILE": f.keyB64}},
		{"user, password file, TLS with a CA", "oauth2", map[string]string{
			"SHARED_CACHE": "rediss://authsidecar@redis.cache:6380", "SHARED_CACHE_KEY_FILE": f.keyB64,
			"SHARED_CACHE_PASSWORD_FILE": f.password, "SHARED_CACHE_CA_FILE": f.ca,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(minimal(tc.source, tc.env))
			if err != nil {
				t.Fatalf("loadConfig() error = %v", err)
			}
			if key, err := shared.LoadKey(c.SharedCacheKeyFile); err != nil || !bytes.Equal(key, testFleetKey) {
				t.Errorf("key = %x (error %v), want %x", key, err, testFleetKey)
			}
			var p problems
			if cc := c.sharedClientConfig(&p); (c.SharedCacheCAFile != "") != (cc.TLS != nil) || p.err() != nil {
				t.Errorf("TLS config = %v (error %v) with CA file %q", cc.TLS, p.err(), c.SharedCacheCAFile)
			}
			if _, ok := built(t, c).source.(*shared.Source); !ok {
				t.Errorf("the token source is not the shared cache's")
			}
		})
	}
	c, err := loadConfig(minimal("oauth2", nil))
	if err != nil || c.SharedCache != "" || c.SharedCacheKeyFile != "" {
		t.Errorf("default: SHARED_CACHE = %q, key file %q, error %v; want off", c.SharedCache, c.SharedCacheKeyFile, err)
	}
}

func TestLoadConfigSharedCacheBadValue(t *testing.T) {
	f := writeSharedFiles(t)
	missing := filepath.Join(t.TempDir(), "missing")
	on := func(extra map[string]string) map[string]string {
		env := map[string]string{"SHARED_CACHE": "redis://redis.cache:6379", "SHARED_CACHE_KEY_FILE": f.keyB64}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	checkOneProblem(t, []badInject{
		{"no key file", "oauth2", on(map[string]string{"SHARED_CACHE_KEY_FILE": unset}), "SHARED_CACHE_KEY_FILE", "required with AUTHSIDECAR_SHARED_CACHE"},
		{"key file missing", "oauth2", on(map[string]string{"SHARED_CACHE_KEY_FILE": missing}), "SHARED_CACHE_KEY_FILE", "no such file"},
		{"key of 16 bytes", "oauth2", on(map[string]string{"SHARED_CACHE_KEY_FILE": f.shortKey}), "SHARED_CACHE_KEY_FILE", "must hold 32 bytes"},
		{"raw key bytes", "oauth2", on(map[string]string{"SHARED_CACHE_KEY_FILE": f.keyRaw}), "SHARED_CACHE_KEY_FILE", "in base64"},
		{"options in the URL", "oauth2", on(map[string]string{"SHARED_CACHE": "rediss://redis.cache?skip_verify=true"}), "SHARED_CACHE", "may not have a query"},
		{"http URL", "oauth2", on(map[string]string{"SHARED_CACHE": "http://redis.cache"}), "SHARED_CACHE", `redis:// or rediss://`},
		{"no scheme", "oauth2", on(map[string]string{"SHARED_CACHE": "redis.cache:6379"}), "SHARED_CACHE", `redis:// or rediss://`},
		{"no host", "oauth2", on(map[string]string{"SHARED_CACHE": "redis://"}), "SHARED_CACHE", "names no host"},
		{"password in the URL", "oauth2", on(map[string]string{"SHARED_CACHE": "redis://user:redis-password-do-not-print@redis.cache"}), "SHARED_CACHE", "SHARED_CACHE_PASSWORD_FILE"},
		{"bad database", "oauth2", on(map[string]string{"SHARED_CACHE": "redis://redis.cache/nine"}), "SHARED_CACHE", "invalid database"},
		{"file source", "file", on(map[string]string{"TOKEN_FILE": f.password}), "SHARED_CACHE", "needs a token fetched from a provider"},
		{"no token source", "none", on(map[string]string{"INJECT": "none"}), "SHARED_CACHE", `got "none"`},
		{"password file missing", "oauth2", on(map[string]string{"SHARED_CACHE_PASSWORD_FILE": missing}), "SHARED_CACHE_PASSWORD_FILE", "no such file"},
		{"password file empty", "oauth2", on(map[string]string{"SHARED_CACHE_PASSWORD_FILE": f.emptyPassword}), "SHARED_CACHE_PASSWORD_FILE", "is empty"},
		{"CA file not PEM", "oauth2", on(map[string]string{"SHARED_CACHE": "rediss://redis.cache", "SHARED_CACHE_CA_FILE": f.notPEM}), "SHARED_CACHE_CA_FILE", "no PEM certificate"},
		{"CA file without TLS", "oauth2", on(map[string]string{"SHARED_CACHE_CA_FILE": f.ca}), "SHARED_CACHE_CA_FILE", "only used with a rediss:// URL"},
		{"key file without the cache", "oauth2", map[string]string{"SHARED_CACHE_KEY_FILE": f.keyB64}, "SHARED_CACHE_KEY_FILE", "set without AUTHSIDECAR_SHARED_CACHE"},
		{"password file without the cache", "oauth2", map[string]string{"SHARED_CACHE_PASSWORD_FILE": f.password}, "SHARED_CACHE_PASSWORD_FILE", "the shared cache is off"},
	})
}

func TestLoadConfigSharedCacheNeverPrintsThePassword(t *testing.T) {
	_, err := loadConfig(minimal("oauth2", map[string]string{"SHARED_CACHE": "redis://user:redis-password-do-not-print@redis.cache"}))
	if err == nil || strings.Contains(err.Error(), "do-not-print") {
		t.Errorf("loadConfig() error = %v, want a refusal that does not quote the password", err)
	}
}

func TestSharedIdentity(t *testing.T) {
	dir := t.TempDir()
	idFile := writeFile(t, dir, "id", "client-1\n")
	identity := func(source string, env map[string]string) []string {
		t.Helper()
		c, err := loadConfig(minimal(source, env))
		if err != nil {
			t.Fatalf("loadConfig() error = %v", err)
		}
		kind, _ := lookupSource(c.TokenSource)
		id, err := c.sharedIdentity(kind)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	base := identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x"})
	same := map[string][]string{
		"scopes in another order":  identity("oauth2", map[string]string{"SCOPES": "refunds, payments", "TOKEN_PARAMS": "resource=x,audience=api"}),
		"another secret":           identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "CLIENT_SECRET": "secret-2"}),
		"client id from a file":    identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "CLIENT_ID": unset, "CLIENT_ID_FILE": idFile}),
		"another auth style":       identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "OAUTH2_AUTH_STYLE": "header"}),
		"another upstream and TTL": identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "UPSTREAM_URL": "https://other.example", "RENEW_AT": "0.5"}),
	}
	for name, id := range same {
		if !slices.Equal(id, base) {
			t.Errorf("%s: identity %q, want %q: the tokens are interchangeable", name, id, base)
		}
	}
	differ := map[string][]string{
		"another client":     identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "CLIENT_ID": "client-2"}),
		"another scope":      identity("oauth2", map[string]string{"SCOPES": "payments", "TOKEN_PARAMS": "audience=api,resource=x"}),
		"another parameter":  identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=web,resource=x"}),
		"another token URL":  identity("oauth2", map[string]string{"SCOPES": "payments,refunds", "TOKEN_PARAMS": "audience=api,resource=x", "TOKEN_URL": "https://auth.example.com/token2"}),
		"another kind":       identity("json", nil),
		"another JSON field": identity("json", map[string]string{"JSON_TOKEN_FIELD": "data.token"}),
	}
	for name, id := range differ {
		if slices.Equal(id, base) || (name == "another JSON field" && slices.Equal(id, identity("json", nil))) {
			t.Errorf("%s: identity %q is the same, want it to differ", name, id)
		}
	}
	for _, id := range append(slices.Collect(maps.Values(differ)), base) {
		for _, part := range id {
			if strings.Contains(part, "secret-") {
				t.Errorf("identity %q holds the client secret", id)
			}
		}
	}
}

func certPEM(t *testing.T) []byte {
	cert, _ := selfSigned(t)
	return cert
}

func TestWithSharedCacheWrapsTheSource(t *testing.T) {
	f := writeSharedFiles(t)
	c, err := loadConfig(minimal("oauth2", map[string]string{"SHARED_CACHE": "redis://127.0.0.1:1", "SHARED_CACHE_KEY_FILE": f.keyB64}))
	if err != nil {
		t.Fatal(err)
	}
	inner := tokens.SourceFunc(nil)
	src, closeFn, err := withSharedCache(inner, oauth2Source, c, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("withSharedCache() error = %v", err)
	}
	defer closeFn()
	if _, ok := src.(*shared.Source); !ok {
		t.Errorf("source = %T, want *shared.Source", src)
	}
	if _, ok := src.(tokens.Rejecter); !ok {
		t.Errorf("source %T does not hear of rejected tokens", src)
	}
}
