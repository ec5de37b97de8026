package alerts

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/godbus/dbus/v5"
)

// DBusNotifier shows notifications through org.freedesktop.Notifications
// on the session bus (every Linux desktop has a server for it). It
// connects on first use and again after the bus went away.
type DBusNotifier struct {
	// Address is the bus to use; "" means the session bus of
	// $DBUS_SESSION_BUS_ADDRESS.
	Address string

	mu   sync.Mutex
	conn *dbus.Conn
}

const (
	notifyService = "org.freedesktop.Notifications"
	notifyPath    = "/org/freedesktop/Notifications"
)

func (n *DBusNotifier) connect(ctx context.Context) (*dbus.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil && n.conn.Connected() {
		return n.conn, nil
	}
	addr, err := n.address()
	if err != nil {
		return nil, err
	}
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the D-Bus session bus for notifications: %w", err)
	}
	n.conn = conn
	return conn, nil
}

// address is the bus to dial. godbus's ConnectSessionBus would autolaunch a
// bus (dbus-launch) where there is none, a process nobody stops: a daemon
// without a session bus (a server, CI) gets an error instead.
func (n *DBusNotifier) address() (string, error) {
	if n.Address != "" {
		return n.Address, nil
	}
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
		return a, nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		if fi, err := os.Stat(filepath.Join(d, "bus")); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "unix:path=" + filepath.Join(d, "bus"), nil
		}
	}
	return "", errors.New("no D-Bus session bus for notifications: DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus")
}

// Notify sends one notification; urgent ones ask the server to keep them
// until they are seen (urgency critical).
func (n *DBusNotifier) Notify(ctx context.Context, title, body string, urgent bool) error {
	conn, err := n.connect(ctx)
	if err != nil {
		return err
	}
	urgency := byte(1)
	if urgent {
		urgency = 2
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgency), "desktop-entry": dbus.MakeVariant("quotabar")}
	call := conn.Object(notifyService, notifyPath).CallWithContext(ctx, notifyService+".Notify", 0,
		"quotabar", uint32(0), "", title, body, []string{}, hints, int32(-1))
	if call.Err != nil {
		return fmt.Errorf("%s.Notify: %w", notifyService, call.Err)
	}
	return nil
}

// Close closes the bus connection.
func (n *DBusNotifier) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}
