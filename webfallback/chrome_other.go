//go:build !linux && !darwin

package webfallback

const chromeInstallHint = "install Chrome or Chromium"

func chromeCandidates() (names, paths []string) {
	return []string{"chromium", "chromium-browser", "google-chrome", "chrome"}, nil
}
