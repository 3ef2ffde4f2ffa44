package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/tokens"
)

// BenchmarkBasic is BenchmarkSidecar with INJECT=basic instead of a token:
// literal credentials, and credentials from a watched password file. Its
// allocations should be BenchmarkSidecar's, or fewer.
func BenchmarkBasic(b *testing.B) {
	b.Run("literal", func(b *testing.B) {
		auth, err := NewBasicAuth("api-key", "")
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, benchBasic(func() *BasicAuth { return auth }, nil))
	})
	b.Run("file", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "password")
		if err := os.WriteFile(path, []byte("password\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		w, err := tokens.WatchSecrets("Basic credentials", []tokens.Secret{tokens.Literal("user"), tokens.File(path)},
			func(v []string) (*BasicAuth, error) { return NewBasicAuth(v[0], v[1]) }, nil)
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, benchBasic(w.Get, nil))
	})
	b.Run("with SET_HEADERS", func(b *testing.B) {
		auth, _ := NewBasicAuth("api-key", "")
		runBench(b, benchBasic(func() *BasicAuth { return auth }, http.Header{"X-Merchantid": {"stock"}, "X-Routing-Id": {"r-1"}}))
	})
}

func benchBasic(auth func() *BasicAuth, set http.Header) http.Handler {
	return New(Config{
		Upstream:      benchUpstream,
		Injector:      Basic(auth),
		SetHeaders:    set,
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	})
}

// BenchmarkSidecarSetHeaders is BenchmarkSidecar (bearer) with two
// SET_HEADERS.
func BenchmarkSidecarSetHeaders(b *testing.B) {
	runBench(b, New(Config{
		Upstream:      benchUpstream,
		Tokens:        benchCache(b),
		SetHeaders:    http.Header{"X-Merchantid": {"stock"}, "X-Routing-Id": {"r-1"}},
		Transport:     benchTransport(),
		MaxReplayBody: 1 << 20,
		Metrics:       metrics.New(prometheus.NewRegistry()),
	}))
}
