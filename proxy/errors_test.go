package proxy_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// closedPort returns the URL of a local port nothing listens on.
func closedPort(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &url.URL{Scheme: "http", Host: addr, Path: "/base"}
}

// hang is an upstream that never answers, until the request is abandoned or
// the test ends.
func hang(t *testing.T) *upstream {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before up.Close
	return up
}

func TestSidecarErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) proxy.Config
		request string
		status  int
		code    string
		// upstreamHit says whether the upstream may see the request.
		upstreamHit bool
	}{
		{
			name: "no token: provider always fails",
			setup: func(t *testing.T) proxy.Config {
				src := &tokenSource{err: errors.New("provider down")}
				cache := startCache(t, src, tokens.CacheOptions{MaxWait: 100 * time.Millisecond})
				return proxy.Config{Tokens: cache}
			},
			status: http.StatusServiceUnavailable, code: "token_unavailable",
		},
		{
			name: "no token: provider hangs",
			setup: func(t *testing.T) proxy.Config {
				src := &tokenSource{hang: true}
				cache := startCache(t, src, tokens.CacheOptions{MaxWait: 100 * time.Millisecond})
				return proxy.Config{Tokens: cache}
			},
			status: http.StatusServiceUnavailable, code: "token_unavailable",
		},
		{
			name: "upstream unreachable",
			setup: func(t *testing.T) proxy.Config {
				cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
				return proxy.Config{Upstream: closedPort(t), Tokens: cache}
			},
			status: http.StatusBadGateway, code: "upstream_unreachable",
		},
		{
			name: "upstream unreachable without tokens",
			setup: func(t *testing.T) proxy.Config {
				return proxy.Config{Upstream: closedPort(t)}
			},
			status: http.StatusBadGateway, code: "upstream_unreachable",
		},
		{
			name: "upstream response headers time out",
			setup: func(t *testing.T) proxy.Config {
				up := hang(t)
				tr := proxy.NewTransport(nil)
				tr.ResponseHeaderTimeout = 100 * time.Millisecond
				t.Cleanup(tr.CloseIdleConnections)
				cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
				return proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Transport: tr}
			},
			status: http.StatusGatewayTimeout, code: "upstream_timeout", upstreamHit: true,
		},
		{
			name: "malformed chunked body",
			setup: func(t *testing.T) proxy.Config {
				cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
				return proxy.Config{Tokens: cache, MaxReplayBody: 1 << 10}
			},
			request: "POST /x HTTP/1.1\r\nHost: sidecar.local\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
			status:  http.StatusBadRequest, code: "bad_request",
		},
		{
			name: "malformed chunked body over the replay limit",
			setup: func(t *testing.T) proxy.Config {
				cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
				return proxy.Config{Tokens: cache, MaxReplayBody: 4}
			},
			// The first chunk is fine and over the limit: the body is streamed,
			// and fails later.
			request: "POST /x HTTP/1.1\r\nHost: sidecar.local\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhelloworld\r\nzz\r\nagain\r\n0\r\n\r\n",
			status:  http.StatusBadRequest, code: "bad_request", upstreamHit: true,
		},
		{
			name: "malformed chunked body without tokens",
			setup: func(t *testing.T) proxy.Config {
				return proxy.Config{}
			},
			request: "POST /x HTTP/1.1\r\nHost: sidecar.local\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhelloworld\r\nzz\r\nagain\r\n0\r\n\r\n",
			status:  http.StatusBadRequest, code: "bad_request", upstreamHit: true,
		},
		{
			name:    "dot segment",
			setup:   func(t *testing.T) proxy.Config { return proxy.Config{} },
			request: "GET /a/../b HTTP/1.1\r\nHost: sidecar.local\r\n\r\n",
			status:  http.StatusBadRequest, code: "bad_request",
		},
		{
			name:    "CONNECT",
			setup:   func(t *testing.T) proxy.Config { return proxy.Config{} },
			request: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			status:  http.StatusMethodNotAllowed, code: "method_not_allowed",
		},
		{
			name:    "TRACE",
			setup:   func(t *testing.T) proxy.Config { return proxy.Config{} },
			request: "TRACE /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n",
			status:  http.StatusMethodNotAllowed, code: "method_not_allowed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c := tc.setup(t)
			if c.Upstream == nil {
				c.Upstream = up.base(t, "/base")
			}
			reg, m := newMetrics()
			c.Metrics = m
			srv := startProxy(t, c)
			request := tc.request
			if request == "" {
				request = "GET /x HTTP/1.1\r\nHost: sidecar.local\r\n\r\n"
			}
			start := time.Now()
			resp, body := raw(t, srv, request)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("answer took %v, want a bounded wait", d)
			}
			if !tc.upstreamHit && len(up.requests()) != 0 {
				t.Errorf("upstream received %d requests, want 0", len(up.requests()))
			}
			checkSidecarError(t, resp, body, tc.status, tc.code)
			want := map[string]float64{`reason="` + tc.code + `"`: 1}
			if got := series(t, reg, "authsidecar_errors_total"); !maps.Equal(got, want) {
				t.Errorf("authsidecar_errors_total = %v, want %v", fmtSeries(got), fmtSeries(want))
			}
		})
	}
}

func TestCanceledRequestCountedNotAnswered(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	reg, m := newMetrics()
	cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache, Metrics: m})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v, want %v", err, context.Canceled)
	}
	srv.Close() // waits for the proxy's handler to finish
	want := map[string]float64{`reason="canceled"`: 1}
	if got := series(t, reg, "authsidecar_errors_total"); !maps.Equal(got, want) {
		t.Errorf("authsidecar_errors_total = %v, want %v", fmtSeries(got), fmtSeries(want))
	}
}
