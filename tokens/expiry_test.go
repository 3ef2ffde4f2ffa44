package tokens

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tezpayExampleToken is the access_token of TezPay's documented answer; its
// payload has "iat":1758141644 and "exp":1758228044.
const tezpayExampleToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZXpfYXV0aF9wb2ludF9pZCI6ImExYjJjM2Q0LWU1ZjYtNzg5MC1hYmNkLWVmMTIzNDU2Nzg5MCIsInRlel9hcGlfa2V5IjoiZXhhbXBsZV9jbGllbnRfc2VjcmV0X2tleV8xMjM0NTY3ODlhYmNkZWYiLCJpYXQiOjE3NTgxNDE2NDQsImV4cCI6MTc1ODIyODA0NH0.example_signature_here"

func TestJWTExpiry(t *testing.T) {
	exp := time.Unix(1758228044, 0)
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": exp.Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		value  string
		want   time.Time
		wantOK bool
	}{
		{"TezPay example", tezpayExampleToken, exp, true},
		{"HS256 with exp", signJWT(jwt.MapClaims{"exp": exp.Unix(), "client_id": tezpayID}), exp, true},
		{"alg none", unsigned, exp, true},
		{"exp in the past", signJWT(jwt.MapClaims{"exp": 1}), time.Unix(1, 0), true},
		{"audience list", signJWT(jwt.MapClaims{"aud": []string{"a", "b"}, "exp": exp.Unix()}), exp, true},
		// RFC 7519 wants sub to be a string, but providers send user ids as
		// numbers; the exp is still there and must not be ignored.
		{"numeric sub", signJWT(jwt.MapClaims{"sub": 42, "exp": exp.Unix()}), exp, true},
		{"no exp", signJWT(jwt.MapClaims{"sub": "merchant"}), time.Time{}, false},
		{"exp not a number", signJWT(jwt.MapClaims{"exp": "tomorrow"}), time.Time{}, false},
		{"opaque token", "opaque-access-token", time.Time{}, false},
		{"two segments", "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9", time.Time{}, false},
		{"not base64", "a.b.c", time.Time{}, false},
		{"empty", "", time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := jwtExpiry(tc.value)
			if ok != tc.wantOK || !got.Equal(tc.want) {
				t.Errorf("jwtExpiry() = %v, %v, want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestExpiryOf(t *testing.T) {
	now := tezpayEpoch
	jwtExp := now.Add(3 * time.Hour)
	withExp := signJWT(jwt.MapClaims{"exp": jwtExp.Unix()})
	given := now.Add(time.Minute)
	withPastExp := signJWT(jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})
	tezpayIat := time.Unix(1758141644, 0)
	tests := []struct {
		name       string
		value      string
		given      time.Time
		defaultTTL time.Duration
		want       time.Time
	}{
		{"given wins over a later exp", withExp, given, time.Hour, given},
		// Finding 7 of issue 13: of expires_in and a JWT's exp, the earlier.
		{"exp wins over a later given", withExp, now.Add(12 * time.Hour), time.Hour, jwtExp},
		{"TezPay's sample: expires_in 43200, exp 24h after iat", tezpayExampleToken, tezpayIat.Add(43200 * time.Second), 0, tezpayIat.Add(12 * time.Hour)},
		{"exp already past (clocks disagree) is ignored for a given", withPastExp, now.Add(12 * time.Hour), 0, now.Add(12 * time.Hour)},
		{"exp now is ignored for a given", signJWT(jwt.MapClaims{"exp": now.Unix()}), given, 0, given},
		{"given, opaque", "opaque", given, 0, given},
		{"JWT exp", withExp, time.Time{}, time.Hour, jwtExp},
		{"opaque, default TTL given", "opaque", time.Time{}, time.Hour, now.Add(time.Hour)},
		{"opaque, zero default TTL", "opaque", time.Time{}, 0, now.Add(15 * time.Minute)},
		{"opaque, negative default TTL", "opaque", time.Time{}, -time.Hour, now.Add(DefaultTTL)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := expiryOf(tc.value, tc.given, now, tc.defaultTTL); !got.Equal(tc.want) {
				t.Errorf("expiryOf() = %v, want %v", got, tc.want)
			}
		})
	}
}
