package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/authsidecar/authsidecar/proxy"
)

// run serves until ctx is done, then shuts down in order: readiness goes
// 503, the proxy keeps serving for SHUTDOWN_DELAY (for an app that gets
// SIGTERM at the same time and still makes calls), then stops accepting and
// drains its requests up to SHUTDOWN_TIMEOUT, token renewal stops, the admin
// server closes.
func run(ctx context.Context, s *sidecar, log *slog.Logger) error {
	cfg := s.cfg
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
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	proxySrv := &http.Server{
		Handler:           proxy.New(s.proxy),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	var draining atomic.Bool
	adminSrv, adminLn := adminServer(adminHandler(s.registry, s.cache, &draining, cfg.Pprof), adminLn, errLog)
	log.Info("authsidecar started", "version", version, "listen", proxyLn.Addr().String(),
		"admin", adminLn.Addr().String(), "upstream", s.proxy.Upstream.Redacted(), "token_source", cfg.TokenSource, "shared_cache", cfg.SharedCache)

	renewCtx, stopRenewal := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenewal()
	g, gctx := errgroup.WithContext(ctx)
	for _, f := range s.background {
		g.Go(func() error { return f(renewCtx) })
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
