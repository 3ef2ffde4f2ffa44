package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
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

// adminServer returns the admin server and the listener to serve it on. At
// most maxAdminConnections are open at once, and idle keep-alive connections
// do not count against probes: when all are taken, the idle ones are closed
// to make room (their clients reconnect), so that clients that connect and
// stay idle cannot make the kubelet's probes time out.
func adminServer(h http.Handler, ln net.Listener, errLog *log.Logger) (*http.Server, net.Listener) {
	l := &adminListener{Listener: ln, slots: make(chan struct{}, maxAdminConnections), idle: map[net.Conn]bool{}}
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

// adminListener accepts at most cap(slots) connections at once and knows
// which are idle.
type adminListener struct {
	net.Listener
	slots chan struct{}

	mu   sync.Mutex
	idle map[net.Conn]bool
	full bool // Accept waits for a slot
}

// Accept waits for a free slot, closing the idle connections if there is
// none, then accepts.
func (l *adminListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.setFull(true) // closes the idle ones, and those that go idle while full
		l.slots <- struct{}{}
		l.setFull(false)
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &adminConn{Conn: c, release: func() { <-l.slots }}, nil
}

// track is the server's ConnState hook.
func (l *adminListener) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case s == http.StateIdle && l.full:
		c.Close()
	case s == http.StateIdle:
		l.idle[c] = true
	default:
		delete(l.idle, c)
	}
}

// setFull records whether Accept waits for a slot; when it does, the idle
// connections are closed to make room.
func (l *adminListener) setFull(full bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.full = full
	if full {
		for c := range l.idle {
			c.Close()
			delete(l.idle, c)
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
