//go:build linux

package tenants

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// watchMask is what Watch asks inotify to report in the tenants directory
// and in each tenant's directory: every way an entry there can be created,
// replaced (Kubernetes renames ..data), written or removed, and the
// directory itself going away.
const watchMask = unix.IN_CREATE | unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// inotifyInit creates an inotify instance; tests replace it to prove the
// rescanning fallback.
var inotifyInit = unix.InotifyInit1

// inotify is Watch's inotify instance: one watch of the tenants directory,
// which sees tenants added and removed and a projected volume's ..data
// swapped, and one of each tenant that is a directory of its own rather
// than a symlink into the volume, which sees that tenant's ..data swapped.
type inotify struct {
	f     *os.File
	fd    int
	dirWd int            // the tenants directory's watch; -1 if none
	wds   map[int]string // a tenant's watch → the tenant
	names map[string]int // the tenant → its watch
	issue string         // the last error adding a watch, logged once
}

// watch scans the directory after each batch of inotify events, and every
// Rescan, in the calling goroutine: the inotify descriptor is read with a
// deadline (the next rescan), which ctx's end moves to now.
func (d *Dir) watch(ctx context.Context) error {
	fd, err := inotifyInit(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		d.log.Warn("tenants directory: no inotify: rescanning only", "dir", d.c.Dir, "every", d.c.Rescan.String(), "error", err)
		return d.poll(ctx)
	}
	// Non-blocking, so the runtime's poller serves it and a read deadline works.
	w := &inotify{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, dirWd: -1, wds: map[int]string{}, names: map[string]int{}}
	defer w.f.Close()
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Now()) })
	defer stop()

	w.sync(d)
	d.scan("start") // after the watches are set, so that no change falls between
	if w.sync(d) {
		d.scan("watch")
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	next := time.Now().Add(d.c.Rescan)
	for {
		if err := w.f.SetReadDeadline(next); err != nil {
			d.log.Warn("tenants directory: inotify unusable: rescanning only", "dir", d.c.Dir, "every", d.c.Rescan.String(), "error", err)
			return d.poll(ctx)
		}
		// After setting the deadline: if ctx ended before, this sees it;
		// if after, AfterFunc's deadline wakes the Read.
		if ctx.Err() != nil {
			return nil
		}
		n, err := w.f.Read(buf)
		trigger := ""
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() != nil {
				return nil
			}
			trigger, next = "rescan", time.Now().Add(d.c.Rescan)
		case err != nil:
			d.log.Warn("tenants directory: inotify failed: rescanning only", "dir", d.c.Dir, "every", d.c.Rescan.String(), "error", err)
			return d.poll(ctx)
		case w.handle(buf[:n]):
			trigger = "inotify"
		}
		if trigger != "" {
			d.scan(trigger)
		}
		if w.sync(d) { // new watches: look again at what they did not see
			d.scan("watch")
		}
	}
}

// handle notes what a batch of events says of the watches and reports
// whether the batch calls for a scan: any event but the end of a tenant's
// watch does.
func (w *inotify) handle(events []byte) (scan bool) {
	eachEvent(events, func(wd int, mask uint32) {
		switch {
		case w.dirWd >= 0 && wd == w.dirWd:
			if mask&unix.IN_MOVE_SELF != 0 { // the watch follows the directory away
				unix.InotifyRmWatch(w.fd, uint32(wd))
			}
			if mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0 {
				w.dirWd = -1 // sync watches whatever has the name now
			}
			scan = true
		case mask&(unix.IN_IGNORED|unix.IN_MOVE_SELF) != 0:
			if name, ok := w.wds[wd]; ok {
				if mask&unix.IN_MOVE_SELF != 0 {
					unix.InotifyRmWatch(w.fd, uint32(wd))
					scan = true
				}
				delete(w.wds, wd)
				delete(w.names, name)
			}
		default: // includes IN_Q_OVERFLOW: events were lost
			scan = true
		}
	})
	return scan
}

// eachEvent calls f with each whole event of a batch read from inotify.
func eachEvent(events []byte, f func(wd int, mask uint32)) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(events); {
		wd := int(int32(binary.NativeEndian.Uint32(events[off:])))
		mask := binary.NativeEndian.Uint32(events[off+4:])
		f(wd, mask)
		n := binary.NativeEndian.Uint32(events[off+12:])
		if uint64(n) > uint64(len(events)) {
			return
		}
		off += unix.SizeofInotifyEvent + int(n)
	}
}

// sync watches the tenants directory if it is not, and each tenant that is
// a directory of its own; it stops watching the tenants that are gone. It
// reports whether it added a watch. A watch that cannot be added (at
// fs.inotify.max_user_watches, ENOSPC) is logged once: rescans still see
// what it would have.
func (w *inotify) sync(d *Dir) (added bool) {
	var failed error
	if w.dirWd < 0 {
		wd, err := unix.InotifyAddWatch(w.fd, d.c.Dir, watchMask)
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			// Gone: the scan says so, and sync tries again after the next.
		case err != nil:
			failed = err
		default:
			w.dirWd, added = wd, true
		}
	}
	known := d.snap.Load().tenants
	for name, wd := range w.names {
		if st := known[name]; st == nil || !st.real {
			unix.InotifyRmWatch(w.fd, uint32(wd))
			delete(w.names, name)
			delete(w.wds, wd)
		}
	}
	for name, st := range known {
		if _, ok := w.names[name]; ok || !st.real || failed != nil {
			continue
		}
		wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(d.c.Dir, name), watchMask)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // gone since the scan: the next one sees it
		}
		if err != nil {
			failed = err
			continue
		}
		w.names[name], w.wds[wd] = wd, name
		added = true
	}
	issue := ""
	if failed != nil {
		issue = failed.Error()
	}
	if issue != "" && issue != w.issue {
		d.log.Warn("tenants directory: cannot watch all of it: rescans see the rest", "dir", d.c.Dir, "every", d.c.Rescan.String(), "watches", len(w.names), "error", failed)
	}
	w.issue = issue
	return added
}
