package proxy

import (
	"fmt"
	"io"
	"net/http"
)

// serveSign is the local signing endpoint: it signs the POSTed outer payload
// and returns it, for apps that hand a signed payload to Juspay's mobile SDK
// (initiate, process, updateAuth after session_expired). Nothing is sent
// upstream.
func (h *handler) serveSign(w http.ResponseWriter, r *http.Request, t *Tenant) {
	signer := h.signer
	if t != nil {
		signer = t.Signer
	}
	if !h.missing(w, t, signer != nil, "signing key") {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the signing endpoint takes POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		h.reject(w, http.StatusBadRequest, "bad_request", "proxy: read request body: "+err.Error())
		return
	}
	if int64(len(body)) > h.maxBody {
		h.handleError(w, r, &RequestError{Reason: "too_large", Message: fmt.Sprintf("the request body is over %d bytes (AUTHSIDECAR_MAX_REPLAY_BODY)", h.maxBody)})
		return
	}
	signed, err := signer.Sign(body)
	if err != nil {
		h.handleError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(signed)
}
