package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsidecar/authsidecar/metrics"
	"github.com/authsidecar/authsidecar/proxy"
	"github.com/authsidecar/authsidecar/proxy/paygate"
)

// sealedAnswer is an in-process Paygate: it drains each call and answers
// the same sealed answer, so that BenchmarkPaygateCapture measures the
// sidecar (seal, MAC, open, MAC check), not a network or a server.
type sealedAnswer struct{ body []byte }

func (a sealedAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Header:        http.Header{"Content-Type": {formType}},
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}, nil
}

// benchCapture is a typical capture's plain parameters, 200 bytes.
var benchCapture = "PayID=" + pgPayID + "&TransID=" + pgTransID + "&Amount=12995&Currency=EUR" +
	"&RefNr=INV-2024-000123&OrderDesc=Order+12345%3A+2+items&ReqId=9f0c2a7e5b1d4c3a8e6f0b2d4a6c8e0f&Textfeld1=shop"

// readerBody is a request body that can be rewound without allocating.
type readerBody struct{ strings.Reader }

func (*readerBody) Close() error { return nil }

// BenchmarkPaygateCapture sends a capture through the sidecar with
// INJECT=paygate, an HMAC key and metrics, one at a time, per cipher.
// Compare with BenchmarkSidecar (a bearer token on a GET).
func BenchmarkPaygateCapture(b *testing.B) {
	for _, c := range pgCiphers(b, false) {
		b.Run(c.name, func(b *testing.B) {
			m := paygate.NewMerchant(pgMerchantID, c.c, pgHMACKey)
			answer := answerParams(pgHMACKey, "OK", "00000000")
			upstream, _ := url.Parse("http://paygate.example")
			h := proxy.New(proxy.Config{
				Upstream:      upstream,
				Injector:      proxy.Paygate(fixed(m)),
				Transport:     sealedAnswer{body: []byte(answerBody(b, c.c, answer))},
				MaxReplayBody: 1 << 20,
				Metrics:       metrics.New(prometheus.NewRegistry()),
			})
			want := formOf(answer)
			body := &readerBody{}
			req := httptest.NewRequest(http.MethodPost, "/capture.aspx", nil)
			req.Header.Set("Content-Type", formType)
			req.ContentLength = int64(len(benchCapture))
			b.ReportAllocs()
			b.SetBytes(int64(len(benchCapture)))
			for b.Loop() {
				body.Reset(benchCapture)
				req.Body = body
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK || w.Body.String() != want {
					b.Fatalf("answer = %d %q, want 200 %q", w.Code, w.Body, want)
				}
			}
		})
	}
}
