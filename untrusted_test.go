package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/internal/testenv"
)

// TestSquattedSocketDirectory is issue 14's impersonation: another user
// (nobody) made the socket's directory first. Every command that talks to
// the daemon, and the daemon itself, must refuse it and name the owner.
func TestSquattedSocketDirectory(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Missing(t, "needs root to make a directory of nobody's")
	}
	e := newEnv(t)
	squat := filepath.Join(testenv.ShortTempDir(t), "quotabar-0")
	if err := os.Mkdir(squat, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(squat, 0o777)
	if err := os.Chown(squat, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	e.socket = filepath.Join(squat, "quotabar.sock")
	for _, args := range [][]string{
		{"status"},
		{"acquire", "--agent", "a", "--service", "svc", "--wait", "0s"},
		{"report", "--agent", "a", "--service", "svc", "--status", "200"},
		{"pause", "service", "svc"},
		{"run", "--", "true"},
		{"serve"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := e.run(t, args...)
			if r.code == 0 {
				t.Fatalf("exit 0 with a squatted socket directory; stdout %q", r.stdout)
			}
			if !strings.Contains(r.stderr, squat) || !strings.Contains(r.stderr, "belongs to uid 65534 (nobody)") {
				t.Errorf("stderr %q does not name the directory and its owner", r.stderr)
			}
		})
	}
	if _, err := os.Lstat(e.socket); err == nil {
		t.Error("the daemon made its socket in nobody's directory")
	}
}
