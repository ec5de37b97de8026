//go:build !linux && !darwin

package webfallback

const (
	systemOpener     = "xdg-open"
	systemOpenerHint = "install xdg-utils"
)
