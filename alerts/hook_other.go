//go:build !unix

package alerts

import "os/exec"

// killGroup leaves the default: a cancelled context kills the hook itself.
func killGroup(*exec.Cmd) {}
