package tenants

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestOpenChecksConfig(t *testing.T) {
	_, err := Open(Config{
		Files:    []string{"client_id", "a/b", "settings", "client_id"},
		Optional: []string{".hidden"},
		Settings: []string{"merchant_id", "SCOPES", "SCOPES"},
		Rescan:   -1,
	})
	if err == nil {
		t.Fatal("Open() = nil, want every problem")
	}
	for _, want := range []string{
		"no directory", `file name "a/b"`, `file name "settings" is the settings file's`,
		`file name "client_id" given twice`, `file name ".hidden"`, `settings key "merchant_id"`,
		`settings key "SCOPES" given twice`, "rescan interval -1ns is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open() = %v, want it to say %q", err, want)
		}
	}

	dir := t.TempDir()
	if _, err := Open(Config{Dir: filepath.Join(dir, "nowhere")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing directory) = %v, want ErrNotExist", err)
	}
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if _, err := Open(Config{Dir: file}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Open(a file) = %v, want not a directory", err)
	}
}

// TestLookupNeverTouchesFiles proves that Lookup answers from memory: it
// works after the directory is gone, and refuses a hostile name before
// looking it up, so that no name can make it open a file such as the
// canary beside the tenants directory.
func TestLookupNeverTouchesFiles(t *testing.T) {
	root := t.TempDir()
	canary := filepath.Join(root, "canary")
	must(t, os.WriteFile(canary, []byte("canary-secret"), 0o644))
	must(t, os.Mkdir(filepath.Join(root, "canary-dir"), 0o755))
	writeTenant(t, filepath.Join(root, "canary-dir"), "x", creds("id", "secret"))
	dir := filepath.Join(root, "tenants")
	writeTenant(t, dir, "m1", creds("id-1", "secret-1"))

	d := open(t, dir, nil, 0)
	want, err := d.Lookup("m1")
	if err != nil {
		t.Fatalf("Lookup(m1) = %v", err)
	}
	must(t, os.RemoveAll(dir))

	if got, err := d.Lookup("m1"); got != want || err != nil {
		t.Errorf("Lookup(m1) after the directory went = %p, %v, want %p from memory", got, err, want)
	}
	if _, err := d.Lookup("m2"); err != ErrUnknownTenant {
		t.Errorf("Lookup(m2) = %v, want ErrUnknownTenant", err)
	}
	hostile := []string{
		"../canary", "../canary-dir/x", "..", ".", "a/b", "/etc/passwd", "%2e%2e", "..%2fcanary",
		"m1/../../canary", strings.Repeat("a", 10240), "", "m1\x00", "m1\n", "m1\r\nX-Other: 1", "mérchant", `..\canary`,
	}
	for _, name := range hostile {
		if got, err := d.Lookup(name); got != nil || !errors.Is(err, ErrBadName) {
			t.Errorf("Lookup(%q) = %v, %v, want ErrBadName", name, got, err)
		}
	}

	// Were a hostile name in the snapshot, Lookup would still refuse it:
	// the name is checked before the map is read.
	s := &snapshot{tenants: map[string]*tenantState{}}
	for _, name := range hostile {
		s.tenants[name] = &tenantState{t: want}
	}
	d.snap.Store(s)
	for _, name := range hostile {
		if got, err := d.Lookup(name); got != nil || !errors.Is(err, ErrBadName) {
			t.Errorf("Lookup(%q) with the name in the snapshot = %v, %v, want ErrBadName", name, got, err)
		}
	}
}

func TestLookupAllocs(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "m1", creds("id", "secret"))
	writeTenant(t, dir, "m2", map[string]string{"client_id": "id"})
	d := open(t, dir, nil, 0)
	long := strings.Repeat("a", 10240)
	if n := testing.AllocsPerRun(100, func() {
		d.Lookup("m1")
		d.Lookup("m2")
		d.Lookup("m3")
		d.Lookup("../x")
		d.Lookup(long)
	}); n != 0 {
		t.Errorf("Lookup allocates %v times, want 0", n)
	}
}

// TestIncompleteTenant: a tenant lacking a file, or with one that cannot be
// used, is incomplete; its error names the files, not their content; it is
// logged once, not at every rescan, and again when it changes; the other
// tenants are unaffected.
func TestIncompleteTenant(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "m-good", creds("id-good", "secret-good"))
	writeTenant(t, dir, "m-bad", map[string]string{"client_id": "id-bad-value"})
	writeTenant(t, dir, "m-empty", creds("id", " \n"))
	writeTenant(t, dir, "m-dir", map[string]string{"client_id": "id"})
	must(t, os.Mkdir(filepath.Join(dir, "m-dir", "client_secret"), 0o755))
	writeTenant(t, dir, "m-opt", creds("id", "secret"))
	must(t, os.WriteFile(filepath.Join(dir, "m-opt", "api_key"), []byte("key"), 0o644))
	log, rec := newLog()
	d := open(t, dir, log, 0)

	if d.Len() != 5 {
		t.Errorf("Len() = %d, want 5", d.Len())
	}
	good, err := d.Lookup("m-good")
	if err != nil || good.Name != "m-good" || readContent(t, good, "client_secret") != "secret-good" {
		t.Fatalf("Lookup(m-good) = %+v, %v", good, err)
	}
	if good.File("api_key") != "" {
		t.Errorf("Lookup(m-good).File(api_key) = %q, want none", good.File("api_key"))
	}
	if tn, err := d.Lookup("m-opt"); err != nil || readContent(t, tn, "api_key") != "key" {
		t.Errorf("Lookup(m-opt) = %+v, %v, want its api_key", tn, err)
	}
	for name, want := range map[string]string{
		"m-bad":   `tenants: tenant "m-bad" is incomplete: missing client_secret`,
		"m-empty": `tenants: tenant "m-empty" is incomplete: client_secret is empty`,
		"m-dir":   `tenants: tenant "m-dir" is incomplete: client_secret is not a regular file`,
	} {
		tn, err := d.Lookup(name)
		if tn != nil || !errors.Is(err, ErrIncompleteTenant) || err.Error() != want {
			t.Errorf("Lookup(%s) = %v, %v, want %q", name, tn, err, want)
		}
	}
	_, err = d.Lookup("m-bad")
	var ie *IncompleteError
	if !errors.As(err, &ie) || ie.Tenant != "m-bad" || !slices.Equal(ie.Missing, []string{"client_secret"}) {
		t.Errorf("Lookup(m-bad) = %#v, want an *IncompleteError missing client_secret", err)
	}
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), `"m-bad" is incomplete: missing client_secret`) {
		t.Errorf("Err() = %v, want m-bad's problem", err)
	}
	if strings.Contains(rec.all(), "id-bad-value") {
		t.Errorf("the log quotes a file's content:\n%s", rec.all())
	}

	for range 3 {
		must(t, d.scan("rescan"))
	}
	if n := rec.count("tenant incomplete", "tenant=m-bad"); n != 1 {
		t.Errorf("m-bad logged incomplete %d times over 4 scans, want 1:\n%s", n, rec.all())
	}
	if got, _ := d.Lookup("m-good"); got != good {
		t.Errorf("Lookup(m-good) after rescans = %p, want the same %p", got, good)
	}

	// Another problem is logged; the tenant made whole is logged once.
	must(t, os.WriteFile(filepath.Join(dir, "m-bad", "client_secret"), nil, 0o644))
	must(t, d.scan("rescan"))
	must(t, d.scan("rescan"))
	if n := rec.count("tenant incomplete", "tenant=m-bad", "client_secret is empty"); n != 1 {
		t.Errorf("m-bad's new problem logged %d times, want 1:\n%s", n, rec.all())
	}
	must(t, os.WriteFile(filepath.Join(dir, "m-bad", "client_secret"), []byte("secret-bad"), 0o644))
	must(t, d.scan("rescan"))
	must(t, d.scan("rescan"))
	if n := rec.count("tenant complete", "tenant=m-bad"); n != 1 {
		t.Errorf("m-bad logged complete %d times, want 1:\n%s", n, rec.all())
	}
	if tn, err := d.Lookup("m-bad"); err != nil || readContent(t, tn, "client_secret") != "secret-bad" {
		t.Errorf("Lookup(m-bad) = %v, %v, want it complete", tn, err)
	}
	if got, _ := d.Lookup("m-good"); got != good {
		t.Errorf("Lookup(m-good) = %p, want the same %p", got, good)
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "m-loop", map[string]string{"client_id": "id"})
	must(t, os.Symlink("client_secret", filepath.Join(dir, "m-loop", "client_secret")))
	writeTenant(t, dir, "m-mode", creds("id", "secret"))
	must(t, os.Chmod(filepath.Join(dir, "m-mode", "client_secret"), 0))
	d := open(t, dir, nil, 0)
	if _, err := d.Lookup("m-loop"); !errors.Is(err, ErrIncompleteTenant) || !strings.Contains(err.Error(), "client_secret cannot be read: too many levels of symbolic links") {
		t.Errorf("Lookup(m-loop) = %v, want client_secret unreadable", err)
	}
	if os.Geteuid() == 0 {
		return // root reads any file
	}
	if _, err := d.Lookup("m-mode"); !errors.Is(err, ErrIncompleteTenant) || !strings.Contains(err.Error(), "client_secret cannot be read: permission denied") {
		t.Errorf("Lookup(m-mode) = %v, want client_secret unreadable", err)
	}
}

// TestDirectoryEntries: hidden entries are skipped; an entry that is not a
// directory, or whose name cannot be a tenant's, is a problem of the
// directory, logged once; a symlink to a directory is a tenant.
func TestDirectoryEntries(t *testing.T) {
	dir := t.TempDir()
	writeTenant(t, dir, "m1", creds("id", "secret"))
	writeTenant(t, dir, ".hidden", creds("id", "secret"))
	writeTenant(t, dir, "bad name", creds("id", "secret"))
	must(t, os.WriteFile(filepath.Join(dir, "README"), []byte("hello"), 0o644))
	other := t.TempDir()
	writeTenant(t, other, "x", creds("id", "secret"))
	must(t, os.Symlink(filepath.Join(other, "x"), filepath.Join(dir, "linked")))
	must(t, os.Symlink(filepath.Join(other, "nowhere"), filepath.Join(dir, "dangling")))
	log, rec := newLog()
	d := open(t, dir, log, 0)

	if d.Len() != 2 {
		t.Errorf("Len() = %d, want 2 (m1, linked)", d.Len())
	}
	if _, err := d.Lookup("linked"); err != nil {
		t.Errorf("Lookup(linked) = %v, want a tenant", err)
	}
	for _, name := range []string{"dangling", "README"} {
		if _, err := d.Lookup(name); err != ErrUnknownTenant {
			t.Errorf("Lookup(%s) = %v, want ErrUnknownTenant", name, err)
		}
	}
	err := d.Err()
	for _, want := range []string{`entry "README" ignored: not a directory`, `entry "bad name" ignored: not a tenant name`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %v, want %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "hidden") || strings.Contains(err.Error(), "dangling")) {
		t.Errorf("Err() = %v, want nothing of hidden or dangling entries", err)
	}
	must(t, d.scan("rescan"))
	if n := rec.count("README"); n != 1 {
		t.Errorf("README logged %d times over 2 scans, want 1:\n%s", n, rec.all())
	}
}

func TestTooManyTenants(t *testing.T) {
	defer func(n int) { maxTenants = n }(maxTenants)
	maxTenants = 3
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		writeTenant(t, dir, name, creds("id", "secret"))
	}
	d := open(t, dir, nil, 0)
	if d.Len() != 3 {
		t.Errorf("Len() = %d, want 3", d.Len())
	}
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), "more than 3 entries: the rest are ignored") {
		t.Errorf("Err() = %v, want the limit", err)
	}
}

// TestSameContentSamePointer: files rewritten with the same content keep the
// *Tenant; a changed file, or a changed setting, makes a new one.
func TestSameContentSamePointer(t *testing.T) {
	dir := t.TempDir()
	tdir := filepath.Join(dir, "m1")
	must(t, os.Mkdir(tdir, 0o755))
	kubeletWrite(t, tdir, creds("id", "secret"))
	d := open(t, dir, nil, 0)
	first, _ := d.Lookup("m1")

	kubeletWrite(t, tdir, creds("id", "secret"))
	must(t, d.scan("rescan"))
	if got, err := d.Lookup("m1"); got != first || err != nil {
		t.Errorf("Lookup(m1) after the same files were written again = %p, %v, want the same %p", got, err, first)
	}

	kubeletWrite(t, tdir, creds("id", "secret-2"))
	must(t, d.scan("rescan"))
	second, err := d.Lookup("m1")
	if second == first || err != nil || readContent(t, second, "client_secret") != "secret-2" {
		t.Errorf("Lookup(m1) after a rotation = %p, %v, want a new *Tenant", second, err)
	}

	files := creds("id", "secret-2")
	files["settings"] = "SCOPES=a"
	kubeletWrite(t, tdir, files)
	must(t, d.scan("rescan"))
	third, err := d.Lookup("m1")
	if third == second || err != nil || third.Settings["SCOPES"] != "a" {
		t.Errorf("Lookup(m1) after a new setting = %p, %+v, %v, want a new *Tenant", third, third, err)
	}
}
