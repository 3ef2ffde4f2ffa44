package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/tokens"
)

func TestStreamsServerSentEvents(t *testing.T) {
	for _, withTokens := range []bool{false, true} {
		name := "without tokens"
		if withTokens {
			name = "with tokens"
		}
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: one\n\n")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, "data: two\n\n")
			})
			var once sync.Once
			done := func() { once.Do(func() { close(release) }) }
			t.Cleanup(done) // before up.Close, even if the test fails early
			c := proxy.Config{Upstream: up.base(t, "/base")}
			if withTokens {
				c.Tokens = startCache(t, &tokenSource{}, tokens.CacheOptions{})
				c.MaxReplayBody = 1 << 10
			}
			srv := startProxy(t, c)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("GET /events: %v (the response was held back)", err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q, want %q", ct, "text/event-stream")
			}
			br := bufio.NewReader(resp.Body)
			// The upstream is still waiting for release: this event can only
			// arrive if the proxy passed it on at once.
			first, err := readEvent(br)
			if err != nil {
				t.Fatalf("reading the first event: %v (the event was held back)", err)
			}
			if first != "data: one\n\n" {
				t.Errorf("first event = %q, want %q", first, "data: one\n\n")
			}
			done()
			second, err := readEvent(br)
			if err != nil || second != "data: two\n\n" {
				t.Errorf("second event = %q, %v, want %q", second, err, "data: two\n\n")
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the events: %q, %v, want EOF", rest, err)
			}
		})
	}
}

// readEvent reads one server-sent event, up to and including its blank line.
func readEvent(br *bufio.Reader) (string, error) {
	var ev string
	for {
		line, err := br.ReadString('\n')
		ev += line
		if err != nil || line == "\n" {
			return ev, err
		}
	}
}

func TestStreamsLargeUpload(t *testing.T) {
	const size = 50 << 20
	for _, chunked := range []bool{true, false} {
		name := "known length"
		if chunked {
			name = "chunked"
		}
		t.Run(name, func(t *testing.T) {
			// The upstream hashes the body as it arrives and reports its first byte.
			var (
				mu       sync.Mutex
				gotLen   int64
				gotSum   []byte
				requests int
			)
			firstByte := make(chan struct{})
			var firstOnce sync.Once
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h := sha256.New()
				buf := make([]byte, 64<<10)
				var n int64
				var err error
				for {
					var k int
					k, err = r.Body.Read(buf)
					if k > 0 {
						firstOnce.Do(func() { close(firstByte) })
						h.Write(buf[:k])
						n += int64(k)
					}
					if err != nil {
						break
					}
				}
				mu.Lock()
				requests++
				gotLen, gotSum = n, h.Sum(nil)
				mu.Unlock()
				if !errors.Is(err, io.EOF) {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				io.WriteString(w, "stored")
			}))
			t.Cleanup(up.Close)
			base, _ := url.Parse(up.URL + "/base")
			cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
			srv := startProxy(t, proxy.Config{Upstream: base, Tokens: cache, MaxReplayBody: 1 << 20})

			// The body is generated as it is sent; after half of it, the
			// sender waits until the upstream has started receiving, which
			// only happens if the proxy streams rather than buffers.
			pr, pw := io.Pipe()
			sent := sha256.New()
			sendDone := make(chan struct{})
			go func() {
				defer close(sendDone)
				gen := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
				w := io.MultiWriter(pw, sent)
				if _, err := io.CopyN(w, gen, size/2); err != nil {
					pw.CloseWithError(err)
					return
				}
				select {
				case <-firstByte:
				case <-time.After(20 * time.Second):
					pw.CloseWithError(errors.New("the upstream got nothing of the first 25 MB: the body is not streamed"))
					return
				}
				_, err := io.Copy(w, gen)
				pw.CloseWithError(err) // nil: EOF
			}()
			req, err := http.NewRequest(http.MethodPut, srv.URL+"/blob", pr)
			if err != nil {
				t.Fatal(err)
			}
			if !chunked {
				req.ContentLength = size
			}
			resp, body := do(t, srv.Client(), req)
			<-sendDone
			if resp.StatusCode != http.StatusOK || string(body) != "stored" {
				t.Fatalf("PUT /blob = %d %q, want 200 %q", resp.StatusCode, body, "stored")
			}
			mu.Lock()
			defer mu.Unlock()
			if requests != 1 {
				t.Errorf("upstream received %d requests, want 1", requests)
			}
			if gotLen != size {
				t.Errorf("upstream received %d bytes, want %d", gotLen, size)
			}
			if want := sent.Sum(nil); string(gotSum) != string(want) {
				t.Errorf("upstream body sha256 = %x, want %x", gotSum, want)
			}
		})
	}
}

func TestStreamsLargeResponse(t *testing.T) {
	const size = 8 << 20
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, got received) {
		io.Copy(w, io.LimitReader(rand.NewChaCha8([32]byte{9}), size))
	})
	cache := startCache(t, &tokenSource{}, tokens.CacheOptions{})
	srv := startProxy(t, proxy.Config{Upstream: up.base(t, "/base"), Tokens: cache})
	resp, err := srv.Client().Get(srv.URL + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(rand.NewChaCha8([32]byte{9}), size))
	if n != size || string(h.Sum(nil)) != string(want.Sum(nil)) {
		t.Errorf("response = %d bytes, sha256 %x, want %d bytes, sha256 %x", n, h.Sum(nil), size, want.Sum(nil))
	}
}
