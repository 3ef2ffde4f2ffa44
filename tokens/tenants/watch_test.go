package tenants

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// inotifyOnly is the Rescan of the tests that must see changes through
// inotify: far beyond their 5s bound, so that a rescan cannot be what saw
// them. Without inotify the tests rescan often instead.
func inotifyOnly() time.Duration {
	if runtime.GOOS == "linux" {
		return time.Hour
	}
	return 50 * time.Millisecond
}

// TestWatchTenantDirectories adds, rotates and removes tenants that are
// each a directory of their own, laid out by the kubelet (files as symlinks
// through a ..data symlink swapped on a change), with Watch running.
func TestWatchTenantDirectories(t *testing.T) {
	dir := t.TempDir()
	addTenant(t, dir, "m0", creds("id-0", "secret-0"))
	log, rec := newLog()
	d := open(t, dir, log, inotifyOnly())
	m0, _ := d.Lookup("m0")
	watch(t, d)

	addTenant(t, dir, "m1", creds("id-1", "secret-1"))
	var first *Tenant
	waitFor(t, "m1 added", func() bool {
		first, _ = d.Lookup("m1")
		return first != nil
	})
	if got := readContent(t, first, "client_secret"); got != "secret-1" {
		t.Errorf("m1's client_secret = %q, want secret-1", got)
	}
	if want := filepath.Join(dir, "m1", "client_secret"); first.File("client_secret") != want {
		t.Errorf("m1's client_secret is at %q, want %q", first.File("client_secret"), want)
	}

	// Rotation: the kubelet swaps m1/..data.
	kubeletWrite(t, filepath.Join(dir, "m1"), creds("id-1", "secret-1b"))
	var second *Tenant
	waitFor(t, "m1 rotated", func() bool {
		second, _ = d.Lookup("m1")
		return second != first
	})
	if got := readContent(t, second, "client_secret"); got != "secret-1b" {
		t.Errorf("m1's client_secret = %q, want secret-1b", got)
	}

	// The same content written again keeps the pointer: once a later
	// change is seen, m1 has been scanned again since.
	kubeletWrite(t, filepath.Join(dir, "m1"), creds("id-1", "secret-1b"))
	addTenant(t, dir, "m2", creds("id-2", "secret-2"))
	waitFor(t, "m2 added", func() bool { _, err := d.Lookup("m2"); return err == nil })
	if got, _ := d.Lookup("m1"); got != second {
		t.Errorf("Lookup(m1) after the same files were written again = %p, want %p", got, second)
	}

	// A file removed from the Secret makes the tenant incomplete.
	kubeletWrite(t, filepath.Join(dir, "m2"), map[string]string{"client_id": "id-2"})
	waitFor(t, "m2 incomplete", func() bool { _, err := d.Lookup("m2"); return errors.Is(err, ErrIncompleteTenant) })

	must(t, os.RemoveAll(filepath.Join(dir, "m1")))
	waitFor(t, "m1 removed", func() bool { _, err := d.Lookup("m1"); return err == ErrUnknownTenant })

	if got, err := d.Lookup("m0"); got != m0 || err != nil {
		t.Errorf("Lookup(m0) = %p, %v, want the same %p throughout", got, err, m0)
	}
	if n := rec.count("tenant added", "tenant=m1"); n != 1 {
		t.Errorf("m1 logged added %d times, want 1:\n%s", n, rec.all())
	}
}

// TestWatchProjectedVolume: one projected volume holds every tenant, each
// top-level entry a symlink through the volume's ..data, which the kubelet
// swaps whenever any tenant's Secret changes. Tenants whose files keep their
// content keep their *Tenant.
func TestWatchProjectedVolume(t *testing.T) {
	dir := t.TempDir()
	volume := map[string]string{
		"m1/client_id": "id-1", "m1/client_secret": "secret-1",
		"m2/client_id": "id-2", "m2/client_secret": "secret-2", "m2/settings": "MERCHANT_ID=merchant-2",
	}
	kubeletWrite(t, dir, volume)
	d := open(t, dir, nil, inotifyOnly())
	m1, _ := d.Lookup("m1")
	m2, _ := d.Lookup("m2")
	if m1 == nil || m2 == nil || m2.Settings["MERCHANT_ID"] != "merchant-2" {
		t.Fatalf("Lookup(m1), Lookup(m2) = %+v, %+v", m1, m2)
	}
	watch(t, d)

	volume["m3/client_id"], volume["m3/client_secret"] = "id-3", "secret-3"
	kubeletWrite(t, dir, volume)
	waitFor(t, "m3 added", func() bool { _, err := d.Lookup("m3"); return err == nil })
	if got, _ := d.Lookup("m1"); got != m1 {
		t.Errorf("Lookup(m1) after another tenant was added = %p, want the same %p", got, m1)
	}

	volume["m1/client_secret"] = "secret-1b"
	delete(volume, "m2/client_id")
	delete(volume, "m2/client_secret")
	delete(volume, "m2/settings")
	kubeletWrite(t, dir, volume)
	waitFor(t, "m2 removed", func() bool { _, err := d.Lookup("m2"); return err == ErrUnknownTenant })
	waitFor(t, "m1 rotated", func() bool { got, _ := d.Lookup("m1"); return got != m1 })
	if got, _ := d.Lookup("m1"); readContent(t, got, "client_secret") != "secret-1b" {
		t.Errorf("m1's client_secret = %q, want secret-1b", readContent(t, got, "client_secret"))
	}
	if d.Len() != 2 {
		t.Errorf("Len() = %d, want 2", d.Len())
	}
}

// TestWatchRescans: without inotify, Watch rescans every Rescan; a problem
// is logged once however many rescans see it.
func TestWatchRescans(t *testing.T) {
	noInotify(t)
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		writeTenant(t, dir, "m-good", creds("id", "secret"))
		writeTenant(t, dir, "m-bad", map[string]string{"client_id": "id"})
		log, rec := newLog()
		d := open(t, dir, log, 0) // 5s
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- d.Watch(ctx) }()

		time.Sleep(time.Minute + time.Second)
		if n := rec.count("tenant incomplete", "tenant=m-bad"); n != 1 {
			t.Errorf("m-bad logged incomplete %d times in a minute of rescans, want 1:\n%s", n, rec.all())
		}
		writeTenant(t, dir, "m-new", creds("id", "secret"))
		time.Sleep(5 * time.Second)
		if _, err := d.Lookup("m-new"); err != nil {
			t.Errorf("Lookup(m-new) 5s after it was added = %v, want it found by a rescan", err)
		}
		must(t, os.RemoveAll(filepath.Join(dir, "m-new")))
		time.Sleep(5 * time.Second)
		if _, err := d.Lookup("m-new"); err != ErrUnknownTenant {
			t.Errorf("Lookup(m-new) 5s after it was removed = %v, want ErrUnknownTenant", err)
		}

		if err := d.Watch(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
			t.Errorf("a second Watch() = %v, want an error", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch() = %v, want nil", err)
		}
		if runtime.GOOS == "linux" && rec.count("no inotify: rescanning only") != 1 {
			t.Errorf("the fallback to rescans is not logged:\n%s", rec.all())
		}
	})
}

// TestWatchDirectoryGoneAndBack: the tenants directory removed keeps the
// tenants last found (logged once); made again, it is watched again.
func TestWatchDirectoryGoneAndBack(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "tenants")
	writeTenant(t, dir, "m1", creds("id", "secret"))
	log, rec := newLog()
	d := open(t, dir, log, 20*time.Millisecond)
	watch(t, d)

	must(t, os.Rename(dir, filepath.Join(root, "gone")))
	waitFor(t, "the directory's loss logged", func() bool { return rec.count("tenants directory unreadable") > 0 })
	if _, err := d.Lookup("m1"); err != nil {
		t.Errorf("Lookup(m1) with the directory gone = %v, want the last tenants kept", err)
	}
	writeTenant(t, dir, "m2", creds("id", "secret"))
	waitFor(t, "m2 in the directory made again", func() bool { _, err := d.Lookup("m2"); return err == nil })
	waitFor(t, "m1 gone", func() bool { _, err := d.Lookup("m1"); return err == ErrUnknownTenant })
	if n := rec.count("tenants directory unreadable"); n != 1 {
		t.Errorf("the directory's loss logged %d times, want 1:\n%s", n, rec.all())
	}
}
