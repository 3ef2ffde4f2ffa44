//go:build linux

package tokens

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// inotifyEvent encodes one inotify event as the kernel writes it.
func inotifyEvent(mask uint32, name string) []byte {
	var b bytes.Buffer
	padded := 0
	if name != "" {
		padded = (len(name) + 1 + 15) / 16 * 16
	}
	binary.Write(&b, binary.NativeEndian, unix.InotifyEvent{Wd: 1, Mask: mask, Len: uint32(padded)})
	b.WriteString(name)
	b.Write(make([]byte, padded-len(name)))
	return b.Bytes()
}

// FuzzDirGone feeds batches of inotify events, well formed or not, to
// dirGone: it must not panic or read past the batch, and it reports the
// directory gone exactly when a whole event in the batch says so.
func FuzzDirGone(f *testing.F) {
	f.Add(inotifyEvent(unix.IN_CLOSE_WRITE, "token"))
	f.Add(append(inotifyEvent(unix.IN_CREATE, "..2025_09_17"), inotifyEvent(unix.IN_MOVED_TO, "..data")...))
	f.Add(append(inotifyEvent(unix.IN_DELETE_SELF, ""), inotifyEvent(unix.IN_IGNORED, "")...))
	f.Add(inotifyEvent(unix.IN_MOVE_SELF, "")[:15])
	f.Add([]byte{})
	gone := uint32(unix.IN_IGNORED | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF)
	f.Fuzz(func(t *testing.T, events []byte) {
		want := false
		for rest := events; len(rest) >= unix.SizeofInotifyEvent; {
			var ev unix.InotifyEvent
			binary.Read(bytes.NewReader(rest[:unix.SizeofInotifyEvent]), binary.NativeEndian, &ev)
			if ev.Mask&gone != 0 {
				want = true
				break
			}
			if uint64(ev.Len) >= uint64(len(rest)-unix.SizeofInotifyEvent) {
				break
			}
			rest = rest[unix.SizeofInotifyEvent+int(ev.Len):]
		}
		if got := dirGone(events); got != want {
			t.Errorf("dirGone(%x) = %v, want %v", events, got, want)
		}
	})
}
