package webfallback

import "os"

const chromeInstallHint = "install chromium (apt install chromium) or Google Chrome"

// chromeCandidates returns the program names to look up on PATH and the
// absolute paths to try, in order of preference.
func chromeCandidates() (names, paths []string) {
	return []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}, nil
}

// needsDisplay reports whether a visible window has nowhere to go.
func needsDisplay() bool { return os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" }
