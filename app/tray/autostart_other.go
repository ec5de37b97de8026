//go:build !linux && !darwin

package tray

import (
	"fmt"
	"runtime"
)

func autostartEnabled() bool { return false }

func setAutostart(on bool, exe string) error {
	return fmt.Errorf("start at login is not supported on %s", runtime.GOOS)
}
