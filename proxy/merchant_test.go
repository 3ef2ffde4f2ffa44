package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestCheckMerchant(t *testing.T) {
	tests := []struct {
		name, body string
		ok         bool
	}{
		{name: "same merchant", body: `{"merchantID":"BNP_1"}`, ok: true},
		{name: "no merchantID", body: `{}`, ok: true},
		{name: "other members beside the merchant", body: `{"platform":"ios","merchantID":"BNP_1","x":{"merchantID":"BNP_2"}}`, ok: true},
		{name: "empty body", body: ``, ok: true},
		{name: "another merchant", body: `{"merchantID":"BNP_2"}`},
		{name: "another merchant, then a syntax error", body: `{"merchantID":"BNP_2","amount":[}`},
		{name: "merchantID twice", body: `{"merchantID":"BNP_2","merchantID":"BNP_1"}`},
		{name: "merchantID twice, the same", body: `{"merchantID":"BNP_1","merchantID":"BNP_1"}`},
		{name: "merchantID not a string", body: `{"merchantID":"BNP_2","x":{"y":1},"merchantID":12}`},
		{name: "not an object", body: `["BNP_1"]`},
		{name: "two objects", body: `{"merchantID":"BNP_1"}{}`},
		{name: "truncated", body: `{"merchantID":"BNP_1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkMerchant(strings.NewReader(tc.body), "BNP_1")
			if got := err == nil; got != tc.ok {
				t.Errorf("checkMerchant(%q) = %v, want accepted %v", tc.body, err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "BNP_2") {
				t.Errorf("checkMerchant(%q) error = %q quotes the body", tc.body, err)
			}
		})
	}
}

// merchantOf walks an SDK request body token by token: whether it is
// blank, or one JSON object and nothing after it, and the values of that
// object's top-level "merchantID" members, in order.
func merchantOf(body []byte) (blank, object bool, ids []any) {
	if strings.Trim(string(body), " \t\r\n") == "" {
		return true, false, nil
	}
	if !json.Valid(body) {
		return false, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, _ := dec.Token(); t != json.Delim('{') {
		return false, false, nil
	}
	for dec.More() {
		key, _ := dec.Token()
		var v any
		dec.Decode(&v)
		if key == "merchantID" {
			ids = append(ids, v)
		}
	}
	return false, true, ids
}

// FuzzCheckMerchant feeds SDK request bodies to the merchant check: it
// must not panic; it accepts exactly a blank body, or one JSON object naming
// merchantID at most once, as the configured merchant; and its errors are
// fixed texts that never quote the body.
func FuzzCheckMerchant(f *testing.F) {
	const merchant = "BNP_DEMO_AXEPTA"
	for _, s := range []string{
		``, ` `, "\n\t", `{}`, `{"merchantID":"BNP_DEMO_AXEPTA"}`, `{"merchantID":"other"}`,
		`{"merchantID":"BNP_DEMO_AXEPTA","merchantID":"BNP_DEMO_AXEPTA"}`,
		`{"merchantID":"other","merchantID":"BNP_DEMO_AXEPTA"}`,
		`{"merchantID":null}`, `{"merchantID":42}`, `{"merchantID":{"merchantID":"other"}}`,
		`{"x":{"merchantID":"other"},"merchantID":"BNP_DEMO_AXEPTA"}`,
		`{"merchant\u0049D":"other"}`, `{"MerchantID":"other"}`, `{"merchantID":"BNP_DEMO_AXEPTA"}{}`,
		`{"merchantID":"BNP_DEMO_AXEPTA"} x`, `[]`, `"BNP_DEMO_AXEPTA"`, `null`, `{`, `{"merchantID"`,
		"{\"merchantID\":\"BNP_DEMO_AXEPTA\xff\"}", "\v{}",
	} {
		f.Add([]byte(s))
	}
	fixed := []string{
		"the hand-off request body must be a JSON object",
		"merchantID must be given once, as a string",
		"merchantID does not match this sidecar's AUTHSIDECAR_MERCHANT_ID",
		"the hand-off request body must be a single JSON object",
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkMerchant(bytes.NewReader(body), merchant)
		if err != nil && !slices.Contains(fixed, err.Error()) {
			t.Errorf("checkMerchant(%q) error = %q, not one of the fixed texts", body, err)
		}
		blank, object, ids := merchantOf(body)
		want := blank || object && (len(ids) == 0 || len(ids) == 1 && ids[0] == merchant)
		if got := err == nil; got != want {
			t.Errorf("checkMerchant(%q) = %v, want accepted %v (blank %v, object %v, merchantID values %q)", body, err, want, blank, object, ids)
		}
	})
}
