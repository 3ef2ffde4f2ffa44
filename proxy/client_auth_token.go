package proxy

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/authsidecar/authsidecar/tokens"
)

// maxClientAuthTokenBody bounds how much of {"customerId": …} is read.
const maxClientAuthTokenBody = 64 << 10

// serveClientAuthToken answers one customer's current token, for an app
// that hands it to Juspay's SDK in initiate, process or, after
// session_expired, updateAuth: POST {"customerId":"…"} answers
// {"clientAuthToken":"…","authExpiry":"…"}. Nothing is sent upstream.
func (h *handler) serveClientAuthToken(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the client auth token endpoint takes POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxClientAuthTokenBody+1))
	if err != nil {
		h.reject(w, http.StatusBadRequest, "bad_request", "proxy: read request body: "+err.Error())
		return
	}
	var doc map[string]any
	if len(body) <= maxClientAuthTokenBody {
		doc, err = decodeObject(body)
	}
	if len(body) > maxClientAuthTokenBody || err != nil {
		h.reject(w, http.StatusBadRequest, "bad_request", `the body must be a JSON object {"customerId":"…"}`)
		return
	}
	// As json-body reads payload.customerId: a customer's key is the same
	// in both, a number included.
	id, ok := customerID(doc)
	if !ok {
		h.reject(w, http.StatusBadRequest, "no_customer_id", `the body names no customer: send {"customerId":"…"}`)
		return
	}
	if err := checkCustomerID(id); err != nil {
		h.handleError(w, r, err)
		return
	}
	key := id
	if t != nil {
		key = t.Key + "/" + id // the tenant's customer
	}
	tok, err := h.keyed.Token(r.Context(), key)
	if err != nil {
		h.handleError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		ClientAuthToken string `json:"clientAuthToken"`
		AuthExpiry      string `json:"authExpiry"`
	}{tok.Value, tok.Expiry.UTC().Format(expiryLayout)})
}

// unknownCustomer reports whether err says the provider does not know the
// customer, and its message.
func unknownCustomer(err error) (string, bool) {
	var uc *tokens.UnknownCustomerError
	if !errors.As(err, &uc) {
		return "", false
	}
	if uc.Message == "" {
		return "the provider does not know the customer", true
	}
	return "the provider does not know the customer: " + uc.Message, true
}
