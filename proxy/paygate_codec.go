package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// servePaygate is the local Paygate codec, for what the sidecar cannot
// proxy: the hosted payment page (payssl.aspx) is a browser redirect, and
// Paygate's notifications arrive at the app encrypted.
//
//   - POST {path}/encrypt with plain parameters (a form body) answers
//     MerchantID=…&Len=…&Data=…, the MAC inside, ready to follow payssl.aspx?.
//   - POST {path}/decrypt with Paygate's Len and Data (a form body, as
//     Paygate sent them) answers the plain parameters, the MAC verified.
//
// Nothing is sent upstream.
func (h *handler) servePaygate(w http.ResponseWriter, r *http.Request, t *Tenant) {
	op := strings.TrimPrefix(r.URL.Path, h.paygatePath)
	if op != "/encrypt" && op != "/decrypt" {
		h.reject(w, http.StatusNotFound, "not_found", "the Paygate codec serves "+h.paygatePath+"/encrypt and "+h.paygatePath+"/decrypt")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the Paygate codec takes POST")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !isForm(ct) {
		h.reject(w, http.StatusBadRequest, "bad_request", "the body must be "+formType)
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
	params, err := parseForm(string(body))
	if err != nil {
		h.reject(w, http.StatusBadRequest, "bad_request", "the body is not form-urlencoded: "+err.Error())
		return
	}
	merchant := h.paygate
	if t != nil {
		merchant = t.PaygateMerchant
	}
	if !h.missing(w, t, merchant != nil, "Paygate passwords") {
		return
	}
	m := merchant()
	var out []byte
	if op == "/encrypt" {
		env, err := m.Seal(params)
		if err != nil {
			h.reject(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		out = []byte(env.Encode())
	} else {
		length, _ := params.Get("Len")
		data, ok := params.Get("Data")
		if !ok {
			h.reject(w, http.StatusBadRequest, "bad_request", "no Data to decrypt: post Len and Data as Paygate sent them")
			return
		}
		plain, err := m.Open(length, data)
		switch {
		case errors.Is(err, paygate.ErrBadMAC):
			h.reject(w, http.StatusBadRequest, "bad_signature", "the MAC does not verify with AUTHSIDECAR_PAYGATE_HMAC_KEY_FILE's password")
			return
		case err != nil:
			h.reject(w, http.StatusBadRequest, "bad_request", "Data cannot be opened with AUTHSIDECAR_PAYGATE_KEY_FILE's password and Len")
			return
		}
		out = appendForm(nil, plain)
	}
	w.Header().Set("Content-Type", formType)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(out)
}
