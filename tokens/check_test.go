package tokens

import (
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"
)

// fieldsOf lists the fields a Check's error names, in order.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("Check() error %q is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestConfigChecks(t *testing.T) {
	id, secret := Literal("client-1"), File("/run/secrets/client-secret")
	tests := []struct {
		name string
		err  error
		want []string // the fields named, in order; nil: valid
	}{
		{"json valid", JSONConfig{URL: "https://auth.example/token", ClientID: id, ClientSecret: secret}.Check(), nil},
		{"json valid with fields", JSONConfig{URL: "http://127.0.0.1:8001/api/v1/tezpay/authenticate", ClientID: id, ClientSecret: secret, TokenField: "data.access_token", ExpiresAtField: "data.exp", DefaultTTL: time.Hour}.Check(), nil},
		{"json empty", JSONConfig{}.Check(), []string{"URL", "ClientID", "ClientSecret"}},
		{"json bad URL and paths", JSONConfig{URL: "ftp://x", ClientID: id, ClientSecret: secret, TokenField: "a..b", ExpiresInField: ".x", ExpiresAtField: "x.", DefaultTTL: -time.Second}.Check(),
			[]string{"URL", "TokenField", "ExpiresInField", "ExpiresAtField", "DefaultTTL"}},
		{"oauth2 valid", OAuth2Config{TokenURL: "https://auth.example/token", ClientID: id, ClientSecret: secret, Scopes: []string{"payments"}, Params: url.Values{"audience": {"api"}}}.Check(), nil},
		{"oauth2 empty", OAuth2Config{}.Check(), []string{"TokenURL", "ClientID", "ClientSecret"}},
		{"oauth2 reserved params and bad scopes", OAuth2Config{TokenURL: "https://a.example/t", ClientID: id, ClientSecret: secret,
			Scopes: []string{"a b", ""}, Params: url.Values{"grant_type": {"x"}, "scope": {"y"}}}.Check(), []string{"Params", "Params", "Scopes", "Scopes"}},
		{"oauth2 scope param without Scopes", OAuth2Config{TokenURL: "https://a.example/t", ClientID: id, ClientSecret: secret, Params: url.Values{"scope": {"y"}}}.Check(), nil},
		{"oauth2 secret and assertion", OAuth2Config{TokenURL: "https://a.example/t", ClientID: id, ClientSecret: secret, Assertion: &ClientAssertion{Alg: "RS256"}}.Check(), []string{"ClientSecret", "Assertion"}},
		{"registered valid", RegisteredConfig{URL: "https://paygate.example/register", MerchantID: "M1", TTL: 24 * time.Hour}.Check(), nil},
		{"registered empty", RegisteredConfig{}.Check(), []string{"URL", "MerchantID", "TTL"}},
		{"registered over the provider's limit", RegisteredConfig{URL: "https://p.example", MerchantID: "M1", TTL: 25 * time.Hour}.Check(), []string{"TTL"}},
		{"file valid", FileConfig{Path: "/var/run/secrets/token"}.Check(), nil},
		{"file empty", FileConfig{DefaultTTL: -1}.Check(), []string{"Path", "DefaultTTL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fieldsOf(t, tc.err); !slices.Equal(got, tc.want) {
				t.Errorf("Check() = %v, naming %q; want %q", tc.err, got, tc.want)
			}
		})
	}
}
