package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/authsidecar/authsidecar/proxy/paygate"
	"github.com/authsidecar/authsidecar/tokens"
)

// maxAnswer bounds the Paygate answer read to be decrypted; a larger one is
// passed on as it is. Paygate's answers are a few hundred bytes.
const maxAnswer = 1 << 20

// Paygate returns the injector of INJECT=paygate: each call's plain
// parameters, in the query of a GET or the form body of a POST, are sealed
// in Computop Paygate's envelope for the merchant (MerchantID, Len, Data,
// with the MAC when the merchant has an HMAC password), and the answer's
// Data, in its body or its redirect's Location, is opened (its MAC checked)
// and handed to the app as a plain form body. merchant is called once per
// call, so that rotated passwords take effect. It sends no token.
func Paygate(merchant func() *paygate.Merchant) Injector {
	return paygateCalls{merchant: merchant}
}

type paygateCalls struct {
	merchant func() *paygate.Merchant
}

// Inject does nothing: the envelope is made by the transport that wrap
// returns, which alone sees the query and the answer.
func (paygateCalls) Inject(http.Header, *tokens.Token, []byte) ([]byte, error) { return nil, nil }
func (paygateCalls) Body() BodyUse                                             { return BodyUntouched }

// transportWrapper is an Injector that also handles whole calls, answers
// included: it wraps the transport that sends them upstream.
type transportWrapper interface {
	wrap(next http.RoundTripper, maxBody int64) http.RoundTripper
}

func (p paygateCalls) wrap(next http.RoundTripper, maxBody int64) http.RoundTripper {
	return &paygateTransport{merchant: p.merchant, next: next, maxBody: maxBody}
}

type paygateTransport struct {
	merchant func() *paygate.Merchant
	next     http.RoundTripper
	maxBody  int64
}

// answerError is an upstream answer the sidecar withholds from the app.
type answerError struct {
	code, msg string
}

func (e *answerError) Error() string { return "proxy: " + e.msg }

func (t *paygateTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	params, inBody, err := t.callParams(req)
	if err != nil {
		return nil, err
	}
	m := t.merchant()
	env, err := m.Seal(params)
	if err != nil {
		return nil, &RequestError{Reason: "bad_param", Message: err.Error()}
	}
	if inBody {
		setBody(req, []byte(env.Encode()))
		req.Header.Set("Content-Type", formType)
	} else {
		req.URL.RawQuery = env.Encode()
	}
	// The answer must be read to be opened: let the transport ask for, and
	// undo, its own compression.
	req.Header.Del("Accept-Encoding")
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	return openAnswer(m, resp)
}

// callParams reads a call's plain parameters: a GET's query, or a POST's
// form body (or its query, when it has no body). inBody says where they
// were, and so where the envelope goes. A GET's body is refused: it would
// go upstream unsealed.
func (t *paygateTransport) callParams(req *http.Request) (params paygate.Params, inBody bool, err error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return nil, false, &RequestError{Reason: "bad_method", Message: "a Paygate call is a GET or a POST"}
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	var body []byte
	if hasBody {
		if body, err = io.ReadAll(io.LimitReader(req.Body, t.maxBody+1)); err != nil {
			return nil, false, err
		}
		req.Body.Close()
	}
	if int64(len(body)) > t.maxBody {
		return nil, false, &RequestError{Reason: "too_large", Message: fmt.Sprintf("the request body is over %d bytes (AUTHSIDECAR_MAX_REPLAY_BODY)", t.maxBody)}
	}
	text := req.URL.RawQuery
	switch {
	case len(body) > 0 && req.Method != http.MethodPost:
		return nil, false, &RequestError{Reason: "bad_param", Message: "a Paygate " + req.Method + " carries its parameters in the query, not in a body"}
	case len(body) > 0 && !isForm(req.Header.Get("Content-Type")):
		return nil, false, &RequestError{Reason: "not_form", Message: "a Paygate call's body must be " + formType}
	case len(body) > 0 && text != "":
		return nil, false, &RequestError{Reason: "bad_param", Message: "the call's parameters are both in the query and in the body: send them in one"}
	case len(body) > 0:
		text, inBody = string(body), true
	case hasBody:
		// An empty body, now read: the envelope goes in the query, as the
		// app's parameters, and no body (not an empty chunked one) follows.
		req.Body, req.GetBody, req.ContentLength, req.TransferEncoding = http.NoBody, nil, 0, nil
	}
	if params, err = parseForm(text); err != nil {
		return nil, false, &RequestError{Reason: "not_form", Message: "the call's parameters are not form-urlencoded: " + err.Error()}
	}
	_, hasLen := params.Get("Len")
	_, hasData := params.Get("Data")
	switch {
	case len(params) == 0:
		return nil, false, &RequestError{Reason: "bad_param", Message: "the call has no parameters"}
	case hasLen || hasData:
		return nil, false, &RequestError{Reason: "bad_param", Message: "the call already holds Len or Data: send the plain parameters, the sidecar encrypts them"}
	}
	return params, inBody, nil
}

// openAnswer replaces a Paygate answer that carries Data, in its body or in
// its redirect's Location, with the plain parameters as a form body. An
// answer without Data is returned as it is.
func openAnswer(m *paygate.Merchant, resp *http.Response) (*http.Response, error) {
	length, data, found := envelopeIn(locationQuery(resp.Header.Get("Location")))
	var body []byte
	if !found && resp.Body != nil && resp.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("read the answer: %w", err)
		}
		if len(b) > maxAnswer {
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
			return resp, nil
		}
		body = b
		length, data, found = envelopeIn(string(b))
	}
	if !found {
		if body != nil {
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
		}
		return resp, nil
	}
	discard(resp)
	params, err := m.Open(length, data)
	switch {
	case errors.Is(err, paygate.ErrBadMAC):
		return nil, &answerError{code: "bad_upstream_signature", msg: "the Paygate answer's MAC does not verify with AUTHSIDECAR_PAYGATE_HMAC_KEY_FILE's password: the answer is withheld"}
	case err != nil:
		return nil, &answerError{code: "bad_upstream_answer", msg: "the Paygate answer's Data cannot be opened with AUTHSIDECAR_PAYGATE_KEY_FILE's password and the answer's Len"}
	}
	plain := appendForm(nil, params)
	resp.Body = io.NopCloser(bytes.NewReader(plain))
	resp.ContentLength = int64(len(plain))
	resp.TransferEncoding = nil
	resp.Uncompressed = false
	resp.Header.Del("Content-Encoding")
	resp.Header.Set("Content-Type", formType)
	resp.Header.Set("Content-Length", strconv.Itoa(len(plain)))
	return resp, nil
}

// envelopeIn finds Len and Data, their names in any case, in a
// form-urlencoded text: the first of each, as Params.Get would. It reads
// the pairs one at a time, so that neither a pair it cannot decode nor
// the number of pairs can hide a Data from the MAC check; a value it
// cannot decode is returned as it is, and fails to open.
func envelopeIn(form string) (length, data string, ok bool) {
	hasLen := false
	for pair := range strings.SplitSeq(form, "&") {
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		switch {
		case !ok && strings.EqualFold(key, "Data"):
			data, ok = unescapeOr(v), true
		case !hasLen && strings.EqualFold(key, "Len"):
			length, hasLen = unescapeOr(v), true
		}
	}
	if !ok {
		return "", "", false
	}
	return length, data, true
}

// unescapeOr returns v query-unescaped, or v itself if it cannot be.
func unescapeOr(v string) string {
	if u, err := url.QueryUnescape(v); err == nil {
		return u
	}
	return v
}

// locationQuery returns the query of a Location header; "" if it has none.
// It does not parse the URL, which need not be valid for its query to be
// read.
func locationQuery(location string) string {
	location, _, _ = strings.Cut(location, "#")
	_, query, _ := strings.Cut(location, "?")
	return query
}
