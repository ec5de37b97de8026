// Package tray is quotabar's menu bar: Run starts the daemon (package
// daemon) and shows a fyne.io/systray menu on top of it, or the daemon
// alone where there is no menu bar.
//
// menu.go is the pure menu model (a function from a status snapshot to the
// items shown, and the diff between two models), tested by table; tray.go
// binds it to systray, from one goroutine because systray is not safe for
// concurrent use; desktop.go runs the desktop helpers (open the config in
// an editor, copy to the clipboard); autostart*.go write or remove the
// login item (an XDG autostart entry on Linux, a LaunchAgent on macOS).
package tray
