package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync/atomic"

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
}

// injector is the RoundTripper that puts the token on each request and
// replays a request once when the upstream rejects its token. It is only
// given requests that ReverseProxy has already cloned, so it may set their
// headers and body.
type injector struct {
	tokens    TokenSource
	next      http.RoundTripper
	refreshOn [600]bool
	maxBody   int64
	metrics   *metrics.Metrics
	auth      atomic.Pointer[authHeader]
}

// authHeader is the Authorization value built once per token.
type authHeader struct {
	tok   *tokens.Token
	value []string
}

func newInjector(ts TokenSource, next http.RoundTripper, refreshOn []int, maxBody int64, m *metrics.Metrics) *injector {
	t := &injector{tokens: ts, next: next, maxBody: maxBody, metrics: m}
	for _, code := range refreshOn {
		if code >= 0 && code < len(t.refreshOn) {
			t.refreshOn[code] = true
		}
	}
	return t
}

func (t *injector) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tok, err := t.tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	body, replayable, err := t.keepBody(req)
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = t.header(tok)
	resp, err := t.next.RoundTrip(req)
	if err != nil || !t.rejected(resp.StatusCode) {
		return resp, err
	}
	worth := t.tokens.Invalidate(tok) // even when this request cannot be replayed
	if !replayable {
		t.metrics.Replay(metrics.ReplayTooLarge)
		return resp, nil
	}
	if !worth {
		t.metrics.Replay(metrics.ReplayRateLimited)
		return resp, nil
	}
	fresh, err := t.tokens.Token(ctx)
	if err != nil {
		// No new token: the app sees the upstream's own rejection.
		t.metrics.Replay(metrics.ReplayError)
		return resp, nil
	}
	discard(resp)
	retry := req.Clone(ctx)
	if body != nil {
		retry.Body = io.NopCloser(bytes.NewReader(body))
	}
	retry.Header["Authorization"] = t.header(fresh)
	resp, err = t.next.RoundTrip(retry)
	switch {
	case err != nil:
		t.metrics.Replay(metrics.ReplayError)
	case t.rejected(resp.StatusCode):
		t.metrics.Replay(metrics.ReplayRejected)
	default:
		t.metrics.Replay(metrics.ReplaySuccess)
	}
	return resp, err
}

func (t *injector) rejected(code int) bool {
	return code >= 0 && code < len(t.refreshOn) && t.refreshOn[code]
}

// header returns the Authorization value for tok, built once per token.
func (t *injector) header(tok *tokens.Token) []string {
	if a := t.auth.Load(); a != nil && a.tok == tok {
		return a.value
	}
	a := &authHeader{tok: tok, value: []string{"Bearer " + tok.Value}}
	t.auth.Store(a)
	return a.value
}

// keepBody reads a request body of at most maxBody bytes into memory so the
// request can be replayed, and puts a reader of it back. A larger body is
// streamed: what was read is put back in front of the rest, and the request
// is not replayable. A request without a body is always replayable.
func (t *injector) keepBody(req *http.Request) (body []byte, replayable bool, err error) {
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
	body = buf.Bytes()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, true, nil
}

// discard drains a little of a response that will not be used, so that its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}
