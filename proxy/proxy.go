// Package proxy is authsidecar's reverse proxy. It forwards the local app's
// requests to one upstream, puts the current token on each of them, and
// replays a request once, with a new token, when the upstream rejects the old.
package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// Config describes a proxy. Upstream is required.
type Config struct {
	// Upstream is the base URL of the real API; request paths and queries are
	// appended to it.
	Upstream *url.URL
	// Tokens supplies the token put on each request. If nil, no token is
	// fetched, and requests are not replayed.
	Tokens TokenSource
	// KeyedTokens, if not nil, supplies each request's token by its
	// customer, read from its JSON body (see CustomerField), in place of
	// Tokens: a body without a customer is refused with 400.
	KeyedTokens KeyedTokenSource
	// ClientAuthTokenPath is the path of the local endpoint that answers a
	// customer's token from ClientAuthTokens (Juspay's clientAuthToken, for
	// the SDK); empty means none.
	ClientAuthTokenPath string
	// ClientAuthTokens supplies the tokens of ClientAuthTokenPath; it may be
	// set without KeyedTokens, when requests carry no customer's token
	// (Juspay's server API with HTTP Basic). Required with
	// ClientAuthTokenPath.
	ClientAuthTokens KeyedTokenSource
	// CustomerField is the dotted path of the customer id in a body, with
	// KeyedTokens. If empty, payload.customerId, else payload.customer_id.
	CustomerField string
	// Tenants, with TenantHeader, gives each request, and each request to
	// a local endpoint, the credentials of the tenant its TenantHeader
	// names (a merchant among many) in place of the route's. The header is
	// never forwarded; a request without it is refused with 400 no_tenant
	// unless TenantDefault, when it gets the route's.
	Tenants       Tenants
	TenantHeader  string
	TenantDefault bool
	// Injector puts the credentials on each request. If nil, Bearer is used
	// when Tokens is set; with neither, requests go out as the app sent them.
	Injector Injector
	// Signer, if not nil, serves SignPath: a POSTed outer payload comes back
	// signed, and nothing is sent upstream.
	Signer *Signer
	// SignPath is the path of the local signing endpoint; empty means none.
	SignPath string
	// HandoffPath is the path of the local hand-off endpoint, which answers
	// the current token (with Tokens set); empty means none.
	HandoffPath string
	// PaygateMerchant is the merchant of the local Paygate codec served
	// under PaygatePath; called once per request, so that rotated passwords
	// take effect. Required with PaygatePath.
	PaygateMerchant func() *paygate.Merchant
	// PaygatePath is the prefix of the local Paygate codec, PaygatePath +
	// "/encrypt" and "/decrypt"; empty means none.
	PaygatePath string
	// SDKAuthPath is the path of Axepta's mobile-SDK authentication
	// endpoint, served on the proxy listener and never forwarded; empty
	// means none.
	SDKAuthPath string
	// SDKAuth registers one fresh AuthToken per request at SDKAuthPath.
	// Required with SDKAuthPath: New panics without it.
	SDKAuth Registrar
	// SDKAuthMerchantID refuses a request whose {"merchantID": …} names
	// another merchant; empty accepts any.
	SDKAuthMerchantID string
	// SDKAuthMaxInflight bounds the registrations in flight; beyond it
	// requests get 503 busy. Zero means 16.
	SDKAuthMaxInflight int
	// Transport sends requests upstream. If nil, NewTransport(nil) is used.
	Transport http.RoundTripper
	// RefreshOn lists the upstream statuses that mean "token rejected". If
	// nil, 401 is used.
	RefreshOn []int
	// MaxReplayBody is the largest request body kept so that the request can
	// be replayed; larger bodies are streamed and their rejection passed on.
	// Zero means only requests without a body are replayed.
	MaxReplayBody int64
	// RequireHeader, if not empty, names a header every request must carry
	// (any value) or be refused with 403; it is not forwarded. Other local
	// processes that can reach the listener, and web pages that make a
	// browser send requests to it, cannot set it by accident.
	RequireHeader string
	// SetHeaders are fixed headers set on every request sent upstream,
	// replays included, replacing the app's values of the same names (in
	// any case: names are canonicalized, the app's by Go's server). The
	// Injector sets its own header after them, and wins. New does not check
	// the names: a hop-by-hop or framing header, Host or RequireHeader here
	// is the caller's mistake. If nil, no header is set.
	SetHeaders http.Header
	// Logger receives errors. If nil, nothing is logged.
	Logger *slog.Logger
	// Metrics counts requests, replays and errors. If nil, nothing is counted.
	Metrics *metrics.Metrics
}

// New returns the proxy's handler.
func New(c Config) http.Handler {
	if c.Transport == nil {
		c.Transport = NewTransport(nil)
	}
	if c.RefreshOn == nil {
		c.RefreshOn = []int{http.StatusUnauthorized}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	upstream := *c.Upstream
	h := &handler{upstream: &upstream, log: c.Logger, metrics: c.Metrics}
	if c.RequireHeader != "" {
		h.requireHeader = http.CanonicalHeaderKey(c.RequireHeader)
	}
	h.setHeaders = fixedHeaders(c.SetHeaders)
	var rt http.RoundTripper = c.Metrics.InstrumentTransport(c.Transport)
	base := rt
	if c.Injector == nil && c.Tokens != nil {
		c.Injector = Bearer()
	}
	if w, ok := c.Injector.(transportWrapper); ok {
		rt = w.wrap(rt, c.MaxReplayBody)
	}
	if c.Injector != nil {
		at := newAuthTransport(c.Tokens, c.Injector, rt, c.RefreshOn, c.MaxReplayBody, c.Metrics)
		if c.Tenants != nil && c.TenantHeader != "" {
			at.tenants, at.tenantHeader, at.tenantDefault, at.base, at.setHeaders = c.Tenants, http.CanonicalHeaderKey(c.TenantHeader), c.TenantDefault, base, h.setHeaders
		}
		if c.KeyedTokens != nil {
			at.tokens, at.keyed = nil, c.KeyedTokens
			if c.CustomerField != "" {
				at.key.path = splitPath(c.CustomerField)
			}
		}
		rt = at
	}
	tenants := c.Tenants != nil && c.TenantHeader != ""
	if (c.Tokens != nil || tenants) && c.HandoffPath != "" {
		h.handoffPath, h.tokens = c.HandoffPath, c.Tokens
	}
	h.sdkAuth = newSDKAuth(c)
	if (c.Signer != nil || tenants) && c.SignPath != "" {
		h.signPath, h.signer, h.maxBody = c.SignPath, c.Signer, c.MaxReplayBody
	}
	if tenants {
		h.tenants, h.tenantHeader, h.tenantDefault = c.Tenants, http.CanonicalHeaderKey(c.TenantHeader), c.TenantDefault
	}
	if c.ClientAuthTokens != nil && c.ClientAuthTokenPath != "" {
		h.clientAuthTokenPath, h.keyed = c.ClientAuthTokenPath, c.ClientAuthTokens
	}
	if (c.PaygateMerchant != nil || tenants) && c.PaygatePath != "" {
		h.paygatePath, h.paygate, h.maxBody = c.PaygatePath, c.PaygateMerchant, c.MaxReplayBody
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:      h.rewrite,
		Transport:    rt,
		BufferPool:   bufferPool{},
		ErrorHandler: h.handleError,
		ErrorLog:     slog.NewLogLogger(c.Logger.Handler(), slog.LevelWarn),
	}
	return c.Metrics.InstrumentHandler(h)
}

type handler struct {
	signPath string // the local signing endpoint; empty means none
	signer   *Signer
	maxBody  int64

	handoffPath string // the local hand-off endpoint; empty means none
	tokens      TokenSource

	tenants       Tenants // nil: no tenants
	tenantHeader  string  // canonical
	tenantDefault bool

	clientAuthTokenPath string // the local client auth token endpoint; empty means none
	keyed               KeyedTokenSource

	paygatePath string // the local Paygate codec's prefix; empty means none
	paygate     func() *paygate.Merchant

	sdkAuth *sdkAuth // the mobile-SDK authentication endpoint; nil means none

	requireHeader string // canonical; empty means none
	setHeaders    []fixedHeader

	upstream *url.URL
	rp       *httputil.ReverseProxy
	log      *slog.Logger
	metrics  *metrics.Metrics
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TransferEncoding != nil || !r.ProtoAtLeast(1, 1) {
		// Go's server frames such requests in ways a front proxy may not
		// (Transfer-Encoding beside Content-Length, HTTP/1.0 with
		// Transfer-Encoding: golang/go#80942): close the connection after
		// the answer so that no leftover bytes become a second request.
		w.Header().Set("Connection", "close")
	}
	switch {
	case h.requireHeader != "" && len(r.Header[h.requireHeader]) == 0:
		h.reject(w, http.StatusForbidden, "forbidden", "the request lacks the "+h.requireHeader+" header that this sidecar requires")
	case r.Method == http.MethodConnect:
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "CONNECT is not supported: authsidecar forwards only to its upstream")
	case isTrace(r.Method):
		// An upstream or a middlebox that implements TRACE would echo the
		// request, with the injected credentials, back to the app.
		h.reject(w, http.StatusMethodNotAllowed, "method_not_allowed", "TRACE and TRACK are not supported: the answer would echo the injected credentials")
	case r.URL.Opaque != "" || (r.URL.Path != "" && r.URL.Path[0] != '/'):
		h.reject(w, http.StatusBadRequest, "bad_request", "the request target must be an absolute path")
	case r.URL.Host != "" && !strings.EqualFold(r.URL.Host, h.upstream.Host):
		// An absolute-form request naming another host: never forward it there.
		h.reject(w, http.StatusBadRequest, "bad_request", "absolute-form request for another host: authsidecar forwards only to its upstream")
	case hasDotSegment(r.URL.Path):
		h.reject(w, http.StatusBadRequest, "bad_request", "dot segments are not allowed in the path")
	default:
		h.serve(w, r)
	}
}

// serve answers a request for a local endpoint, or forwards it, with the
// credentials of its tenant (nil: the route's).
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	var t *Tenant
	if h.tenants != nil {
		var ok bool
		if t, ok = h.checkTenant(w, r); !ok {
			return
		}
	}
	switch {
	case h.sdkAuth != nil && r.URL.Path == h.sdkAuth.path:
		h.serveSDKAuth(w, r, t)
	case h.signPath != "" && r.URL.Path == h.signPath:
		h.serveSign(w, r, t)
	case h.handoffPath != "" && r.URL.Path == h.handoffPath:
		h.serveHandoff(w, r, t)
	case h.clientAuthTokenPath != "" && r.URL.Path == h.clientAuthTokenPath:
		h.serveClientAuthToken(w, r, t)
	case h.paygatePath != "" && (r.URL.Path == h.paygatePath || strings.HasPrefix(r.URL.Path, h.paygatePath+"/")):
		h.servePaygate(w, r, t)
	default:
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = appBody{r.Body}
		}
		h.rp.ServeHTTP(w, r)
	}
}

// missing answers a request for a local endpoint whose credential neither
// its tenant nor the route has; ok is false when it was answered.
func (h *handler) missing(w http.ResponseWriter, t *Tenant, ok bool, what string) bool {
	if ok {
		return true
	}
	if t != nil {
		h.reject(w, http.StatusInternalServerError, "incomplete_tenant", "proxy: tenant "+t.Key+" has no "+what)
	} else {
		h.reject(w, http.StatusInternalServerError, "no_credentials", "proxy: the route has no "+what+": requests must name their tenant ("+h.tenantHeader+")")
	}
	return false
}

// rewrite points the outbound request at the upstream. It runs after the
// hop-by-hop headers are gone, and drops the app's X-Forwarded-* headers.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(h.upstream)
	if h.requireHeader != "" {
		delete(pr.Out.Header, h.requireHeader)
	}
	// The sidecar answers the app's Expect: 100-continue itself: Go's server
	// sends 100 Continue when the body is first read, which is before the
	// upstream is asked when the body is kept or rewritten, and when the
	// transport starts sending it otherwise. Passed on, the expectation
	// would bring a second 100 Continue from the upstream, which
	// ReverseProxy relays (clearing the response headers, Connection: close
	// among them), and make the transport wait for it before sending.
	delete(pr.Out.Header, "Expect")
	for k := range pr.Out.Header { // the rest of the X-Forwarded-* family, and Forwarded
		if k == "Forwarded" || strings.HasPrefix(k, "X-Forwarded-") {
			delete(pr.Out.Header, k)
		}
	}
	for _, f := range h.setHeaders {
		pr.Out.Header[f.name] = f.values
	}
}

// fixedHeader is one of Config.SetHeaders, built once: every request's
// header shares values, which nothing changes in place (Header.Set
// replaces a slice, and Add cannot append to one that has no room).
type fixedHeader struct {
	name   string // canonical
	values []string
}

// fixedHeaders builds Config.SetHeaders, the values of names that differ
// only in case merged.
func fixedHeaders(set http.Header) []fixedHeader {
	merged := http.Header{}
	for name, values := range set {
		for _, v := range values {
			merged.Add(name, v)
		}
	}
	var out []fixedHeader
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		out = append(out, fixedHeader{name: name, values: slices.Clip(merged[name])})
	}
	return out
}

// isTrace reports whether method is TRACE or TRACK (Microsoft's TRACE), in
// any case: method names are case-sensitive, but not every upstream is.
func isTrace(method string) bool {
	return len(method) == 5 && (strings.EqualFold(method, "TRACE") || strings.EqualFold(method, "TRACK"))
}

// CheckEndpointPath reports why p cannot be the path of a local endpoint
// (Config.SignPath, Config.HandoffPath), which requests match exactly: it
// must start with "/" and hold no dot segment, "?" or "#".
func CheckEndpointPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be a path starting with /, got %q", p)
	case strings.ContainsAny(p, "?#") || hasDotSegment(p):
		return fmt.Errorf("must be a plain path, without dot segments, ? or #, got %q", p)
	}
	return nil
}

// hasDotSegment reports whether a path has a "." or ".." segment, which an
// upstream could resolve to a place outside the configured base path.
// Backslashes separate segments too (IIS), and a segment's ";" parameters
// are ignored (Tomcat and Jetty resolve "..;" as "..").
func hasDotSegment(p string) bool {
	if !strings.Contains(p, ".") {
		return false
	}
	for seg := range strings.FieldsFuncSeq(p, isPathSeparator) {
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
			return true
		}
	}
	return false
}

func isPathSeparator(r rune) bool { return r == '/' || r == '\\' }

// bufferPool recycles the 32 KiB buffers ReverseProxy copies bodies with.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// appBody marks failures to read the app's request body, so that the error
// handler can tell them from upstream failures.
type appBody struct{ io.ReadCloser }

func (b appBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// bodyError is a failure to read the app's request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }
