package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// HandoffFormat is the shape of the hand-off endpoint's answer.
type HandoffFormat int

const (
	// HandoffOAuth2 answers {"access_token","token_type","expires_in","expires_at"}.
	HandoffOAuth2 HandoffFormat = iota
	// HandoffAxepta answers the object BNP/Axepta's mobile SDK expects:
	// {"AuthToken","AuthLabel","ExpiryDate","Description","Status","Code"}.
	HandoffAxepta
)

// axeptaDate is Axepta's dttm format, in UTC.
const axeptaDate = "2006-01-02T15:04:05"

// serveHandoff hands the current credential to a local client (a backend that
// gives it to a frontend or a mobile SDK). It is served on the proxy listener
// only, and never forwarded.
func (h *handler) serveHandoff(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the hand-off endpoint takes GET or POST")
		return
	}
	if h.handoffFormat == HandoffAxepta && r.Method == http.MethodPost && h.merchantID != "" {
		// The SDK names its merchant: never hand one merchant's token to another.
		if err := checkMerchant(io.LimitReader(r.Body, 64<<10), h.merchantID); err != nil {
			h.reject(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	tok, err := h.tokens.Token(r.Context())
	if err != nil {
		h.handleError(w, r, err)
		return
	}
	var answer any
	switch h.handoffFormat {
	case HandoffAxepta:
		answer = struct {
			AuthToken   string `json:"AuthToken"`
			AuthLabel   string `json:"AuthLabel"`
			ExpiryDate  string `json:"ExpiryDate"`
			Description string `json:"Description"`
			Status      string `json:"Status"`
			Code        string `json:"Code"`
		}{tok.Value, tok.Label, tok.Expiry.UTC().Format(axeptaDate), tok.Extra["Description"], "OK", tok.Extra["Code"]}
	default:
		answer = struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
			ExpiresAt   string `json:"expires_at"`
		}{tok.Value, "Bearer", int64(time.Until(tok.Expiry) / time.Second), tok.Expiry.UTC().Format(time.RFC3339)}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(answer)
}

// checkMerchant reads a hand-off request body, {"merchantID": …}: an empty
// body, or an object without merchantID, is accepted; anything else must be
// one JSON object naming merchantID once, as the configured merchant.
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
