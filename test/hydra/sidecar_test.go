package hydra

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/tokens"
)

// TestSidecarClientCredentials runs the sidecar's own client-credentials
// source (tokens.NewOAuth2Source, TOKEN_SOURCE=oauth2) against Hydra: with a
// client secret, sent either way, and with a private_key_jwt client
// assertion (CLIENT_ASSERTION_KEY_FILE) signed by an RSA or an ECDSA key.
func TestSidecarClientCredentials(t *testing.T) {
	s := Start(t)
	scopes := []string{"payments.read"}

	get := func(t *testing.T, c tokens.OAuth2Config, client string) {
		t.Helper()
		c.TokenURL, c.Scopes = s.TokenURL, scopes
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		src := tokens.NewOAuth2Source(c)
		for i := range 2 { // a second fetch: a client assertion is made anew (new jti) each time
			tok, err := src.Token(ctx)
			if err != nil {
				t.Fatalf("fetch %d: %v", i+1, err)
			}
			if left := time.Until(tok.Expiry); left < 50*time.Minute || left > 61*time.Minute {
				t.Errorf("fetch %d: the token expires in %v, want Hydra's default hour", i+1, left)
			}
			if in := s.Introspect(t, tok.Value); in["active"] != true || in["client_id"] != client || in["scope"] != "payments.read" {
				t.Errorf("fetch %d: introspection %v, want active for %s with payments.read", i+1, in, client)
			}
		}
	}

	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			c := s.CreateClient(t, ClientSpec{AuthMethod: method, GrantTypes: []string{GrantClientCredentials}, Scopes: scopes})
			get(t, tokens.OAuth2Config{ClientID: tokens.Literal(c.ID), ClientSecret: tokens.Literal(c.Secret)}, c.ID)
		})
	}
	for _, tc := range []struct {
		alg string
		key func(testing.TB) crypto.Signer
	}{
		{"RS256", func(t testing.TB) crypto.Signer { return rsaKey(t) }},
		{"PS256", func(t testing.TB) crypto.Signer { return rsaKey(t) }},
		{"ES256", func(t testing.TB) crypto.Signer { return ecKey(t) }},
	} {
		t.Run("private_key_jwt "+tc.alg, func(t *testing.T) {
			key := tc.key(t)
			c := s.CreateClient(t, ClientSpec{
				AuthMethod: "private_key_jwt", GrantTypes: []string{GrantClientCredentials}, Scopes: scopes,
				Key: key.Public(), KeyID: "k1", SigningAlg: tc.alg,
			})
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			kf, err := tokens.LoadKeyFile(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			get(t, tokens.OAuth2Config{
				ClientID:  tokens.Literal(c.ID),
				Assertion: &tokens.ClientAssertion{Key: kf, Alg: tc.alg, KeyID: "k1"},
			}, c.ID)
		})
	}
}
