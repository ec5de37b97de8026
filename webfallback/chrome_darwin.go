package webfallback

import (
	"os"
	"path/filepath"
)

const chromeInstallHint = "install Google Chrome or Chromium into /Applications"

// chromeCandidates returns the program names to look up on PATH and the
// absolute paths to try, in order of preference: the app bundles in
// /Applications, then in ~/Applications.
func chromeCandidates() (names, paths []string) {
	bundles := []string{
		"Google Chrome.app/Contents/MacOS/Google Chrome",
		"Chromium.app/Contents/MacOS/Chromium",
	}
	roots := []string{"/Applications"}
	if home, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(home, "Applications"))
	}
	for _, r := range roots {
		for _, b := range bundles {
			paths = append(paths, filepath.Join(r, b))
		}
	}
	return []string{"chromium", "google-chrome"}, paths
}

// needsDisplay is false: a Mac always has its window server.
func needsDisplay() bool { return false }
