// Command demo runs authsidecar against a local TezPay-like provider: it
// serves the fake provider in-process, starts the real authsidecar binary
// pointed at it, and prints curl commands that go through the sidecar.
// It is what `make demo` runs; stop it with Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/authsidecar/authsidecar/test/fake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	sidecar := flag.String("sidecar", "bin/authsidecar", "path of the authsidecar binary")
	listen := flag.String("listen", "127.0.0.1:8080", "the sidecar's proxy address")
	admin := flag.String("admin", "127.0.0.1:9090", "the sidecar's admin address")
	ttl := flag.Duration("ttl", 2*time.Minute, "lifetime of the fake provider's tokens (TezPay's is 12h; short here so renewal shows)")
	flag.Parse()

	const clientID, clientSecret = "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "example_client_secret_key_123456789abcdef"
	provider := fake.NewTezPay(clientID, clientSecret, *ttl)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	go http.Serve(ln, provider.Handler())
	base := "http://" + ln.Addr().String()
	fmt.Printf("demo: fake TezPay provider on %s (tokens live %s)\n", base, *ttl)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.Command(*sidecar)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"AUTHSIDECAR_UPSTREAM_URL="+base,
		"AUTHSIDECAR_TOKEN_SOURCE=json",
		"AUTHSIDECAR_TOKEN_URL="+base+fake.AuthenticatePath,
		"AUTHSIDECAR_CLIENT_ID="+clientID,
		"AUTHSIDECAR_CLIENT_SECRET="+clientSecret,
		"AUTHSIDECAR_LISTEN_ADDR="+*listen,
		"AUTHSIDECAR_ADMIN_ADDR="+*admin,
		"AUTHSIDECAR_LOG_FORMAT=text",
	)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s (run `make build` first): %w", *sidecar, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if err := waitReady(ctx, "http://"+*admin+"/readyz", exited); err != nil {
		cmd.Process.Kill()
		return err
	}
	fmt.Printf(`
demo: authsidecar is ready. In another terminal, call the provider through it — no token needed:

  curl -s -X POST http://%[1]s%[2]s -H 'Content-Type: application/json' \
       -d '{"payment_method":"IMPS_IN","transaction_amount":500,"merchant_reference":"PAY123456"}'
  curl -s 'http://%[1]s%[3]s?transaction_id=TXN123456'
  curl -s http://%[4]s/metrics | grep ^authsidecar_

Press Ctrl-C to stop.
`, *listen, fake.ProcessPaymentPath, fake.GetStatusPath, *admin)

	select {
	case err := <-exited:
		return fmt.Errorf("authsidecar exited: %w", err)
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	return <-exited
}

// waitReady polls url until it answers 200, the sidecar exits, or 15s pass.
func waitReady(ctx context.Context, url string, exited <-chan error) error {
	deadline := time.After(15 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("authsidecar exited before it was ready: %w", err)
		case <-deadline:
			return errors.New("authsidecar was not ready after 15s")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
