package tenants

import (
	"testing"

	"golang.org/x/sys/unix"
)

// noInotify makes Watch find inotify unavailable until the test ends.
func noInotify(t *testing.T) {
	t.Cleanup(func() { inotifyInit = unix.InotifyInit1 })
	inotifyInit = func(int) (int, error) { return -1, unix.EMFILE }
}
