package tokens

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzJuspayCustomer feeds Customers API answers, statuses and bodies, to
// the Juspay source's parser. Nothing may panic; it returns a token or an
// error, never both; a token has a value and an expiry after now; an error
// is a tokens: error of a few hundred bytes that never holds the API key,
// in any form, however the body echoes it.
func FuzzJuspayCustomer(f *testing.F) {
	const tok = "tkn_2b94fd1556094cc49c6277870289cca9"
	f.Add(200, `{"id":"cst_om2l6ctlptxwxuzj","object":"customer","object_reference_id":"cust-0001","mobile_number":"9988998899","email_address":"customer@gmail.com","juspay":{"client_auth_token":"`+tok+`","client_auth_token_expiry":"2025-09-17T20:55:44Z"}}`)
	f.Add(200, `{"juspay":{"client_auth_token":"`+tok+`"}}`)
	f.Add(200, `{"juspay":{"client_auth_token":"`+tok+`","client_auth_token_expiry":null}}`)
	f.Add(200, `{"juspay":{"client_auth_token":"`+tok+`","client_auth_token_expiry":"2025-09-17T20:40:44+0000"}}`)
	f.Add(200, `{"juspay":{"client_auth_token":"`+tok+`","client_auth_token_expiry":"2025-09-17T20:40:43Z"}}`)
	f.Add(200, `{"juspay":{"client_auth_token":"`+tok+`","client_auth_token_expiry":"`+juspayKey+`"}}`)
	f.Add(200, `{"id":"cst_om2l6ctlptxwxuzj","object":"customer"}`)
	f.Add(404, `{"error_message":"Cannot find what you are looking for","status":"invalid_request_error","error_code":"object_not_found","error_info":{"user_message":"Cannot process your request as customer account not found.","developer_message":"Customer account not found.","code":"RESOURCE_NOT_FOUND","category":"USER_ERROR"}}`)
	f.Add(401, `{"status":"error","error_code":"access_denied","error_info":{"user_message":"Unauthorized.","developer_message":"Invalid API Key. Please pass a valid and active api key.","code":"UNAUTHORIZED","category":"USER_ERROR"}}`)
	f.Add(403, `{"error":true,"error_message":"Internal Server error.","user_message":"Bad Origin.","error_info":{"code":"BAD_ORIGIN"}}`)
	f.Add(401, `{"error_message":"bad key `+juspayKey+` Basic MUQ2QTRDM0IyK0YwRS85RDgiPCY+PTdCNkE6"}`)
	f.Add(404, `<html>Not Found</html>`)
	f.Add(500, ``)
	f.Add(200, `{}{}`)
	f.Add(200, `[]`)
	f.Add(200, `null`)
	now := tezpayEpoch
	secrets := juspaySecrets(juspayKey)
	forms := secretForms(secrets)
	f.Fuzz(func(t *testing.T, status int, body string) {
		got, err := parseJuspayCustomer(status, http.Header{}, []byte(body), now, secrets...)
		if err != nil {
			if got != nil {
				t.Errorf("parseJuspayCustomer() = %v with error %v, want nil", got, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "tokens: ") {
				t.Errorf("parseJuspayCustomer() error = %q, want a tokens: error", msg)
			}
			if len(msg) > maxErrorLen {
				t.Errorf("parseJuspayCustomer() error is %d bytes, want at most %d: %.200q", len(msg), maxErrorLen, msg)
			}
			for _, s := range forms {
				if strings.Contains(msg, s) {
					t.Errorf("parseJuspayCustomer() error = %q, which holds the API key as %q", msg, s)
				}
			}
			var uce *UnknownCustomerError
			var re *RetrieveError
			if status == http.StatusNotFound && !errors.As(err, &uce) && !errors.As(err, &re) {
				t.Errorf("parseJuspayCustomer(404) error = %#v, want an unknown customer or a refusal", err)
			}
			return
		}
		if got == nil || strings.TrimSpace(got.Value) == "" || hasControl(got.Value) {
			t.Fatalf("parseJuspayCustomer() = %#v, nil; want a token with a value", got)
		}
		if got.Expiry.IsZero() || !got.Expiry.After(now) {
			t.Errorf("parseJuspayCustomer().Expiry = %v, want one after %v", got.Expiry, now)
		}
		if status < 200 || status > 299 {
			t.Errorf("parseJuspayCustomer(%d) = a token, want an error", status)
		}
	})
}
