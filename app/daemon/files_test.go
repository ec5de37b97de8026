package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/readfile"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// mkfifo makes a named pipe at path, and a writer that never writes would
// not help: nothing opens its other end, so a blocking open would hang.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// within fails the test when f does not return within d: a read that
// blocks on a FIFO must show as a failure, not as a hung test binary.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// TestDaemonConfigFIFORefused: a FIFO as the configuration file makes
// start-up fail at once with an error naming it (issue 14.5; it hung, with
// SIGTERM ignored).
func TestDaemonConfigFIFORefused(t *testing.T) {
	td := newTestDaemon(t, "")
	if err := os.MkdirAll(filepath.Dir(td.opts.ConfigPath), 0o700); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, td.opts.ConfigPath)
	var err error
	within(t, 10*time.Second, "StartDaemon on a FIFO config", func() {
		var d *Daemon
		if d, err = StartDaemon(context.Background(), td.opts); err == nil {
			d.Shutdown(context.Background())
		}
	})
	if !errors.Is(err, readfile.ErrNotRegular) || !strings.Contains(err.Error(), td.opts.ConfigPath) {
		t.Errorf("StartDaemon = %v; want a not-a-regular-file error naming %s", err, td.opts.ConfigPath)
	}
}

// TestDaemonStateFIFOMovedAside: a FIFO as the state file does not hang
// start-up; it is moved aside like a corrupt file and the daemon starts
// clean.
func TestDaemonStateFIFOMovedAside(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	if err := os.MkdirAll(td.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(td.opts.StateDir, StateFile)
	mkfifo(t, path)
	within(t, 10*time.Second, "StartDaemon on a FIFO state file", func() { td.start(t) })
	if bad, _ := filepath.Glob(path + ".bad-*"); len(bad) != 1 {
		t.Errorf("the FIFO was not moved aside: %v", bad)
	}
	if logs := td.logs.String(); !strings.Contains(logs, "saved state not restored") || !strings.Contains(logs, "FIFO") {
		t.Errorf("the log does not say the state file is a FIFO:\n%s", logs)
	}
}

// TestDaemonHostileEditsKeepConfig saves issue 14.5's files over the live
// configuration: each is refused with a logged reason, the configuration in
// force stays, and a good edit afterwards still applies.
func TestDaemonHostileEditsKeepConfig(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	c := td.client()
	edits := []struct {
		name string
		put  func(path string)
		why  string
	}{
		{"10 MB of [", func(p string) { td.writeConfig(t, strings.Repeat("[", 10<<20)) }, "over the"},
		{"inline tables 5000 deep", func(p string) {
			td.writeConfig(t, "a = "+strings.Repeat("{b=", 5000)+"1"+strings.Repeat("}", 5000)+"\n")
		}, "nest more than"},
		{"a FIFO", func(p string) {
			tmp := p + ".fifo"
			mkfifo(t, tmp)
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}, "named pipe"},
	}
	for i, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			before := strings.Count(td.logs.String(), "configuration edit not applied")
			e.put(td.opts.ConfigPath)
			td.waitLogCount(t, "the edit to be refused", "configuration edit not applied", before+1)
			if logs := td.logs.String(); !strings.Contains(logs[strings.LastIndex(logs, "configuration edit not applied"):], e.why) {
				t.Errorf("the refusal does not say why (%q):\n%s", e.why, logs)
			}
			if _, ok := d.Config().Service("svc"); !ok {
				t.Fatal("the configuration in force was dropped")
			}
			if err := c.Health(context.Background()); err != nil {
				t.Fatalf("the daemon does not answer after edit %d: %v", i, err)
			}
		})
	}
	td.writeConfig(t, testConfig+"\n[services.after]\n")
	waitConfig(t, d, "a good edit after the hostile ones", func() bool {
		_, ok := d.Config().Service("after")
		return ok
	})
}

// waitLogCount waits until text appears n times in the log.
func (td *testDaemon) waitLogCount(t *testing.T, what, text string, n int) {
	t.Helper()
	td.waitUntil(t, what, func() bool { return strings.Count(td.logs.String(), text) >= n })
}

// TestDaemonStateTrailingGarbage: a state file with data after its end is
// not accepted silently (issue 14.7): it is moved aside with a warning, and
// the whole state before the garbage is restored.
func TestDaemonStateTrailingGarbage(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	if err := os.MkdirAll(td.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(td.opts.StateDir, StateFile)
	state := `{"limiter": {"services": {"svc": {"paused": true}}}}` + "\n{\"more\": 1} garbage\n"
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	td.start(t)
	if s, _ := serviceStatus(t, td.client(), "svc"); !s.Paused {
		t.Error("the state before the garbage was not restored")
	}
	bad, _ := filepath.Glob(path + ".bad-*")
	if len(bad) != 1 {
		t.Fatalf("the file was not moved aside: %v", bad)
	}
	if data, _ := os.ReadFile(bad[0]); string(data) != state {
		t.Errorf("the moved-aside file holds %q, want the original", data)
	}
	if logs := td.logs.String(); !strings.Contains(logs, "saved state partly restored") || !strings.Contains(logs, "after its end") {
		t.Errorf("no clear warning about the trailing data:\n%s", logs)
	}
}

// TestDaemonFarFutureCooldownFromState: a cooldown restored from state that
// ends centuries from now is refused with the real remaining time, capped
// at the longest one answer may hold the service (limiter.DefaultMaxHold;
// issue 14.7: it answered retry_after_ms 0).
func TestDaemonFarFutureCooldownFromState(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	if err := os.MkdirAll(td.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := `{"limiter": {"services": {"svc": {"cooldown_until": "9999-12-31T00:00:00Z"}}}}`
	if err := os.WriteFile(filepath.Join(td.opts.StateDir, StateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	td.start(t)
	_, err := td.client().Acquire(context.Background(), wire.AcquireRequest{Agent: "a1", Service: "svc", MaxWaitMS: wire.Wait(0)})
	refused, ok := errors.AsType[*ipc.RefusedError](err)
	if !ok || refused.Reason != wire.ReasonCooldown {
		t.Fatalf("acquire during the restored cooldown = %v, want a cooldown refusal", err)
	}
	hold := limiter.DefaultMaxHold("") // svc names no dialect
	if refused.RetryAfter < hold-time.Hour || refused.RetryAfter > hold+hold/10+time.Second {
		t.Errorf("retry after %v; want about %v (the cap), plus at most a tenth of jitter", refused.RetryAfter, hold)
	}
	if s, _ := serviceStatus(t, td.client(), "svc"); s.CooldownUntil == nil || s.CooldownUntil.After(time.Now().Add(hold+time.Minute)) {
		t.Errorf("status cooldown_until = %v; want at most %v from now", s.CooldownUntil, hold)
	}
}

// TestStateHostileFiles: LoadState on what a person or another program
// may leave in the state file's place.
func TestStateHostileFiles(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string)
		wantErr error // nil: any error
		msg     string
	}{
		{"fifo", func(t *testing.T, p string) { mkfifo(t, p) }, readfile.ErrNotRegular, "FIFO"},
		{"too large", func(t *testing.T, p string) {
			os.WriteFile(p, append([]byte(`{"limiter": {}}`), bytes.Repeat([]byte(" "), MaxStateSize)...), 0o600)
		}, readfile.ErrTooLarge, "cap"},
		{"trailing garbage", func(t *testing.T, p string) {
			os.WriteFile(p, []byte(`{"fallback": {"svc": true}} x`), 0o600)
		}, ErrTrailingData, "1 bytes after its end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), StateFile)
			tt.make(t, path)
			var st SavedState
			var err error
			within(t, 10*time.Second, "LoadState", func() { st, err = LoadState(path) })
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), StateFile+".bad-") {
				t.Errorf("LoadState = %v; want %v saying %q and where the file went", err, tt.wantErr, tt.msg)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("the file is still at %s", path)
			}
			if tt.wantErr == ErrTrailingData && !st.Fallback["svc"] {
				t.Errorf("the state before the garbage was not returned: %+v", st)
			}
		})
	}
}
