// Package serve runs the benchmark's helper servers until SIGTERM or SIGINT.
package serve

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Until serves srv on ln until SIGTERM or SIGINT, then closes every
// connection and returns: the benchmark has nothing to drain. A failure to
// serve ends the process with name in the message.
func Until(name string, srv *http.Server, ln net.Listener) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("%s: %v", name, err)
	}
}
