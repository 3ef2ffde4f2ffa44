// Package fake holds in-process fakes of the providers authsidecar talks to,
// for the demo and the tests. TezPay follows ../shared/seeds' TezPay document:
// a token endpoint issuing HS256 JWTs and protected endpoints that check them.
package fake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TezPay paths, as the provider documents them.
const (
	AuthenticatePath   = "/api/v1/tezpay/authenticate"
	ProcessPaymentPath = "/api/v1/tezpay/process-payment"
	GetStatusPath      = "/api/v1/tezpay/get-status"
)

// TezPay is a fake TezPay provider. Its methods are safe for concurrent use.
type TezPay struct {
	clientID, clientSecret string
	ttl                    time.Duration
	key                    []byte

	mu       sync.Mutex
	issued   []string
	revoked  map[string]bool
	down     bool
	apiCalls int
	rejected int
}

// NewTezPay returns a provider that accepts the given credentials and issues
// tokens valid for ttl (12 hours, as documented, if zero).
func NewTezPay(clientID, clientSecret string, ttl time.Duration) *TezPay {
	if ttl == 0 {
		ttl = 12 * time.Hour
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &TezPay{clientID: clientID, clientSecret: clientSecret, ttl: ttl, key: key, revoked: map[string]bool{}}
}

// Handler serves the token endpoint and the protected endpoints.
func (p *TezPay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AuthenticatePath, p.authenticate)
	mux.HandleFunc("POST "+ProcessPaymentPath, p.protected(p.processPayment))
	mux.HandleFunc("GET "+GetStatusPath, p.protected(p.getStatus))
	return mux
}

// Issued returns the tokens issued so far, oldest first.
func (p *TezPay) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// Fetches returns how many tokens were issued.
func (p *TezPay) Fetches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.issued)
}

// Calls returns how many requests reached the protected endpoints, and how
// many of them were rejected with 401.
func (p *TezPay) Calls() (total, rejected int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.apiCalls, p.rejected
}

// RevokeAll makes every token issued so far answer 401 "Token has expired".
func (p *TezPay) RevokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.issued {
		p.revoked[t] = true
	}
}

// SetDown makes the token endpoint answer 503 while down is true.
func (p *TezPay) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

func (p *TezPay) authenticate(w http.ResponseWriter, r *http.Request) {
	var creds struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.NewDecoder(r.Body).Decode(&creds); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": "Invalid request body"})
		return
	}
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"detail": "Service temporarily unavailable"})
		return
	}
	if creds.ClientID != p.clientID || creds.ClientSecret != p.clientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "Invalid credentials"})
		return
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"client_id":     creds.ClientID,
		"client_secret": creds.ClientSecret,
		"iat":           now.Unix(),
		"exp":           now.Add(p.ttl).Unix(),
		"jti":           rand.Text(),
	}).SignedString(p.key)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": err.Error()})
		return
	}
	p.mu.Lock()
	p.issued = append(p.issued, tok)
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   int(p.ttl.Seconds()),
		"client_id":    creds.ClientID,
	})
}

// protected checks the Bearer token as TezPay does, answering 401 with the
// documented details.
func (p *TezPay) protected(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		detail := p.check(r.Header.Values("Authorization"))
		p.mu.Lock()
		p.apiCalls++
		if detail != "" {
			p.rejected++
		}
		p.mu.Unlock()
		if detail != "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": detail})
			return
		}
		next(w, r)
	}
}

func (p *TezPay) check(auth []string) string {
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		return "Invalid token"
	}
	raw := strings.TrimPrefix(auth[0], "Bearer ")
	_, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return p.key, nil }, jwt.WithValidMethods([]string{"HS256"}))
	p.mu.Lock()
	revoked := p.revoked[raw]
	p.mu.Unlock()
	switch {
	case err != nil && strings.Contains(err.Error(), "expired"), revoked:
		return "Token has expired"
	case err != nil:
		return "Invalid token"
	}
	return ""
}

func (p *TezPay) processPayment(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": "Invalid request body"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":             "SUCCESS",
		"transaction_id":     fmt.Sprintf("TXN%d", time.Now().UnixNano()%1e9),
		"merchant_reference": body["merchant_reference"],
		"transaction_amount": body["transaction_amount"],
	})
}

func (p *TezPay) getStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"transaction_id": r.URL.Query().Get("transaction_id"),
		"status":         "SUCCESS",
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
