// Command baseline is the benchmark's reference: a tuned bare
// httputil.ReverseProxy that puts a static Authorization header on every
// request. It uses the sidecar's own transport (proxy.NewTransport: an idle
// pool of 1024 per host), a sync.Pool-backed BufferPool, and the sidecar's
// server settings, so that what differs from authsidecar is only what the
// sidecar does per request: token cache, injection, replay, metrics.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"sync"
	"time"

	"github.com/authsidecar/authsidecar/bench/internal/serve"
	"github.com/authsidecar/authsidecar/proxy"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18001", "listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:18000", "upstream base URL")
	pprofAddr := flag.String("pprof", "", "if set, serve net/http/pprof on this address (as AUTHSIDECAR_PPROF does on the sidecar's admin port), for differential profiles")
	flag.Parse()

	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		log.Fatalf("baseline: bad -upstream %q", *upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Set("Authorization", "Bearer static-benchmark-token")
		},
		Transport:  proxy.NewTransport(nil),
		BufferPool: bufferPool{},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			log.Fatalf("baseline: %v", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		go http.Serve(pln, mux)
	}
	srv := &http.Server{ // as cmd/authsidecar's proxy server
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	serve.Until("baseline", srv, ln)
}

// bufferPool recycles the 32 KiB buffers ReverseProxy copies bodies with.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
