package tokens

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// kubeletMount is a volume laid out as the kubelet's atomic writer does it:
// token -> ..data/token, ..data -> a timestamped directory holding the file.
type kubeletMount struct {
	dir     string
	current string // the timestamped directory ..data points to
	n       int
}

// newKubeletMount makes the layout in a temporary directory, holding content.
func newKubeletMount(t *testing.T, content string) *kubeletMount {
	t.Helper()
	m := &kubeletMount{dir: t.TempDir()}
	m.current = m.writeDir(t, content)
	if err := os.Symlink(m.current, filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "token"), m.Path()); err != nil {
		t.Fatal(err)
	}
	return m
}

// Path is the token file as a pod sees it.
func (m *kubeletMount) Path() string { return filepath.Join(m.dir, "token") }

// writeDir writes content in a new timestamped directory and returns its name.
func (m *kubeletMount) writeDir(t *testing.T, content string) string {
	t.Helper()
	m.n++
	name := fmt.Sprintf("..2026_11_22_23_00_%02d.%03d", m.n, m.n)
	if err := os.Mkdir(filepath.Join(m.dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(m.dir, name, "token"), content)
	return name
}

// rotate replaces the token as the kubelet does: a new timestamped
// directory, ..data_tmp pointing to it, renamed over ..data, and the old
// directory deleted. The token file itself is never written in place.
func (m *kubeletMount) rotate(t *testing.T, content string) {
	t.Helper()
	next := m.writeDir(t, content)
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(next, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(m.dir, m.current)); err != nil {
		t.Fatal(err)
	}
	m.current = next
}

// noInotify makes inotify unavailable for one test, so that Watch polls only.
func noInotify(t *testing.T) {
	old := inotifyInit
	inotifyInit = func(int) (int, error) { return -1, syscall.EMFILE }
	t.Cleanup(func() { inotifyInit = old })
}

// startWatch runs src.Watch until the test ends, and checks that it then
// returns nil promptly.
func startWatch(t *testing.T, src *FileSource) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch() did not return within 10s of its context's end")
		}
	})
}

// waitChanged waits at most 5s of real time for a signal on src.Changed.
func waitChanged(t *testing.T, src *FileSource, why string) {
	t.Helper()
	select {
	case <-src.Changed():
	case <-time.After(5 * time.Second):
		t.Fatalf("Changed() not signalled within 5s of %s", why)
	}
}

// notChanged fails the test if a signal waits on src.Changed.
func notChanged(t *testing.T, src *FileSource, why string) {
	t.Helper()
	select {
	case <-src.Changed():
		t.Errorf("Changed() signalled after %s, want no signal", why)
	default:
	}
}

func mustFileToken(t *testing.T, src *FileSource) *Token {
	t.Helper()
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	return tok
}

// fileDebugLog logs everything, as text, to the returned buffer.
func fileDebugLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func TestFileSourceToken(t *testing.T) {
	now := tezpayEpoch
	exp := now.Add(3 * time.Hour).Truncate(time.Second)
	withExp := signJWT(jwt.MapClaims{"exp": exp.Unix(), "sub": "system:serviceaccount:pay:api"})
	noExp := signJWT(jwt.MapClaims{"sub": "system:serviceaccount:pay:api"})
	tests := []struct {
		name       string
		content    string
		defaultTTL time.Duration
		want       string
		wantExpiry time.Time
	}{
		{"opaque", "opaque-token", 0, "opaque-token", now.Add(DefaultTTL)},
		{"trailing newline", "opaque-token\n", 0, "opaque-token", now.Add(DefaultTTL)},
		{"white space around", " \t\r\nopaque-token \r\n\n", 0, "opaque-token", now.Add(DefaultTTL)},
		{"inner space kept", "Bearer opaque-token\n", 0, "Bearer opaque-token", now.Add(DefaultTTL)},
		{"DefaultTTL", "opaque-token", time.Hour, "opaque-token", now.Add(time.Hour)},
		{"JWT exp", withExp + "\n", 0, withExp, exp},
		{"JWT exp wins over DefaultTTL", withExp, time.Minute, withExp, exp},
		{"JWT without exp", noExp, 2 * time.Minute, noExp, now.Add(2 * time.Minute)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, layout := range []string{"plain file", "kubelet volume"} {
				var path string
				if layout == "plain file" {
					path = filepath.Join(t.TempDir(), "token")
					writeFile(t, path, tc.content)
				} else {
					path = newKubeletMount(t, tc.content).Path()
				}
				bubble(t, func(t *testing.T) { // read at tezpayEpoch
					src := NewFileSource(FileConfig{Path: path, DefaultTTL: tc.defaultTTL})
					tok := mustFileToken(t, src)
					if tok.Value != tc.want {
						t.Errorf("%s: Token() = %q, want %q", layout, tok.Value, tc.want)
					}
					if !tok.Expiry.Equal(tc.wantExpiry) {
						t.Errorf("%s: Token().Expiry = %v, want %v", layout, tok.Expiry, tc.wantExpiry)
					}
				})
			}
		})
	}
}

// TestFileSourceTokenReadsEachTime: Token reads the file at every call, so a
// replaced file is used without Watch.
func TestFileSourceTokenReadsEachTime(t *testing.T) {
	m := newKubeletMount(t, "first")
	src := NewFileSource(FileConfig{Path: m.Path()})
	if got := mustFileToken(t, src).Value; got != "first" {
		t.Fatalf("Token() = %q, want %q", got, "first")
	}
	m.rotate(t, "second")
	if got := mustFileToken(t, src).Value; got != "second" {
		t.Errorf("Token() after a rotation = %q, want %q", got, "second")
	}
}

func TestFileSourceTokenErrors(t *testing.T) {
	const secret = "s3cr3t-token-value"
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		content string
		missing bool
		ctx     context.Context
		want    error
	}{
		{"missing file", "", true, context.Background(), fs.ErrNotExist},
		{"empty file", "", false, context.Background(), errFileEmpty},
		{"white space only", " \n\t\r\n", false, context.Background(), errFileEmpty},
		{"two lines", secret + "\n" + secret + "\n", false, context.Background(), errFileControl},
		{"NUL inside", secret + "\x00" + secret, false, context.Background(), errFileControl},
		{"DEL inside", secret + "\x7f", false, context.Background(), errFileControl},
		{"too large", strings.Repeat(secret, maxRead/len(secret)+1), false, context.Background(), errFileTooBig},
		{"canceled", secret, false, canceled, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if !tc.missing {
				writeFile(t, path, tc.content)
			}
			src := NewFileSource(FileConfig{Path: path})
			tok, err := src.Token(tc.ctx)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Token() = %v, %v; want error %v", tok, err, tc.want)
			}
			if tok != nil {
				t.Errorf("Token() = %v with error %v, want nil", tok, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "tokens: ") || strings.Contains(msg, secret) {
				t.Errorf("Token() error = %q, want a tokens: error that does not quote the file", msg)
			}
		})
	}
}

// TestFileSourceInotifyKubeletRotation: a kubelet rotation is signalled
// through inotify alone (polls are an hour apart, and none runs), and the
// watch survives the deletion of the directory it first read through. On
// the real clock: inotify's descriptor is a real one.
func TestFileSourceInotifyKubeletRotation(t *testing.T) {
	log, logs := fileDebugLog()
	m := newKubeletMount(t, "first\n")
	src := NewFileSource(FileConfig{Path: m.Path(), Logger: log, PollInterval: time.Hour})
	if got := mustFileToken(t, src).Value; got != "first" {
		t.Fatalf("Token() = %q, want %q", got, "first")
	}
	startWatch(t, src)
	logs.waitCount(t, "trigger=start", 1) // the watch is set up, the file checked
	notChanged(t, src, "Watch started on the token Token had read")

	for _, next := range []string{"second", "third"} {
		m.rotate(t, next+"\n")
		waitChanged(t, src, "a kubelet rotation to "+next)
		if got := mustFileToken(t, src).Value; got != next {
			t.Errorf("Token() after the rotation = %q, want %q", got, next)
		}
	}
	if strings.Contains(logs.String(), "trigger=poll") {
		t.Errorf("a poll ran, want inotify alone; logs:\n%s", logs)
	}
}

// TestFileSourceInotifyPlainFile: a plain file replaced by a rename, or
// rewritten in place, is signalled through inotify.
func TestFileSourceInotifyPlainFile(t *testing.T) {
	log, logs := fileDebugLog()
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, "first")
	src := NewFileSource(FileConfig{Path: path, Logger: log, PollInterval: time.Hour})
	startWatch(t, src)
	logs.waitCount(t, "trigger=start", 1)

	replaceFile(t, path, []byte("second"))
	waitChanged(t, src, "a rename over the file")
	writeFile(t, path, "third")
	waitChanged(t, src, "a write in place")
	if got := mustFileToken(t, src).Value; got != "third" {
		t.Errorf("Token() = %q, want %q", got, "third")
	}
}

// TestFileSourcePolling: with inotify unavailable, Watch says so once and
// finds a replaced file at its next poll, not before.
func TestFileSourcePolling(t *testing.T) {
	noInotify(t)
	bubble(t, func(t *testing.T) {
		log, logs := fileDebugLog()
		path := filepath.Join(t.TempDir(), "token")
		writeFile(t, path, "first")
		src := NewFileSource(FileConfig{Path: path, Logger: log, PollInterval: time.Minute})
		startWatch(t, src)
		synctest.Wait() // the file checked, the first poll a minute away

		replaceFile(t, path, []byte("second"))
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		notChanged(t, src, "a rename, before the poll")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		waitChanged(t, src, "a rename and a poll")
		if got := mustFileToken(t, src).Value; got != "second" {
			t.Errorf("Token() = %q, want %q", got, "second")
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if n := strings.Count(logs.String(), "trigger=poll changed="); n != 4 {
			t.Errorf("%d polls in 4 minutes, want 4; logs:\n%s", n, logs)
		}
		notChanged(t, src, "polls of the same file")
		if n := strings.Count(logs.String(), "polling only"); n != 1 {
			t.Errorf("logged %d times that inotify is unavailable, want once; logs:\n%s", n, logs)
		}
	})
}

// TestFileSourcePollingRealClock: the polling fallback with a tiny interval
// on the system clock, as it runs in production.
func TestFileSourcePollingRealClock(t *testing.T) {
	noInotify(t)
	path := filepath.Join(t.TempDir(), "token")
	writeFile(t, path, "first")
	src := NewFileSource(FileConfig{Path: path, PollInterval: 10 * time.Millisecond})
	if got := mustFileToken(t, src).Value; got != "first" {
		t.Fatalf("Token() = %q, want %q", got, "first")
	}
	startWatch(t, src)
	replaceFile(t, path, []byte("second"))
	waitChanged(t, src, "a rename, polling every 10ms")
	if got := mustFileToken(t, src).Value; got != "second" {
		t.Errorf("Token() = %q, want %q", got, "second")
	}
}

// TestFileSourceNoSignalWhenUnchanged: a file rewritten with the same token,
// even with other white space around it, is not signalled; a file that cannot
// be read is not either, and its return with the same token neither.
func TestFileSourceNoSignalWhenUnchanged(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string)
	}{
		{"same content, renamed", func(t *testing.T, path string) { replaceFile(t, path, []byte("same-token\n")) }},
		{"same content, written in place", func(t *testing.T, path string) { writeFile(t, path, "same-token\n") }},
		{"other white space", func(t *testing.T, path string) { replaceFile(t, path, []byte("  same-token\r\n\n")) }},
		{"file removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"file emptied", func(t *testing.T, path string) { writeFile(t, path, "") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			noInotify(t) // polls in a bubble tell when each look is done
			bubble(t, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "token")
				writeFile(t, path, "same-token\n")
				src := NewFileSource(FileConfig{Path: path, PollInterval: time.Minute})
				startWatch(t, src)
				synctest.Wait()

				tc.change(t, path)
				time.Sleep(time.Minute)
				synctest.Wait() // the poll's look is done
				notChanged(t, src, tc.name)

				replaceFile(t, path, []byte("same-token"))
				time.Sleep(time.Minute)
				synctest.Wait()
				notChanged(t, src, "the same token back")

				replaceFile(t, path, []byte("new-token")) // the check can fail
				time.Sleep(time.Minute)
				waitChanged(t, src, "a new token")
			})
		})
	}
}

// TestFileSourceNoSignalWhenUnchangedInotify: rewrites of the same token
// through inotify (with the kubelet's layout) are not signalled: of a burst of
// rotations ending with a new token, only that one is.
func TestFileSourceNoSignalWhenUnchangedInotify(t *testing.T) {
	log, logs := fileDebugLog()
	m := newKubeletMount(t, "same-token")
	src := NewFileSource(FileConfig{Path: m.Path(), Logger: log, PollInterval: time.Hour})
	startWatch(t, src)
	logs.waitCount(t, "trigger=start", 1)

	m.rotate(t, "same-token\n")
	m.rotate(t, " same-token ")
	m.rotate(t, "new-token")
	waitChanged(t, src, "a rotation to a new token")
	// Every look after the last rotation sees the new token; every one before
	// it, the old one: exactly one found a change.
	if n := strings.Count(logs.String(), `msg="token file changed"`); n != 1 {
		t.Errorf("logged %d changes, want 1; logs:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "trigger=inotify") {
		t.Errorf("no look triggered by inotify; logs:\n%s", logs)
	}
}

// inotifyFDs counts this process's open inotify descriptors.
func inotifyFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open descriptors: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestFileSourceWatchStops: Watch returns nil promptly when its context ends,
// whether it was waiting on inotify or polling only, and closes its inotify
// descriptor; no poll runs after it returned. goleak (TestMain) checks that
// its reader goroutine ended. Polling only, it runs in a bubble; with an
// inotify descriptor to read, on the real clock.
func TestFileSourceWatchStops(t *testing.T) {
	tests := []struct {
		name      string
		inotify   bool
		noDir     bool
		wantWatch int // inotify descriptors open while Watch runs
	}{
		{"inotify", true, false, 1},
		{"inotify unavailable", false, false, 0},
		{"directory missing", true, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.inotify {
				noInotify(t)
			}
			test := func(t *testing.T, inBubble bool) {
				path := filepath.Join(t.TempDir(), "token")
				if tc.noDir {
					path = filepath.Join(t.TempDir(), "missing", "token")
				} else {
					writeFile(t, path, "tok")
				}
				log, logs := fileDebugLog()
				src := NewFileSource(FileConfig{Path: path, Logger: log})
				before := inotifyFDs(t)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- src.Watch(ctx) }()
				if inBubble {
					synctest.Wait()
				} else {
					logs.waitCount(t, "trigger=start", 1)
				}
				if got := inotifyFDs(t) - before; got != tc.wantWatch {
					t.Errorf("inotify descriptors opened by Watch = %d, want %d", got, tc.wantWatch)
				}
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Watch() = %v, want nil", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("Watch() did not return within 10s of its context's end")
				}
				if got := inotifyFDs(t); got != before {
					t.Errorf("inotify descriptors after Watch = %d, want %d", got, before)
				}
				if inBubble {
					time.Sleep(2 * defaultPollInterval)
					synctest.Wait()
					if strings.Contains(logs.String(), "trigger=poll") {
						t.Errorf("a poll ran after Watch returned; logs:\n%s", logs)
					}
				}
			}
			if tc.inotify && !tc.noDir {
				test(t, false)
				return
			}
			bubble(t, func(t *testing.T) { test(t, true) })
		})
	}
}

func TestFileSourceWatchNoPath(t *testing.T) {
	src := NewFileSource(FileConfig{})
	err := src.Watch(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "tokens: ") {
		t.Errorf("Watch() with no path = %v, want a tokens: error", err)
	}
}

// TestFileSourceWithCache: a Cache fed by a FileSource and told by its
// Changed serves a rotated token within seconds, long before its renewal.
// On the real clock: inotify's descriptor is a real one.
func TestFileSourceWithCache(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	first := signJWT(jwt.MapClaims{"exp": exp.Unix(), "jti": "first"})
	second := signJWT(jwt.MapClaims{"exp": exp.Unix(), "jti": "second"})
	m := newKubeletMount(t, first+"\n")
	watchLog, watchLogs := fileDebugLog()
	cacheLog, cacheLogs := fileDebugLog()
	src := NewFileSource(FileConfig{Path: m.Path(), Logger: watchLog, PollInterval: time.Hour})
	c := NewCache(src, CacheOptions{Changed: src.Changed(), Logger: cacheLog})
	run(t, c)
	startWatch(t, src)
	if got := mustToken(t, c).Value; got != first {
		t.Fatalf("Token() = %q, want the first token", got)
	}
	watchLogs.waitCount(t, "trigger=start", 1)

	m.rotate(t, second+"\n")
	cacheLogs.waitCount(t, "credential changed: fetching", 1)
	cacheLogs.waitCount(t, "token fetched", 2)
	if got := mustToken(t, c).Value; got != second {
		t.Errorf("Token() after a rotation and the fetch it caused = %q, want the second token", got)
	}
}

// FuzzFileToken feeds arbitrary file content to the token file's parser: it
// must not panic, must return a token with the trimmed content or one of its
// fixed errors, and must never quote the content.
func FuzzFileToken(f *testing.F) {
	f.Add([]byte(tezpayExampleToken + "\n"))
	f.Add([]byte("opaque-token"))
	f.Add([]byte(" \t\r\n"))
	f.Add([]byte(""))
	f.Add([]byte("line1\nline2"))
	f.Add([]byte("tok\x00en"))
	f.Add([]byte("\xff\xfe\xfd"))
	f.Add([]byte("\u00a0token\u0085"))
	f.Add([]byte("a.b.c"))
	now := tezpayEpoch
	f.Fuzz(func(t *testing.T, raw []byte) {
		tok, err := parseFileToken(raw, now, time.Minute)
		if err != nil {
			if tok != nil {
				t.Errorf("parseFileToken() = %v with error %v, want nil", tok, err)
			}
			switch err {
			case errFileEmpty, errFileTooBig, errFileControl:
			default:
				t.Errorf("parseFileToken() error = %q, want one of the fixed errors", err)
			}
			return
		}
		want := strings.TrimSpace(string(raw))
		if tok == nil || tok.Value != want || want == "" {
			t.Fatalf("parseFileToken() = %#v, want a token of the trimmed content", tok)
		}
		if strings.ContainsFunc(tok.Value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Errorf("parseFileToken() value holds a control character")
		}
		wantExpiry := now.Add(time.Minute)
		if exp, ok := jwtExpiry(want); ok {
			wantExpiry = exp
		}
		if !tok.Expiry.Equal(wantExpiry) {
			t.Errorf("parseFileToken().Expiry = %v, want %v", tok.Expiry, wantExpiry)
		}
	})
}
