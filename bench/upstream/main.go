// Command upstream is the benchmark's fake upstream: it answers every path
// with the same 1 KiB JSON body, and serves a JSON token endpoint whose calls
// it counts.
//
//	POST /token        {"access_token":"<JWT-shaped token>","expires_in":3600}
//	POST /token/routes the same, for the three-route sidecar: not counted
//	                   with /token, whose count is the single-route sidecar's
//	GET  /token-calls  how many times /token was called, as a plain number
//	GET  /echo-auth    the Authorization header received (a sanity check)
//	anything else      200, the 1 KiB JSON body
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authsidecar/authsidecar/bench/internal/serve"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "listen address")
	tokenDelay := flag.Duration("token-delay", 0, "how long /token takes to answer")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}
	srv := &http.Server{
		Handler:           &server{body: body(1024), tokenDelay: *tokenDelay},
		ReadHeaderTimeout: 10 * time.Second,
	}
	serve.Until("upstream", srv, ln)
}

type server struct {
	body       []byte
	tokenDelay time.Duration
	tokenCalls atomic.Int64
	// routesTokenCalls counts /token/routes, the three-route sidecar's.
	routesTokenCalls atomic.Int64
}

var (
	contentJSON  = []string{"application/json"}
	contentPlain = []string{"text/plain; charset=utf-8"}
)

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/token":
		s.token(w, r, &s.tokenCalls)
	case "/token/routes":
		s.token(w, r, &s.routesTokenCalls)
	case "/token-calls":
		w.Header()["Content-Type"] = contentPlain
		fmt.Fprintln(w, s.tokenCalls.Load())
	case "/echo-auth":
		w.Header()["Content-Type"] = contentPlain
		fmt.Fprintln(w, r.Header.Get("Authorization"))
	default:
		h := w.Header()
		h["Content-Type"] = contentJSON
		h["Content-Length"] = []string{strconv.Itoa(len(s.body))}
		w.Write(s.body)
	}
}

// token answers a token request, counted in calls.
func (s *server) token(w http.ResponseWriter, r *http.Request, calls *atomic.Int64) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	n := calls.Add(1)
	time.Sleep(s.tokenDelay)
	w.Header()["Content-Type"] = contentJSON
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, jwtish(n))
}

// jwtish returns a token shaped like an HS256 JWT (not signed).
func jwtish(n int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims := fmt.Sprintf(`{"sub":"bench","iat":%d,"exp":%d,"n":%d}`,
		time.Now().Unix(), time.Now().Add(time.Hour).Unix(), n)
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + "." +
		enc([]byte(strings.Repeat("s", 32)))
}

// body returns a JSON object of exactly n bytes (n ≥ 64).
func body(n int) []byte {
	head := `{"status":"ok","transaction_id":"TXN0000000001","amount":500,"pad":"`
	tail := `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}
