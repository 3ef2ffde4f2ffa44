package tokens

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultTTL is the lifetime assumed when a provider gives none and the token
// is not a JWT with an exp claim.
const DefaultTTL = 15 * time.Minute

// jwtExpiry reads the exp claim of a JWT without verifying its signature (the
// sidecar cannot, and only needs to know when to renew).
func jwtExpiry(value string) (time.Time, bool) {
	// MapClaims, not RegisteredClaims: a provider's odd claim elsewhere (a
	// numeric sub, say) must not hide a good exp.
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(value, claims); err != nil {
		return time.Time{}, false
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}, false
	}
	return exp.Time, true
}

// expiryOf picks a token's expiry: the one the provider gave (expires_in,
// or an absolute expiry) or the JWT's exp, whichever is earlier, when both
// are there and exp is still ahead (exp is in whole seconds, and may fall up
// to a second before now+expires_in). An exp already past on a token just
// issued says that the clocks disagree, not that the token expired — a
// provider does not issue expired tokens — so it is ignored rather than
// fail every fetch on a node whose clock runs ahead; an upstream that then
// rejects the token makes the sidecar refresh it. Else the one there is;
// else now plus defaultTTL (DefaultTTL if zero).
func expiryOf(value string, given, now time.Time, defaultTTL time.Duration) time.Time {
	exp, isJWT := jwtExpiry(value)
	switch {
	case !given.IsZero() && isJWT && exp.Before(given) && exp.After(now):
		return exp
	case !given.IsZero():
		return given
	case isJWT:
		return exp
	}
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	return now.Add(defaultTTL)
}
