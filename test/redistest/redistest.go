// Package redistest runs real redis-server processes for tests and soaks:
// each gets its own, on a free loopback port, and can kill and restart it.
//
// redis-server comes from Debian's redis-server package, which .ci/run
// installs. Without it the tests that need Redis are skipped, unless
// REDISTEST_REQUIRE is set (as .ci/run sets it): then they fail.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

// Server is a redis-server process.
type Server struct {
	bin  string
	dir  string
	Addr string // host:port, the same across restarts
	// CAFile is, for a server started with TLS, the PEM certificate clients
	// must trust; empty otherwise.
	CAFile string
	tls    *tls.Config // for the readiness check
	cmd    *exec.Cmd
	done   chan struct{}
}

// Start starts a redis-server for t, stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS starts a redis-server for t that speaks TLS only, with a
// certificate for 127.0.0.1 in CAFile.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, withTLS bool) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("REDISTEST_REQUIRE") != "" {
			t.Fatalf("redis-server not found and REDISTEST_REQUIRE is set: apt-get install redis-server")
		}
		t.Skip("redis-server not installed (apt-get install redis-server): skipping the shared cache tests")
	}
	s, err := Run(t.TempDir(), withTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Run starts a redis-server keeping its files in dir, for a program that is
// not a test (the fleet soak); the caller kills it.
func Run(dir string, withTLS bool) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found: apt-get install redis-server")
	}
	s := &Server{bin: bin, dir: dir}
	if withTLS {
		if s.CAFile, err = writeCert(dir); err != nil {
			return nil, err
		}
		s.tls = &tls.Config{InsecureSkipVerify: true} // only to see it answer
	}
	for attempt := 1; ; attempt++ {
		if s.Addr, err = freeAddr(); err != nil {
			return nil, err
		}
		if err = s.start(); err == nil {
			return s, nil
		}
		if attempt == 5 {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
	}
}

// URL is the server's redis:// URL, or rediss:// for a TLS server.
func (s *Server) URL() string {
	if s.CAFile != "" {
		return "rediss://" + s.Addr
	}
	return "redis://" + s.Addr
}

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--loglevel", "warning"}
	if s.CAFile != "" {
		args[1] = "0" // TLS only
		args = append(args, "--tls-port", port,
			"--tls-cert-file", filepath.Join(s.dir, "cert.pem"), "--tls-key-file", filepath.Join(s.dir, "key.pem"),
			"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	}
	s.cmd = exec.Command(s.bin, args...)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() == nil {
			return nil
		}
		select {
		case <-s.done:
			var log []string
			for len(lines) > 0 {
				log = append(log, <-lines)
			}
			return fmt.Errorf("redis-server exited: %s", strings.Join(log, "\n"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

// ping sends PING and expects PONG.
func (s *Server) ping() error {
	var c net.Conn
	var err error
	if s.tls != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", s.Addr, s.tls)
	} else {
		c, err = net.DialTimeout("tcp", s.Addr, time.Second)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Kill stops the server at once, as a crash would; its data is lost.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
	default:
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for range 50 { // the port may linger a moment after the kill
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restart redis-server on %s: %w", s.Addr, err)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key to
// dir, as cert.pem and key.pem, and returns the certificate's path.
func writeCert(dir string) (string, error) {
	certPEM, keyPEM, err := fake.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		return "", err
	}
	certPath := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		return "", err
	}
	return certPath, os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
}
