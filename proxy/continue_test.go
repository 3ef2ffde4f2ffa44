package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

// continueExchange is what a raw client that sends Expect: 100-continue saw.
type continueExchange struct {
	first     int // the status of the first response, before the body was sent
	continues int // 100 Continue responses, up to the final one
	final     *http.Response
	finalBody []byte
	closed    bool // the server closed the connection after the final response
}

// expectContinue writes head (with Expect: 100-continue, ending in
// "\r\n\r\n") on a new connection to addr, waits for the first response,
// sends body if it was 100 Continue (chunked if the head says so), and reads
// every response up to the final one. If that one says Connection: close,
// it checks that the server closes the connection.
func expectContinue(t *testing.T, addr, head string, body []byte) continueExchange {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("write head: %v", err)
	}
	br := bufio.NewReader(conn)
	var ex continueExchange
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read response body: %v", err)
		}
		if ex.first == 0 {
			ex.first = resp.StatusCode
			if resp.StatusCode == http.StatusContinue {
				if strings.Contains(head, "Transfer-Encoding: chunked") {
					body = fmt.Appendf(nil, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
				}
				if _, err := conn.Write(body); err != nil {
					t.Fatalf("write body: %v", err)
				}
			}
		}
		if resp.StatusCode == http.StatusContinue {
			ex.continues++
		}
		if resp.StatusCode >= 200 {
			ex.final, ex.finalBody = resp, b
			break
		}
	}
	if ex.final.Close {
		_, err := br.ReadByte()
		ex.closed = isClosed(err)
	}
	return ex
}

// TestExpectContinueOnce sends Expect: 100-continue in each way the proxy
// handles a body (buffered to be rewritten or replayed, or streamed): the
// app gets exactly one 100 Continue, then the upstream's answer, and the
// upstream gets the whole body.
func TestExpectContinueOnce(t *testing.T) {
	const limit = 1 << 10
	small := []byte(`{"payload":{"customerId":"c","note":"hello"}}`)
	large := bytes.Repeat([]byte("b"), 4*limit)
	tests := []struct {
		name    string
		config  func(t *testing.T) proxy.Config
		chunked bool
		body    []byte
	}{
		{name: "bearer, body kept for a replay", body: small, config: withTokens(nil)},
		{name: "bearer, chunked body kept for a replay", body: small, chunked: true, config: withTokens(nil)},
		{name: "bearer, body over the replay limit streamed", body: large, config: withTokens(nil)},
		{name: "bearer, chunked body over the replay limit streamed", body: large, chunked: true, config: withTokens(nil)},
		{name: "json-body", body: small, config: withTokens(proxy.JSONBody("payload.clientAuthToken", ""))},
		{name: "json-body, chunked", body: small, chunked: true, config: withTokens(proxy.JSONBody("payload.clientAuthToken", ""))},
		{name: "signature", body: small, config: func(t *testing.T) proxy.Config {
			return proxy.Config{Injector: newSigner(t, proxy.SignerConfig{}), MaxReplayBody: limit}
		}},
		{name: "none, streamed", body: large, config: func(t *testing.T) proxy.Config {
			return proxy.Config{Injector: proxy.None(), MaxReplayBody: limit}
		}},
		{name: "none, chunked, streamed", body: large, chunked: true, config: func(t *testing.T) proxy.Config {
			return proxy.Config{Injector: proxy.None(), MaxReplayBody: limit}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			c := tc.config(t)
			c.Upstream = up.base(t, "/base")
			srv := startProxy(t, c)
			framing := fmt.Sprintf("Content-Length: %d\r\n", len(tc.body))
			if tc.chunked {
				framing = "Transfer-Encoding: chunked\r\n"
			}
			head := "POST /x HTTP/1.1\r\nHost: sidecar.local\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n" + framing + "\r\n"
			ex := expectContinue(t, srv.Listener.Addr().String(), head, tc.body)
			if ex.first != http.StatusContinue {
				t.Errorf("first response = %d, want 100 Continue", ex.first)
			}
			if ex.continues != 1 {
				t.Errorf("the app got %d 100 Continue, want 1", ex.continues)
			}
			if ex.final.StatusCode != http.StatusOK || string(ex.finalBody) != "ok" {
				t.Errorf("final response = %d %q, want 200 %q", ex.final.StatusCode, ex.finalBody, "ok")
			}
			// A request with Transfer-Encoding is answered with Connection:
			// close (see ServeHTTP); a relayed 1xx must not have cleared it.
			if tc.chunked && (!ex.final.Close || !ex.closed) {
				t.Errorf("answer to a chunked request: Connection: close = %v, connection closed = %v; want both", ex.final.Close, ex.closed)
			}
			got := up.requests()
			if len(got) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(got))
			}
			if e := got[0].Header.Get("Expect"); e != "" {
				t.Errorf("upstream received Expect: %q, want none: the sidecar answers it", e)
			}
			if c.Injector == nil || c.Injector.Body() == proxy.BodyUntouched {
				if !bytes.Equal(got[0].Body, tc.body) {
					t.Errorf("upstream body = %d bytes, want the app's %d", got[0].Len, len(tc.body))
				}
			} else if got[0].Len == 0 {
				t.Errorf("upstream body is empty, want the rewritten body")
			}
		})
	}
}

// withTokens returns a config with a token cache, the injector inj (nil:
// Bearer) and a 1 KiB replay limit.
func withTokens(inj proxy.Injector) func(t *testing.T) proxy.Config {
	return func(t *testing.T) proxy.Config {
		return proxy.Config{Tokens: startCache(t, &tokenSource{}, tokens.CacheOptions{}), Injector: inj, MaxReplayBody: 1 << 10}
	}
}
