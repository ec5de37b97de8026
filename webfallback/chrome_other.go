//go:build !linux && !darwin

package webfallback

import "os"

const chromeInstallHint = "install Chrome or Chromium"

func chromeCandidates() (names, paths []string) {
	return []string{"chromium", "chromium-browser", "google-chrome", "chrome"}, nil
}

// needsDisplay reports whether a visible window has nowhere to go.
func needsDisplay() bool { return os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" }
