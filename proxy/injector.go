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
	// values holds the header value of the tokens seen last, two ways per
	// hash of the token's pointer: one token (a route's) always hits, and so
	// do nearly all of a keyed cache's thousands (one per customer or
	// tenant), so that a request allocates nothing for its header.
	values [headerSlots][2]atomic.Pointer[headerValue]
}

// headerSlots is how many sets of two tokens' header values a header
// injector keeps: 8,192 values in 64 KiB. With one way of 1,024, a third of
// 1,000 tenants' tokens shared their slot and rebuilt their value at every
// request.
const headerSlots = 4096

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
	set := &i.values[maphash.Comparable(i.seed, tok)%headerSlots]
	v := set[0].Load()
	if v == nil || v.tok != tok {
		if v2 := set[1].Load(); v2 != nil && v2.tok == tok {
			v = v2
		} else {
			// The newest first: the other way keeps the one before.
			set[1].Store(v)
			v = &headerValue{tok: tok, value: []string{i.prefix + tok.Value}}
			set[0].Store(v)
		}
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
