package tokens

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
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
	merchant := func() *paygate.Merchant { return &paygate.Merchant{ID: axeptaMID, Cipher: testBlowfish} }
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
		{"axepta valid", AxeptaConfig{URL: "https://paygate.example/AuthToken.aspx", Merchant: merchant, TTL: 24 * time.Hour}.Check(), nil},
		{"axepta valid, default TTL", AxeptaConfig{URL: "https://paygate.example/AuthToken.aspx", Merchant: merchant}.Check(), nil},
		{"axepta shortest TTL", AxeptaConfig{URL: "https://p.example", Merchant: merchant, TTL: time.Second}.Check(), nil},
		{"axepta empty", AxeptaConfig{}.Check(), []string{"URL", "Merchant"}},
		{"axepta over the provider's limit", AxeptaConfig{URL: "https://p.example", Merchant: merchant, TTL: 25 * time.Hour}.Check(), []string{"TTL"}},
		{"axepta under a second", AxeptaConfig{URL: "https://p.example", Merchant: merchant, TTL: 500 * time.Millisecond}.Check(), []string{"TTL"}},
		{"axepta negative TTL", AxeptaConfig{URL: "https://p.example", Merchant: merchant, TTL: -time.Minute}.Check(), []string{"TTL"}},
		{"axepta merchant func gives none", AxeptaConfig{URL: "https://p.example", Merchant: func() *paygate.Merchant { return nil }}.Check(), []string{"Merchant"}},
		{"axepta merchant without id or cipher", AxeptaConfig{URL: "https://p.example", Merchant: func() *paygate.Merchant { return &paygate.Merchant{} }}.Check(), []string{"Merchant", "Merchant"}},
		{"axepta merchant id not ans..30", AxeptaConfig{URL: "https://p.example", Merchant: func() *paygate.Merchant {
			return &paygate.Merchant{ID: "a&b", Cipher: testBlowfish}
		}}.Check(), []string{"Merchant"}},
		{"axepta merchant id too long", AxeptaConfig{URL: "ftp://p.example", Merchant: func() *paygate.Merchant {
			return &paygate.Merchant{ID: strings.Repeat("m", 31), Cipher: testBlowfish}
		}}.Check(), []string{"URL", "Merchant"}},
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
