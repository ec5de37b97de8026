package fakeclock_test

import (
	"slices"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestAdvanceRunsDueCallbacksInOrder(t *testing.T) {
	tests := []struct {
		name    string
		timers  []time.Duration
		stop    []int // indexes stopped before advancing
		advance time.Duration
		want    []int // indexes run, in order
	}{
		{"none due", []time.Duration{time.Second}, nil, 999 * time.Millisecond, nil},
		{"due exactly", []time.Duration{time.Second}, nil, time.Second, []int{0}},
		{"time order", []time.Duration{3 * time.Second, time.Second, 2 * time.Second}, nil, 5 * time.Second, []int{1, 2, 0}},
		{"same instant keeps creation order", []time.Duration{time.Second, time.Second}, nil, time.Second, []int{0, 1}},
		{"stopped does not run", []time.Duration{time.Second, 2 * time.Second}, []int{0}, 5 * time.Second, []int{1}},
		{"zero delay runs on any advance", []time.Duration{0}, nil, 0, []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeclock.New(t0)
			var ran []int
			var seen []time.Time
			var stops []func() bool
			for i, d := range tc.timers {
				tm := c.AfterFunc(d, func() {
					ran = append(ran, i)
					seen = append(seen, c.Now())
				})
				stops = append(stops, tm.Stop)
			}
			for _, i := range tc.stop {
				if !stops[i]() {
					t.Fatalf("Stop of pending timer %d returned false", i)
				}
			}
			c.Advance(tc.advance)
			if !slices.Equal(ran, tc.want) {
				t.Fatalf("ran %v, want %v", ran, tc.want)
			}
			for k, i := range ran {
				if want := t0.Add(tc.timers[i]); !seen[k].Equal(want) {
					t.Errorf("timer %d saw Now %v, want its due time %v", i, seen[k], want)
				}
			}
			if !c.Now().Equal(t0.Add(tc.advance)) {
				t.Errorf("Now %v after advancing, want %v", c.Now(), t0.Add(tc.advance))
			}
			if want := len(tc.timers) - len(tc.want) - len(tc.stop); c.Pending() != want {
				t.Errorf("%d pending, want %d", c.Pending(), want)
			}
		})
	}
}

// A callback may schedule another: it runs in the same Advance when due.
func TestCallbackSchedulesCallback(t *testing.T) {
	c := fakeclock.New(t0)
	var at []time.Duration
	var tick func()
	tick = func() {
		at = append(at, c.Now().Sub(t0))
		if len(at) < 5 {
			c.AfterFunc(time.Second, tick)
		}
	}
	c.AfterFunc(time.Second, tick)
	c.Advance(3500 * time.Millisecond)
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(at, want) {
		t.Fatalf("ticks at %v, want %v", at, want)
	}
	if next, ok := c.Next(); !ok || !next.Equal(t0.Add(4*time.Second)) {
		t.Errorf("next %v %v, want the 4s tick", next, ok)
	}
	if c.AfterFunc(time.Hour, func() {}).Stop() != true {
		t.Error("Stop of a pending timer returned false")
	}
}

func TestBlockUntil(t *testing.T) {
	c := fakeclock.New(t0)
	done := make(chan struct{})
	go func() {
		c.BlockUntil(2)
		close(done)
	}()
	c.AfterFunc(time.Second, func() {})
	c.AfterFunc(time.Second, func() {})
	<-done // returns only once both are pending; a hang fails by timeout
	if c.Pending() != 2 {
		t.Fatalf("%d pending", c.Pending())
	}
}

// Stop reports whether it stopped anything: false once the callback ran or
// was stopped already.
func TestStopAfterRun(t *testing.T) {
	tests := []struct {
		name string
		run  bool // advance past the timer first
	}{
		{"after it ran", true},
		{"stopped twice", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeclock.New(t0)
			ran := 0
			tm := c.AfterFunc(time.Second, func() { ran++ })
			if tc.run {
				c.Advance(time.Second)
			} else if !tm.Stop() {
				t.Fatal("first Stop of a pending timer returned false")
			}
			if tm.Stop() {
				t.Error("Stop returned true for a timer no longer pending")
			}
			c.Advance(time.Hour)
			if want := map[bool]int{true: 1, false: 0}[tc.run]; ran != want {
				t.Errorf("callback ran %d times, want %d", ran, want)
			}
		})
	}
}

// AdvanceTo never moves the clock backward.
func TestAdvanceToPast(t *testing.T) {
	c := fakeclock.New(t0)
	c.Advance(time.Minute)
	c.AdvanceTo(t0)
	if !c.Now().Equal(t0.Add(time.Minute)) {
		t.Errorf("Now %v after AdvanceTo the past, want it unchanged at %v", c.Now(), t0.Add(time.Minute))
	}
}
