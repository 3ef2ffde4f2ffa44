package tokens

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// FuzzAxeptaAnswer feeds registration answers to the registrar's reading of
// them: an HTTP status, a form in plain, and parameters the test seals into
// Len and Data after it with the merchant's cipher (none if empty), so that
// the fuzzer reaches what lies inside Data. Nothing may panic; an answer is
// accepted only if it is 2xx, sealed for the merchant, says OK, and every
// MID and mid it gives is the merchant's; the expiry accepted is in the
// future and never later than asked; no error shows the minted values or the
// HMAC password.
func FuzzAxeptaAnswer(f *testing.F) {
	const (
		token = "Q3kzV8mT2pL9xR4nW7cY1bH6jD0fG5sA8eK2uN4o"
		label = "Z9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gF9eD8cB7aZ6yX5wV4u"
	)
	okMAC := paygate.ResponseMAC(testHMACKey, "", "", axeptaMID, "OK", "00000000")
	f.Add(200, "mid="+axeptaMID, "MID="+axeptaMID+"&Status=OK&Code=00000000&Description=success&ExpiryDate=2025-09-17T20:55:44")
	f.Add(200, "mid="+axeptaMID, "mid="+axeptaMID+"&status=ok&code=00000000&expirydate=2025-09-17T20:50:44.5")
	f.Add(200, "", "MID="+axeptaMID+"&Status=OK&Code=00000000&MAC="+okMAC)
	f.Add(200, "", "MID="+axeptaMID+"&Status=OK&Code=00000001&MAC="+okMAC)
	f.Add(200, "mid=other", "MID="+axeptaMID+"&Status=OK")
	f.Add(200, "mid="+axeptaMID, "MID=other&Status=OK")
	f.Add(200, "mid="+axeptaMID, "Status=OK")
	f.Add(200, "mid="+axeptaMID, "MID="+token+"&Status=OK")
	f.Add(200, "mid="+axeptaMID, "MID="+axeptaMID+"&Status=OK&ExpiryDate=2025-09-17T20:40:44")
	f.Add(200, "mid="+axeptaMID, "MID="+axeptaMID+"&Status=FAILED&Code="+label+"&Description=token "+token)
	f.Add(200, "Status=FAILED&Code=21500985&Description=Unknown+MerchantID", "")
	f.Add(200, "mid="+axeptaMID+"&Status=OK&Code=00000000", "")
	f.Add(503, "Status=FAILED&Code=22000000&Description=Service+temporarily+unavailable", "")
	f.Add(502, "mid="+axeptaMID, "MID="+axeptaMID+"&Status=OK")
	f.Add(500, "Internal error for "+token, "")
	f.Add(200, "mid="+axeptaMID+"&Len=8&Data=00112233445566778899", "")
	f.Add(200, "mid="+axeptaMID+"&Data=00&DATA=11", "MID="+axeptaMID+"&Status=OK")
	f.Add(200, "mid="+axeptaMID, "MID="+axeptaMID+"&Status=OK&STATUS=FAILED")
	f.Add(200, "%zz", "")
	f.Add(0, "ſtatus=OK", "")

	m := testMerchant(testBlowfish, testHMACKey)
	now := tezpayEpoch
	requested := now.Add(15 * time.Minute)
	f.Fuzz(func(t *testing.T, status int, prefix, plain string) {
		if len(prefix) > 4<<10 || len(plain) > 4<<10 {
			return // answers are a few hundred bytes; size limits are Register's
		}
		body := prefix
		if plain != "" {
			data, err := testBlowfish.Encrypt([]byte(plain))
			if err != nil {
				t.Fatal(err)
			}
			body += "&Len=" + strconv.Itoa(len(plain)) + "&Data=" + data
		}
		auth, err := axeptaAnswer(m, status, http.Header{}, []byte(body), token, label, requested, now)
		if err != nil {
			if auth != (AxeptaAuth{}) {
				t.Errorf("answer() = %v with error %v, want a zero AxeptaAuth", auth, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "tokens: ") {
				t.Errorf("answer() error = %q, want a tokens: error", msg)
			}
			for _, secret := range []string{token, label, string(testHMACKey)} {
				if strings.Contains(msg, secret) {
					t.Errorf("answer() error = %q, which shows a secret", msg)
				}
			}
			var re *RetrieveError
			if errors.As(err, &re) && re.Status != status {
				t.Errorf("answer(%d) error Status = %d, want %d", status, re.Status, status)
			}
			return
		}

		// Accepted: check it against the body, read here independently.
		if status < 200 || status > 299 {
			t.Fatalf("answer(%d, %q) accepted a non-2xx answer", status, body)
		}
		form, perr := url.ParseQuery(body)
		if perr != nil {
			t.Fatalf("answer(%q) accepted a body that is not a form", body)
		}
		var datas, lens, mids []string
		for k, vs := range form {
			switch {
			case strings.EqualFold(k, "data"):
				datas = append(datas, vs...)
			case strings.EqualFold(k, "len"):
				lens = append(lens, vs...)
			case strings.EqualFold(k, "mid"):
				mids = append(mids, vs...)
			}
		}
		if len(datas) != 1 || len(lens) > 1 {
			t.Fatalf("answer(%q) accepted an answer without exactly one Data and at most one Len", body)
		}
		params, oerr := paygate.Open(testBlowfish, strings.Join(lens, ""), datas[0])
		if oerr != nil {
			t.Fatalf("answer(%q) accepted a Data that does not open: %v", body, oerr)
		}
		okStatus := false
		for _, kv := range params {
			switch {
			case strings.EqualFold(kv.Key, "mid"):
				mids = append(mids, kv.Value)
			case strings.EqualFold(kv.Key, "status"):
				okStatus = okStatus || strings.EqualFold(strings.TrimSpace(kv.Value), "OK")
			}
		}
		if !okStatus {
			t.Errorf("answer(%q) accepted an answer whose Data does not say OK", body)
		}
		if len(mids) == 0 {
			t.Errorf("answer(%q) accepted an answer without a MID", body)
		}
		for _, mid := range mids {
			if strings.TrimSpace(mid) != axeptaMID {
				t.Errorf("answer(%q) accepted an answer for merchant %q", body, mid)
			}
		}
		if auth.AuthToken != token || auth.AuthLabel != label {
			t.Errorf("answer() = %q/%q, want the minted %q/%q", auth.AuthToken, auth.AuthLabel, token, label)
		}
		exp, perr := time.ParseInLocation(dttmLayout, auth.ExpiryDate, time.UTC)
		if perr != nil || !exp.After(now) || exp.After(requested) {
			t.Errorf("answer().ExpiryDate = %q, want a time after %v and not after %v", auth.ExpiryDate, now, requested)
		}
	})
}
