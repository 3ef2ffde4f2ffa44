package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sync/errgroup"

	"github.com/authsidecar/authsidecar/proxy"
)

// listening is one proxy listener and the routes it serves.
type listening struct {
	srv    *http.Server
	ln     net.Listener
	routes []*sidecar
}

// routeInfo is how the start-up log describes a route.
type routeInfo struct {
	Name        string `json:"name"`
	Listen      string `json:"listen"`
	PathPrefix  string `json:"path_prefix,omitempty"`
	Upstream    string `json:"upstream"`
	TokenSource string `json:"token_source"`
	SharedCache string `json:"shared_cache,omitempty"`
}

// run serves until ctx is done, then shuts down in order: readiness goes
// 503, the proxies keep serving for SHUTDOWN_DELAY (for an app that gets
// SIGTERM at the same time and still makes calls), then stop accepting and
// drain their requests up to SHUTDOWN_TIMEOUT, token renewal stops, the
// admin server closes.
func run(ctx context.Context, a *app, log *slog.Logger) error {
	cfg := a.global
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	listeners, err := a.listen(errLog)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		for _, l := range listeners {
			l.ln.Close()
		}
		return fmt.Errorf("listen on %sADMIN_ADDR: %w", envPrefix, err)
	}
	var draining atomic.Bool
	adminSrv, adminLn := adminServer(adminHandler(a.registry, a.readiness(), &draining, cfg.Pprof), adminLn, errLog)
	a.logStarted(log, listeners, adminLn)

	renewCtx, stopRenewal := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenewal()
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range a.routes {
		for _, f := range s.background {
			g.Go(func() error { return f(renewCtx) })
		}
	}
	for _, l := range listeners {
		g.Go(func() error { return serve(l.srv, l.ln) })
	}
	g.Go(func() error { return serve(adminSrv, adminLn) })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "delay", cfg.ShutdownDelay, "drain_timeout", cfg.ShutdownTimeout)
		draining.Store(true)
		time.Sleep(cfg.ShutdownDelay)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, len(listeners))
		for i, l := range listeners {
			wg.Go(func() {
				if err := l.srv.Shutdown(sctx); err != nil {
					l.srv.Close()
					errs[i] = fmt.Errorf("drain requests on %s: %w", l.ln.Addr(), err)
				}
			})
		}
		wg.Wait()
		stopRenewal()
		adminSrv.Close()
		return errors.Join(errs...)
	})
	return g.Wait()
}

// listen opens the proxy listeners: the main LISTEN_ADDR for the routes
// under a path prefix (or for the one route without ROUTES), and each
// route's own LISTEN_ADDR.
func (a *app) listen(errLog *log.Logger) ([]listening, error) {
	var out []listening
	open := func(addr, variable string, h http.Handler, routes []*sidecar) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range out {
				l.ln.Close()
			}
			return fmt.Errorf("listen on %s: %w", variable, err)
		}
		// Beyond the cap, connections wait in the kernel's backlog until
		// one closes: a flood or slow clients cannot exhaust the pod's memory.
		ln = netutil.LimitListener(ln, a.global.MaxConnections)
		out = append(out, listening{srv: proxyServer(h, errLog), ln: ln, routes: routes})
		return nil
	}
	if !a.routed {
		s := a.routes[0]
		return out, open(s.cfg.ListenAddr, envPrefix+"LISTEN_ADDR", proxy.New(s.proxy), a.routes)
	}
	var prefixed []*sidecar
	for _, s := range a.routes {
		if !s.ownListener {
			prefixed = append(prefixed, s)
		}
	}
	if len(prefixed) > 0 {
		if err := open(a.global.ListenAddr, envPrefix+"LISTEN_ADDR", newPrefixRouter(prefixed), prefixed); err != nil {
			return nil, err
		}
	}
	for _, s := range a.routes {
		if s.ownListener {
			if err := open(s.cfg.ListenAddr, routePrefix+strings.ToUpper(s.name)+"_LISTEN_ADDR", proxy.New(s.proxy), []*sidecar{s}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// proxyServer is a proxy listener's server, with the limits
// proxy/attack_test.go tests (TestListenerLimitsMatchRun reads them here).
func proxyServer(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
}

// logStarted writes the "authsidecar started" line, with the listeners'
// real addresses (port 0 resolved): the main one as listen, and each route.
func (a *app) logStarted(log *slog.Logger, listeners []listening, adminLn net.Listener) {
	var infos []routeInfo
	listen := ""
	for _, l := range listeners {
		if listen == "" {
			listen = l.ln.Addr().String()
		}
		for _, s := range l.routes {
			prefix := ""
			if a.routed && !s.ownListener {
				prefix = s.cfg.PathPrefix
			}
			infos = append(infos, routeInfo{Name: s.name, Listen: l.ln.Addr().String(), PathPrefix: prefix,
				Upstream: s.proxy.Upstream.Redacted(), TokenSource: s.cfg.TokenSource, SharedCache: s.cfg.SharedCache})
		}
	}
	attrs := []any{"version", version, "listen", listen, "admin", adminLn.Addr().String()}
	if !a.routed {
		s := a.routes[0]
		attrs = append(attrs, "upstream", s.proxy.Upstream.Redacted(), "token_source", s.cfg.TokenSource, "shared_cache", s.cfg.SharedCache)
	} else {
		attrs = append(attrs, "routes", infos)
	}
	log.Info("authsidecar started", attrs...)
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}
