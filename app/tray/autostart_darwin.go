package tray

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/quotabar/quotabar/ipc/socket"
)

// autostartPath is the per-user LaunchAgent that starts quotabar at login;
// launchd loads every plist in ~/Library/LaunchAgents when the user logs in.
func autostartPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding ~/Library/LaunchAgents: %w", err)
	}
	return filepath.Join(home, "Library", "LaunchAgents", socket.BundleID+".plist"), nil
}

const autostartKind = "LaunchAgent"

func autostartFile(exe string) []byte { return launchAgent(exe) }
