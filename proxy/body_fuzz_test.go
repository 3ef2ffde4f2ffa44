package proxy_test

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// juspayBodies are typical bodies an app sends, for the fuzz seeds.
var juspayBodies = []string{
	initiate,
	`{"requestId":"8cbc3ad8-2a4d-4b6f-a1d3-1d2c0b7e9f10","service":"in.juspay.hyperapi","payload":{"action":"initiate","clientId":"stock","environment":"production","issuingPsp":"YES_BIZ","customerId":"abcde12345"}}`,
	`{"requestId":"r","service":"in.juspay.hyperapi","payload":{"action":"process","customer_id":12345678901234567890,"amount":1.10}}`,
	`{"payload":{"action":"updateAuth","customerId":"c","signaturePayload":{"order_id":"o-1"}}}`,
	`{"payload":{"customerId":"c","signaturePayload":"{\"order_id\":\"o-1\"}"}}`,
	`{"payload":{"action":"initiate","clientAuthToken":"stale","authExpiry":"2021-07-19T07:20:53.318Z"}}`,
	`{"event":"session_expired","payload":{"timestamp":"2021-07-19T07:20:53.318Z","reqCode":"gdjhsdfgjhf-dsfyfsudgk"}}`,
	`{"payload":{"customerId":"","customer_id":"x","signature":"c3RhbGU=","merchantKeyId":"old"}}`,
	`{"payload":"x"}`,
	`{"payload":{"customerId":true}}`,
	`{"payload":{"customerId":"c","signaturePayload":5}}`,
	`{"a":1}{"b":2}`,
	`[]`,
	`null`,
	`"\ud800"`,
	"{\"payload\":{\"customerId\":\"\xff\\ud800\"}}",                                 // invalid UTF-8, lone surrogate
	"{\"payload\":{\"customerId\":\"caf\xe9\"}}",                                     // invalid UTF-8
	`{"payload":{"customerId":"c","n":"\udc00"}}`,                                    // lone low surrogate
	`{"payload":{"customerId":"c","n":"\ud83d\ude00","m":"\\ud800"}}`,                // a pair; an escaped backslash
	`{"payload":{"customerId":"c","signaturePayload":"{\"order_id\":\"\\ud800\"}"}}`, // a lone surrogate in the string
	``,
}

// FuzzSign checks that Sign, given any body, returns either a signed JSON
// object whose signature verifies and which keeps everything the app sent,
// text included (no U+FFFD for invalid UTF-8 or an unpaired surrogate), or
// a *RequestError; never anything else, and never a panic.
func FuzzSign(f *testing.F) {
	for _, b := range juspayBodies {
		f.Add([]byte(b))
	}
	s := newSigner(f, proxy.SignerConfig{Service: testService})
	pub := &testKeys()[0].PublicKey
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := s.Sign(body)
		if err != nil {
			var re *proxy.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Sign(%q) error = %v (%T), want a *RequestError", body, err, err)
			}
			if !slices.Contains([]string{"not_json_object", "no_payload", "no_customer_id", "bad_field"}, re.Reason) || re.Message == "" {
				t.Errorf("Sign(%q) = RequestError{%q, %q}, want a known reason and a message", body, re.Reason, re.Message)
			}
			if out != nil {
				t.Errorf("Sign(%q) = %q with an error, want nil", body, out)
			}
			return
		}
		if !utf8.Valid(body) || mangled(body) {
			t.Errorf("Sign(%q) = %q: accepted a body whose text the decoder changes", body, out)
		}
		signed, err := verifySigned(out, pub)
		if err != nil {
			t.Fatalf("Sign(%q): %v", body, err)
		}
		if signed.sp["merchant_id"] != testMerchant || signed.sp["timestamp"] != "1665996901100" {
			t.Errorf("Sign(%q): signaturePayload = %s, want merchant_id %q and timestamp %q", body, signed.spText, testMerchant, "1665996901100")
		}
		if id, ok := signed.sp["customer_id"].(string); !ok || id == "" {
			t.Errorf("Sign(%q): signaturePayload.customer_id = %#v, want a non-empty string", body, signed.sp["customer_id"])
		}
		if _, ok := signed.doc["requestId"]; !ok {
			t.Errorf("Sign(%q) = %s, want a requestId", body, out)
		}
		if err := appFieldsKept(body, signed); err != nil {
			t.Errorf("Sign(%q): %v", body, err)
		}
	})
}

// FuzzJSONBody checks that the json-body injector, given any body, returns
// either a JSON object holding the token and expiry and everything else the
// app sent, text included, or a *RequestError; never anything else, never a
// header.
func FuzzJSONBody(f *testing.F) {
	for _, b := range juspayBodies {
		f.Add([]byte(b))
	}
	inj := proxy.JSONBody("payload.clientAuthToken", "payload.authExpiry")
	tok := &tokens.Token{Value: "tok-fuzz", Expiry: time.Date(2021, 7, 19, 7, 20, 53, 318_000_000, time.UTC)}
	f.Fuzz(func(t *testing.T, body []byte) {
		h := http.Header{}
		out, err := inj.Inject(h, tok, body)
		if len(h) != 0 {
			t.Errorf("Inject(%q) set headers %v, want none", body, h)
		}
		if err != nil {
			var re *proxy.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Inject(%q) error = %v (%T), want a *RequestError", body, err, err)
			}
			if re.Reason != "not_json_object" && re.Reason != "bad_field" {
				t.Errorf("Inject(%q) = RequestError{%q, %q}, want not_json_object or bad_field", body, re.Reason, re.Message)
			}
			return
		}
		if !utf8.Valid(body) || mangled(body) {
			t.Errorf("Inject(%q) = %q: accepted a body whose text the decoder changes", body, out)
		}
		doc, ok := decodeObjectUseNumber(out)
		if !ok {
			t.Fatalf("Inject(%q) = %q, not a JSON object", body, out)
		}
		payload, _ := doc["payload"].(map[string]any)
		if payload["clientAuthToken"] != "tok-fuzz" || payload["authExpiry"] != "2021-07-19T07:20:53.318Z" {
			t.Errorf("Inject(%q) = %s, want payload.clientAuthToken %q and payload.authExpiry %q", body, out, "tok-fuzz", "2021-07-19T07:20:53.318Z")
		}
		app, ok := decodeObjectUseNumber(body)
		if !ok {
			t.Fatalf("Inject(%q) accepted a body that is not one JSON object", body)
		}
		appPayload, _ := app["payload"].(map[string]any)
		_, hadPayload := app["payload"]
		if len(doc) != len(app)+btoi(!hadPayload) {
			t.Errorf("Inject(%q) = %s, want the app's fields and payload only", body, out)
		}
		for k, v := range app {
			if k != "payload" && !reflect.DeepEqual(doc[k], v) {
				t.Errorf("Inject(%q): %s = %#v, want the app's %#v", body, k, doc[k], v)
			}
		}
		for k, v := range appPayload {
			if k != "clientAuthToken" && k != "authExpiry" && !reflect.DeepEqual(payload[k], v) {
				t.Errorf("Inject(%q): payload.%s = %#v, want the app's %#v", body, k, payload[k], v)
			}
		}
	})
}

// btoi is 1 for true, 0 for false.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
