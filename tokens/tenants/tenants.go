// Package tenants is the directory of a route's tenants: many merchants
// behind one route, each with its own credentials, chosen per request by a
// header's value.
//
// The directory holds one subdirectory per tenant, named by the tenant, each
// with the tenant's credential files under fixed names and an optional
// settings file of KEY=value lines:
//
//	/var/run/secrets/tenants/
//	  merchant-1/client_id
//	  merchant-1/client_secret
//	  merchant-1/settings
//	  merchant-2/…
//
// Either layout Kubernetes makes works: one projected volume whose sources
// put each tenant's Secret under <tenant>/ (the directory's ..data symlink
// is swapped on a change, and each <tenant> is a symlink through it), or a
// directory per tenant, each with its own ..data. A [Dir] scans the
// directory, and [Dir.Watch] scans it again on every change inotify reports
// and every Rescan in any case. [Dir.Lookup] answers from the last scan: it
// never touches the file system.
package tenants

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds.
const (
	// MaxNameLen is the longest tenant name, in bytes.
	MaxNameLen = 128
	// maxSettings is the largest settings file, in bytes.
	maxSettings = 64 << 10
	// defaultRescan is Config.Rescan's default.
	defaultRescan = 5 * time.Second
	// settingsFile is the name of a tenant's optional settings file.
	settingsFile = "settings"
)

// maxTenants is how many entries of the directory a scan considers; the rest
// are ignored. A variable so that a test can lower it.
var maxTenants = 100_000

// Errors of Lookup. Each error Lookup returns is one of these or wraps one.
var (
	// ErrBadName is the error of a name that cannot be a tenant's; see
	// ValidName.
	ErrBadName = errors.New("tenants: bad tenant name")
	// ErrUnknownTenant is the error of a valid name that is no tenant's.
	// Lookup returns it unwrapped.
	ErrUnknownTenant = errors.New("tenants: unknown tenant")
	// ErrIncompleteTenant is wrapped by the *IncompleteError of a tenant that
	// lacks a file or has one that cannot be used.
	ErrIncompleteTenant = errors.New("tenants: incomplete tenant")
)

// The errors of ValidName, built once so that ValidName does not allocate.
var (
	errNameEmpty = fmt.Errorf("%w: empty", ErrBadName)
	errNameLong  = fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLen)
	errNameDot   = fmt.Errorf("%w: starts with '.'", ErrBadName)
	errNameChar  = fmt.Errorf("%w: only letters, digits, '-', '_' and '.' are allowed", ErrBadName)
)

// Config describes a tenants directory.
type Config struct {
	// Dir is the tenants directory. Required.
	Dir string
	// Files are the file names every tenant must have, such as "client_id"
	// and "client_secret"; a tenant lacking one is incomplete. If empty, a
	// tenant needs no file.
	Files []string
	// Optional are the file names a tenant may have. A tenant's other files
	// are ignored.
	Optional []string
	// Settings are the keys allowed in a tenant's settings file. If empty, a
	// tenant's settings file may hold no key.
	Settings []string
	// Logger receives the changes scans find: tenants added, removed,
	// changed, or incomplete, each once per change; never a file's content.
	// If nil, nothing is logged.
	Logger *slog.Logger
	// Rescan is how often Watch scans the directory whatever inotify
	// reports. If zero, 5s is used.
	Rescan time.Duration
}

// Tenant is one tenant's current credentials. It is immutable: a scan that
// finds a file's content or a setting changed makes a new *Tenant, so
// comparing pointers tells a change. A file rewritten with the same content
// keeps the pointer.
type Tenant struct {
	// Name is the tenant's name, its directory's.
	Name string
	// Settings maps each key of the tenant's settings file to its value;
	// nil if the tenant has none. Do not modify.
	Settings map[string]string

	files *fileSet // the Dir's, shared by its tenants
	has   uint64   // bit i: the tenant has files.names[i]
}

// fileSet is where a Dir's tenants' files are: root/<tenant>/<name>.
type fileSet struct {
	root  string
	names []string // Config.Files then Config.Optional
}

// File returns the path of the tenant's file name (one of Config.Files, or
// of Config.Optional that it has), "" if it has none. The path is the one
// in the tenant's directory, symlinks unresolved, so that a source
// re-reading it at use gets the current file. A tenant keeps which files it
// has, not their paths: 10,000 tenants' maps of paths cost megabytes.
func (t *Tenant) File(name string) string {
	for i, n := range t.files.names {
		if n == name && t.has&(1<<i) != 0 {
			return filepath.Join(t.files.root, t.Name, name)
		}
	}
	return ""
}

// IncompleteError is the error of a tenant that lacks a required file or has
// one that cannot be used. It names files and settings keys, never a value.
type IncompleteError struct {
	// Tenant is the tenant's name.
	Tenant string
	// Missing are the required files the tenant lacks, in Config order.
	Missing []string
	// Problems are the tenant's other problems: a file that is empty, not a
	// regular file or unreadable; a settings file that is too large, or has
	// a malformed line, an unknown or repeated key.
	Problems []string
}

func (e *IncompleteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tenants: tenant %q is incomplete: ", e.Tenant)
	parts := e.Problems
	if len(e.Missing) > 0 {
		parts = append([]string{"missing " + strings.Join(e.Missing, ", ")}, e.Problems...)
	}
	b.WriteString(strings.Join(parts, "; "))
	return b.String()
}

// Unwrap returns ErrIncompleteTenant.
func (e *IncompleteError) Unwrap() error { return ErrIncompleteTenant }

// Dir is a tenants directory. Its methods are safe for concurrent use.
type Dir struct {
	c        Config
	names    []string // Files then Optional: what a scan looks at, with settingsFile
	required int      // len(c.Files)
	files    *fileSet // root and names, for the tenants
	log      *slog.Logger
	seed     maphash.Seed
	watching atomic.Bool

	snap atomic.Pointer[snapshot] // what Lookup reads

	mu     sync.Mutex        // held by a scan
	stamps []stamp           // a scan's scratch space
	issues map[string]string // the directory's problems the last scan logged, by what they concern
}

// snapshot is what a scan found: every tenant, complete or not, and the
// directory's own problems. It is never modified: a scan that finds a
// change publishes a new one.
type snapshot struct {
	tenants map[string]*tenantState
	issues  []string // sorted
}

// Open checks c, checks that c.Dir is a directory and scans it. A tenant's
// problem is no error of Open's: the tenant is incomplete (see Lookup and
// Err). Nothing is watched until Watch is called.
func Open(c Config) (*Dir, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	c.Dir = filepath.Clean(c.Dir)
	if c.Rescan == 0 {
		c.Rescan = defaultRescan
	}
	fi, err := os.Stat(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("tenants: %s is not a directory", c.Dir)
	}
	d := &Dir{
		c:        c,
		names:    slices.Concat(c.Files, c.Optional),
		required: len(c.Files),

		log:    c.Logger,
		seed:   maphash.MakeSeed(),
		issues: map[string]string{},
	}
	d.files = &fileSet{root: c.Dir, names: d.names}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if err := d.scan("open"); err != nil {
		return nil, err
	}
	return d, nil
}

// maxNames bounds Config.Files and Config.Optional together: a tenant
// keeps which it has in one bit each.
const maxNames = 64

// check reports every problem of c at once.
func (c Config) check() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("tenants: no directory"))
	}
	seen := map[string]bool{}
	if n := len(c.Files) + len(c.Optional); n > maxNames {
		errs = append(errs, fmt.Errorf("tenants: %d file names, more than %d", n, maxNames))
	}
	for _, f := range slices.Concat(c.Files, c.Optional) {
		switch {
		case ValidName(f) != nil:
			errs = append(errs, fmt.Errorf("tenants: file name %q: only letters, digits, '-', '_' and '.', not first, are allowed", f))
		case f == settingsFile:
			errs = append(errs, fmt.Errorf("tenants: file name %q is the settings file's", f))
		case seen[f]:
			errs = append(errs, fmt.Errorf("tenants: file name %q given twice", f))
		}
		seen[f] = true
	}
	keys := map[string]bool{}
	for _, k := range c.Settings {
		if !validKey(k) {
			errs = append(errs, fmt.Errorf("tenants: settings key %q: only upper-case letters, digits and '_' are allowed", k))
		} else if keys[k] {
			errs = append(errs, fmt.Errorf("tenants: settings key %q given twice", k))
		}
		keys[k] = true
	}
	if c.Rescan < 0 {
		errs = append(errs, fmt.Errorf("tenants: rescan interval %s is negative", c.Rescan))
	}
	return errors.Join(errs...)
}

// Lookup returns the tenant named name as the last scan found it. It never
// touches the file system: a name ValidName refuses is an ErrBadName before
// anything else, and a valid name is looked up in memory. A name no tenant
// has is ErrUnknownTenant; an incomplete tenant's error is an
// *IncompleteError. It does not allocate.
func (d *Dir) Lookup(name string) (*Tenant, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	st, ok := d.snap.Load().tenants[name]
	if !ok {
		return nil, ErrUnknownTenant
	}
	return st.t, st.err
}

// Names returns the names of the tenants the last scan found, complete or
// not, sorted.
func (d *Dir) Names() []string {
	return slices.Sorted(maps.Keys(d.snap.Load().tenants))
}

// Len returns how many tenants the last scan found, complete or not.
func (d *Dir) Len() int { return len(d.snap.Load().tenants) }

// Err returns the problems the last scan found, joined, or nil: the
// directory's own (an entry that cannot be a tenant, too many entries), then
// each incomplete tenant's error in name order. It is meant for a check of
// the configuration.
func (d *Dir) Err() error {
	s := d.snap.Load()
	var errs []error
	for _, issue := range s.issues {
		errs = append(errs, errors.New(issue))
	}
	var bad []*IncompleteError
	for _, st := range s.tenants {
		var ie *IncompleteError
		if errors.As(st.err, &ie) {
			bad = append(bad, ie)
		}
	}
	slices.SortFunc(bad, func(a, b *IncompleteError) int { return cmp.Compare(a.Tenant, b.Tenant) })
	for _, ie := range bad {
		errs = append(errs, ie)
	}
	return errors.Join(errs...)
}

// Watch scans the directory whenever inotify reports a change in it or in a
// tenant's directory (Linux only), and every Rescan in any case, until ctx is
// done; then it returns nil. It runs in the caller's goroutine, whatever the
// number of tenants. If inotify cannot be used, Watch logs why and rescans
// only. Call it once: a second call while one runs is an error.
func (d *Dir) Watch(ctx context.Context) error {
	if !d.watching.CompareAndSwap(false, true) {
		return errors.New("tenants: Watch is already running")
	}
	defer d.watching.Store(false)
	return d.watch(ctx)
}

// poll scans the directory now and every Rescan until ctx is done.
func (d *Dir) poll(ctx context.Context) error {
	d.scan("start")
	t := time.NewTicker(d.c.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.scan("rescan")
		}
	}
}

// ValidName reports whether name can be a tenant's: 1 to 128 bytes of ASCII
// letters, digits, '-', '_' and '.', not starting with '.' (so neither "."
// nor "..", nor the hidden entries of a Kubernetes volume such as ..data).
// It looks at nothing but name and does not allocate.
func ValidName(name string) error {
	switch {
	case name == "":
		return errNameEmpty
	case len(name) > MaxNameLen:
		return errNameLong
	case name[0] == '.':
		return errNameDot
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return errNameChar
		}
	}
	return nil
}
