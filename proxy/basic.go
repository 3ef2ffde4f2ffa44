package proxy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/authsidecar/authsidecar/tokens"
)

// BasicAuth is the value of an "Authorization: Basic" header (RFC 7617),
// encoded once from a user name and a password. Its String hides it.
type BasicAuth struct {
	value []string // {"Basic " + base64(user:password)}, shared by every request
}

// NewBasicAuth encodes user and password, which CheckBasicUser and
// CheckBasicPassword must accept.
func NewBasicAuth(user, password string) (*BasicAuth, error) {
	if err := CheckBasicUser(user); err != nil {
		return nil, err
	}
	if err := CheckBasicPassword(password); err != nil {
		return nil, err
	}
	return &BasicAuth{value: []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}}, nil
}

// CheckBasicUser reports why user cannot be a Basic user name: it is empty,
// or holds a ':' or a control character (RFC 7617). The error never quotes
// it: a user name is often the API key.
func CheckBasicUser(user string) error {
	switch {
	case user == "":
		return errors.New("proxy: the Basic user name is empty")
	case strings.Contains(user, ":"):
		return errors.New("proxy: the Basic user name holds a ':', which would end it early")
	case strings.ContainsFunc(user, isCtl):
		return errors.New("proxy: the Basic user name holds a control character")
	}
	return nil
}

// CheckBasicPassword reports why password cannot be a Basic password: it
// holds a control character. It may be empty. The error never quotes it.
func CheckBasicPassword(password string) error {
	if strings.ContainsFunc(password, isCtl) {
		return errors.New("proxy: the Basic password holds a control character")
	}
	return nil
}

// isCtl reports whether r is an ASCII control character.
func isCtl(r rune) bool { return r < ' ' || r == 0x7f }

// String hides the credentials.
func (a *BasicAuth) String() string { return "Basic [redacted]" }

// GoString hides the credentials from %#v too.
func (a *BasicAuth) GoString() string { return a.String() }

// Basic returns the injector that sets "Authorization: Basic …" to the
// credentials auth returns, replacing any Authorization the app sent. auth
// is called once per request, and must be safe for concurrent use, cheap and
// never nil: a constant, or the Get of a tokens.Watched that encodes the
// credentials again when their files change (tokens.WatchSecrets). Basic
// needs no token source.
func Basic(auth func() *BasicAuth) Injector { return basicInjector{auth: auth} }

type basicInjector struct{ auth func() *BasicAuth }

// Inject sets the current credentials, encoded once, not per request.
func (i basicInjector) Inject(h http.Header, _ *tokens.Token, _ []byte) ([]byte, error) {
	h["Authorization"] = i.auth().value
	return nil, nil
}

func (basicInjector) Body() BodyUse { return BodyUntouched }
