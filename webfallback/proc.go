package webfallback

import "syscall"

// alive reports whether process (or, negative, process group) p exists.
func alive(p int) bool {
	err := syscall.Kill(p, 0)
	return err == nil || err == syscall.EPERM
}

// groupAlive reports whether the process pid or any process of its group
// exists. Chrome's helpers (zygote, renderers, GPU) share the group of the
// browser, which chromedp starts in a session of its own.
func groupAlive(pid int) bool { return alive(pid) || alive(-pid) }

// killGroup kills the process pid and its process group.
func killGroup(pid int) {
	if pid <= 0 {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// chromeSysProcAttr puts Chrome in a process group of its own, so that
// killGroup reaches its helpers (zygote, renderers, GPU).
func chromeSysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
