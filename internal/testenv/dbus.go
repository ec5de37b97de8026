package testenv

import (
	"bufio"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"
)

// StartSessionBus starts a private dbus-daemon for the test and returns its
// address (for DBUS_SESSION_BUS_ADDRESS). The bus stops when the test ends.
func StartSessionBus(t testing.TB) string {
	t.Helper()
	bin := LookPath(t, "dbus-daemon")
	cmd := exec.Command(bin, "--session", "--nofork", "--print-address=1", "--address=unix:dir="+ShortTempDir(t))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the bus address from dbus-daemon: %v", err)
	}
	return strings.TrimSpace(addr)
}

// Notification is one org.freedesktop.Notifications.Notify call.
type Notification struct {
	App, Summary, Body string
	Urgency            byte // the "urgency" hint: 0 low, 1 normal, 2 critical
}

// NotificationServer is a minimal org.freedesktop.Notifications that
// records every Notify call, standing in for the desktop's.
type NotificationServer struct {
	// Wake receives (without blocking the caller) after each call.
	Wake chan struct{}

	mu    sync.Mutex
	calls []Notification
}

// StartNotificationServer owns org.freedesktop.Notifications on the bus at
// addr until the test ends.
func StartNotificationServer(t testing.TB, addr string) *NotificationServer {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &NotificationServer{Wake: make(chan struct{}, 1)}
	const name, path = "org.freedesktop.Notifications", "/org/freedesktop/Notifications"
	if err := conn.ExportMethodTable(map[string]any{"Notify": s.notify}, path, name); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v (reply %v)", name, err, reply)
	}
	return s
}

func (s *NotificationServer) notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	var urgency byte
	if v, ok := hints["urgency"]; ok {
		urgency, _ = v.Value().(byte)
	}
	s.mu.Lock()
	s.calls = append(s.calls, Notification{App: app, Summary: summary, Body: body, Urgency: urgency})
	n := len(s.calls)
	s.mu.Unlock()
	select {
	case s.Wake <- struct{}{}:
	default:
	}
	return uint32(n), nil
}

// Calls returns the notifications received so far.
func (s *NotificationServer) Calls() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}
