// Package probe watches running authsidecar processes from outside, for the
// soaks (test/soak, test/fleetsoak): readiness, metrics, tokens that reached
// the upstream expired, and the end of a run.
package probe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Ready waits up to d until the admin server at admin (host:port) answers
// /readyz with 200.
func Ready(admin string, d time.Duration) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get("http://" + admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("authsidecar not ready within %s", d)
}

// Metrics scrapes the admin server at admin: every series ("name{labels}")
// and its value.
func Metrics(admin string) (map[string]float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if name, value, ok := strings.Cut(sc.Text(), " "); ok && !strings.HasPrefix(name, "#") {
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				m[name] = v
			}
		}
	}
	return m, sc.Err()
}

// CountExpired counts in n the requests to next whose bearer token (a JWT)
// had expired when it arrived: no sidecar may send one.
func CountExpired(next http.Handler, n *int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			var claims jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err == nil && claims.ExpiresAt != nil && time.Now().After(claims.ExpiresAt.Time) {
				atomic.AddInt64(n, 1)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Logs is a process's output, safe to read while the process writes it.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Start starts cmd, an authsidecar that listens on port 0 of the loopback
// (Start sets LISTEN_ADDR and ADMIN_ADDR, and LOG_LEVEL=info for the line it
// reads), with its output in logs, and returns the addresses the kernel
// chose, read from its "authsidecar started" log line: no port is picked
// and then lost to another process. It fails if that line is not written
// within d.
func Start(cmd *exec.Cmd, logs *Logs, d time.Duration) (listen, admin string, err error) {
	cmd.Env = append(cmd.Env, "AUTHSIDECAR_LISTEN_ADDR=127.0.0.1:0", "AUTHSIDECAR_ADMIN_ADDR=127.0.0.1:0", "AUTHSIDECAR_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for line := range strings.Lines(logs.String()) {
			var started struct{ Msg, Listen, Admin string }
			if json.Unmarshal([]byte(line), &started) == nil && started.Msg == "authsidecar started" {
				return started.Listen, started.Admin, nil
			}
		}
	}
	return "", "", fmt.Errorf("no \"authsidecar started\" log line within %s", d)
}

// Finish prints a run's report, writes it to out too if out is set, and
// exits: 1, naming each problem, if the run broke a rule.
func Finish(tool, report, out string, problems []string) {
	fmt.Print(report)
	if out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", tool, err)
			os.Exit(1)
		}
	}
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "%s: FAIL: %s\n", tool, p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
}
