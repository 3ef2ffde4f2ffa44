package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"github.com/authsidecar/authsidecar/tokens"
)

// handleError is the ReverseProxy's ErrorHandler: every failure to get a
// response from the upstream ends here and becomes a JSON error.
func (h *handler) handleError(w http.ResponseWriter, r *http.Request, err error) {
	var bodyErr *bodyError
	var re *RequestError
	var se *SigningError
	var ae *answerError
	var te *TenantError
	switch {
	case r.Context().Err() != nil:
		// The app went away; nobody is left to answer.
		h.log.Debug("request canceled by the app", "method", r.Method, "path", r.URL.Path)
		h.metrics.Error("canceled")
	case isUnknownCustomer(err):
		msg, _ := unknownCustomer(err)
		h.log.Info("unknown customer: answering 404", "method", r.Method, "path", r.URL.Path)
		h.reject(w, http.StatusNotFound, "unknown_customer", msg)
	case errors.Is(err, tokens.ErrNoToken):
		h.log.Warn("no valid token: answering 503", "method", r.Method, "path", r.URL.Path, "error", err)
		h.reject(w, http.StatusServiceUnavailable, "token_unavailable", err.Error())
	case errors.As(err, &re):
		h.metrics.RejectedBody(re.Reason)
		status, code := http.StatusBadRequest, "bad_request"
		switch re.Reason {
		case "too_large":
			status, code = http.StatusRequestEntityTooLarge, "body_too_large"
		case "no_customer_id":
			code = re.Reason // the app must name a customer: say so in the code too
		}
		h.log.Info("request refused: cannot authenticate its body", "method", r.Method, "path", r.URL.Path, "reason", re.Reason)
		h.reject(w, status, code, re.Message)
	case errors.As(err, &se):
		h.log.Error("signing failed: answering 500", "method", r.Method, "path", r.URL.Path, "error", se)
		h.reject(w, http.StatusInternalServerError, "signing_failed", se.Error())
	case errors.As(err, &te): // the tenant went away between the check and the send
		h.reject(w, te.Status, te.Code, te.Message)
	case errors.As(err, &ae):
		h.log.Warn("upstream answer withheld: answering 502", "method", r.Method, "path", r.URL.Path, "error", ae)
		h.reject(w, http.StatusBadGateway, ae.code, ae.Error())
	case errors.As(err, &bodyErr):
		h.log.Info("reading the request body failed", "method", r.Method, "path", r.URL.Path, "error", bodyErr)
		h.reject(w, http.StatusBadRequest, "bad_request", "proxy: "+bodyErr.Error())
	case isTimeout(err):
		h.log.Warn("upstream timed out: answering 504", "method", r.Method, "path", r.URL.Path, "error", err)
		h.reject(w, http.StatusGatewayTimeout, "upstream_timeout", "proxy: upstream did not answer in time")
	default:
		h.log.Warn("upstream unreachable: answering 502", "method", r.Method, "path", r.URL.Path, "error", err)
		h.reject(w, http.StatusBadGateway, "upstream_unreachable", "proxy: "+err.Error())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// reject writes a sidecar-made error: {"error":code,"message":msg}.
func (h *handler) reject(w http.ResponseWriter, status int, code, msg string) {
	h.metrics.Error(code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
}

func isUnknownCustomer(err error) bool { _, ok := unknownCustomer(err); return ok }
