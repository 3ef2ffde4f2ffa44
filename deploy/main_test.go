package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binary is authsidecar built from this repository for the tests that run
// it: the configuration check and the metrics scrape.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authsidecar-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "authsidecar")
	build := exec.Command("go", "build", "-o", binary, "./cmd/authsidecar")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build authsidecar:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
