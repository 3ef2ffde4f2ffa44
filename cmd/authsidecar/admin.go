package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authsidecar/authsidecar/tokens"
)

// maxAdminConnections bounds the admin listener's connections: probes and
// scrapers need few, and the port is reachable from the pod network.
const maxAdminConnections = 64

// readiness is each route's token cache, for /readyz: nil for a route that
// holds no single token (none, signature, per-customer tokens).
type readiness []struct {
	name  string
	cache *tokens.Cache
}

// readiness lists the routes' caches.
func (a *app) readiness() readiness {
	var r readiness
	for _, s := range a.routes {
		r = append(r, struct {
			name  string
			cache *tokens.Cache
		}{s.name, s.cache})
	}
	return r
}

// adminHandler serves /metrics, /healthz (the process runs) and /readyz
// (every route that needs a token holds a valid one, and the sidecar is not
// shutting down; /readyz?route=NAME answers for one route), and with
// withPprof the runtime profiles under /debug/pprof/.
func adminHandler(reg *prometheus.Registry, routes readiness, draining *atomic.Bool, withPprof bool) http.Handler {
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
		only, one := r.URL.Query()["route"]
		if draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		var notReady []string
		found := false
		for _, rt := range routes {
			if one && rt.name != only[0] {
				continue
			}
			found = true
			if rt.cache != nil && !rt.cache.Valid() {
				notReady = append(notReady, rt.name)
			}
		}
		switch {
		case one && !found:
			http.Error(w, "no route "+only[0], http.StatusNotFound)
		case len(notReady) > 0 && len(routes) == 1 && routes[0].name == defaultRoute:
			http.Error(w, "no valid token", http.StatusServiceUnavailable)
		case len(notReady) > 0:
			http.Error(w, "no valid token for route "+strings.Join(notReady, ", "), http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
}

// adminServer returns the admin server and the listener to serve it on. At
// most maxAdminConnections are open at once, and connections that are not
// serving a request do not count against probes: when all are taken, the
// idle keep-alive ones, and new ones that have not sent a request within
// newConnGrace, are closed to make room (their clients reconnect), so that
// clients that connect and stay silent cannot make the kubelet's probes
// time out.
func adminServer(h http.Handler, ln net.Listener, errLog *log.Logger) (*http.Server, net.Listener) {
	l := &adminListener{Listener: ln, slots: make(chan struct{}, maxAdminConnections),
		done: make(chan struct{}), waiting: map[net.Conn]waitingConn{}}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
		ConnState:         l.track,
	}
	return srv, l
}

// newConnGrace is how long a new admin connection may stay silent before it
// may be closed to make room: probes and scrapers send their request at once.
const newConnGrace = 250 * time.Millisecond

// adminListener accepts at most cap(slots) connections at once and knows
// which are not serving a request.
type adminListener struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	waiting map[net.Conn]waitingConn
	full    bool // Accept waits for a slot
}

// waitingConn is a connection that serves no request: idle between requests,
// or new and silent since a time.
type waitingConn struct {
	idle  bool
	since time.Time
}

// Accept waits for a free slot, closing connections that serve no request
// while there is none, then accepts.
func (l *adminListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.setFull(true) // closes the idle ones, and those that go idle while full
		tick := time.NewTicker(newConnGrace / 2)
		defer tick.Stop()
		for acquired := false; !acquired; {
			select {
			case l.slots <- struct{}{}:
				acquired = true
			case <-tick.C:
				l.reclaim() // new connections silent for newConnGrace
			case <-l.done:
				l.setFull(false)
				return nil, net.ErrClosed
			}
		}
		l.setFull(false)
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &adminConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close stops Accept, also while it waits for a slot.
func (l *adminListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// track is the server's ConnState hook.
func (l *adminListener) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case s == http.StateIdle && l.full:
		c.Close()
	case s == http.StateIdle || s == http.StateNew:
		l.waiting[c] = waitingConn{idle: s == http.StateIdle, since: time.Now()}
	default:
		delete(l.waiting, c)
	}
}

// setFull records whether Accept waits for a slot; when it does, the
// connections that serve no request are closed to make room.
func (l *adminListener) setFull(full bool) {
	l.mu.Lock()
	l.full = full
	l.mu.Unlock()
	if full {
		l.reclaim()
	}
}

// reclaim closes the idle connections, and the new ones silent for
// newConnGrace.
func (l *adminListener) reclaim() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for c, w := range l.waiting {
		if w.idle || now.Sub(w.since) >= newConnGrace {
			c.Close()
			delete(l.waiting, c)
		}
	}
}

// adminConn frees its slot when closed.
type adminConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *adminConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
