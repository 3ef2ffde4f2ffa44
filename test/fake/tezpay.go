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
	expiry   map[string]time.Time // of each issued token, to the nanosecond
	revoked  map[string]bool
	down     bool
	apiCalls int
	rejected int
	uses     []Use
}

// Use is one request to a protected endpoint: its request URI, the token it
// carried (empty if none), when it arrived, and when that token expired (zero
// if this fake did not issue it).
type Use struct {
	URI, Token string
	At, Expiry time.Time
}

// NewTezPay returns a provider that accepts the given credentials and issues
// tokens valid for ttl (12 hours, as documented, if zero).
func NewTezPay(clientID, clientSecret string, ttl time.Duration) *TezPay {
	if ttl == 0 {
		ttl = 12 * time.Hour
	}
	key := make([]byte, 32)
	rand.Read(key)
	return &TezPay{clientID: clientID, clientSecret: clientSecret, ttl: ttl, key: key,
		expiry: map[string]time.Time{}, revoked: map[string]bool{}}
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

// Expiry returns when an issued token expires: the moment its expires_in
// counted from, to the nanosecond, unlike its exp claim.
func (p *TezPay) Expiry(token string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	exp, ok := p.expiry[token]
	return exp, ok
}

// Uses returns every request to the protected endpoints so far, oldest
// first.
func (p *TezPay) Uses() []Use {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Use(nil), p.uses...)
}

// Protect checks the Bearer token of every request to h as the protected
// endpoints do, and counts it with them: for endpoints a test adds (a long
// stream, say).
func (p *TezPay) Protect(h http.Handler) http.Handler { return p.protected(h.ServeHTTP) }

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
	exp := now.Add(p.ttl)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"client_id":     creds.ClientID,
		"client_secret": creds.ClientSecret,
		"iat":           now.Unix(),
		// In whole seconds, rounded up: the token's expiry is exp, checked
		// to the nanosecond, as expires_in tells the client.
		"exp": exp.Add(time.Second - 1).Unix(),
		"jti": rand.Text(),
	}).SignedString(p.key)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": err.Error()})
		return
	}
	p.mu.Lock()
	p.issued = append(p.issued, tok)
	p.expiry[tok] = exp
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
		now := time.Now()
		detail := p.check(r.Header.Values("Authorization"), now)
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		p.mu.Lock()
		p.uses = append(p.uses, Use{URI: r.URL.RequestURI(), Token: raw, At: now, Expiry: p.expiry[raw]})
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

func (p *TezPay) check(auth []string, now time.Time) string {
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		return "Invalid token"
	}
	raw := strings.TrimPrefix(auth[0], "Bearer ")
	_, err := jwt.Parse(raw, func(*jwt.Token) (any, error) { return p.key, nil }, jwt.WithValidMethods([]string{"HS256"}))
	p.mu.Lock()
	revoked := p.revoked[raw]
	exp, ours := p.expiry[raw]
	p.mu.Unlock()
	switch {
	case err != nil && strings.Contains(err.Error(), "expired"), revoked, ours && !now.Before(exp):
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
