package fake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Juspay is a fake of Juspay's Customers API, GET /customers/{customer_id},
// as Juspay documents it (juspay.io/in/docs/api-reference/docs/express-checkout/getcustomer):
//
//   - HTTP Basic with the API key as user name and an empty password, else 401
//     {"status":"error","error_code":"access_denied","error_info":{…}};
//   - x-merchantid required: missing, 400 (Juspay's "Mandatory fields are
//     missing" shape, error_info.code MISSING_MANDATORY_PARAMETER); another
//     merchant's, 401 access_denied, as a key that is not that merchant's;
//   - x-routing-id, when sent, equal to the customer id in the path, else 400
//     INVALID_INPUT (Juspay asks for the same routing id on every call for a
//     customer; it does not document its answer to a different one);
//   - an unknown customer, 404 {"error_message":"Cannot find what you are
//     looking for","status":"invalid_request_error","error_code":"object_not_found",…};
//   - with options.get_client_auth_token=true, the customer object carries
//     "juspay":{"client_auth_token":"tkn_…","client_auth_token_expiry":"…Z"},
//     a fresh token valid for the fake's ttl; without it, no juspay object.
//
// A customer is found by the id the merchant gave (object_reference_id) or by
// the id Juspay made (id, "cst_…"). UpstreamHandler stands for the Juspay API
// that takes a clientAuthToken in a body. Its methods are safe for concurrent
// use.
type Juspay struct {
	apiKey, merchantID string
	ttl                time.Duration

	mu        sync.Mutex
	now       func() time.Time
	customers map[string]*juspayCustomer // by object_reference_id and by id
	tokens    map[string]*juspayToken
	issued    []string
	fetches   map[string]int // token requests by the customer id as sent
	total     int
	seen      []SeenCall
}

type juspayCustomer struct {
	id, ref string // Juspay's "cst_…" and the merchant's object_reference_id
	created time.Time
}

type juspayToken struct {
	customer *juspayCustomer
	expiry   time.Time
	revoked  bool
}

// SeenCall is one request to UpstreamHandler: the customer id and the
// clientAuthToken its body carried (empty if none), and whether the fake
// accepted them.
type SeenCall struct {
	CustomerID, Token string
	OK                bool
}

// NewJuspay returns a fake Juspay that accepts apiKey for merchantID and
// issues client auth tokens valid for ttl (15 minutes, Juspay's documented
// lifetime, if zero). It knows no customer until AddCustomer.
func NewJuspay(apiKey, merchantID string, ttl time.Duration) *Juspay {
	if ttl == 0 {
		ttl = 15 * time.Minute
	}
	return &Juspay{apiKey: apiKey, merchantID: merchantID, ttl: ttl, now: time.Now,
		customers: map[string]*juspayCustomer{}, tokens: map[string]*juspayToken{}, fetches: map[string]int{}}
}

// Handler serves the Customers API: GET /customers/{customer_id}.
func (j *Juspay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /customers/{id}", j.getCustomer)
	return mux
}

// UpstreamHandler stands for a Juspay API that a client auth token
// authenticates: it reads a JSON body's payload.customerId and
// payload.clientAuthToken and answers 200 if the token is Valid for that
// customer, 401 in Juspay's access_denied shape if not, 400 if the body is
// not a JSON object. Every call is recorded (Seen). It serves any method and
// path: mount it where a test wants it.
func (j *Juspay) UpstreamHandler() http.Handler {
	return http.HandlerFunc(j.upstream)
}

// AddCustomer makes customerID (the merchant's object_reference_id) known,
// with a Juspay id of its own ("cst_…"). Adding a known customer does nothing.
func (j *Juspay) AddCustomer(customerID string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.customers[customerID]; ok {
		return
	}
	c := &juspayCustomer{id: "cst_" + randomHex(8), ref: customerID, created: j.now().UTC()}
	j.customers[c.ref] = c
	j.customers[c.id] = c
}

// Revoke makes every token issued so far for customerID invalid; tokens
// issued afterwards are valid.
func (j *Juspay) Revoke(customerID string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c := j.customers[customerID]
	for _, t := range j.tokens {
		if c != nil && t.customer == c {
			t.revoked = true
		}
	}
}

// Valid reports whether token was issued for customerID (either of its ids),
// is not revoked and has not expired by the fake's clock.
func (j *Juspay) Valid(customerID, token string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.validLocked(customerID, token)
}

func (j *Juspay) validLocked(customerID, token string) bool {
	t, ok := j.tokens[token]
	c := j.customers[customerID]
	return ok && c != nil && t.customer == c && !t.revoked && j.now().Before(t.expiry)
}

// Fetches returns how many token requests (options.get_client_auth_token=true)
// named customerID in their path, whatever the answer.
func (j *Juspay) Fetches(customerID string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetches[customerID]
}

// TotalFetches returns how many token requests were made, for any customer,
// whatever the answer.
func (j *Juspay) TotalFetches() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total
}

// Tokens returns every token issued so far, oldest first: for a scan of logs
// and answers for secrets.
func (j *Juspay) Tokens() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.issued...)
}

// Seen returns every call to UpstreamHandler so far, oldest first.
func (j *Juspay) Seen() []SeenCall {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]SeenCall(nil), j.seen...)
}

// SetClock sets the clock the fake issues and checks tokens by; nil restores
// time.Now.
func (j *Juspay) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.now = now
}

// juspayError is Juspay's error object, as its API reference shows it.
type juspayError struct {
	ErrorMessage string          `json:"error_message,omitempty"`
	Status       string          `json:"status"`
	ErrorCode    string          `json:"error_code"`
	ErrorInfo    juspayErrorInfo `json:"error_info"`
}

type juspayErrorInfo struct {
	UserMessage      string `json:"user_message"`
	DeveloperMessage string `json:"developer_message"`
	Code             string `json:"code"`
	Category         string `json:"category"`
}

// accessDenied is Juspay's 401 for a wrong API key, with developer as its
// developer_message.
func accessDenied(developer string) juspayError {
	return juspayError{Status: "error", ErrorCode: "access_denied", ErrorInfo: juspayErrorInfo{
		UserMessage: "Unauthorized.", DeveloperMessage: developer, Code: "UNAUTHORIZED", Category: "USER_ERROR"}}
}

// invalidRequest is Juspay's 400 for a request it cannot take.
func invalidRequest(message, developer, code string) juspayError {
	return juspayError{ErrorMessage: message, Status: "Invalid Request", ErrorCode: "Invalid Request", ErrorInfo: juspayErrorInfo{
		UserMessage: "Invalid request params. Please verify your input.", DeveloperMessage: developer, Code: code, Category: "USER_ERROR"}}
}

var customerNotFound = juspayError{ErrorMessage: "Cannot find what you are looking for", Status: "invalid_request_error",
	ErrorCode: "object_not_found", ErrorInfo: juspayErrorInfo{UserMessage: "Cannot process your request as customer account not found.",
		DeveloperMessage: "Customer account not found.", Code: "RESOURCE_NOT_FOUND", Category: "USER_ERROR"}}

func (j *Juspay) getCustomer(w http.ResponseWriter, r *http.Request) {
	status, body := j.answer(r)
	writeJSON(w, status, body)
}

// answer is getCustomer's status and body.
func (j *Juspay) answer(r *http.Request) (int, any) {
	id := r.PathValue("id")
	wantToken := r.URL.Query().Get("options.get_client_auth_token") == "true"

	j.mu.Lock()
	defer j.mu.Unlock()
	if wantToken {
		j.fetches[id]++
		j.total++
	}
	user, pass, ok := r.BasicAuth()
	switch {
	case len(r.Header.Values("Authorization")) != 1 || !ok || user != j.apiKey || pass != "":
		return http.StatusUnauthorized, accessDenied("Invalid API Key. Please pass a valid and active api key.")
	case len(r.Header.Values("x-merchantid")) == 0:
		return http.StatusBadRequest, invalidRequest("Mandatory fields are missing", "x-merchantid is missing", "MISSING_MANDATORY_PARAMETER")
	case len(r.Header.Values("x-merchantid")) != 1 || r.Header.Get("x-merchantid") != j.merchantID:
		return http.StatusUnauthorized, accessDenied("The API key is not valid for this merchant.")
	case len(r.Header.Values("x-routing-id")) > 1 || (len(r.Header.Values("x-routing-id")) == 1 && r.Header.Get("x-routing-id") != id):
		return http.StatusBadRequest, invalidRequest("Wrong value in x-routing-id", "x-routing-id differs from the customer id", "INVALID_INPUT")
	}
	c := j.customers[id]
	if c == nil {
		return http.StatusNotFound, customerNotFound
	}
	created := c.created.Format("2006-01-02T15:04:05-0700") // as Juspay's sample: "2016-08-02T08:07:52+0000"
	body := map[string]any{
		"id":                  c.id,
		"object":              "customer",
		"object_reference_id": c.ref,
		"mobile_number":       "9988998899",
		"mobile_country_code": "91",
		"email_address":       "customer@example.com",
		"first_name":          "Test",
		"last_name":           "Customer",
		"date_created":        created,
		"last_updated":        created,
	}
	if wantToken {
		tok := "tkn_" + randomHex(16)
		// Juspay gives the expiry in whole seconds; the token lives until
		// then, no longer.
		exp := j.now().Add(j.ttl).UTC().Truncate(time.Second)
		j.tokens[tok] = &juspayToken{customer: c, expiry: exp}
		j.issued = append(j.issued, tok)
		body["juspay"] = map[string]string{
			"client_auth_token":        tok,
			"client_auth_token_expiry": exp.Format(time.RFC3339),
		}
	}
	return http.StatusOK, body
}

func (j *Juspay) upstream(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Payload struct {
			CustomerID      string `json:"customerId"`
			ClientAuthToken string `json:"clientAuthToken"`
		} `json:"payload"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, invalidRequest("Invalid request body", "the body is not a JSON object", "INVALID_INPUT"))
		return
	}
	p := body.Payload
	j.mu.Lock()
	ok := j.validLocked(p.CustomerID, p.ClientAuthToken)
	j.seen = append(j.seen, SeenCall{CustomerID: p.CustomerID, Token: p.ClientAuthToken, OK: ok})
	j.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, accessDenied("Invalid or expired client auth token for this customer."))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "SUCCESS", "customerId": p.CustomerID})
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
