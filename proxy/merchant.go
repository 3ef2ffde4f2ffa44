package proxy

import (
	"encoding/json"
	"errors"
	"io"
)

// checkMerchant reads the body a mobile SDK sends to authenticate,
// {"merchantID": …} (Axepta's SDK; issue 14's SDK endpoint checks it, and
// bounds body first): an empty body, or an object without merchantID, is
// accepted; anything else must be one JSON object naming merchantID once,
// as the configured merchant. Its errors are fixed texts that never quote
// the body. (They still say "hand-off", the endpoint that first used it.)
func checkMerchant(body io.Reader, merchantID string) error {
	dec := json.NewDecoder(body)
	if t, err := dec.Token(); err == io.EOF {
		return nil
	} else if d, ok := t.(json.Delim); err != nil || !ok || d != '{' {
		return errors.New("the hand-off request body must be a JSON object")
	}
	seen := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return errors.New("the hand-off request body must be a JSON object")
		}
		if key != "merchantID" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return errors.New("the hand-off request body must be a JSON object")
			}
			continue
		}
		var got string
		if err := dec.Decode(&got); err != nil || seen {
			return errors.New("merchantID must be given once, as a string")
		}
		if seen = true; got != merchantID {
			return errors.New("merchantID does not match this sidecar's AUTHSIDECAR_MERCHANT_ID")
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return errors.New("the hand-off request body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("the hand-off request body must be a single JSON object")
	}
	return nil
}
