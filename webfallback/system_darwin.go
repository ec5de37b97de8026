package webfallback

const (
	systemOpener     = "open"
	systemOpenerHint = "it is part of macOS; check PATH"
)
