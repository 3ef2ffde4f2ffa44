package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// maxAdminConnections bounds the admin listener's connections: probes and
// scrapers need few, and the port is reachable from the pod network.
const maxAdminConnections = 64

// run serves until ctx is done, then shuts down in order: readiness goes
// 503, the proxy keeps serving for SHUTDOWN_DELAY (for an app that gets
// SIGTERM at the same time and still makes calls), then stops accepting and
// drains its requests up to SHUTDOWN_TIMEOUT, token renewal stops, the admin
// server closes.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)

	transport := proxy.NewTransport(cfg.tls)
	transport.ResponseHeaderTimeout = cfg.UpstreamTimeout
	var cache *tokens.Cache
	var fileSrc *tokens.FileSource
	if src := newSource(cfg, tokenClient(transport, cfg.TokenTimeout), log); src != nil {
		if cfg.SharedCache != "" {
			var closeShared func()
			var err error
			if src, closeShared, err = withSharedCache(src, cfg, log, m); err != nil {
				return err
			}
			defer closeShared()
		}
		opts := tokens.CacheOptions{
			RenewAt:               cfg.RenewAt,
			FetchTimeout:          cfg.TokenTimeout,
			MaxWait:               cfg.TokenWait,
			ForcedRefreshInterval: cfg.ForcedRefreshInterval,
			Logger:                log,
			Observer:              m,
		}
		if fs, ok := src.(*tokens.FileSource); ok {
			fileSrc, opts.Changed = fs, fs.Changed()
		}
		cache = tokens.NewCache(src, opts)
	}
	pc := proxy.Config{
		Upstream:      cfg.upstream,
		Transport:     transport,
		RefreshOn:     cfg.refreshOn,
		MaxReplayBody: cfg.MaxReplayBody,
		HandoffPath:   cfg.HandoffPath,
		RequireHeader: cfg.RequireHeader,
		Logger:        log,
		Metrics:       m,
	}
	if cfg.TokenSource == "registered" {
		pc.HandoffFormat, pc.HandoffMerchantID = proxy.HandoffAxepta, cfg.MerchantID
	}
	if cache != nil {
		pc.Tokens = cache
	}
	if err := configureInjection(&pc, cfg, log, m); err != nil {
		return err
	}

	proxyLn, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %sLISTEN_ADDR: %w", envPrefix, err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("listen on %sADMIN_ADDR: %w", envPrefix, err)
	}
	// Beyond the cap, connections wait in the kernel's backlog until one
	// closes: a flood or slow clients cannot exhaust the pod's memory.
	proxyLn = netutil.LimitListener(proxyLn, cfg.MaxConnections)
	adminLn = netutil.LimitListener(adminLn, maxAdminConnections)
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	proxySrv := &http.Server{
		Handler:           proxy.New(pc),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	var draining atomic.Bool
	adminSrv := &http.Server{
		Handler:           adminHandler(reg, cache, &draining, cfg.Pprof),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
	log.Info("authsidecar started", "version", version, "listen", proxyLn.Addr().String(),
		"admin", adminLn.Addr().String(), "upstream", cfg.upstream.Redacted(), "token_source", cfg.TokenSource, "shared_cache", cfg.SharedCache)

	renewCtx, stopRenewal := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenewal()
	g, gctx := errgroup.WithContext(ctx)
	if cache != nil {
		g.Go(func() error { return cache.Run(renewCtx) })
	}
	if fileSrc != nil {
		g.Go(func() error { return fileSrc.Watch(renewCtx) })
	}
	g.Go(func() error { return serve(proxySrv, proxyLn) })
	g.Go(func() error { return serve(adminSrv, adminLn) })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "delay", cfg.ShutdownDelay, "drain_timeout", cfg.ShutdownTimeout)
		draining.Store(true)
		time.Sleep(cfg.ShutdownDelay)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err := proxySrv.Shutdown(sctx)
		if err != nil {
			proxySrv.Close()
			err = fmt.Errorf("drain requests: %w", err)
		}
		stopRenewal()
		adminSrv.Close()
		return err
	})
	return g.Wait()
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// newSource builds the configured token source; nil for TOKEN_SOURCE=none.
func newSource(cfg Config, client *http.Client, log *slog.Logger) tokens.Source {
	id, secret := secret(cfg.ClientID, cfg.ClientIDFile), secret(cfg.ClientSecret, cfg.ClientSecretFile)
	switch cfg.TokenSource {
	case "json":
		return tokens.NewJSONSource(tokens.JSONConfig{
			URL: cfg.TokenURL, ClientID: id, ClientSecret: secret,
			TokenField: cfg.JSONTokenField, ExpiresInField: cfg.JSONExpiresInField, ExpiresAtField: cfg.JSONExpiresAtField,
			DefaultTTL: cfg.TokenDefaultTTL, Client: client,
		})
	case "oauth2":
		return tokens.NewOAuth2Source(tokens.OAuth2Config{
			TokenURL: cfg.TokenURL, ClientID: id, ClientSecret: secret,
			Scopes: cfg.scopes, Params: cfg.params, AuthStyle: cfg.authStyle,
			DefaultTTL: cfg.TokenDefaultTTL, Client: client, Assertion: cfg.assertion,
		})
	case "registered":
		return tokens.NewRegisteredSource(tokens.RegisteredConfig{
			URL: cfg.TokenURL, MerchantID: cfg.MerchantID, TTL: cfg.TokenTTL, Client: client,
		})
	case "file":
		return tokens.NewFileSource(tokens.FileConfig{Path: cfg.TokenFile, DefaultTTL: cfg.TokenDefaultTTL, Logger: log})
	}
	return nil
}

// configureInjection sets how the proxy authenticates requests (INJECT), and
// the local signing endpoint (SIGN_PATH).
func configureInjection(pc *proxy.Config, cfg Config, log *slog.Logger, m *metrics.Metrics) error {
	if cfg.SigningKeyFile != "" && (cfg.Inject == "signature" || cfg.SignPath != "") {
		key, err := tokens.LoadKeyFile(cfg.SigningKeyFile, log)
		if err != nil {
			return fmt.Errorf("%sSIGNING_KEY_FILE: %w", envPrefix, err)
		}
		pc.Signer = proxy.NewSigner(proxy.SignerConfig{
			Key: key, KeyID: cfg.SigningKeyID, MerchantID: cfg.MerchantID, Service: cfg.Service, Metrics: m,
		})
		pc.SignPath = cfg.SignPath
	}
	switch cfg.Inject {
	case "bearer":
		pc.Injector = proxy.Bearer()
	case "header":
		pc.Injector = proxy.Header(cfg.InjectHeader, cfg.InjectPrefix)
	case "json-body":
		pc.Injector = proxy.JSONBody(cfg.BodyTokenField, cfg.BodyExpiryField)
	case "signature":
		pc.Injector = pc.Signer
	case "none":
		pc.Injector = proxy.None()
	}
	if cfg.InjectLabelHeader != "" {
		pc.Injector = proxy.WithLabel(pc.Injector, cfg.InjectLabelHeader)
	}
	return nil
}

func secret(literal, file string) tokens.Secret {
	if file != "" {
		return tokens.File(file)
	}
	return tokens.Literal(literal)
}

// adminHandler serves /metrics, /healthz (the process runs) and /readyz (a
// valid token is held and the sidecar is not shutting down), and with
// withPprof the runtime profiles under /debug/pprof/.
func adminHandler(reg *prometheus.Registry, cache *tokens.Cache, draining *atomic.Bool, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case draining.Load():
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		case cache != nil && !cache.Valid():
			http.Error(w, "no valid token", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
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
