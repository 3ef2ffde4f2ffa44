package proxy

import (
	"hash/maphash"
	"net/http"
	"net/textproto"
	"sync/atomic"

	"github.com/authsidecar/authsidecar/tokens"
)

// BodyUse says what an Injector does with request bodies.
type BodyUse int

const (
	// BodyUntouched: the injector sets headers only, and bodies stream.
	BodyUntouched BodyUse = iota
	// BodyPerToken: the body is rewritten for each token; a replay rewrites
	// the app's original body with the new token (json-body).
	BodyPerToken
	// BodyOnce: the body is rewritten once, without a token, and a replay
	// sends the same rewritten body (signature).
	BodyOnce
)

// Injector puts the credentials on outbound requests. Implementations must
// be safe for concurrent use.
type Injector interface {
	// Inject authenticates one attempt of a request with tok (nil without a
	// token source). It may set headers in h and, unless Body returns
	// BodyUntouched, returns the body to send in place of body, the app's
	// whole body. A *RequestError means the app's request cannot be
	// authenticated as it is; nothing is sent upstream.
	Inject(h http.Header, tok *tokens.Token, body []byte) ([]byte, error)
	// Body says whether Inject rewrites bodies, and how.
	Body() BodyUse
}

// Bearer returns the injector that sets "Authorization: Bearer <token>",
// replacing any Authorization the app sent.
func Bearer() Injector { return Header("Authorization", "Bearer ") }

// Header returns an injector that sets header name to prefix+token,
// replacing any value the app sent.
func Header(name, prefix string) Injector {
	return &headerInjector{name: textproto.CanonicalMIMEHeaderKey(name), prefix: prefix, seed: maphash.MakeSeed()}
}

type headerInjector struct {
	name, prefix string
	seed         maphash.Seed
	// values holds the header value of the tokens seen last, by a hash of
	// the token's pointer: one token (a route's) always hits, and so do
	// most of a keyed cache's tokens (one per customer or tenant), so that
	// a request allocates nothing for its header.
	values [headerSlots]atomic.Pointer[headerValue]
}

// headerSlots is how many tokens' header values a header injector keeps.
const headerSlots = 1024

// headerValue is the header value built once per token.
type headerValue struct {
	tok   *tokens.Token
	value []string
}

// Inject puts prefix+token in h, the value built once per token.
func (i *headerInjector) Inject(h http.Header, tok *tokens.Token, _ []byte) ([]byte, error) {
	if tok == nil {
		return nil, nil
	}
	slot := &i.values[maphash.Comparable(i.seed, tok)%headerSlots]
	v := slot.Load()
	if v == nil || v.tok != tok {
		v = &headerValue{tok: tok, value: []string{i.prefix + tok.Value}}
		slot.Store(v)
	}
	h[i.name] = v.value
	return nil, nil
}

func (i *headerInjector) Body() BodyUse { return BodyUntouched }

// None returns an injector that adds nothing: requests go out as the app sent them.
func None() Injector { return noInjector{} }

type noInjector struct{}

func (noInjector) Inject(http.Header, *tokens.Token, []byte) ([]byte, error) { return nil, nil }
func (noInjector) Body() BodyUse                                             { return BodyUntouched }
