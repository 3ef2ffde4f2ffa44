// Command authsidecar is a token-injecting reverse proxy that runs beside a
// legacy app: the app sends plain HTTP to localhost, and authsidecar fetches,
// caches and renews the provider's token and puts it on every request it
// forwards to the real API. It is configured by AUTHSIDECAR_* variables only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(mainExit(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// mainExit runs authsidecar and returns its exit code: 0 after a clean
// shutdown, 1 when it fails while running, 2 for bad flags or configuration.
func mainExit(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("authsidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	check := fs.Bool("check", false, "validate the configuration (AUTHSIDECAR_* variables and the files they name), print the effective settings and where each came from, and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "authsidecar", version)
		return 0
	}
	vars := environMap(environ)
	st, err := loadSetup(vars)
	if err != nil {
		fmt.Fprintf(stderr, "authsidecar: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	log := newLogger(st.global, stderr)
	redis.SetLogger(redisLogger{log}) // go-redis logs through a process-wide logger
	a, err := buildApp(st, log)
	if err != nil {
		fmt.Fprintf(stderr, "authsidecar: invalid configuration:\n  %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	defer a.close()
	if *check {
		writeSetup(stdout, st)
		fmt.Fprintln(stdout, "authsidecar: configuration OK")
		return 0
	}

	// SIGHUP is ignored: secrets and keys given as files are re-read by
	// themselves, so there is nothing to reload.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, a, log); err != nil {
		log.Error("authsidecar stopped", "error", err)
		return 1
	}
	log.Info("authsidecar stopped")
	return 0
}

func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := cfg.logLevel() // checked by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
