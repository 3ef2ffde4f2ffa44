package tenants

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// maxFile is the largest credential file, in bytes, as in package tokens.
const maxFile = 1 << 20

// tenantState is one tenant as a scan found it. It is never modified.
type tenantState struct {
	t    *Tenant // what Lookup returns: exactly one of t and err is set
	err  error
	real bool // the entry is a directory, not a symlink to one: Watch watches it

	// Fingerprints, 64-bit seeded hashes, so that a tenant costs 16 bytes
	// whatever its number of files; a collision would hide one change.
	stamps  uint64 // of the files' stamps: unchanged, the files are not read again
	content uint64 // of which files the tenant has and of their contents
}

// stamp tells that a file may have changed without reading it: a Kubernetes
// rotation makes new files (a new inode), a rewrite in place a new
// modification time or size.
type stamp struct {
	missing  bool
	err      string // why the file could not be looked at, if it could not
	dev, ino uint64
	size     int64
	mtime    int64
	mode     fs.FileMode
}

// statFile stamps the file at path, following symlinks.
func statFile(path string) stamp {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stamp{missing: true}
	}
	if err != nil {
		return stamp{err: errText(err)}
	}
	dev, ino := fileID(fi)
	return stamp{dev: dev, ino: ino, size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}

// errText is err without the path a *PathError repeats.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// scan looks at the directory and publishes what it finds for Lookup, if
// anything changed, logging each change once. A tenant whose files' stamps
// are unchanged is not read again. If the directory cannot be read, the
// last snapshot stays and the error is returned (and logged once).
func (d *Dir) scan(trigger string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, err := os.Open(d.c.Dir)
	if err != nil {
		return d.dirFailed(err)
	}
	defer f.Close()
	last := d.snap.Load()
	var before map[string]*tenantState
	if last != nil {
		before = last.tenants
	}
	known := make(map[string]*tenantState, len(before))
	issues := map[string]string{}
	seen := 0
read:
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			name := e.Name()
			if name == "" || name[0] == '.' { // ..data, ..2026_…, a temporary directory
				continue
			}
			if seen == maxTenants {
				issues["limit"] = fmt.Sprintf("tenants: %s holds more than %d entries: the rest are ignored", d.c.Dir, maxTenants)
				break read
			}
			seen++
			if ValidName(name) != nil {
				issues["entry "+name] = fmt.Sprintf("tenants: %s: entry %s ignored: not a tenant name", d.c.Dir, quoteShort(name))
				continue
			}
			real := e.IsDir()
			if !real { // a symlink to a directory, as in a projected volume
				fi, err := os.Stat(filepath.Join(d.c.Dir, name))
				if errors.Is(err, fs.ErrNotExist) { // dangling while Kubernetes updates the volume
					continue
				}
				if err != nil || !fi.IsDir() {
					issues["entry "+name] = fmt.Sprintf("tenants: %s: entry %s ignored: not a directory", d.c.Dir, quoteShort(name))
					continue
				}
			}
			known[name] = d.scanTenant(name, real, before[name])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return d.dirFailed(err)
		}
	}

	changed := last == nil || len(known) != len(before)
	incomplete := 0
	for name, st := range known {
		if st.err != nil {
			incomplete++
		}
		if old := before[name]; st != old {
			changed = true
			d.logChange(trigger, name, old, st, last == nil)
		}
	}
	for name := range before {
		if known[name] == nil {
			changed = true
			d.log.Info("tenant removed", "tenant", name, "trigger", trigger)
		}
	}
	for key, issue := range issues {
		if d.issues[key] != issue {
			d.log.Warn("tenants directory: problem", "trigger", trigger, "error", issue)
		}
	}
	changed = changed || !maps.Equal(issues, d.issues)
	d.issues = issues
	if changed {
		d.snap.Store(&snapshot{tenants: known, issues: slices.Sorted(maps.Values(issues))})
	}
	if last == nil {
		d.log.Info("tenants directory scanned", "dir", d.c.Dir, "tenants", len(known), "incomplete", incomplete)
	}
	return nil
}

// dirFailed logs that the directory cannot be read, once per distinct
// error, and returns the error.
func (d *Dir) dirFailed(err error) error {
	if why := errText(err); d.issues["dir"] != why { // open and readdirent fail alike
		d.issues["dir"] = why
		d.log.Error("tenants directory unreadable: keeping the tenants last found", "dir", d.c.Dir, "error", err)
	}
	return fmt.Errorf("tenants: %w", err)
}

// logChange logs how a tenant changed from old (nil if new) to st.
func (d *Dir) logChange(trigger, name string, old, st *tenantState, opening bool) {
	if st.err != nil {
		if old == nil || old.err == nil || old.err.Error() != st.err.Error() {
			d.log.Warn("tenant incomplete", "tenant", name, "trigger", trigger, "error", st.err)
		}
		return
	}
	switch {
	case old == nil && !opening:
		d.log.Info("tenant added", "tenant", name, "trigger", trigger)
	case old == nil:
	case old.err != nil:
		d.log.Info("tenant complete", "tenant", name, "trigger", trigger)
	case old.t != st.t:
		d.log.Info("tenant changed", "tenant", name, "trigger", trigger)
	}
}

// scanTenant stats the tenant's files. If their stamps are old's, it
// returns old; else it reads them (to hash their contents, which it does
// not keep) and the settings file, and returns the tenant's new state. The
// *Tenant stays old's if the files have the same contents and the settings
// the same values.
func (d *Dir) scanTenant(name string, real bool, old *tenantState) *tenantState {
	dir := filepath.Join(d.c.Dir, name)
	stamps := d.stamps[:0] // reused: most tenants are unchanged
	var h maphash.Hash
	h.SetSeed(d.seed)
	for _, fn := range d.names {
		stamps = append(stamps, statFile(filepath.Join(dir, fn)))
		maphash.WriteComparable(&h, stamps[len(stamps)-1])
	}
	stamps = append(stamps, statFile(filepath.Join(dir, settingsFile)))
	maphash.WriteComparable(&h, stamps[len(stamps)-1])
	d.stamps = stamps
	st := &tenantState{stamps: h.Sum64(), real: real}
	if old != nil && old.stamps == st.stamps {
		if old.real == real {
			return old
		}
		*st = *old
		st.real = real
		return st
	}

	var missing, problems []string
	var has uint64
	h.Reset()
	for i, fn := range d.names {
		s := stamps[i]
		if s.missing {
			if i < d.required {
				missing = append(missing, fn)
			}
			h.WriteByte(0)
			continue
		}
		path := filepath.Join(dir, fn)
		b, err := readFile(fn, path, s, maxFile)
		if err == nil && len(bytes.TrimSpace(b)) == 0 {
			err = fmt.Errorf("%s is empty", fn)
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		h.WriteByte(1)
		maphash.WriteComparable(&h, len(b))
		h.Write(b)
		clear(b)
		has |= 1 << i
	}
	st.content = h.Sum64()
	var settings map[string]string
	if s := stamps[len(d.names)]; !s.missing {
		b, err := readFile("settings file", filepath.Join(dir, settingsFile), s, maxSettings)
		if err == nil {
			settings, err = parseSettings(b, d.c.Settings)
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
		if len(settings) == 0 {
			settings = nil
		}
	}

	switch {
	case len(missing) > 0 || len(problems) > 0:
		st.err = &IncompleteError{Tenant: name, Missing: missing, Problems: problems}
	case old != nil && old.t != nil && old.content == st.content && maps.Equal(old.t.Settings, settings):
		st.t = old.t
	default:
		st.t = &Tenant{Name: name, Settings: settings, files: d.files, has: has}
	}
	return st
}

// readFile reads the file at path, stamped s, which the tenant knows as
// what. It must be a regular file of at most limit bytes. Its errors name
// what, never the content.
func readFile(what, path string, s stamp, limit int64) ([]byte, error) {
	switch {
	case s.err != "":
		return nil, fmt.Errorf("%s cannot be read: %s", what, s.err)
	case !s.mode.IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", what)
	case s.size > limit:
		return nil, fmt.Errorf("%s is larger than %d bytes", what, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %s", what, errText(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read: %s", what, errText(err))
	}
	if int64(len(b)) > limit {
		clear(b)
		return nil, fmt.Errorf("%s is larger than %d bytes", what, limit)
	}
	return b, nil
}

// quoteShort quotes a directory entry's name, cut to 64 bytes, for a log.
func quoteShort(name string) string {
	if len(name) > 64 {
		return strconv.Quote(name[:64]) + "…"
	}
	return strconv.Quote(name)
}
