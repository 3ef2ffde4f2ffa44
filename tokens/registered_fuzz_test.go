package tokens

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRegistrationResponse feeds registration answers (HTTP status and body)
// to the JSON encoder's Decode and to the registered source's handling of the
// answer. Neither may panic; an OK answer for the merchant yields the minted
// token and label with a future expiry (or is refused only for an expiry
// already past); a refusal, Status other than OK or a non-2xx answer, is a
// *RetrieveError; any other error is not; and no error shows the minted
// AuthToken or AuthLabel.
func FuzzRegistrationResponse(f *testing.F) {
	const (
		token = "Q3kzV8mT2pL9xR4nW7cY1bH6jD0fG5sA8eK2uN4o"
		label = "Z9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gF9eD8cB7aZ6yX5wV4u"
	)
	f.Add(200, []byte(`{"mid":"`+axeptaMID+`","status":"OK","description":"AuthToken registered","code":"00000000","expirydate":"2025-09-17T20:55:44"}`))
	f.Add(200, []byte(`{"MID":"`+axeptaMID+`","Status":"OK","Description":"ok","Code":"00000000","ExpiryDate":"2025-09-17T22:55:44+02:00"}`))
	f.Add(200, []byte(`{"MID":"`+axeptaMID+`","STATUS":"ok","CODE":0}`))
	f.Add(200, []byte(`{"mid":"`+axeptaMID+`","status":"OK","expirydate":"2025-09-17T20:40:44"}`))
	f.Add(200, []byte(`{"mid":"`+axeptaMID+`","status":"OK","expirydate":"2025-09-17T20:40:44.999999999"}`))
	f.Add(200, []byte(`{"mid":"other","status":"OK"}`))
	f.Add(200, []byte(`{"mid":"`+token+`","status":"OK"}`))
	f.Add(200, []byte(`{"mid":"`+axeptaMID+`","status":"FAILED","code":"21500985","description":"Unknown MerchantID"}`))
	f.Add(200, []byte(`{"status":"FAILED","code":"`+label+`","description":"token `+token+` refused"}`))
	f.Add(200, []byte(`{"status":"OK","STATUS":"FAILED"}`))
	f.Add(200, []byte(`{"status":{"x":1}}`))
	f.Add(200, []byte(`{"mid":"`+axeptaMID+`","status":"OK"}{}`))
	f.Add(200, []byte(`[]`))
	f.Add(200, []byte(``))
	f.Add(503, []byte(`{"status":"FAILED","code":"22000000","description":"Service temporarily unavailable"}`))
	f.Add(502, []byte(`{"mid":"`+axeptaMID+`","status":"OK"}`))
	f.Add(500, []byte("Internal error for "+token))
	f.Add(0, []byte(`{"ſtatus":"OK"}`))
	src := NewRegisteredSource(RegisteredConfig{MerchantID: axeptaMID}).(*registeredSource)
	now := tezpayEpoch
	requested := now.Add(15 * time.Minute)
	reg := Registration{MerchantID: axeptaMID, AuthToken: token, AuthLabel: label, ExpiryDate: requested.Format(dttmLayout)}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res, decErr := JSONRegistrationEncoder.Decode(body)
		if decErr != nil {
			if !strings.HasPrefix(decErr.Error(), "tokens: ") {
				t.Errorf("Decode() error = %q, want a tokens: error", decErr)
			}
			if res != (RegistrationResult{}) {
				t.Errorf("Decode() = %+v with error %v, want a zero result", res, decErr)
			}
		} else if !json.Valid(body) {
			t.Errorf("Decode() accepted %q, which is not JSON", body)
		}

		tok, err := src.answer(status, http.Header{}, body, reg, requested, now)
		st := strings.TrimSpace(res.Status)
		refused := status < 200 || status > 299 || (decErr == nil && st != "" && !strings.EqualFold(st, "OK"))
		accepted := !refused && decErr == nil && strings.EqualFold(st, "OK") && strings.TrimSpace(res.MID) == axeptaMID
		var re *RetrieveError
		switch isRefusal := errors.As(err, &re); {
		case refused && !isRefusal:
			t.Fatalf("answer(%d, %q) = %v, %v; want a *RetrieveError", status, body, tok, err)
		case refused && re.Status != status:
			t.Errorf("answer(%d) error Status = %d, want %d", status, re.Status, status)
		case !refused && isRefusal:
			t.Errorf("answer(%d, %q) error = %v, a *RetrieveError for an answer that is no refusal", status, body, err)
		}
		if re != nil {
			for _, secret := range []string{token, label} {
				checkDescription(t, "RetrieveError.Code", re.Code, secret)
				checkDescription(t, "RetrieveError.Description", re.Description, secret)
			}
		}

		if err != nil {
			if tok != nil {
				t.Errorf("answer() = %v with error %v, want nil", tok, err)
			}
			if !strings.HasPrefix(err.Error(), "tokens: ") {
				t.Errorf("answer() error = %q, want a tokens: error", err)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), label) {
				t.Errorf("answer() error = %q, which shows a minted value", err)
			}
			if accepted {
				if exp, ok := parseDTTM(res.ExpiryDate); !ok || exp.After(now) {
					t.Errorf("answer(%d, %q) error = %v for an OK answer with a future expiry", status, body, err)
				}
			}
			return
		}
		if !accepted {
			t.Fatalf("answer(%d, %q) = a token, for an answer that is not OK for %q", status, body, axeptaMID)
		}
		if tok.Value != token || tok.Label != label {
			t.Errorf("answer() = %q/%q, want the minted %q/%q", tok.Value, tok.Label, token, label)
		}
		if !tok.Expiry.After(now) {
			t.Errorf("answer().Expiry = %v, not after now (%v)", tok.Expiry, now)
		}
		want := requested // never later than asked for
		if exp, ok := parseDTTM(res.ExpiryDate); ok && exp.Before(requested) {
			want = exp
		}
		if !tok.Expiry.Equal(want) {
			t.Errorf("answer().Expiry = %v, want %v (answer's ExpiryDate %q)", tok.Expiry, want, res.ExpiryDate)
		}
	})
}
