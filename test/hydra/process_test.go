package hydra

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/probe"
)

// The sidecar's binary, built from the repository's root at most once per
// test binary, by the first test that runs it; TestMain removes it.
var (
	sidecarOnce sync.Once
	sidecarDir  string
	sidecarBin  string
	sidecarErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sidecarDir != "" {
		os.RemoveAll(sidecarDir)
	}
	os.Exit(code)
}

// sidecarBinary returns the path of the authsidecar binary, built from the
// repository this module sits in (../..): what a user runs, configured by
// its environment only.
func sidecarBinary(t testing.TB) string {
	t.Helper()
	sidecarOnce.Do(func() {
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			sidecarErr = err
			return
		}
		if _, err := os.Stat(filepath.Join(root, "cmd", "authsidecar")); err != nil {
			sidecarErr = fmt.Errorf("no cmd/authsidecar in %s: the tests run in test/hydra of the repository: %v", root, err)
			return
		}
		if sidecarDir, sidecarErr = os.MkdirTemp("", "authsidecar-hydra-"); sidecarErr != nil {
			return
		}
		bin := filepath.Join(sidecarDir, "authsidecar")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/authsidecar")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			sidecarErr = fmt.Errorf("go build ./cmd/authsidecar in %s: %v\n%s", root, err, out)
			return
		}
		sidecarBin = bin
	})
	if sidecarErr != nil {
		t.Fatalf("building the sidecar: %v", sidecarErr)
	}
	return sidecarBin
}

// sidecar is a running authsidecar process.
type sidecar struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *probe.Logs // stdout and stderr
	URL    string      // the proxy, http://host:port
	Admin  string      // the admin server, http://host:port
	exited chan struct{}
	client *http.Client

	mu      sync.Mutex
	secrets map[string]string // value → what it is, never to be shown
}

// startSidecar starts authsidecar with env (names without the AUTHSIDECAR_
// prefix), logging JSON at debug level, the proxy and the admin server on
// port 0 of the loopback, and waits for the "authsidecar started" line that
// names their addresses. When the test ends the process is killed, and its
// output is checked for panics and for the values given to secret.
func startSidecar(t testing.TB, env map[string]string) *sidecar {
	t.Helper()
	bin := sidecarBinary(t)
	full := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug", "LOG_FORMAT": "json"}
	for k, v := range env {
		full[k] = v
	}
	s := &sidecar{
		t:       t,
		out:     &probe.Logs{},
		exited:  make(chan struct{}),
		client:  &http.Client{Timeout: 15 * time.Second},
		secrets: map[string]string{},
	}
	s.cmd = exec.Command(bin)
	for k, v := range full {
		s.cmd.Env = append(s.cmd.Env, "AUTHSIDECAR_"+k+"="+v)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start authsidecar: %v", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.cleanup)

	deadline := time.After(20 * time.Second)
	for {
		if l := s.findLog(msgIs("authsidecar started")); l != nil {
			listen, _ := l["listen"].(string)
			admin, _ := l["admin"].(string)
			if listen != "" && admin != "" {
				s.URL, s.Admin = "http://"+listen, "http://"+admin
				return s
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("authsidecar exited (%v) before it listened:\n%s", s.cmd.ProcessState, s.out)
		case <-deadline:
			t.Fatalf("no \"authsidecar started\" log line with its addresses after 20s:\n%s", s.out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// secret records values that must never appear in the sidecar's output
// (assertions, their signatures, access tokens), with what they are.
func (s *sidecar) secret(what string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if v != "" {
			s.secrets[v] = what
		}
	}
}

// leaks returns what of the secrets text shows.
func (s *sidecar) leaks(text string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for v, what := range s.secrets {
		if strings.Contains(text, v) {
			found = append(found, what)
		}
	}
	return found
}

// redact replaces the secrets in text by what they are.
func (s *sidecar) redact(text string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v, what := range s.secrets {
		text = strings.ReplaceAll(text, v, "["+what+"]")
	}
	return text
}

func (s *sidecar) cleanup() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
	out := s.out.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:"} {
		if strings.Contains(out, bad) {
			s.t.Errorf("authsidecar output contains %q", bad)
		}
	}
	if leaked := s.leaks(out); len(leaked) > 0 {
		s.t.Errorf("authsidecar output shows %s", strings.Join(leaked, ", "))
	}
	if s.t.Failed() {
		s.t.Logf("authsidecar output (secrets replaced by what they are):\n%s", s.redact(out))
	}
}

// alive reports whether the process still runs.
func (s *sidecar) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// logLine is one JSON log line of the sidecar's, decoded.
type logLine map[string]any

func (l logLine) str(key string) string { v, _ := l[key].(string); return v }

// time is when the line was logged.
func (l logLine) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, l.str("time"))
	return t
}

func msgIs(msg string) func(logLine) bool {
	return func(l logLine) bool { return l.str("msg") == msg }
}

// logLines returns the process's JSON log lines so far; other lines are
// skipped.
func (s *sidecar) logLines() []logLine {
	var lines []logLine
	sc := bufio.NewScanner(strings.NewReader(s.out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	return lines
}

// findLog returns the first log line that match accepts, or nil.
func (s *sidecar) findLog(match func(logLine) bool) logLine {
	for _, l := range s.logLines() {
		if match(l) {
			return l
		}
	}
	return nil
}

// waitLog waits up to d for the n-th log line that match accepts, and
// returns it; the test fails if none comes, or the process exits.
func (s *sidecar) waitLog(d time.Duration, n int, what string, match func(logLine) bool) logLine {
	s.t.Helper()
	var found logLine
	waitFor(s.t, d, func() bool {
		if !s.alive() {
			s.t.Fatalf("authsidecar exited (%v) while waiting for %s", s.cmd.ProcessState, what)
		}
		i := 0
		for _, l := range s.logLines() {
			if match(l) {
				if i++; i == n {
					found = l
					return true
				}
			}
		}
		return false
	}, "no log line %s (number %d)", what, n)
	return found
}

// admin returns the status and body of a GET on the admin server; 0 if it
// could not be reached.
func (s *sidecar) admin(path string) (int, string) {
	resp, err := s.client.Get(s.Admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// readyz is /readyz's status.
func (s *sidecar) readyz() int {
	code, _ := s.admin("/readyz")
	return code
}

// fetches returns authsidecar_token_fetches_total for result (success,
// error), summed over routes.
func (s *sidecar) fetches(result string) float64 {
	s.t.Helper()
	code, body := s.admin("/metrics")
	if code != http.StatusOK {
		s.t.Fatalf("GET /metrics = %d %s", code, body)
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "authsidecar_token_fetches_total{") || !strings.Contains(line, `result="`+result+`"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			s.t.Fatalf("/metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// call sends a request through the sidecar as the app does: no token.
func (s *sidecar) call(path string) (int, string) {
	s.t.Helper()
	resp, err := s.client.Get(s.URL + path)
	if err != nil {
		s.t.Fatalf("GET %s through the sidecar: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 20ms until it holds, and fails the test with the
// message if it does not within d.
func waitFor(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s (waited %v)", fmt.Sprintf(format, args...), d)
		}
		<-tick.C
	}
}

// upstream is the service behind the sidecar: it answers 200 to a bearer
// token that Hydra's introspection says is active, 401 otherwise, and
// records what it was sent.
type upstream struct {
	URL string

	mu   sync.Mutex
	seen []seen
}

// seen is one request the upstream got: its token, and Hydra's word on it.
type seen struct {
	token  string
	status int
	intro  map[string]any // Hydra's introspection; nil if it failed
	err    error
}

func newUpstream(t testing.TB, s *Server) *upstream {
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		rec := seen{token: tok, status: http.StatusUnauthorized}
		if ok && tok != "" {
			rec.intro, rec.err = s.IntrospectContext(r.Context(), tok)
			if rec.err == nil && rec.intro["active"] == true {
				rec.status = http.StatusOK
			}
		}
		u.mu.Lock()
		u.seen = append(u.seen, rec)
		u.mu.Unlock()
		w.WriteHeader(rec.status)
		fmt.Fprintf(w, "upstream: %d\n", rec.status)
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	return u
}

// last is the last request the upstream got.
func (u *upstream) last(t testing.TB) seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("the upstream got no request")
	}
	return u.seen[len(u.seen)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// tokenRequests is a reverse proxy in front of Hydra's public interface that
// counts the requests to its token endpoint.
type tokenRequests struct {
	URL string // the proxy's token endpoint

	mu sync.Mutex
	n  int
}

func newTokenRequests(t testing.TB, s *Server) *tokenRequests {
	target, err := url.Parse(s.PublicURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &tokenRequests{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/token" {
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL + "/oauth2/token"
	return c
}

func (c *tokenRequests) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// projected is a file the way the kubelet writes a projected volume: the
// file is dir/token, a symlink to ..data/token, and ..data a symlink to a
// timestamped directory; a rotation writes a new timestamped directory and
// renames a new ..data symlink over the old one, atomically.
type projected struct {
	dir, current string
}

func newProjected(t testing.TB, content string) *projected {
	t.Helper()
	p := &projected{dir: t.TempDir()}
	p.write(t, content)
	if err := os.Symlink(filepath.Join("..data", "token"), p.path()); err != nil {
		t.Fatal(err)
	}
	return p
}

// path is the file's path, what the sidecar is given.
func (p *projected) path() string { return filepath.Join(p.dir, "token") }

// rotate replaces the content as the kubelet does.
func (p *projected) rotate(t testing.TB, content string) { t.Helper(); p.write(t, content) }

func (p *projected) write(t testing.TB, content string) {
	t.Helper()
	ts := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	if err := os.Mkdir(filepath.Join(p.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, ts, "token"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(p.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if p.current != "" {
		if err := os.RemoveAll(filepath.Join(p.dir, p.current)); err != nil {
			t.Fatal(err)
		}
	}
	p.current = ts
}

// writeKey writes key as a PKCS #8 PEM file and returns its path.
func writeKey(t testing.TB, key crypto.Signer) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// signature is a JWT's signature, which no output may show either.
func signature(jwt string) string { return jwt[strings.LastIndexByte(jwt, '.')+1:] }
