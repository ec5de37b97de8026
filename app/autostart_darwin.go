package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// autostartPath is the per-user LaunchAgent that starts quotabar at login;
// launchd loads every plist in ~/Library/LaunchAgents when the user logs in.
func autostartPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding ~/Library/LaunchAgents: %w", err)
	}
	return filepath.Join(home, "Library", "LaunchAgents", BundleID+".plist"), nil
}

// autostartEnabled reports whether the LaunchAgent exists.
func autostartEnabled() bool {
	p, err := autostartPath()
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// setAutostart writes (on) or removes (off) the LaunchAgent that runs exe
// with no arguments at login: the menu-bar app with the daemon inside.
func setAutostart(on bool, exe string) error {
	p, err := autostartPath()
	if err != nil {
		return err
	}
	if !on {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the LaunchAgent: %w", err)
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("creating ~/Library/LaunchAgents: %w", err)
	}
	if err := writeFileAtomic(p, launchAgent(exe), 0o644); err != nil {
		return fmt.Errorf("writing the LaunchAgent: %w", err)
	}
	return nil
}
