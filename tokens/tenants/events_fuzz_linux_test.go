package tenants

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// inotifyEvent encodes one inotify event as the kernel writes it.
func inotifyEvent(wd int32, mask uint32, name string) []byte {
	var b bytes.Buffer
	padded := 0
	if name != "" {
		padded = (len(name) + 1 + 15) / 16 * 16
	}
	binary.Write(&b, binary.NativeEndian, unix.InotifyEvent{Wd: wd, Mask: mask, Len: uint32(padded)})
	b.WriteString(name)
	b.Write(make([]byte, padded-len(name)))
	return b.Bytes()
}

// FuzzEachEvent feeds batches of inotify events, well formed or not, to
// eachEvent: it must not panic, loop or read past the batch, and it must
// report each whole event of a well-formed batch.
func FuzzEachEvent(f *testing.F) {
	f.Add(inotifyEvent(1, unix.IN_CLOSE_WRITE, "client_id"))
	f.Add(append(inotifyEvent(1, unix.IN_CREATE, "..2026_01_02"), inotifyEvent(2, unix.IN_MOVED_TO, "..data")...))
	f.Add(append(inotifyEvent(2, unix.IN_DELETE_SELF, ""), inotifyEvent(2, unix.IN_IGNORED, "")...))
	f.Add(inotifyEvent(-1, unix.IN_Q_OVERFLOW, ""))
	f.Add(inotifyEvent(1, unix.IN_MOVE_SELF, "")[:15])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, events []byte) {
		n := 0
		eachEvent(events, func(int, uint32) { n++ })
		if n > len(events)/unix.SizeofInotifyEvent {
			t.Fatalf("eachEvent(%x) reported %d events, more than fit", events, n)
		}
	})
}

func TestEachEvent(t *testing.T) {
	batch := bytes.Join([][]byte{
		inotifyEvent(1, unix.IN_CREATE, "..2026_01_02"),
		inotifyEvent(2, unix.IN_MOVED_TO, "..data"),
		inotifyEvent(-1, unix.IN_Q_OVERFLOW, ""),
	}, nil)
	var got []int
	eachEvent(batch, func(wd int, mask uint32) { got = append(got, wd, int(mask)) })
	want := []int{1, unix.IN_CREATE, 2, unix.IN_MOVED_TO, -1, unix.IN_Q_OVERFLOW}
	if !slices.Equal(got, want) {
		t.Errorf("eachEvent() = %v, want %v", got, want)
	}
}
