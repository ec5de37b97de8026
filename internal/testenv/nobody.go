package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Nobody is the uid (and gid) the tests play another local user as.
const Nobody = 65534

// NobodyCommand returns a command that runs this test binary again as uid
// nobody, with env added to the environment and no test selected
// (-test.run=^$), so that the binary's TestMain can act as the other user's
// client, daemon or probe. The binary is copied into a directory of its own
// that nobody may enter (t.TempDir's parent is private to this user). The
// test is skipped, or failed when tools are required, unless it runs as
// root.
func NobodyCommand(t testing.TB, env ...string) *exec.Cmd {
	t.Helper()
	if os.Getuid() != 0 {
		Missing(t, "needs root to run a process as nobody")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "qbnobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
	return cmd
}
