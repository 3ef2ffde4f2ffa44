package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// NewTransport returns the tuned transport used for the upstream: a large
// idle pool (a busy pod talks to one host), HTTP/2 to TLS upstreams, and
// bounded dial, TLS and response-header waits. tlsConfig may be nil.
func NewTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
}
