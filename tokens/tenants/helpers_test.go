package tenants

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logRecorder is a slog.Handler that keeps every record's message and
// attributes, for counting how often something was logged.
type logRecorder struct {
	mu      sync.Mutex
	records []string // "LEVEL message key=value …"
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, b.String())
	return nil
}

// count returns how many records hold every one of parts.
func (r *logRecorder) count(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
next:
	for _, rec := range r.records {
		for _, p := range parts {
			if !strings.Contains(rec, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// all returns every record, one a line.
func (r *logRecorder) all() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.records, "\n")
}

func newLog() (*slog.Logger, *logRecorder) {
	r := &logRecorder{}
	return slog.New(r), r
}

// stamps numbers the ..<timestamp> directories kubeletWrite makes.
var stamps atomic.Int64

// kubeletWrite leaves dir as the kubelet's atomic writer leaves a Secret
// volume: the files (path → content; a path may hold a directory, as a
// projected volume's <tenant>/client_id) written into a new ..<timestamp>
// directory, ..data swapped to it by a rename, each top-level entry a
// symlink through ..data, the entries no longer there and the previous
// ..<timestamp> directory removed.
func kubeletWrite(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	ts := fmt.Sprintf("..2026_01_02_15_04_05.%d", stamps.Add(1))
	top := map[string]bool{}
	for p, content := range files {
		path := filepath.Join(dir, ts, p)
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, []byte(content), 0o644))
		top[strings.Split(p, "/")[0]] = true
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	must(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	for name := range top {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
		}
	}
	if old != "" {
		ents, err := os.ReadDir(filepath.Join(dir, old))
		must(t, err)
		for _, e := range ents {
			if !top[e.Name()] {
				must(t, os.Remove(filepath.Join(dir, e.Name())))
			}
		}
		must(t, os.RemoveAll(filepath.Join(dir, old)))
	}
}

// addTenant adds a tenant to the tenants directory dir at once, as a
// directory of its own laid out by the kubelet: built under a hidden name,
// then renamed.
func addTenant(t testing.TB, dir, name string, files map[string]string) {
	t.Helper()
	tmp := filepath.Join(dir, ".tmp-"+name)
	must(t, os.Mkdir(tmp, 0o755))
	kubeletWrite(t, tmp, files)
	must(t, os.Rename(tmp, filepath.Join(dir, name)))
}

// writeTenant writes a tenant's files as plain files.
func writeTenant(t testing.TB, dir, name string, files map[string]string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
	for f, content := range files {
		must(t, os.WriteFile(filepath.Join(dir, name, f), []byte(content), 0o644))
	}
}

// creds are a tenant's two required files.
func creds(id, secret string) map[string]string {
	return map[string]string{"client_id": id, "client_secret": secret}
}

// open opens dir requiring client_id and client_secret.
func open(t testing.TB, dir string, log *slog.Logger, rescan time.Duration) *Dir {
	t.Helper()
	d, err := Open(Config{
		Dir:      dir,
		Files:    []string{"client_id", "client_secret"},
		Optional: []string{"api_key"},
		Settings: []string{"MERCHANT_ID", "SCOPES", "TOKEN_PARAMS"},
		Logger:   log,
		Rescan:   rescan,
	})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	return d
}

// waitFor polls cond until it holds, failing the test after 5s: the bound
// the issue sets on seeing a change.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		<-tick.C
	}
}

// watch runs d.Watch until the test ends.
func watch(t *testing.T, d *Dir) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch() = %v, want nil", err)
		}
	})
}

// readContent reads a tenant's file, as a source would at use.
func readContent(t testing.TB, tn *Tenant, file string) string {
	t.Helper()
	b, err := os.ReadFile(tn.File(file))
	must(t, err)
	return string(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
