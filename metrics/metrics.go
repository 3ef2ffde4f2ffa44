// Package metrics defines authsidecar's Prometheus collectors. New registers
// them on a registry the caller owns; nothing here touches the global one.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/tokens"
	"github.com/authsidecar/authsidecar/tokens/shared"
)

// Metrics is the set of authsidecar's collectors. It implements
// tokens.Observer. A nil *Metrics records nothing.
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

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		TokenFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_token_fetches_total",
			Help: "Token fetches by renewals, by result (success, error): from the provider, or with the shared cache on, from the provider or the fleet (see authsidecar_shared_cache_lookups_total).",
		}, []string{"result"}),
		TokenFetchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authsidecar_token_fetch_duration_seconds",
			Help:    "Time taken by token fetches, successful or not.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		TokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authsidecar_token_expiry_timestamp_seconds",
			Help: "Unix time at which the current token expires; 0 before the first token.",
		}),
		ForcedRefreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authsidecar_token_forced_refreshes_total",
			Help: "Tokens dropped because the upstream rejected them.",
		}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_requests_total",
			Help: "Requests from the app answered by the sidecar, by method and status code.",
		}, []string{"method", "code"}),
		RequestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authsidecar_request_duration_seconds",
			Help:    "Time from a request's arrival until its response is complete, replays and streamed bodies included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		UpstreamResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_upstream_responses_total",
			Help: "Responses received from the upstream, replays included, by status code.",
		}, []string{"code"}),
		Replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_replays_total",
			Help: "Requests whose token the upstream rejected, by what followed (success, rejected, error, too_large, rate_limited).",
		}, []string{"result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_errors_total",
			Help: "Error responses made by the sidecar itself, by reason.",
		}, []string{"reason"}),
		Signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_signatures_total",
			Help: "Request payloads signed, by result (success, error).",
		}, []string{"result"}),
		RejectedBodies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_rejected_bodies_total",
			Help: "Request bodies refused before going upstream because they could not be authenticated, by reason (not_json_object, no_payload, no_customer_id, bad_field, too_large).",
		}, []string{"reason"}),
		SharedCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_shared_cache_lookups_total",
			Help: "Tokens obtained with the shared cache on, by where they came from: hit (another sidecar fetched it), miss (fetched here for the fleet), fallback (fetched here alone: Redis unusable).",
		}, []string{"result"}),
		SharedCacheWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authsidecar_shared_cache_lock_waits_total",
			Help: "Renewals that waited for another sidecar's fetch, which held the fleet's lock.",
		}),
		SDKAuths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_sdk_auth_total",
			Help: "Requests to the Axepta mobile-SDK authentication endpoint, each registering one fresh AuthToken, by result (ok, failed, unreachable, timeout, busy, bad_request, canceled).",
		}, []string{"result"}),
		CustomerTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authsidecar_customer_token_fetches_total",
			Help: "Fetches of per-customer tokens (TOKEN_SOURCE=juspay-customer), by result (success, error). The single-token metrics (authsidecar_token_fetches_total, authsidecar_token_expiry_timestamp_seconds) stay 0 with such a source.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.TokenFetches, m.TokenFetchDuration, m.TokenExpiry, m.ForcedRefreshes,
		m.Requests, m.RequestDuration, m.UpstreamResponses, m.Replays, m.Errors,
		m.Signatures, m.RejectedBodies, m.SharedCache, m.SharedCacheWaits, m.SDKAuths, m.CustomerTokens)
	for _, r := range []string{"success", "error"} {
		m.TokenFetches.WithLabelValues(r)
		m.CustomerTokens.WithLabelValues(r)
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
func (m *Metrics) Customers() tokens.Observer { return customerObserver{m} }

type customerObserver struct{ m *Metrics }

func (o customerObserver) TokenFetched(d time.Duration, _ *tokens.Token, err error) {
	if o.m == nil {
		return
	}
	o.m.TokenFetchDuration.Observe(d.Seconds())
	result := "success"
	if err != nil {
		result = "error"
	}
	o.m.CustomerTokens.WithLabelValues(result).Inc()
}

func (o customerObserver) TokenForcedRefresh() { o.m.TokenForcedRefresh() }

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
