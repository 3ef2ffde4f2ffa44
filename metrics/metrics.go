// Package metrics defines authsidecar's Prometheus collectors. NewFamilies
// registers them on a registry the caller owns (nothing here touches the
// global one); every series carries a route label, the provider it concerns,
// and Families.Route gives the collectors of one route.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// DefaultRoute is the route label of a sidecar configured without ROUTES,
// and of the Metrics that New returns.
const DefaultRoute = "default"

// Metrics is the set of collectors of one route: what its proxy, token
// cache and shared cache record to. It implements tokens.Observer and
// shared.Observer. A nil *Metrics records nothing.
//
// Every collector is already bound to the route: the vectors are curried
// with it, so their WithLabelValues takes the other labels only, and the
// counters, gauge and histograms are the route's series. A curried vector
// still collects every route's series; read one route's from a registry.
type Metrics struct {
	TokenFetches       *prometheus.CounterVec
	TokenFetchDuration prometheus.Histogram
	TokenExpiry        prometheus.Gauge
	ForcedRefreshes    prometheus.Counter
	Requests           *prometheus.CounterVec
	RequestDuration    prometheus.Histogram
	UpstreamResponses  *prometheus.CounterVec
	Replays            *prometheus.CounterVec
	Errors             *prometheus.CounterVec
	Signatures         *prometheus.CounterVec
	RejectedBodies     *prometheus.CounterVec
	SharedCache        *prometheus.CounterVec
	SharedCacheWaits   prometheus.Counter
	SDKAuths           *prometheus.CounterVec
	CustomerTokens     *prometheus.CounterVec
	TenantTokens       *prometheus.CounterVec
}

// Replay results, the values of authsidecar_replays_total's result label.
const (
	ReplaySuccess     = "success"      // the replay was accepted
	ReplayRejected    = "rejected"     // the replay was rejected again
	ReplayError       = "error"        // no new token, or the replay failed in transport
	ReplayTooLarge    = "too_large"    // the body was over MAX_REPLAY_BODY: not replayed
	ReplayRateLimited = "rate_limited" // forced refreshes are rate-limited: not replayed
)

// Results of the mobile-SDK authentication endpoint, the values of
// authsidecar_sdk_auth_total's result label.
const (
	SDKAuthOK          = "ok"          // a fresh AuthToken was registered and handed out
	SDKAuthFailed      = "failed"      // the platform refused the registration (Status FAILED, or a non-2xx)
	SDKAuthUnreachable = "unreachable" // the platform could not be reached, or its answer could not be used
	SDKAuthTimeout     = "timeout"     // the platform did not answer in time
	SDKAuthBusy        = "busy"        // too many registrations in flight: refused with 503
	SDKAuthBadRequest  = "bad_request" // the SDK's request was refused: method, body or merchant
	SDKAuthCanceled    = "canceled"    // the SDK went away before the answer
)

// sdkAuthResults lists every SDKAuth result.
var sdkAuthResults = []string{SDKAuthOK, SDKAuthFailed, SDKAuthUnreachable, SDKAuthTimeout, SDKAuthBusy, SDKAuthBadRequest, SDKAuthCanceled}

// Families is authsidecar's metric families, registered once on one
// registry and shared by every route. The route label comes first in each.
type Families struct {
	tokenFetches       *prometheus.CounterVec
	tokenFetchDuration *prometheus.HistogramVec
	tokenExpiry        *prometheus.GaugeVec
	forcedRefreshes    *prometheus.CounterVec
	requests           *prometheus.CounterVec
	requestDuration    *prometheus.HistogramVec
	upstreamResponses  *prometheus.CounterVec
	replays            *prometheus.CounterVec
	errors             *prometheus.CounterVec
	signatures         *prometheus.CounterVec
	rejectedBodies     *prometheus.CounterVec
	sharedCache        *prometheus.CounterVec
	sharedCacheWaits   *prometheus.CounterVec
	sdkAuths           *prometheus.CounterVec
	customerTokens     *prometheus.CounterVec
	tenantTokens       *prometheus.CounterVec
}

// withRoute is a family's label names: route first, then labels.
func withRoute(labels ...string) []string { return append([]string{"route"}, labels...) }

// NewFamilies creates the metric families and registers them on reg. They
// have no series until Route is called.
func NewFamilies(reg prometheus.Registerer) *Families {
	f := &Families{
		tokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_token_fetches_total",
			Help: "Token fetches by renewals, by result (success, error): from the provider, or with the shared cache on, from the provider or the fleet (see authsidecar_shared_cache_lookups_total).",
		}, withRoute("result")),
		tokenFetchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authsidecar_token_fetch_duration_seconds",
			Help:    "Time taken by token fetches, successful or not.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, withRoute()),
		tokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authsidecar_token_expiry_timestamp_seconds",
			Help: "Unix time at which the current token expires; 0 before the first token.",
		}, withRoute()),
		forcedRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_token_forced_refreshes_total",
			Help: "Tokens dropped because the upstream rejected them.",
		}, withRoute()),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_requests_total",
			Help: "Requests from the app answered by the sidecar, by method and status code.",
		}, withRoute("method", "code")),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authsidecar_request_duration_seconds",
			Help:    "Time from a request's arrival until its response is complete, replays and streamed bodies included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, withRoute()),
		upstreamResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_upstream_responses_total",
			Help: "Responses received from the upstream, replays included, by status code.",
		}, withRoute("code")),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_replays_total",
			Help: "Requests whose token the upstream rejected, by what followed (success, rejected, error, too_large, rate_limited).",
		}, withRoute("result")),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_errors_total",
			Help: "Error responses made by the sidecar itself, by reason.",
		}, withRoute("reason")),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_signatures_total",
			Help: "Request payloads signed, by result (success, error).",
		}, withRoute("result")),
		rejectedBodies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_rejected_bodies_total",
			Help: "Request bodies refused before going upstream because they could not be authenticated, by reason (not_json_object, no_payload, no_customer_id, bad_field, too_large).",
		}, withRoute("reason")),
		sharedCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_shared_cache_lookups_total",
			Help: "Tokens obtained with the shared cache on, by where they came from: hit (another sidecar fetched it), miss (fetched here for the fleet), fallback (fetched here alone: Redis unusable).",
		}, withRoute("result")),
		sharedCacheWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_shared_cache_lock_waits_total",
			Help: "Renewals that waited for another sidecar's fetch, which held the fleet's lock.",
		}, withRoute()),
		sdkAuths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_sdk_auth_total",
			Help: "Requests to the Axepta mobile-SDK authentication endpoint, each registering one fresh AuthToken, by result (ok, failed, unreachable, timeout, busy, bad_request, canceled).",
		}, withRoute("result")),
		customerTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_customer_token_fetches_total",
			Help: "Fetches of per-customer tokens (TOKEN_SOURCE=juspay-customer), by result (success, error). The single-token metrics (authsidecar_token_fetches_total, authsidecar_token_expiry_timestamp_seconds) stay 0 with such a source.",
		}, withRoute("result")),
		tenantTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_tenant_token_fetches_total",
			Help: "Fetches of tenants' tokens (TENANTS_DIR), of their customers' with juspay-customer, by result (success, error); which tenant's is in the log only. The single-token metrics stay 0 for them.",
		}, withRoute("result")),
	}
	reg.MustRegister(f.tokenFetches, f.tokenFetchDuration, f.tokenExpiry, f.forcedRefreshes,
		f.requests, f.requestDuration, f.upstreamResponses, f.replays, f.errors,
		f.signatures, f.rejectedBodies, f.sharedCache, f.sharedCacheWaits, f.sdkAuths, f.customerTokens, f.tenantTokens)
	return f
}

// Route returns the collectors of the route called name, creating its
// series: the counters, gauge and histograms without other labels, and the
// results of fetches, replays, shared cache lookups and SDK authentications,
// at zero, so that rate() works from the first increment. Calling it again
// with the same name returns equivalent Metrics, recording to the same
// series. A nil *Families returns nil, which records nothing.
func (f *Families) Route(name string) *Metrics {
	if f == nil {
		return nil
	}
	route := prometheus.Labels{"route": name}
	m := &Metrics{
		TokenFetches: f.tokenFetches.MustCurryWith(route),
		// A HistogramVec's series are Histograms; WithLabelValues types
		// them as the Observers they also are.
		TokenFetchDuration: f.tokenFetchDuration.WithLabelValues(name).(prometheus.Histogram),
		TokenExpiry:        f.tokenExpiry.WithLabelValues(name),
		ForcedRefreshes:    f.forcedRefreshes.WithLabelValues(name),
		Requests:           f.requests.MustCurryWith(route),
		RequestDuration:    f.requestDuration.WithLabelValues(name).(prometheus.Histogram),
		UpstreamResponses:  f.upstreamResponses.MustCurryWith(route),
		Replays:            f.replays.MustCurryWith(route),
		Errors:             f.errors.MustCurryWith(route),
		Signatures:         f.signatures.MustCurryWith(route),
		RejectedBodies:     f.rejectedBodies.MustCurryWith(route),
		SharedCache:        f.sharedCache.MustCurryWith(route),
		SharedCacheWaits:   f.sharedCacheWaits.WithLabelValues(name),
		SDKAuths:           f.sdkAuths.MustCurryWith(route),
		CustomerTokens:     f.customerTokens.MustCurryWith(route),
		TenantTokens:       f.tenantTokens.MustCurryWith(route),
	}
	for _, r := range []string{"success", "error"} {
		m.TokenFetches.WithLabelValues(r)
		m.CustomerTokens.WithLabelValues(r)
		m.TenantTokens.WithLabelValues(r)
	}
	for _, r := range []string{ReplaySuccess, ReplayRejected, ReplayError, ReplayTooLarge, ReplayRateLimited} {
		m.Replays.WithLabelValues(r)
	}
	for _, r := range []string{shared.ResultHit, shared.ResultMiss, shared.ResultFallback} {
		m.SharedCache.WithLabelValues(r)
	}
	for _, r := range sdkAuthResults {
		m.SDKAuths.WithLabelValues(r)
	}
	return m
}

// New registers the metric families on reg and returns the collectors of
// the one route of a sidecar without ROUTES, DefaultRoute. A sidecar with
// several routes calls NewFamilies once and Route for each.
func New(reg prometheus.Registerer) *Metrics {
	return NewFamilies(reg).Route(DefaultRoute)
}

// TokenFetched implements tokens.Observer.
func (m *Metrics) TokenFetched(d time.Duration, tok *tokens.Token, err error) {
	if m == nil {
		return
	}
	m.TokenFetchDuration.Observe(d.Seconds())
	if err != nil {
		m.TokenFetches.WithLabelValues("error").Inc()
		return
	}
	m.TokenFetches.WithLabelValues("success").Inc()
	m.TokenExpiry.Set(float64(tok.Expiry.UnixMilli()) / 1000)
}

// Customers returns the tokens.Observer of a cache of tokens per customer:
// its fetches are counted apart, and no expiry is kept, since no one token
// is the sidecar's. Forced refreshes are counted with the others.
func (m *Metrics) Customers() tokens.Observer {
	return keyedObserver{m, func(m *Metrics) *prometheus.CounterVec { return m.CustomerTokens }}
}

// Tenants returns the tokens.Observer of a cache of tenants' tokens, as
// Customers does for customers'.
func (m *Metrics) Tenants() tokens.Observer {
	return keyedObserver{m, func(m *Metrics) *prometheus.CounterVec { return m.TenantTokens }}
}

// keyedObserver counts a keyed cache's fetches in its own counter.
type keyedObserver struct {
	m       *Metrics
	counter func(*Metrics) *prometheus.CounterVec
}

func (o keyedObserver) TokenFetched(d time.Duration, _ *tokens.Token, err error) {
	if o.m == nil {
		return
	}
	o.m.TokenFetchDuration.Observe(d.Seconds())
	result := "success"
	if err != nil {
		result = "error"
	}
	o.counter(o.m).WithLabelValues(result).Inc()
}

func (o keyedObserver) TokenForcedRefresh() { o.m.TokenForcedRefresh() }

// TokenForcedRefresh implements tokens.Observer.
func (m *Metrics) TokenForcedRefresh() {
	if m != nil {
		m.ForcedRefreshes.Inc()
	}
}

// Replay counts a replay's result.
func (m *Metrics) Replay(result string) {
	if m != nil {
		m.Replays.WithLabelValues(result).Inc()
	}
}

// Error counts an error response made by the sidecar.
func (m *Metrics) Error(reason string) {
	if m != nil {
		m.Errors.WithLabelValues(reason).Inc()
	}
}

// Signature counts a signature's result.
func (m *Metrics) Signature(result string) {
	if m != nil {
		m.Signatures.WithLabelValues(result).Inc()
	}
}

// RejectedBody counts a request body refused for reason.
func (m *Metrics) RejectedBody(reason string) {
	if m != nil {
		m.RejectedBodies.WithLabelValues(reason).Inc()
	}
}

// SharedCacheLookup implements shared.Observer.
func (m *Metrics) SharedCacheLookup(result string) {
	if m != nil {
		m.SharedCache.WithLabelValues(result).Inc()
	}
}

// SharedCacheLockWait implements shared.Observer.
func (m *Metrics) SharedCacheLockWait() {
	if m != nil {
		m.SharedCacheWaits.Inc()
	}
}

// SDKAuth counts a request to the mobile-SDK authentication endpoint by its
// result, one of the SDKAuth… constants.
func (m *Metrics) SDKAuth(result string) {
	if m != nil {
		m.SDKAuths.WithLabelValues(result).Inc()
	}
}
