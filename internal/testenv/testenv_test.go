package testenv

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records a Fatalf instead of ending the calling goroutine's test, so
// the helpers' failures can be checked. Fatalf still stops the helper, as
// the real one does, through runtime.Goexit in a goroutine of its own.
type fakeT struct {
	testing.TB
	failed atomic.Value
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed.Store(format)
	panic(f)
}

func run(f *fakeT, fn func()) (failed string) {
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
		s, _ := f.failed.Load().(string)
		failed = s
	}()
	fn()
	return ""
}

func TestWaitFor(t *testing.T) {
	var n int
	if msg := run(&fakeT{TB: t}, func() {
		WaitFor(&fakeT{TB: t}, time.Second, "three calls", func() bool { n++; return n == 3 })
	}); msg != "" || n != 3 {
		t.Errorf("WaitFor: failed %q after %d calls, want success after 3", msg, n)
	}
	f := &fakeT{TB: t}
	if msg := run(f, func() { WaitFor(f, 20*time.Millisecond, "never", func() bool { return false }) }); !strings.Contains(msg, "timed out") {
		t.Errorf("WaitFor on a false condition: %q, want a time-out failure", msg)
	}
}

func TestWaitEvent(t *testing.T) {
	wake := make(chan struct{})
	var v atomic.Int32
	go func() {
		for i := 1; i <= 3; i++ {
			v.Store(int32(i))
			wake <- struct{}{}
		}
	}()
	f := &fakeT{TB: t}
	if msg := run(f, func() { WaitEvent(f, 5*time.Second, "v=3", wake, func() bool { return v.Load() == 3 }) }); msg != "" {
		t.Errorf("WaitEvent: %q", msg)
	}
	closed := make(chan struct{})
	close(closed)
	f = &fakeT{TB: t}
	if msg := run(f, func() { WaitEvent(f, 5*time.Second, "never", closed, func() bool { return false }) }); !strings.Contains(msg, "closed") {
		t.Errorf("WaitEvent on a closed source: %q, want a failure naming the close", msg)
	}
	f = &fakeT{TB: t}
	if msg := run(f, func() { WaitEvent(f, 10*time.Millisecond, "never", make(chan struct{}), func() bool { return false }) }); !strings.Contains(msg, "timed out") {
		t.Errorf("WaitEvent without events: %q, want a time-out failure", msg)
	}
}

func TestShortTempDir(t *testing.T) {
	var d string
	t.Run("inner", func(t *testing.T) {
		d = ShortTempDir(t)
		if len(d) > 20 {
			t.Errorf("ShortTempDir = %q (%d bytes), want a short path", d, len(d))
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("ShortTempDir %q is not a directory: %v", d, err)
		}
	})
	if _, err := os.Stat(d); !os.IsNotExist(err) {
		t.Errorf("%s still exists after its test ended (err %v)", d, err)
	}
}
