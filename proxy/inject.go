package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// TokenSource is what the proxy needs of a token cache; *tokens.Cache is one.
type TokenSource interface {
	// Token returns a valid token, at once while one is cached.
	Token(ctx context.Context) (*tokens.Token, error)
	// Invalidate reports that the upstream rejected tok, and returns whether a
	// replay with the token Token now returns is worth trying.
	Invalidate(tok *tokens.Token) bool
	// Accepted reports that the upstream did not reject tok, so that a later
	// rejection of it is taken for a revocation. It must be cheap: it is
	// called for every answer.
	Accepted(tok *tokens.Token)
	// Replayed reports whether the upstream accepted a rejected request
	// replayed with tok: whether refreshing helped.
	Replayed(tok *tokens.Token, accepted bool)
}

// authTransport is the RoundTripper that authenticates each request with its
// Injector and replays a request once when the upstream rejects its token.
// It is only given requests that ReverseProxy has already cloned, so it may
// set their headers and body.
type authTransport struct {
	tokens        TokenSource       // nil: no token source, or a keyed one
	keyed         KeyedTokenSource  // nil: tokens are not per customer
	tenants       Tenants           // nil: no tenants
	tenantDefault bool              // a request without the tenant header gets the route\'s credentials
	tenantHeader  string            // canonical; removed from every request
	base          http.RoundTripper // next without the route's transport-wrapping injector, for a tenant's
	setHeaders    []fixedHeader     // the route's, replaced by a tenant's
	key           customerKey       // where a request's customer is, with keyed
	inj           Injector
	use           BodyUse // inj.Body(), fixed at start
	next          http.RoundTripper
	refreshOn     [600]bool
	maxBody       int64
	metrics       *metrics.Metrics
}

func newAuthTransport(ts TokenSource, inj Injector, next http.RoundTripper, refreshOn []int, maxBody int64, m *metrics.Metrics) *authTransport {
	t := &authTransport{tokens: ts, inj: inj, use: inj.Body(), next: next, maxBody: maxBody, metrics: m}
	for _, code := range refreshOn {
		if code >= 0 && code < len(t.refreshOn) {
			t.refreshOn[code] = true
		}
	}
	return t
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.tokens == nil && t.keyed == nil && t.tenants == nil && t.use == BodyUntouched {
		// Nothing to rewrite and no token to replay with: stream as is.
		if _, err := t.inj.Inject(req.Header, nil, nil); err != nil {
			return nil, err
		}
		return t.next.RoundTrip(req)
	}
	ctx := req.Context()
	ts, inj, use, next := t.tokens, t.inj, t.use, t.next
	var tn *Tenant
	if t.tenants != nil {
		var err error
		if tn, err = t.tenant(req); err != nil {
			return nil, err
		}
		if tn != nil {
			ts = tn.Tokens
			if tn.Injector != nil {
				inj, use = tn.Injector, tn.Injector.Body()
				if w, ok := inj.(transportWrapper); ok {
					next = w.wrap(t.base, t.maxBody)
				}
			}
		}
	}
	body, replayable, err := t.keepBody(req)
	if err != nil {
		return nil, err
	}
	if use != BodyUntouched && !replayable {
		return nil, &RequestError{Reason: "too_large", Message: fmt.Sprintf("the request body is over %d bytes (AUTHSIDECAR_MAX_REPLAY_BODY) and cannot be rewritten", t.maxBody)}
	}
	var doc map[string]any // the body decoded, when the customer was read from it
	if t.keyed != nil {
		var key string
		if key, doc, err = t.key.of(body); err != nil {
			return nil, err
		}
		if tn != nil {
			key = tn.Key + "/" + key
		}
		ts = &keyBound{src: t.keyed, key: key}
	}
	var tok *tokens.Token
	if ts != nil {
		if tok, err = ts.Token(ctx); err != nil {
			return nil, err
		}
	}
	sent, err := t.authenticate(req, inj, use, tok, body, doc)
	if err != nil {
		return nil, err
	}
	resp, err := next.RoundTrip(req)
	if err != nil || ts == nil {
		return resp, err
	}
	if !t.rejected(resp.StatusCode) {
		if resp.StatusCode < 400 {
			ts.Accepted(tok) // a 404 or a 5xx may come before any token check
		}
		return resp, nil
	}
	worth := ts.Invalidate(tok) // even when this request cannot be replayed
	if !replayable {
		t.metrics.Replay(metrics.ReplayTooLarge)
		return resp, nil
	}
	if !worth {
		t.metrics.Replay(metrics.ReplayRateLimited)
		return resp, nil
	}
	fresh, err := ts.Token(ctx)
	if err != nil {
		// No new token: the app sees the upstream's own rejection.
		t.metrics.Replay(metrics.ReplayError)
		return resp, nil
	}
	retry := req.Clone(ctx)
	if use == BodyPerToken {
		sent = body // rewritten again, with the new token
	}
	if use == BodyOnce {
		setBody(retry, sent) // the same signed body
	} else if _, err := t.authenticate(retry, inj, use, fresh, sent, doc); err != nil {
		t.metrics.Replay(metrics.ReplayError)
		return resp, nil
	}
	discard(resp)
	resp, err = next.RoundTrip(retry)
	switch {
	case err != nil:
		t.metrics.Replay(metrics.ReplayError)
	case t.rejected(resp.StatusCode):
		t.metrics.Replay(metrics.ReplayRejected)
		// The new token was rejected too: revoked with the old one, or the
		// upstream rejects this request whatever its token. Either way the
		// refresh did not help.
		ts.Replayed(fresh, false)
	default:
		if resp.StatusCode < 400 {
			ts.Replayed(fresh, true)
		}
		t.metrics.Replay(metrics.ReplaySuccess)
	}
	return resp, err
}

// docInjector is an Injector that can also write into a body already
// decoded (json-body).
type docInjector interface {
	injectDoc(tok *tokens.Token, doc map[string]any) ([]byte, error)
}

// authenticate puts tok on req with the injector, and returns the body that
// is sent: the app's, or the injector's rewrite of it (use is inj.Body()). doc, if not nil, is
// the app's body decoded, for an injector that can use it.
func (t *authTransport) authenticate(req *http.Request, inj Injector, use BodyUse, tok *tokens.Token, body []byte, doc map[string]any) ([]byte, error) {
	if use == BodyUntouched {
		_, err := inj.Inject(req.Header, tok, nil)
		if body != nil {
			setBody(req, body)
		}
		return body, err
	}
	if body == nil {
		return nil, &RequestError{Reason: "not_json_object", Message: "the request has no body: a JSON object is needed"}
	}
	var out []byte
	var err error
	if di, ok := inj.(docInjector); ok && doc != nil {
		out, err = di.injectDoc(tok, doc)
	} else {
		out, err = inj.Inject(req.Header, tok, body)
	}
	if err != nil {
		return nil, err
	}
	setBody(req, out)
	return out, nil
}

// setBody makes b the body of req.
func setBody(req *http.Request, b []byte) {
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	req.ContentLength = int64(len(b))
	req.TransferEncoding = nil
}

func (t *authTransport) rejected(code int) bool {
	return code >= 0 && code < len(t.refreshOn) && t.refreshOn[code]
}

// keepBody reads a request body of at most maxBody bytes into memory, so that
// the request can be rewritten and replayed. A larger body is streamed: what
// was read is put back in front of the rest, and the request is not
// replayable. A request without a body is always replayable.
func (t *authTransport) keepBody(req *http.Request) (body []byte, replayable bool, err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true, nil
	}
	if req.ContentLength > t.maxBody {
		return nil, false, nil
	}
	size := req.ContentLength
	if size < 0 {
		size = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	orig := req.Body
	if _, err := buf.ReadFrom(io.LimitReader(orig, t.maxBody+1)); err != nil {
		return nil, false, err
	}
	if int64(buf.Len()) > t.maxBody {
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf.Bytes()), orig), orig}
		return nil, false, nil
	}
	orig.Close()
	return buf.Bytes(), true, nil
}

// discard drains a little of a response that will not be used, so that its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}
