//go:build linux || darwin

package tray

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/quotabar/quotabar/internal/atomicfile"
)

// The platform files give autostartPath (where the login item lives),
// autostartFile (its contents for exe) and autostartKind (what to call it in
// errors); the switching itself is the same everywhere.

// autostartEnabled reports whether the login item exists.
func autostartEnabled() bool {
	p, err := autostartPath()
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// setAutostart writes (on) or removes (off) the login item that runs exe with
// no arguments at login: the menu-bar app with the daemon inside.
func setAutostart(on bool, exe string) error {
	p, err := autostartPath()
	if err != nil {
		return err
	}
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the %s: %w", autostartKind, err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
	}
	if err := atomicfile.WriteFile(p, autostartFile(exe), 0o644); err != nil {
		return fmt.Errorf("writing the %s: %w", autostartKind, err)
	}
	return nil
}
