package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// Registrar registers one fresh Axepta mobile-SDK AuthToken per call and
// returns it with the platform's answer; *tokens.AxeptaRegistrar is one.
// Implementations must be safe for concurrent use and honour ctx; a refusal
// by the platform is a *tokens.RetrieveError.
type Registrar interface {
	Register(ctx context.Context) (tokens.AxeptaAuth, error)
}

// defaultSDKAuthMaxInflight is Config.SDKAuthMaxInflight's zero value.
const defaultSDKAuthMaxInflight = 16

// maxSDKAuthBody bounds how much of the SDK's {"merchantID": …} is read.
const maxSDKAuthBody = 64 << 10

// sdkAuth is Axepta's mobile-SDK authentication endpoint.
type sdkAuth struct {
	path       string
	registrar  Registrar
	merchantID string        // empty accepts any
	slots      chan struct{} // one per registration in flight
}

// newSDKAuth returns the endpoint c describes, or nil if c has no
// SDKAuthPath. It panics if c has an SDKAuthPath but neither SDKAuth nor
// Tenants: requests for the path must never be forwarded.
func newSDKAuth(c Config) *sdkAuth {
	if c.SDKAuthPath == "" {
		return nil
	}
	if c.SDKAuth == nil && (c.Tenants == nil || c.TenantHeader == "") {
		panic("proxy: Config.SDKAuthPath is set without Config.SDKAuth")
	}
	n := c.SDKAuthMaxInflight
	if n <= 0 {
		n = defaultSDKAuthMaxInflight
	}
	return &sdkAuth{path: c.SDKAuthPath, registrar: c.SDKAuth, merchantID: c.SDKAuthMerchantID, slots: make(chan struct{}, n)}
}

// serveSDKAuth answers the Axepta mobile SDK's authentication request, a POST
// of {"merchantID": …}: it registers a fresh AuthToken and AuthLabel with
// the platform and answers them with the platform's answer, as the SDK
// expects: {"AuthToken","AuthLabel","ExpiryDate","Description","Status",
// "Code"}. It is served on the proxy listener only, and never forwarded.
func (h *handler) serveSDKAuth(w http.ResponseWriter, r *http.Request, t *Tenant) {
	a := h.sdkAuth
	registrar, merchantID := a.registrar, a.merchantID
	if t != nil {
		registrar, merchantID = t.SDKAuth, t.SDKAuthMerchantID
	}
	if !h.missing(w, t, registrar != nil, "Paygate passwords for SDK authentication") {
		return
	}
	if r.Method != http.MethodPost {
		h.metrics.SDKAuth(metrics.SDKAuthBadRequest)
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "the SDK authentication endpoint takes POST")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			h.metrics.SDKAuth(metrics.SDKAuthBadRequest)
			h.reject(w, http.StatusUnsupportedMediaType, "bad_request", `the SDK authentication request must be application/json: {"merchantID": …}`)
			return
		}
	}
	if merchantID != "" {
		// The SDK names its merchant: never register for one merchant on
		// another's behalf.
		if err := checkMerchant(io.LimitReader(r.Body, maxSDKAuthBody), merchantID); err != nil {
			h.metrics.SDKAuth(metrics.SDKAuthBadRequest)
			h.log.Info("SDK authentication refused", "reason", err.Error())
			h.reject(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	default:
		h.metrics.SDKAuth(metrics.SDKAuthBusy)
		h.log.Warn("SDK authentication refused: too many registrations in flight", "max_inflight", cap(a.slots))
		w.Header().Set("Retry-After", "1")
		h.reject(w, http.StatusServiceUnavailable, "busy", "proxy: too many AuthToken registrations in flight; retry shortly")
		return
	}
	auth, err := registrar.Register(r.Context())
	if err != nil {
		h.sdkAuthError(w, r, err)
		return
	}
	h.metrics.SDKAuth(metrics.SDKAuthOK)
	h.log.Debug("SDK authentication: AuthToken registered")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	json.NewEncoder(w).Encode(auth) // AxeptaAuth's JSON is the SDK's object, in its order
}

// sdkAuthError answers a failed registration. A refusal by the platform is
// 502 with its Status, Code and Description, which the SDK reads; the rest
// are the proxy's usual 502 and 504.
func (h *handler) sdkAuthError(w http.ResponseWriter, r *http.Request, err error) {
	var re *tokens.RetrieveError
	switch {
	case errors.As(err, &re):
		h.metrics.SDKAuth(metrics.SDKAuthFailed)
		h.metrics.Error("registration_failed")
		h.log.Warn("SDK authentication: the platform refused the AuthToken registration: answering 502",
			"status", re.Status, "code", re.Code, "description", re.Description)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if re.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(re.RetryAfter.Seconds()))))
		}
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(struct {
			Error       string `json:"error"`
			Message     string `json:"message"`
			Status      string `json:"Status"`
			Code        string `json:"Code"`
			Description string `json:"Description"`
		}{"registration_failed", "proxy: the platform refused the AuthToken registration", "FAILED", re.Code, re.Description})
	case r.Context().Err() != nil:
		// The SDK went away; nobody is left to answer.
		h.metrics.SDKAuth(metrics.SDKAuthCanceled)
		h.metrics.Error("canceled")
		h.log.Debug("SDK authentication canceled by the client")
	case isTimeout(err):
		h.metrics.SDKAuth(metrics.SDKAuthTimeout)
		h.log.Warn("SDK authentication: the platform did not answer in time: answering 504", "error", err)
		h.reject(w, http.StatusGatewayTimeout, "upstream_timeout", "proxy: the platform did not answer the AuthToken registration in time")
	default:
		h.metrics.SDKAuth(metrics.SDKAuthUnreachable)
		h.log.Warn("SDK authentication: the AuthToken registration failed: answering 502", "error", err)
		h.reject(w, http.StatusBadGateway, "upstream_unreachable", "proxy: "+err.Error())
	}
}
