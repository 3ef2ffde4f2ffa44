//go:build linux

package tokens

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// watchMask is what Watch asks inotify to report in the token file's
// directory: every way a file there can be created, replaced, written or
// removed, and the directory itself going away.
const watchMask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyInit creates an inotify instance; tests replace it to prove the
// polling fallback.
var inotifyInit = unix.InotifyInit1

// watchDir starts an inotify watch of the file's directory and a goroutine
// that checks the file after each batch of events. stop closes the inotify
// descriptor and waits for that goroutine.
func (s *FileSource) watchDir() (stop func(), err error) {
	fd, err := inotifyInit(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("tokens: inotify: %w", err)
	}
	dir := filepath.Dir(s.c.Path)
	if _, err := unix.InotifyAddWatch(fd, dir, watchMask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tokens: inotify: watch %s: %w", dir, err)
	}
	// Non-blocking, so the runtime's poller serves it: Close wakes a Read.
	f := os.NewFile(uintptr(fd), "inotify")
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.readEvents(f, dir)
	}()
	return func() {
		f.Close()
		<-done
	}, nil
}

// readEvents checks the file after each batch of inotify events until f is
// closed. If the directory itself was removed or moved (a watch of
// ..data), it watches whatever now has the directory's name.
func (s *FileSource) readEvents(f *os.File, dir string) {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				s.log.Warn("token file: inotify failed: polling only", "path", s.c.Path, "every", s.c.PollInterval.String(), "error", err)
			}
			return
		}
		if dirGone(buf[:n]) {
			if err := rewatch(f, dir); err != nil {
				s.log.Warn("token file: its directory went away: polling only", "path", s.c.Path, "every", s.c.PollInterval.String(), "error", err)
			}
		}
		s.check("inotify")
	}
}

// dirGone reports whether a batch of inotify events says that the watched
// directory was removed, moved, or is no longer watched.
func dirGone(events []byte) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(events); {
		mask := binary.NativeEndian.Uint32(events[off+4:])
		if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
			return true
		}
		off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(events[off+12:]))
	}
	return false
}

// rewatch adds a watch of dir to the inotify instance f.
func rewatch(f *os.File, dir string) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var addErr error
	// Control keeps the descriptor open while the watch is added.
	if err := rc.Control(func(fd uintptr) {
		_, addErr = unix.InotifyAddWatch(int(fd), dir, watchMask)
	}); err != nil {
		return err
	}
	if addErr != nil {
		return fmt.Errorf("tokens: inotify: watch %s: %w", dir, addErr)
	}
	return nil
}
