package proxy

import (
	"encoding/json"
	"net/http"
	"time"
)

// serveHandoff hands the current credential to a local client (a backend that
// gives it to a frontend), in the shape of an OAuth2 token answer:
// {"access_token","token_type","expires_in","expires_at"}. It is served on
// the proxy listener only, and never forwarded.
func (h *handler) serveHandoff(w http.ResponseWriter, r *http.Request, t *Tenant) {
	ts := h.tokens
	if t != nil {
		ts = t.Tokens
	}
	if !h.missing(w, t, ts != nil, "token source") {
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the hand-off endpoint takes GET or POST")
		return
	}
	tok, err := ts.Token(r.Context())
	if err != nil {
		h.handleError(w, r, err)
		return
	}
	answer := struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		ExpiresAt   string `json:"expires_at"`
	}{tok.Value, "Bearer", int64(time.Until(tok.Expiry) / time.Second), tok.Expiry.UTC().Format(time.RFC3339)}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(answer)
}
