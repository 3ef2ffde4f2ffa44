package tokens

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// defaultPollInterval is how often Watch re-reads a token file when
// FileConfig.PollInterval is zero.
const defaultPollInterval = 5 * time.Second

// Errors of a token file's content. They never quote the content.
var (
	errFileEmpty   = errors.New("tokens: token file is empty")
	errFileTooBig  = fmt.Errorf("tokens: token file is %w", errTooLarge)
	errFileControl = errors.New("tokens: token file holds a control character inside the token")
)

// FileConfig describes a token that another process writes to a file: a
// Kubernetes projected service-account token, a Vault Agent sink, a
// CSI-mounted secret.
type FileConfig struct {
	// Path is the token file. It may be a symlink, as in a Kubernetes volume
	// (token -> ..data/token), and is read afresh by every Token call.
	Path string
	// DefaultTTL is the lifetime given to a token that is not a JWT with an
	// exp claim. If zero, DefaultTTL is used.
	DefaultTTL time.Duration
	// Logger receives Watch's events. If nil, nothing is logged.
	Logger *slog.Logger
	// PollInterval is how often Watch re-reads the file whatever inotify
	// reports, in case an event is missed or inotify is unavailable. If zero,
	// 5s is used.
	PollInterval time.Duration
	// Changed, if not nil, is the channel Changed returns, which several
	// files may share; it must have a buffer. If nil, the source makes its
	// own.
	Changed chan struct{}
}

// FileSource is a Source that reads its token from a file, and can watch the
// file for a rotation (see Watch). Surrounding white space is trimmed; the
// expiry is the JWT's exp if the token is a JWT with one, else the time of
// reading plus DefaultTTL. It is safe for concurrent use.
type FileSource struct {
	c       FileConfig
	log     *slog.Logger
	changed chan struct{}

	mu      sync.Mutex
	last    [sha256.Size]byte // hash of the last token read, by Token or Watch
	seen    bool              // whether last is set
	lastErr string            // the last error Watch met reading the file, if any
}

// NewFileSource returns a FileSource reading the file described by c.
// Nothing is read until Token or Watch is called.
func NewFileSource(c FileConfig) *FileSource {
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = DefaultTTL
	}
	if c.PollInterval <= 0 {
		c.PollInterval = defaultPollInterval
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	changed := c.Changed
	if changed == nil {
		changed = make(chan struct{}, 1)
	}
	return &FileSource{c: c, log: log, changed: changed}
}

// Token reads the file. An empty file, or one whose token holds a line break
// or another control character, is an error; errors never quote the file.
func (s *FileSource) Token(ctx context.Context) (*Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tokens: token file: %w", err)
	}
	tok, err := s.read()
	if err != nil {
		return nil, err
	}
	s.note(tok.Value) // the caller has this token: no need to signal it
	return tok, nil
}

// Changed receives a value when Watch finds that the file holds a token other
// than the one last read, by Token or by Watch. Signals do not queue up: one
// is kept until received. It is meant for CacheOptions.Changed, the one
// consumer that calls Token.
func (s *FileSource) Changed() <-chan struct{} { return s.changed }

// Watch looks for a new token in the file until ctx is done, then returns nil.
// It watches the file's directory with inotify, which sees a Kubernetes
// rotation (an atomic rename of the ..data symlink) at once, and re-reads the
// file every PollInterval in any case. Every look that finds a token other
// than the last one read signals Changed; a look that finds the same token,
// or cannot read the file, does not. If inotify cannot be set up, Watch logs
// why and relies on polling. It returns an error only if Path is empty. Call
// it once.
func (s *FileSource) Watch(ctx context.Context) error {
	if s.c.Path == "" {
		return errors.New("tokens: token file: no path")
	}
	if stop, err := s.watchDir(); err != nil {
		s.log.Warn("token file: cannot watch its directory: polling only", "path", s.c.Path, "every", s.c.PollInterval.String(), "error", err)
	} else {
		defer stop()
	}
	s.check("start") // after the watch is set up, so that no change falls between
	for {
		t := time.NewTimer(s.c.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			s.check("poll")
		}
	}
}

// read reads and parses the file.
func (s *FileSource) read() (*Token, error) {
	f, err := os.Open(s.c.Path)
	if err != nil {
		return nil, fmt.Errorf("tokens: token file: %w", err)
	}
	defer f.Close()
	raw, err := readLimited(f)
	if errors.Is(err, errTooLarge) {
		return nil, errFileTooBig
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: token file: %w", err)
	}
	return parseFileToken(raw, time.Now(), s.c.DefaultTTL)
}

// parseFileToken reads a token from a token file's content, read at now.
func parseFileToken(raw []byte, now time.Time, defaultTTL time.Duration) (*Token, error) {
	value := strings.TrimSpace(string(raw))
	if value == "" {
		return nil, errFileEmpty
	}
	// No HTTP header can carry these; refuse them here rather than have every
	// request fail.
	if hasControl(value) {
		return nil, errFileControl
	}
	return &Token{Value: value, Expiry: expiryOf(value, time.Time{}, now, defaultTTL)}, nil
}

// note records value as the last token read and reports whether it differs
// from the one before. Only a hash is kept.
func (s *FileSource) note(value string) bool {
	sum := sha256.Sum256([]byte(value))
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.seen && sum != s.last
	s.last, s.seen, s.lastErr = sum, true, ""
	return changed
}

// check reads the file and signals Changed if its token changed. An event
// burst (a rotation makes several) checks several times, but only the first
// look at the new token signals.
func (s *FileSource) check(trigger string) {
	tok, err := s.read()
	if err != nil {
		s.mu.Lock()
		repeated := err.Error() == s.lastErr
		s.lastErr = err.Error()
		s.mu.Unlock()
		if !repeated { // once per distinct error, not at every poll
			s.log.Warn("token file unreadable", "path", s.c.Path, "trigger", trigger, "error", err)
		}
		return
	}
	changed := s.note(tok.Value)
	if changed {
		s.log.Info("token file changed", "path", s.c.Path, "trigger", trigger, "token", tok)
		select {
		case s.changed <- struct{}{}:
		default: // a signal is already waiting
		}
	}
	s.log.Debug("token file checked", "path", s.c.Path, "trigger", trigger, "changed", changed)
}
