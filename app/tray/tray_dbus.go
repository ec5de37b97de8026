//go:build linux || freebsd || openbsd || netbsd

package tray

import (
	"fmt"
	"log/slog"

	"github.com/godbus/dbus/v5"
)

// snWatcher is the D-Bus name of the tray host's registry.
const snWatcher = "org.kde.StatusNotifierWatcher"

// trayAvailable checks for a session bus, which fyne.io/systray needs:
// without one its Run never gets an item on the bus and its Quit panics. It
// never starts a bus (dbus.SessionBus would run dbus-launch and leave a
// stray one behind). With a bus but no tray host it logs that once: the item
// is still exported and registers when a panel starts.
func trayAvailable(log *slog.Logger) error {
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return fmt.Errorf("no D-Bus session bus: %w", err)
	}
	defer conn.Close()
	if err := conn.Auth(nil); err != nil {
		return fmt.Errorf("the D-Bus session bus refused us: %w", err)
	}
	if err := conn.Hello(); err != nil {
		return fmt.Errorf("the D-Bus session bus refused us: %w", err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, snWatcher).Store(&has); err != nil {
		return fmt.Errorf("asking the D-Bus session bus for a tray host: %w", err)
	}
	if !has {
		log.Warn("no tray host is visible yet (nothing owns " + snWatcher + " on the session bus); the menu appears when a panel with a system tray starts")
	}
	return nil
}
