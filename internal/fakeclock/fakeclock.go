// Package fakeclock is a manual clock for tests of time-driven code such as
// the limiter: time stands still until the test calls Advance, which runs
// every AfterFunc callback that falls due, in time order, with Now set to the
// callback's due time. Tests therefore never sleep.
//
// A Clock is safe for concurrent use. Callbacks run on the goroutine that
// calls Advance, without the clock's lock held, so they may use the clock.
package fakeclock

import (
	"container/heap"
	"sync"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Clock is a fake limiter.Clock. Use New; the zero value is not usable.
type Clock struct {
	mu      sync.Mutex
	cond    *sync.Cond // broadcast whenever the set of pending timers changes
	now     time.Time
	pending timerHeap
	seq     uint64 // orders timers due at the same instant by creation
}

var _ limiter.Clock = (*Clock)(nil)

// New returns a clock that reads start until it is advanced.
func New(start time.Time) *Clock {
	c := &Clock{now: start}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f once the clock has been advanced by d or more. A d <= 0
// is due at the next Advance (of any length, even 0).
func (c *Clock) AfterFunc(d time.Duration, f func()) limiter.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &timer{c: c, at: c.now.Add(d), seq: c.seq, f: f, index: -1}
	heap.Push(&c.pending, t)
	c.cond.Broadcast()
	return t
}

// Advance moves the clock forward by d, running every callback that falls due
// on the way, in order of due time, each with Now equal to its due time.
// Callbacks that schedule further callbacks due within d are run too.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	c.AdvanceTo(end)
}

// AdvanceTo moves the clock forward to t (never backward), as Advance does.
func (c *Clock) AdvanceTo(t time.Time) {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.pending[0].at.After(t) {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		next := heap.Pop(&c.pending).(*timer)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		next.f()
	}
}

// Next reports when the earliest pending callback is due, and false when
// none is pending.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return time.Time{}, false
	}
	return c.pending[0].at, true
}

// Pending returns the number of callbacks not yet run or stopped.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// BlockUntil waits until at least n callbacks are pending: a test uses it to
// know that another goroutine has reached the point where it waits on the
// clock.
func (c *Clock) BlockUntil(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) < n {
		c.cond.Wait()
	}
}

type timer struct {
	c     *Clock
	at    time.Time
	seq   uint64
	f     func()
	index int // position in the heap, -1 once run or stopped
}

// Stop cancels the callback and reports whether it was still pending.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.c.pending, t.index)
	t.c.cond.Broadcast()
	return true
}

type timerHeap []*timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	t.index = -1
	*h = old[:len(old)-1]
	return t
}
