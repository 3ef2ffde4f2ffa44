package tokens

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock whose time moves only when a test calls Advance, so a
// 12-hour token can be tested in milliseconds. Its timers fire, in order of
// their deadlines, during the Advance that reaches them.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer  // waiting: created, not yet fired nor stopped
	changed chan struct{} // closed and replaced whenever a timer starts waiting
}

type fakeTimer struct {
	clk  *fakeClock
	when time.Time
	c    chan time.Time
}

func newFakeClock(start time.Time) *fakeClock {
	return &fakeClock{now: start, changed: make(chan struct{})}
}

// tezpayEpoch is the iat of the TezPay documentation's example token; a fixed
// start makes the fake clock's readings the same on every run.
var tezpayEpoch = time.Unix(1758141644, 0).UTC()

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock reaches now+d; like
// time.NewTimer, at once if d <= 0.
func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, when: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

// Stop reports whether it stopped the timer, that is whether it was waiting.
func (t *fakeTimer) Stop() bool {
	c := t.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	return true
}

// Advance moves the clock forward by d and fires every timer that is due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	slices.SortStableFunc(c.timers, func(a, b *fakeTimer) int { return a.when.Compare(b.when) })
	n := 0
	for _, t := range c.timers {
		if t.when.After(c.now) {
			break
		}
		t.c <- c.now // buffered, and each timer fires once: never blocks
		n++
	}
	c.timers = slices.Delete(c.timers, 0, n)
}

// AdvanceToNext moves the clock to the earliest waiting timer, fires it and
// returns how far the clock moved. It fails the test if no timer waits.
func (c *fakeClock) AdvanceToNext(t testing.TB) time.Duration {
	t.Helper()
	ws := c.Waiting()
	if len(ws) == 0 {
		t.Fatalf("AdvanceToNext: no timer is waiting")
	}
	c.Advance(ws[0])
	return ws[0]
}

// Waiting returns how long each waiting timer has left, shortest first.
func (c *fakeClock) Waiting() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := make([]time.Duration, 0, len(c.timers))
	for _, t := range c.timers {
		ws = append(ws, t.when.Sub(c.now))
	}
	slices.Sort(ws)
	return ws
}

// BlockUntil waits until at least n timers are waiting: a goroutine that has
// made its timer is parked in its select, so the test does not race it. It
// fails the test after 10s of real time.
func (c *fakeClock) BlockUntil(t testing.TB, n int) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("BlockUntil(%d): %d timers waiting after 10s", n, got)
		}
	}
}

func TestFakeClock(t *testing.T) {
	clk := newFakeClock(tezpayEpoch)
	if got := clk.Now(); !got.Equal(tezpayEpoch) {
		t.Fatalf("Now() = %v, want %v", got, tezpayEpoch)
	}
	late := clk.NewTimer(2 * time.Hour)
	early := clk.NewTimer(time.Hour)
	stopped := clk.NewTimer(time.Minute)
	clk.BlockUntil(t, 3)
	if !stopped.Stop() {
		t.Errorf("Stop() of a waiting timer = false, want true")
	}
	if stopped.Stop() {
		t.Errorf("second Stop() = true, want false")
	}
	if got, want := clk.Waiting(), []time.Duration{time.Hour, 2 * time.Hour}; !slices.Equal(got, want) {
		t.Errorf("Waiting() = %v, want %v", got, want)
	}

	clk.Advance(time.Hour - time.Nanosecond)
	select {
	case <-early.C():
		t.Fatalf("timer of 1h fired after 1h-1ns")
	default:
	}
	clk.Advance(time.Nanosecond)
	select {
	case got := <-early.C():
		if want := tezpayEpoch.Add(time.Hour); !got.Equal(want) {
			t.Errorf("timer fired with %v, want %v", got, want)
		}
	default:
		t.Fatalf("timer of 1h did not fire after 1h")
	}
	if early.Stop() {
		t.Errorf("Stop() of a fired timer = true, want false")
	}
	if d := clk.AdvanceToNext(t); d != time.Hour {
		t.Errorf("AdvanceToNext() = %v, want 1h", d)
	}
	select {
	case <-late.C():
	default:
		t.Errorf("timer of 2h did not fire after AdvanceToNext")
	}
	if ws := clk.Waiting(); len(ws) != 0 {
		t.Errorf("after AdvanceToNext: Waiting() = %v, want none", ws)
	}
	select {
	case <-clk.NewTimer(0).C():
	default:
		t.Errorf("NewTimer(0) did not fire at once")
	}
}

func TestFakeClockBlockUntil(t *testing.T) {
	clk := newFakeClock(tezpayEpoch)
	fired := make(chan time.Time)
	go func() {
		tm := clk.NewTimer(time.Minute)
		fired <- <-tm.C()
	}()
	clk.BlockUntil(t, 1) // without it, Advance could run before NewTimer
	clk.Advance(time.Minute)
	if got, want := <-fired, tezpayEpoch.Add(time.Minute); !got.Equal(want) {
		t.Errorf("timer fired with %v, want %v", got, want)
	}
}

func TestSystemClock(t *testing.T) {
	before := time.Now()
	got := SystemClock.Now()
	if got.Before(before) || got.After(time.Now()) {
		t.Errorf("SystemClock.Now() = %v, want between %v and now", got, before)
	}
	tm := SystemClock.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatalf("SystemClock timer of 1ms did not fire within 10s")
	}
	if tm.Stop() {
		t.Errorf("Stop() of a fired timer = true, want false")
	}
	if long := SystemClock.NewTimer(time.Hour); !long.Stop() {
		t.Errorf("Stop() of a waiting timer = false, want true")
	}
	if clockOr(nil) != SystemClock {
		t.Errorf("clockOr(nil) is not SystemClock")
	}
	if fc := newFakeClock(tezpayEpoch); clockOr(fc) != Clock(fc) {
		t.Errorf("clockOr(fake) is not the fake clock")
	}
}
