// Package testenv lets tests that need an outside tool (dbus-daemon,
// chromium, WebKitWebDriver, xvfb-run) skip on a laptop without it, but fail
// under `./build.sh test`, which sets QUOTABAR_REQUIRE_TOOLS=1 after it has
// installed them: CI must prove those tests ran, not that they skipped.
package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Required reports whether missing tools must fail tests instead of skipping
// them.
func Required() bool { return os.Getenv("QUOTABAR_REQUIRE_TOOLS") == "1" }

// LookPath returns the path of the first of names found on PATH. When none is
// found the test is skipped, or failed when tools are required.
func LookPath(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Missing(t, "none of %q is installed (./build.sh test installs it)", names)
	return ""
}

// Missing skips the test, or fails it when tools are required, with the
// message formatted from format and args.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required tool missing: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Buffer is an io.Writer safe for concurrent use, for collecting the logs of
// a daemon or proxy under test (written from many goroutines, read by the
// test). The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartXvfb runs an X server on a display it picks itself (-displayfd) and
// points DISPLAY at it for the rest of the test; the server is killed at
// cleanup. Without Xvfb the test skips, or fails when tools are required.
func StartXvfb(t *testing.T) {
	t.Helper()
	xvfb := LookPath(t, "Xvfb")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xvfb, "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Xvfb: %v", err)
	}
	w.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	if err != nil {
		t.Fatalf("Xvfb did not say its display: %v", err)
	}
	t.Setenv("DISPLAY", ":"+strings.TrimSpace(line))
	t.Setenv("WAYLAND_DISPLAY", "")
}

// WaitFor calls cond until it returns true, checking often at first and
// then every 50 ms, and fails the test naming what it waited for when
// timeout passes first. Use it for a condition outside the test's control
// that publishes no event (a process exiting, a file appearing); when the
// code under test signals its changes, wait on them with WaitEvent.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}

// WaitEvent checks cond at once and again every time wake delivers, and
// fails the test naming what it waited for when timeout passes first or
// wake is closed with cond still false.
func WaitEvent(t testing.TB, timeout time.Duration, what string, wake <-chan struct{}, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for !cond() {
		select {
		case _, ok := <-wake:
			if !ok && !cond() {
				t.Fatalf("%s: the event source closed first", what)
			}
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// ShortTempDir returns a new directory under /tmp with a short name, removed
// when the test ends. Unix socket paths are limited to about 104 bytes, and
// t.TempDir's paths (which carry the test's name) often exceed that.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "qb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
