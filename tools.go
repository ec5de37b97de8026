//go:build tools

// Package tools pins build and test dependencies that later packages import,
// so go mod tidy keeps them while those packages are being written.
package tools

import (
	_ "fyne.io/systray"
	_ "github.com/BurntSushi/toml"
	_ "github.com/alecthomas/kong"
	_ "github.com/chromedp/chromedp"
	_ "github.com/ebitengine/purego"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/godbus/dbus/v5"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/time/rate"
	_ "golang.org/x/tools/go/packages"
)
