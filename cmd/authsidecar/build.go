package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// sidecar is one route's parts, built once from a checked Config.
type sidecar struct {
	// name is the route's; defaultRoute without ROUTES.
	name string
	// ownListener: the route listens on its own LISTEN_ADDR, not under a
	// PATH_PREFIX on the main listener.
	ownListener bool
	cfg         Config
	registry    *prometheus.Registry
	// source fetches tokens, and cache holds them; nil when TOKEN_SOURCE
	// yields none.
	source tokens.Source
	cache  *tokens.Cache
	// keyed holds tokens per customer when TOKEN_SOURCE gives them so; nil
	// otherwise.
	keyed *tokens.KeyedCache
	// proxy is the proxy's configuration, for proxy.New.
	proxy proxy.Config
	// background runs beside the servers until renewal stops (a token
	// file's watch).
	background []func(ctx context.Context) error
	// closers release what build opened, last first.
	closers []func()
}

// builder is what a sourceKind's build is given, and what it may add to.
type builder struct {
	log *slog.Logger
	// tokenClient is the token endpoint's client.
	tokenClient *http.Client
	// changed, if a source sets it, signals that its credential changed.
	changed <-chan struct{}
	// background is run beside the servers until renewal stops.
	background []func(ctx context.Context) error
	// rotated, if a source sets it, signals that a file its token requests
	// read was rotated (CacheOptions.Rotated).
	rotated chan struct{}
}

// logger is b's logger; nil for a nil builder (a check, which logs nothing).
func (b *builder) logger() *slog.Logger {
	if b == nil {
		return nil
	}
	return b.log
}

// newRegistry is the sidecar's own Prometheus registry, with the Go
// runtime's and the process's collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// build constructs a sidecar of one route from a Config that loadConfig
// accepted, with a registry of its own.
func build(cfg Config, log *slog.Logger) (*sidecar, error) {
	reg := newRegistry()
	return buildRoute(defaultRoute, cfg, log, reg, metrics.New(reg))
}

// buildRoute constructs one route's parts once: keys, TLS configurations,
// the token source and its cache, the injector and the proxy, counting in m
// and exporting on reg. Nothing listens yet.
func buildRoute(name string, cfg Config, log *slog.Logger, reg *prometheus.Registry, m *metrics.Metrics) (*sidecar, error) {
	var p problems
	upstream := p.url("UPSTREAM_URL", cfg.UpstreamURL)
	refreshOn, err := parseStatuses(cfg.RefreshOnStatus)
	if err != nil {
		p.add("REFRESH_ON_STATUS", "%v", err)
	}
	transport := proxy.NewTransport(cfg.upstreamTLS(&p))
	if err := p.err(); err != nil {
		return nil, err
	}
	transport.ResponseHeaderTimeout = cfg.UpstreamTimeout

	s := &sidecar{name: name, cfg: cfg, registry: reg}
	s.proxy = proxy.Config{
		Upstream:      upstream,
		Transport:     transport,
		RefreshOn:     refreshOn,
		MaxReplayBody: cfg.MaxReplayBody,
		HandoffPath:   cfg.HandoffPath,
		RequireHeader: cfg.RequireHeader,
		Logger:        log,
		Metrics:       m,
	}
	kind, _ := lookupSource(cfg.TokenSource)
	if fetchesTokens(kind) {
		if err := s.buildTokens(kind, transport, log, m); err != nil {
			s.close()
			return nil, err
		}
	} else if cfg.tenanted() {
		b := &builder{log: log, tokenClient: tokenClient(transport, cfg.TokenTimeout)}
		if err := s.buildTenants(kind, b, log, m); err != nil {
			s.close()
			return nil, err
		}
	}
	s.proxy.SignPath, s.proxy.PaygatePath = cfg.SignPath, cfg.PaygatePath
	if cfg.SDKAuthPath != "" {
		s.proxy.SDKAuthPath, s.proxy.SDKAuthMaxInflight = cfg.SDKAuthPath, cfg.SDKAuthMaxInflight
	}
	parts := modeParts{log: log}
	if cfg.ownCredentials() {
		if parts, err = cfg.credentialParts(log, m); err != nil {
			s.close()
			return nil, err
		}
		s.proxy.Signer, s.proxy.PaygateMerchant = parts.signer, parts.merchant
		if cfg.SDKAuthPath != "" {
			s.proxy.SDKAuthMerchantID = cfg.MerchantID
			s.proxy.SDKAuth = tokens.NewAxeptaRegistrar(cfg.axeptaConfig(parts.merchant, tokenClient(transport, cfg.TokenTimeout)))
		}
	}
	if s.proxy.SetHeaders = cfg.setHeaders(&p); p.err() != nil {
		s.close()
		return nil, p.err()
	}
	if mode, _ := lookupMode(cfg.Inject); mode.tenantCredentials && !cfg.ownCredentials() {
		// Every request names a tenant, whose own injector it gets.
		s.proxy.Injector = proxy.None()
	} else if s.proxy.Injector, err = cfg.injector(parts); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// credentialParts builds what a merchant's own credentials make for the
// modes and endpoints: the signer (INJECT=signature, SIGN_PATH) and the
// Paygate passwords (INJECT=paygate, PAYGATE_PATH, SDK_AUTH_PATH).
func (c Config) credentialParts(log *slog.Logger, m *metrics.Metrics) (modeParts, error) {
	var p problems
	parts := modeParts{log: log}
	if c.signs() {
		if key := c.signingKey(log, &p); key != nil {
			parts.signer = proxy.NewSigner(proxy.SignerConfig{
				Key: key, KeyID: c.SigningKeyID, MerchantID: c.MerchantID, Service: c.Service, Metrics: m,
			})
		}
	}
	if c.usesPaygate() {
		parts.merchant = c.paygateMerchant(log, &p)
	}
	return parts, p.err()
}

// buildTokens builds the token source of kind, wraps it in the shared cache
// when SHARED_CACHE is set, and puts a Cache over it.
func (s *sidecar) buildTokens(kind sourceKind, transport *http.Transport, log *slog.Logger, m *metrics.Metrics) error {
	cfg := s.cfg
	b := &builder{log: log, tokenClient: tokenClient(transport, cfg.TokenTimeout)}
	if cfg.tenanted() {
		if err := s.buildTenants(kind, b, log, m); err != nil {
			return err
		}
		if !cfg.ownCredentials() {
			s.background = append(s.background, b.background...)
			return nil // no credentials of the route's own
		}
	}
	if kind.keyed != nil {
		src, err := kind.keyed(cfg, b)
		if err != nil {
			return err
		}
		s.keyed = tokens.NewKeyedCache(src, tokens.KeyedCacheOptions{
			Size:                  cfg.TokenCacheSize,
			RenewAt:               cfg.RenewAt,
			FetchTimeout:          cfg.TokenTimeout,
			MaxWait:               cfg.TokenWait,
			ForcedRefreshInterval: cfg.ForcedRefreshInterval,
			Logger:                log,
			Observer:              m.Customers(),
		})
		s.proxy.ClientAuthTokens, s.proxy.ClientAuthTokenPath = s.keyed, cfg.ClientAuthTokenPath
		if m, _ := lookupMode(cfg.Inject); m.needsToken { // json-body: each body gets its customer's token
			s.proxy.KeyedTokens, s.proxy.CustomerField = s.keyed, cfg.BodyCustomerField
		}
		return nil
	}
	src, err := kind.build(cfg, b)
	if err != nil {
		return err
	}
	if cfg.SharedCache != "" {
		var closeShared func()
		if src, closeShared, err = withSharedCache(src, kind, cfg, log, m); err != nil {
			return err
		}
		s.closers = append(s.closers, closeShared)
	}
	s.source = src
	s.cache = tokens.NewCache(src, tokens.CacheOptions{
		RenewAt:               cfg.RenewAt,
		FetchTimeout:          cfg.TokenTimeout,
		MaxWait:               cfg.TokenWait,
		ForcedRefreshInterval: cfg.ForcedRefreshInterval,
		Logger:                log,
		Observer:              m,
		Changed:               b.changed,
		Rotated:               b.rotated,
	})
	s.background = append(b.background, s.cache.Run)
	s.proxy.Tokens = s.cache
	return nil
}

// app is every route, and what they share: the process-wide settings and
// the registry.
type app struct {
	global   Config
	registry *prometheus.Registry
	routes   []*sidecar
	// routed: ROUTES is set (without it, the one route listens alone on
	// LISTEN_ADDR).
	routed bool
}

// buildApp builds every route of st, in order; a problem names the route's
// variable. With ROUTES, what a route logs carries its name (route=NAME).
func buildApp(st setup, log *slog.Logger) (*app, error) {
	a := &app{global: st.global, registry: newRegistry(), routed: st.routed()}
	fam := metrics.NewFamilies(a.registry)
	for _, r := range st.routes {
		rlog := log
		if a.routed {
			rlog = log.With("route", r.name)
		}
		s, err := buildRoute(r.name, r.cfg, rlog, a.registry, fam.Route(r.name))
		if err != nil {
			a.close()
			if a.routed {
				var out []error
				for _, e := range flatten(err) {
					out = append(out, routeProblem(e, r.name, st.own[r.name]))
				}
				err = errors.Join(out...)
			}
			return nil, err
		}
		s.name, s.ownListener = r.name, r.ownListener
		a.routes = append(a.routes, s)
	}
	return a, nil
}

// close releases what every route opened.
func (a *app) close() {
	for _, s := range a.routes {
		s.close()
	}
}

// close releases what build opened.
func (s *sidecar) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// tokenClient is the client for the token endpoint. It never follows
// redirects: a redirected POST would carry the credentials to another host.
// A 3xx answer is a refusal like any other.
func tokenClient(upstream *http.Transport, timeout time.Duration) *http.Client {
	tr := upstream.Clone()
	tr.ResponseHeaderTimeout = 0 // UPSTREAM_TIMEOUT is not the token endpoint's: Timeout bounds a fetch
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
