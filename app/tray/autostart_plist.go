package tray

import (
	"bytes"
	"encoding/xml"

	"github.com/quotabar/quotabar/ipc/socket"
)

// launchAgent is the macOS LaunchAgent plist (autostart_darwin.go) that
// runs exe once at load (login), not kept alive, so that Quit from the menu
// stays quit. It is built everywhere so that its test runs on Linux too.
func launchAgent(exe string) []byte {
	esc := func(s string) string {
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(s)) // writes to a bytes.Buffer: cannot fail
		return b.String()
	}
	return []byte(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + socket.BundleID + `</string>
	<key>ProgramArguments</key>
	<array>
		<string>` + esc(exe) + `</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<false/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
`)
}
