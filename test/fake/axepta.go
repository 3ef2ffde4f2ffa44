package fake

import (
	"encoding/json"
	"mime"
	"net/http"
	"sync"
	"time"
)

// AxeptaRegisterPath is where the fake Axepta registers tokens. The BNP
// Paribas / Axepta document (../shared/seeds) leaves the URL out, so the
// path is the fake's own.
const AxeptaRegisterPath = "/mobile-sdk/register"

// The Codes the fake Axepta answers with. The platform takes its codes from
// a "Paygate Response Codes" list the document does not reproduce; these
// have its 8-digit form, and only AxeptaCodeUnknownMerchant is one the
// sidecar's tests rely on.
const (
	AxeptaCodeOK              = "00000000"
	AxeptaCodeUnknownMerchant = "21500985"
	AxeptaCodeFormat          = "21500001" // a parameter is missing, unknown or badly formatted
	AxeptaCodeDuplicate       = "21500002" // the AuthToken is already registered
	AxeptaCodeUnavailable     = "22000000" // SetDown
)

// Axepta is a fake of the BNP Paribas / Axepta platform's registration of
// mobile SDK tokens. It checks each request as the document describes it:
// a JSON object with exactly MerchantID (a known merchant, ans..30),
// AuthToken (an16..56), AuthLabel (an32..64) and, optionally, ExpiryDate
// (dttm, in the future and at most 24 hours ahead; 15 minutes if omitted).
// It answers in lower-case keys: mid, status (OK or FAILED), description,
// code (8 digits) and expirydate. Refusals are answered with HTTP 200 and
// status FAILED, as the platform does; only SetDown gives a non-2xx answer.
// Its methods are safe for concurrent use.
//
// It fakes the old JSON registration, which the sidecar no longer uses: only
// tokens/registered_test.go still does, and this file goes with it (the fake
// Paygate, paygate.go, needs nothing from here).
type Axepta struct {
	merchants map[string]bool

	mu      sync.Mutex
	down    bool
	regs    map[string]axeptaRegistration
	refused int
}

// NewAxepta returns a platform that knows the given merchants.
func NewAxepta(merchantIDs ...string) *Axepta {
	a := &Axepta{merchants: map[string]bool{}, regs: map[string]axeptaRegistration{}}
	for _, id := range merchantIDs {
		a.merchants[id] = true
	}
	return a
}

// Handler serves the registration endpoint.
func (a *Axepta) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AxeptaRegisterPath, a.register)
	return mux
}

// SetDown makes the endpoint answer 503 while down is true.
func (a *Axepta) SetDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
}

// Registered reports whether token was registered, and with which label and
// expiry. Whether it is still valid is for the caller to compare with its
// clock.
func (a *Axepta) Registered(token string) (label string, expiry time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.regs[token]
	return r.label, r.expiry, ok
}

// Registrations returns how many tokens were registered.
func (a *Axepta) Registrations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.regs)
}

// Refused returns how many requests were answered FAILED (SetDown included).
func (a *Axepta) Refused() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refused
}

func (a *Axepta) register(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	a.mu.Lock()
	down := a.down
	a.mu.Unlock()
	if down {
		a.refuse(w, http.StatusServiceUnavailable, "", AxeptaCodeUnavailable, "Service temporarily unavailable")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.refuse(w, http.StatusOK, "", AxeptaCodeFormat, "Content-Type is not application/json")
		return
	}
	var params map[string]any
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&params); err != nil {
		a.refuse(w, http.StatusOK, "", AxeptaCodeFormat, "Request is not a JSON object")
		return
	}
	values := map[string]string{}
	for k, v := range params {
		s, ok := v.(string)
		switch k {
		case "MerchantID", "AuthToken", "AuthLabel", "ExpiryDate":
		default:
			a.refuse(w, http.StatusOK, "", AxeptaCodeFormat, "Unknown parameter "+k)
			return
		}
		if !ok {
			a.refuse(w, http.StatusOK, "", AxeptaCodeFormat, "Parameter "+k+" is not a string")
			return
		}
		values[k] = s
	}
	mid := values["MerchantID"]
	if mid == "" || len(mid) > 30 {
		a.refuse(w, http.StatusOK, "", AxeptaCodeFormat, "MerchantID is missing or longer than 30 characters")
		return
	}
	if !a.merchants[mid] {
		a.refuse(w, http.StatusOK, mid, AxeptaCodeUnknownMerchant, "Unknown MerchantID")
		return
	}
	token, label := values["AuthToken"], values["AuthLabel"]
	if !alphanumeric(token, 16, 56) {
		a.refuse(w, http.StatusOK, mid, AxeptaCodeFormat, "AuthToken is not an16..56")
		return
	}
	if !alphanumeric(label, 32, 64) {
		a.refuse(w, http.StatusOK, mid, AxeptaCodeFormat, "AuthLabel is not an32..64")
		return
	}
	expiry := now.Add(15 * time.Minute).UTC().Truncate(time.Second)
	if s, ok := values["ExpiryDate"]; ok {
		t, err := time.ParseInLocation(axeptaDTTM, s, time.UTC)
		if err != nil || len(s) != len(axeptaDTTM) { // Parse would take a fraction of a second
			a.refuse(w, http.StatusOK, mid, AxeptaCodeFormat, "ExpiryDate is not YYYY-MM-DDThh:mm:ss")
			return
		}
		if !t.After(now) || t.After(now.Add(24*time.Hour)) {
			a.refuse(w, http.StatusOK, mid, AxeptaCodeFormat, "ExpiryDate is not within the next 24 hours")
			return
		}
		expiry = t
	}
	a.mu.Lock()
	_, dup := a.regs[token]
	if !dup {
		a.regs[token] = axeptaRegistration{label: label, expiry: expiry}
	}
	a.mu.Unlock()
	if dup {
		a.refuse(w, http.StatusOK, mid, AxeptaCodeDuplicate, "AuthToken is already registered")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"mid":         mid,
		"status":      "OK",
		"description": "AuthToken registered",
		"code":        AxeptaCodeOK,
		"expirydate":  expiry.Format(axeptaDTTM),
	})
}

// refuse answers status FAILED; mid is left out when not known.
func (a *Axepta) refuse(w http.ResponseWriter, httpStatus int, mid, code, description string) {
	a.mu.Lock()
	a.refused++
	a.mu.Unlock()
	answer := map[string]string{"status": "FAILED", "code": code, "description": description}
	if mid != "" {
		answer["mid"] = mid
	}
	writeJSON(w, httpStatus, answer)
}
