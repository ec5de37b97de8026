package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/quotabar/quotabar/ipc/socket"
)

// DefaultConfigPath is the configuration file used when no --config is
// given: $QUOTABAR_CONFIG, else the platform's configuration directory.
func DefaultConfigPath() (string, error) {
	if p := os.Getenv("QUOTABAR_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := platformConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "config.toml"), nil
}

// DefaultStateDir is where saved state and browser profiles live:
// $QUOTABAR_STATE_DIR, else on macOS the app's Application Support directory
// (beside the default config) and elsewhere $XDG_STATE_HOME/quotabar.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("QUOTABAR_STATE_DIR"); d != "" {
		return d, nil
	}
	if runtime.GOOS == "darwin" {
		return platformConfigDir()
	}
	return xdgDir("XDG_STATE_HOME", ".local/state")
}

func platformConfigDir() (string, error) {
	if runtime.GOOS == "darwin" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding the config directory: %w", err)
		}
		// The same directory as the socket's: one bundle id, defined where
		// the socket path (which clients need without this package) is.
		return filepath.Join(home, "Library", "Application Support", socket.BundleID), nil
	}
	return xdgDir("XDG_CONFIG_HOME", ".config")
}

// xdgDir follows the XDG base directory spec: a relative value is ignored.
func xdgDir(env, fallback string) (string, error) {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return filepath.Join(d, "quotabar"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("$%s is not set and the home directory is unknown: %w", env, err)
	}
	return filepath.Join(home, fallback, "quotabar"), nil
}
