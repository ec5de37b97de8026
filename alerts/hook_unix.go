//go:build unix

package alerts

import (
	"os/exec"
	"syscall"
)

// killGroup starts the hook in its own process group and makes a
// cancelled context kill the whole group: `sh -c 'sleep 600'` must not
// leave the sleep behind.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
