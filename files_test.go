package main

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
)

// TestServeFIFOConfig is issue 14.5 against the real command: a FIFO as the
// configuration makes `quotabar serve` exit at once saying so (it hung,
// deaf to SIGTERM); a FIFO renamed over the live configuration is refused,
// the daemon keeps serving, and SIGTERM still stops it cleanly.
func TestServeFIFOConfig(t *testing.T) {
	t.Run("at start-up", func(t *testing.T) {
		e := newEnv(t)
		os.Remove(e.config)
		if err := syscall.Mkfifo(e.config, 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		r := e.run(t, "serve")
		if r.code == 0 || !strings.Contains(r.stderr, "named pipe") || !strings.Contains(r.stderr, e.config) {
			t.Errorf("serve on a FIFO config: exit %d, stderr %q; want a failure naming the FIFO", r.code, r.stderr)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("serve took %v to give up on a FIFO", d)
		}
		r = e.run(t, "config", "check")
		if r.code == 0 || !strings.Contains(r.stderr, "named pipe") {
			t.Errorf("config check on a FIFO: exit %d, stderr %q; want a failure naming the FIFO", r.code, r.stderr)
		}
	})
	t.Run("while running", func(t *testing.T) {
		e := newEnv(t)
		d := e.serve(t)
		tmp := e.config + ".fifo"
		if err := syscall.Mkfifo(tmp, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, e.config); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 15*time.Second, "the FIFO edit to be refused", func() bool {
			return strings.Contains(d.logs.String(), "configuration edit not applied")
		})
		if s, ok := findService(e.status(t), "svc"); !ok || s.Name != "svc" {
			t.Error("the configuration in force was dropped")
		}
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := d.wait(t); code != 0 {
			t.Errorf("exit status after SIGTERM %d, want 0", code)
		}
	})
}
