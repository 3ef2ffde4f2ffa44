package tokens

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// watchInterval is how often a Watched looks at its files for a change.
const watchInterval = time.Second

// Watched is a value built from the contents of files, and built again when
// one of them changes, so that a rotated Kubernetes Secret is used without
// a restart: private keys, Paygate's passwords. Get costs an atomic load,
// and at most one stat of each file a second. It is safe for concurrent use.
type Watched[T any] struct {
	what  string // names the value in logs: "signing key file"
	paths []string
	build func(files [][]byte, old *T) (T, error)
	log   *slog.Logger

	cur     atomic.Pointer[T]
	checked atomic.Int64 // UnixNano of the last look at the files

	mu     sync.Mutex
	stamps []fileStamp
}

// fileStamp is what tells a file changed: its modification time and size.
type fileStamp struct {
	mod  time.Time
	size int64
}

// Watch reads paths (each a regular file of at most 1 MiB) and builds the
// value from their contents, in order. build is called again, with the
// current value, whenever a file's modification time or size changes; an
// error then keeps the current value and is logged (log may be nil), never
// with the files' contents. what names the value in errors and logs.
func Watch[T any](what string, paths []string, build func(files [][]byte, old *T) (T, error), log *slog.Logger) (*Watched[T], error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watched[T]{what: what, paths: paths, build: build, log: log}
	if err := w.load(); err != nil {
		return nil, err
	}
	return w, nil
}

// Get returns the current value. A Watched of no file is a constant: Get
// never looks at anything.
func (w *Watched[T]) Get() T {
	if len(w.paths) == 0 {
		return *w.cur.Load()
	}
	now := time.Now().UnixNano()
	if last := w.checked.Load(); now-last > int64(watchInterval) && w.checked.CompareAndSwap(last, now) {
		if err := w.load(); err != nil {
			w.log.Error(w.what+" changed but cannot be used: keeping the previous one", "path", w.paths, "error", err)
		}
	}
	return *w.cur.Load()
}

// load builds the value again if a file changed since the last build.
func (w *Watched[T]) load() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps := make([]fileStamp, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("tokens: %s: %w", w.what, err)
		}
		stamps[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	old := w.cur.Load()
	if old != nil && sameStamps(stamps, w.stamps) {
		return nil
	}
	files := make([][]byte, len(w.paths))
	for i, p := range w.paths {
		b, err := ReadFile(p)
		if err != nil {
			return fmt.Errorf("tokens: %s: %w", w.what, err)
		}
		files[i] = b
	}
	v, err := w.build(files, old)
	if err != nil {
		return err
	}
	if old != nil {
		w.log.Info(w.what+" changed: using the new one", "path", w.paths)
	}
	w.cur.Store(&v)
	w.stamps = stamps
	w.checked.Store(time.Now().UnixNano())
	return nil
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}
