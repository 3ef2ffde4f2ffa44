package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/proxy"
)

// Without a token source nothing can be replayed, so a body must stream to
// the upstream as the app sends it, not be buffered up to MaxReplayBody.
func TestNoTokenSourceStreamsBodies(t *testing.T) {
	firstLine := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l, _ := bufio.NewReader(r.Body).ReadString('\n')
		firstLine <- l
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	srv := httptest.NewServer(proxy.New(proxy.Config{Upstream: u, Injector: proxy.None(), MaxReplayBody: 1 << 20}))
	defer srv.Close()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", pr)
		if resp, err := srv.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	pw.Write([]byte("chunk 1\n"))
	select {
	case l := <-firstLine:
		if l != "chunk 1\n" {
			t.Errorf("upstream's first line = %q, want %q", l, "chunk 1\n")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("upstream saw nothing of a streamed body 5s after its first chunk: the sidecar buffers it")
	}
	pw.Close()
	<-done
}
