// Package e2e drives the real authsidecar binary as a subprocess, configured
// by environment variables only, against in-process fakes of the provider and
// the upstream, and checks what the app and the operator see.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// binary is the authsidecar binary TestMain builds; testVersion is stamped in it.
var binary string

const testVersion = "e2e-test"

// The credentials the fake TezPay accepts. The secret is distinctive so that
// finding it anywhere in the sidecar's output means a leak.
const (
	clientID     = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
	clientSecret = "e2e-secret-Qx7Vb2Lm9Tz4Wc8Rk3"
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds the binary once, runs the tests, and removes it. When
// the tests run with -race the binary is built with -race too, so that a
// data race in the sidecar under these scenarios fails them.
func buildAndRun(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "authsidecar-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binary = filepath.Join(dir, "authsidecar")
	args := []string{"build", "-o", binary, "-ldflags", "-X main.version=" + testVersion}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/authsidecar")...)
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("e2e: built %s (race: %v) in %s\n", binary, raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	code := m.Run()
	if testing.Verbose() {
		fmt.Printf("FIGURE: %s\n", scanFigure())
	}
	return code
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// output is a process's stdout and stderr, safe to read while it runs.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// sidecar is a running authsidecar process.
type sidecar struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *output
	listen string // the proxy's host:port
	URL    string // the proxy, http://host:port
	Admin  string // the admin server, http://host:port
	// routes are the routes of ROUTES, by name, as the start-up log lists
	// them; nil without ROUTES.
	routes map[string]startedRoute
	exited chan struct{}
	state  *os.ProcessState  // set when exited is closed
	env    map[string]string // its configuration, names without the prefix

	mu     sync.Mutex
	files  map[string][]string // secret files named in env, as read at the start
	bodies []sidecarBody       // error bodies it made, as call received them
}

// startSidecar starts authsidecar with env (names without the AUTHSIDECAR_
// prefix) and waits until it listens. Unless env says otherwise, the proxy
// and the admin server listen on port 0 of the loopback, and the addresses
// the kernel chose are read from the "authsidecar started" log line: no port
// is picked by the test and then lost to another process. It logs at LOG_LEVEL=debug
// unless env sets another level. The process is killed when the test ends,
// and what it showed is scanned for secrets (see secrets_test.go).
func startSidecar(t testing.TB, env map[string]string) *sidecar {
	t.Helper()
	s, err := tryStart(t, env)
	if err != nil {
		t.Fatalf("start authsidecar: %v", err)
	}
	return s
}

// tryStart is startSidecar returning its error; it may be called from
// goroutines other than the test's.
func tryStart(t testing.TB, env map[string]string) (*sidecar, error) {
	t.Helper()
	full := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "ADMIN_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		full[k] = v
	}
	if _, ok := full["LOG_LEVEL"]; !ok && full["AUTHSIDECAR_LOG_LEVEL"] == "" {
		full["LOG_LEVEL"] = "debug"
	}
	s := &sidecar{
		t:      t,
		out:    &output{},
		exited: make(chan struct{}),
		env:    full,
	}
	s.files = s.readFiles()
	s.cmd = exec.Command(binary)
	s.cmd.Env = environ(full)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.exited)
	}()

	// "authsidecar started" is logged once both listeners are open, with
	// the addresses they are bound to.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if listen, admin, ok := s.startedAddrs(); ok {
			s.listen, s.URL, s.Admin = listen, "http://"+listen, "http://"+admin
			s.routes = s.startedRoutes()
			break
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("exited with %v before listening:\n%s", s.state, s.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("no \"authsidecar started\" log line with its addresses after 20s:\n%s", s.out)
		}
	}
	for _, addr := range s.listeners() {
		running.Store(addr, s)
	}
	t.Cleanup(s.cleanup)
	return s, nil
}

// startedAddrs returns the proxy's and the admin server's addresses from
// the "authsidecar started" log line, once it has been written in full.
func (s *sidecar) startedAddrs() (listen, admin string, ok bool) {
	for _, l := range s.logLines() {
		if l["msg"] != "authsidecar started" {
			continue
		}
		listen, _ = l["listen"].(string)
		admin, _ = l["admin"].(string)
		return listen, admin, listen != "" && admin != ""
	}
	return "", "", false
}

// startedRoute is one route of the "authsidecar started" log line's routes:
// the address it listens on and its path prefix there ("" on a listener of
// its own).
type startedRoute struct {
	Listen     string `json:"listen"`
	PathPrefix string `json:"path_prefix"`
}

// startedRoutes returns the routes the "authsidecar started" log line
// lists, by name; nil if it lists none (a sidecar without ROUTES).
func (s *sidecar) startedRoutes() map[string]startedRoute {
	for _, l := range s.logLines() {
		if l["msg"] != "authsidecar started" || l["routes"] == nil {
			continue
		}
		raw, _ := json.Marshal(l["routes"])
		var list []struct {
			Name string `json:"name"`
			startedRoute
		}
		if json.Unmarshal(raw, &list) != nil {
			return nil
		}
		routes := map[string]startedRoute{}
		for _, r := range list {
			routes[r.Name] = r.startedRoute
		}
		return routes
	}
	return nil
}

// listeners are the proxy's addresses: the main one, and each route's own.
func (s *sidecar) listeners() []string {
	addrs := []string{s.listen}
	for _, r := range s.routes {
		if !slices.Contains(addrs, r.Listen) {
			addrs = append(addrs, r.Listen)
		}
	}
	return addrs
}

// routeURL is the base URL the app calls route name at:
// http://host:port and its path prefix. The test fails if the start-up log
// does not list the route.
func (s *sidecar) routeURL(name string) string {
	s.t.Helper()
	r, ok := s.routes[name]
	if !ok || r.Listen == "" {
		s.t.Fatalf("the start-up log lists no route %q (routes: %v)", name, s.routes)
	}
	return "http://" + r.Listen + r.PathPrefix
}

// environ turns variables named without the prefix into a process
// environment; nothing of the test's own environment is passed on.
func environ(vars map[string]string) []string {
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		if !strings.HasPrefix(k, "AUTHSIDECAR_") && k != "GORACE" {
			k = "AUTHSIDECAR_" + k
		}
		env = append(env, k+"="+v)
	}
	return env
}

func (s *sidecar) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// cleanup scrapes /metrics if the process still runs, kills it, fails the
// test if it raced, panicked or showed a secret, and shows its output, with
// the secrets hidden, if the test failed.
func (s *sidecar) cleanup() {
	var metrics string
	select {
	case <-s.exited:
	default:
		metrics = s.scrapeMetrics()
	}
	s.kill()
	for _, addr := range s.listeners() {
		running.CompareAndDelete(addr, s)
	}
	out := s.out.String()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "goroutine 1 ["} {
		if strings.Contains(out, bad) {
			s.t.Errorf("authsidecar output contains %q", bad)
		}
	}
	secrets := s.secrets()
	s.scan(secrets, metrics)
	if s.t.Failed() {
		s.t.Logf("authsidecar output (secrets replaced by their names):\n%s", redact(out, secrets))
	}
}

// signal sends sig to the process.
func (s *sidecar) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits up to d for the process to exit and returns its exit code.
func (s *sidecar) waitExit(d time.Duration) (code int, ok bool) {
	select {
	case <-s.exited:
		return s.state.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// output returns everything the process printed so far.
func (s *sidecar) output() string { return s.out.String() }

// logLines returns the process's JSON log lines, decoded; other lines are
// skipped.
func (s *sidecar) logLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			lines = append(lines, l)
		}
	}
	return lines
}

// waitReady waits until /readyz answers 200.
func (s *sidecar) waitReady(d time.Duration) {
	s.t.Helper()
	if !eventually(d, func() bool { return s.adminStatus("/readyz") == http.StatusOK }) {
		s.t.Fatalf("/readyz not 200 after %s (last status %d)", d, s.adminStatus("/readyz"))
	}
}

// adminStatus returns the status of a GET on the admin server, 0 if it
// could not be reached.
func (s *sidecar) adminStatus(path string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.Admin + path)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metrics scrapes /metrics.
func (s *sidecar) metrics() string {
	s.t.Helper()
	resp, err := http.Get(s.Admin + "/metrics")
	if err != nil {
		s.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /metrics = %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// metric returns the value of one series of a Prometheus text exposition,
// written as it appears there (`name{label="value"}`), and whether it is
// present. A name without labels also matches the sum of all its series.
func metric(exposition, series string) (float64, bool) {
	sum, found := 0.0, false
	for _, line := range strings.Split(exposition, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if name != series && !(strings.HasPrefix(name, series+"{") && !strings.Contains(series, "{")) {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}

// unusedAddr returns a local address no one listened on a moment ago, for
// a dependency that must be unreachable. Never give it to a sidecar to
// listen on: another process may take it meanwhile.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// heldAddr returns the address of a local listener that stays open until
// the test ends and never accepts: a sidecar given it cannot listen there
// ("address already in use"), so a process that must not listen at all can
// be checked without a port that another process might take meanwhile.
func heldAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// eventually polls cond every 20ms until it holds or d has passed, and
// reports whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// waitUntil polls cond until it holds, and fails the test with the message
// (format and args) if it does not within d: what a test waits for must
// happen, or the test is not testing what it says.
func waitUntil(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !eventually(d, cond) {
		t.Fatalf("%s (waited %s)", fmt.Sprintf(format, args...), d)
	}
}

// handlersRunning counts the sidecar's goroutines serving a request, from
// its goroutine profile (the sidecar must run with PPROF=true); the request
// for the profile itself is left out. While the token is held back, every
// request the app sent that the sidecar has read is one of them.
func (s *sidecar) handlersRunning() int {
	resp, err := http.Get(s.Admin + "/debug/pprof/goroutine?debug=2")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	n := 0
	for _, g := range strings.Split(string(b), "\n\n") {
		if strings.Contains(g, "net/http.serverHandler.ServeHTTP") && !strings.Contains(g, "net/http/pprof.") {
			n++
		}
	}
	return n
}

// newClient returns an HTTP client of its own for the app, closed when the
// test ends. Its timeout only guards against a hang.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// result is what the app got for one request.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// call sends one request as the app would: plain HTTP, no token.
func call(c *http.Client, method, url string, body []byte, header ...string) result {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return result{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	recordBody(req.URL.Host, method, req.URL.Path, resp.StatusCode, b)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (r result) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// newTezPay serves a fake TezPay issuing tokens valid for ttl, with wrap
// around its handler if given, until the test ends.
func newTezPay(t *testing.T, ttl time.Duration, wrap func(http.Handler) http.Handler) (*fake.TezPay, *httptest.Server) {
	return newTezPayFor(t, clientSecret, ttl, wrap)
}

// newTezPayFor is newTezPay accepting another client secret.
func newTezPayFor(t *testing.T, secret string, ttl time.Duration, wrap func(http.Handler) http.Handler) (*fake.TezPay, *httptest.Server) {
	p := fake.NewTezPay(clientID, secret, ttl)
	trackTezPay(t, p)
	var h http.Handler = p.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return p, srv
}

// tezPayEnv configures the JSON token source against a TezPay at base.
func tezPayEnv(base string, extra ...string) map[string]string {
	env := map[string]string{
		"UPSTREAM_URL":  base,
		"TOKEN_SOURCE":  "json",
		"TOKEN_URL":     base + fake.AuthenticatePath,
		"CLIENT_ID":     clientID,
		"CLIENT_SECRET": clientSecret,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// payment is a process-payment body, as the TezPay document shows it.
func payment(ref string) []byte {
	return []byte(fmt.Sprintf(`{"payment_method":"IMPS_IN","transaction_amount":500,"merchant_reference":%q}`, ref))
}

// isRefused reports whether dialing addr is refused, that is whether
// nothing listens there.
func isRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}
