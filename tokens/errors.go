package tokens

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNoToken is returned by [Cache.Token] and [KeyedCache.Token] when no
// valid token can be had within the wait allowed; it wraps the last fetch
// error, if any.
var ErrNoToken = errors.New("tokens: no valid token")

// RetrieveError is a provider's refusal to issue a token: a non-2xx answer
// from the token endpoint, or an OAuth2 error response.
type RetrieveError struct {
	// Status is the HTTP status of the token endpoint's answer.
	Status int
	// Code is the provider's error code (OAuth2 "error"), if it gave one.
	Code string
	// Description is the provider's message ("detail", "error_description",
	// …), with any credential the provider echoed back removed.
	Description string
	// RetryAfter is the wait the provider asked for with Retry-After; zero if none.
	RetryAfter time.Duration
}

func (e *RetrieveError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokens: provider refused: status %d", e.Status)
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	return b.String()
}

// maxDescription bounds how much of a provider's message is kept.
const maxDescription = 256

// maxEchoed bounds how much of a single value taken from a provider's answer
// (an expires_in, a merchant id) an error quotes: such a value may be huge,
// or be a credential in the wrong field.
const maxEchoed = 64

// cleanDescription trims a provider's message to a loggable size and removes
// any of the given secrets the provider may have echoed back.
func cleanDescription(s string, secrets ...string) string {
	return clean(s, maxDescription, secrets)
}

// echo returns v, a value taken from a provider's answer, quoted for an
// error: cleaned as a provider's message is, and cut to maxEchoed bytes.
func echo(v string, secrets ...string) string {
	return strconv.Quote(clean(v, maxEchoed, secrets))
}

// clean makes text that came from a provider fit for an error or a log: valid
// UTF-8, without any of the given secrets in any form the provider may echo
// them, trimmed, and cut to at most max bytes (and a "…").
func clean(s string, max int, secrets []string) string {
	s = strings.ToValidUTF8(s, "") // first, so that no secret is joined up afterwards
	for _, form := range secretForms(secrets) {
		s = strings.ReplaceAll(s, form, "[redacted]")
	}
	s = strings.TrimSpace(s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// requestError is a failed request to a provider: its message, which may
// quote what the provider sent (net/http quotes a malformed status line), is
// cleaned and cut to maxDescription, while errors.Is and errors.As still see
// the cause (a context's deadline, a *url.Error).
type requestError struct {
	msg string
	err error
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.err }

// newRequestError returns err under prefix ("tokens: token request"), its
// message cleaned of secrets and cut short.
func newRequestError(prefix string, err error, secrets ...string) error {
	return &requestError{msg: prefix + ": " + clean(err.Error(), maxDescription, secrets), err: err}
}

// secretForms lists every way a provider may echo the given secrets back: as
// they are, JSON-escaped (with and without HTML escaping) and URL-encoded —
// longest first, so that no form is left half-replaced by a shorter one.
func secretForms(secrets []string) []string {
	var forms []string
	for _, sec := range secrets {
		// The text was made valid UTF-8 first: look for the secret as it now
		// reads there.
		if sec = strings.ToValidUTF8(sec, ""); sec == "" {
			continue
		}
		forms = append(forms, sec, jsonString(sec, true), jsonString(sec, false),
			url.QueryEscape(sec), url.PathEscape(sec))
	}
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(forms)
}

// jsonString is s as it reads inside a JSON string, without the quotes.
func jsonString(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	enc.Encode(s)
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}
