//go:build linux

package tray

// The menu bar tested for real: a private dbus-daemon, a minimal
// StatusNotifierWatcher standing in for the panel, and the app as a child
// process (fyne.io/systray keeps global state, one app per process). The
// test reads the menu with com.canonical.dbusmenu.GetLayout and clicks with
// Event, as a panel does, and drives the daemon through its socket.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

const trayChildEnv = "QUOTABAR_TEST_TRAY_CHILD"

// TestTrayChild is the app the tray tests start; alone it does nothing.
func TestTrayChild(t *testing.T) {
	if os.Getenv(trayChildEnv) != "1" {
		t.Skip("the app process of the tray tests")
	}
	if err := Run(context.Background(), daemon.Options{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// startPrivateBus starts a private session bus and returns its address.
func startPrivateBus(t *testing.T) string {
	t.Helper()
	bin := testenv.LookPath(t, "dbus-daemon")
	dir := testenv.ShortTempDir(t)
	cmd := exec.Command(bin, "--session", "--nofork", "--print-address=1", "--address=unix:dir="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr trayOutput // it complains about fd limits when not root
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon output:\n%s", stderr.String())
		}
	})
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the bus address from dbus-daemon: %v", err)
	}
	return strings.TrimSpace(addr)
}

func busConnect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the private bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// snHost is the smallest org.kde.StatusNotifierWatcher: it records who
// registers.
type snHost struct{ items chan string }

func (w *snHost) RegisterStatusNotifierItem(sender dbus.Sender, path string) *dbus.Error {
	w.items <- string(sender) + path
	return nil
}

func (w *snHost) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

func startWatcher(t *testing.T, conn *dbus.Conn) *snHost {
	t.Helper()
	w := &snHost{items: make(chan string, 8)}
	if err := conn.Export(w, "/StatusNotifierWatcher", snWatcher); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(snWatcher, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: reply %v, %v", snWatcher, reply, err)
	}
	return w
}

// trayApp is the child process.
type trayApp struct {
	cmd    *exec.Cmd
	socket string
	dir    string
	out    *trayOutput
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

type trayOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *trayOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *trayOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const trayConfig = `show_title = true
[proxy]
enabled = false
[services.openai]
limits = ["5 requests/1m"]
fallback = { browser = "chrome", url = "https://example.com/" }
`

// startTrayApp runs the app on the bus at busAddr ("" for none).
func startTrayApp(t *testing.T, busAddr string) *trayApp {
	t.Helper()
	return startTrayAppWith(t, busAddr, trayConfig)
}

// startTrayAppWith runs the app with the config file config; env is added
// to (and overrides) the child's environment.
func startTrayAppWith(t *testing.T, busAddr, config string, env ...string) *trayApp {
	t.Helper()
	dir := testenv.ShortTempDir(t)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &trayApp{socket: filepath.Join(dir, "s.sock"), dir: dir, out: &trayOutput{}, exited: make(chan struct{})}
	a.cmd = exec.Command(os.Args[0], "-test.run=^TestTrayChild$", "-test.count=1")
	a.cmd.Env = append(os.Environ(),
		trayChildEnv+"=1",
		"DBUS_SESSION_BUS_ADDRESS="+busAddr,
		"XDG_RUNTIME_DIR="+dir, // nothing to discover a bus from
		"XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"),
		"QUOTABAR_SOCKET="+a.socket,
		"QUOTABAR_CONFIG="+cfg,
		"QUOTABAR_STATE_DIR="+filepath.Join(dir, "state"),
	)
	a.cmd.Env = append(a.cmd.Env, env...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("app output:\n%s", a.out.String())
		}
	})
	c := a.client()
	trayWait(t, "the app's socket to answer", func() error { return c.Health(context.Background()) })
	return a
}

func (a *trayApp) client() *ipc.Client { return &ipc.Client{SocketPath: a.socket} }

// waitExit waits for a clean exit: status 0 and the socket removed.
func (a *trayApp) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the app did not exit within 20 s")
	}
	if a.err != nil {
		t.Fatalf("the app exited with %v, want status 0", a.err)
	}
	if _, err := os.Stat(a.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s still there after exit (%v)", a.socket, err)
	}
}

// trayWait waits until cond returns nil, failing the test at the deadline
// with cond's last error. The app is another process and its menu is on
// D-Bus: nothing there tells this test when to look again.
func trayWait(t *testing.T, what string, cond func() error) {
	t.Helper()
	var last error
	testenv.WaitFor(lastErrorTB{t, &last}, 20*time.Second, what, func() bool {
		last = cond()
		return last == nil
	})
}

// lastErrorTB adds the last error seen to a failure's message.
type lastErrorTB struct {
	testing.TB
	last *error
}

func (l lastErrorTB) Fatalf(format string, args ...any) {
	l.TB.Helper()
	l.TB.Fatalf(format+" (last: %v)", append(args, *l.last)...)
}

// menuNode is a menu item as com.canonical.dbusmenu shows it.
type menuNode struct {
	ID      int32
	Label   string
	Visible bool
	Enabled bool
	Toggle  string // toggle-type: "checkmark" or ""
	Checked bool   // toggle-state == 1
	Kids    []menuNode
}

func (n menuNode) String() string {
	var b strings.Builder
	var walk func(n menuNode, indent string)
	walk = func(n menuNode, indent string) {
		fmt.Fprintf(&b, "%s%d %q visible=%v enabled=%v toggle=%q checked=%v\n", indent, n.ID, n.Label, n.Visible, n.Enabled, n.Toggle, n.Checked)
		for _, k := range n.Kids {
			walk(k, indent+"  ")
		}
	}
	walk(n, "")
	return b.String()
}

// child finds the visible child whose label starts with prefix.
func (n menuNode) child(prefix string) (menuNode, error) {
	for _, k := range n.Kids {
		if k.Visible && strings.HasPrefix(k.Label, prefix) {
			return k, nil
		}
	}
	return menuNode{}, fmt.Errorf("no visible item %q* under %q in\n%v", prefix, n.Label, n)
}

// path follows child prefixes down the menu.
func (n menuNode) path(prefixes ...string) (menuNode, error) {
	var err error
	for _, p := range prefixes {
		if n, err = n.child(p); err != nil {
			return menuNode{}, err
		}
	}
	return n, nil
}

func decodeMenuNode(v []any) (menuNode, error) {
	if len(v) != 3 {
		return menuNode{}, fmt.Errorf("layout item has %d fields, want 3", len(v))
	}
	id, _ := v[0].(int32)
	props, _ := v[1].(map[string]dbus.Variant)
	kids, _ := v[2].([]dbus.Variant)
	n := menuNode{ID: id, Visible: true, Enabled: true}
	for k, p := range props {
		switch k {
		case "label":
			n.Label, _ = p.Value().(string)
		case "visible":
			n.Visible, _ = p.Value().(bool)
		case "enabled":
			n.Enabled, _ = p.Value().(bool)
		case "toggle-type":
			n.Toggle, _ = p.Value().(string)
		case "toggle-state":
			s, _ := p.Value().(int32)
			n.Checked = s == 1
		}
	}
	for _, k := range kids {
		fields, ok := k.Value().([]any)
		if !ok {
			return menuNode{}, fmt.Errorf("layout child is %T, want a struct", k.Value())
		}
		kid, err := decodeMenuNode(fields)
		if err != nil {
			return menuNode{}, err
		}
		n.Kids = append(n.Kids, kid)
	}
	return n, nil
}

// dbusMenu is the registered item's dbusmenu, read as a panel reads it.
type dbusMenu struct {
	obj  dbus.BusObject // the menu
	item dbus.BusObject // the StatusNotifierItem that has it
}

func (m dbusMenu) layout() (menuNode, error) {
	var rev uint32
	var root struct {
		ID    int32
		Props map[string]dbus.Variant
		Kids  []dbus.Variant
	}
	err := m.obj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &root)
	if err != nil {
		return menuNode{}, fmt.Errorf("GetLayout: %w", err)
	}
	return decodeMenuNode([]any{root.ID, root.Props, root.Kids})
}

// find reads the menu and follows prefixes.
func (m dbusMenu) find(prefixes ...string) (menuNode, error) {
	root, err := m.layout()
	if err != nil {
		return menuNode{}, err
	}
	return root.path(prefixes...)
}

func (m dbusMenu) click(t *testing.T, prefixes ...string) {
	t.Helper()
	var n menuNode
	trayWait(t, fmt.Sprintf("menu item %q", prefixes), func() (err error) {
		n, err = m.find(prefixes...)
		return err
	})
	if err := m.obj.Call("com.canonical.dbusmenu.Event", 0, n.ID, "clicked", dbus.MakeVariant(""), uint32(0)).Err; err != nil {
		t.Fatalf("clicking %q: %v", prefixes, err)
	}
}

// quit clicks Quit. The app may be gone before its answer to the click
// leaves: a NoReply error means it quit, which waitExit checks.
func (m dbusMenu) quit(t *testing.T) {
	t.Helper()
	var n menuNode
	trayWait(t, "menu item Quit", func() (err error) {
		n, err = m.find("Quit")
		return err
	})
	err := m.obj.Call("com.canonical.dbusmenu.Event", 0, n.ID, "clicked", dbus.MakeVariant(""), uint32(0)).Err
	if de, ok := errors.AsType[dbus.Error](err); err != nil && (!ok || de.Name != "org.freedesktop.DBus.Error.NoReply") {
		t.Fatalf("clicking Quit: %v", err)
	}
}

// registeredMenu waits for the app to register with the watcher and returns
// its menu, found through the item's Menu property as a panel finds it.
func registeredMenu(t *testing.T, conn *dbus.Conn, w *snHost) dbusMenu {
	t.Helper()
	var item string
	select {
	case item = <-w.items:
	case <-time.After(20 * time.Second):
		t.Fatal("no StatusNotifierItem registered within 20 s")
	}
	name, path, _ := strings.Cut(item, "/")
	v, err := conn.Object(name, dbus.ObjectPath("/"+path)).GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		t.Fatalf("reading the item's Menu property: %v", err)
	}
	mp, ok := v.Value().(dbus.ObjectPath)
	if !ok {
		t.Fatalf("Menu property is %T", v.Value())
	}
	return dbusMenu{obj: conn.Object(name, mp), item: conn.Object(name, dbus.ObjectPath("/"+path))}
}

func TestTray(t *testing.T) {
	bus := startPrivateBus(t)
	conn := busConnect(t, bus)
	w := startWatcher(t, conn)
	a := startTrayApp(t, bus)
	m := registeredMenu(t, conn, w)
	c := a.client()
	ctx := context.Background()

	t.Run("service rows follow the daemon", func(t *testing.T) {
		trayWait(t, "the limit row", func() error {
			_, err := m.find("openai", "5 / 5 requests")
			return err
		})
		lease, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "research", Service: "openai", MaxWaitMS: wire.Wait(0)})
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
		trayWait(t, "the grant to show", func() error {
			_, err := m.find("openai", "4 / 5 requests, resets in")
			return err
		})
		if _, err := c.Report(ctx, wire.ReportRequest{Lease: lease.ID, Status: 429, Headers: map[string]string{"Retry-After": "30"}}); err != nil {
			t.Fatalf("report: %v", err)
		}
		trayWait(t, "the cooldown row", func() error {
			if _, err := m.find("openai: cooling down"); err != nil {
				return err
			}
			_, err := m.find("openai", "Cooling down: ")
			return err
		})
		svc, _ := m.find("openai")
		if s, _ := svc.child("Cooling down"); !strings.HasSuffix(s.Label, " s left") || s.Enabled {
			t.Errorf("cooldown row %q enabled=%v, want a greyed-out countdown in seconds", s.Label, s.Enabled)
		}
	})

	t.Run("clear the cooldown", func(t *testing.T) {
		m.click(t, "openai", "Clear cooldown and learned limits")
		trayWait(t, "/v1/status to show no cooldown", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if cu := st.Services[0].CooldownUntil; cu != nil {
				return fmt.Errorf("cooldown_until %v", cu)
			}
			return nil
		})
		trayWait(t, "the cooldown row to go", func() error {
			if _, err := m.find("openai: cooling down"); err == nil {
				return errors.New("the title still says cooling down")
			}
			return nil
		})
		if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "research", Service: "openai", MaxWaitMS: wire.Wait(0)}); err != nil {
			t.Errorf("acquire after clearing the cooldown: %v, want a grant", err)
		}
	})

	t.Run("pause a service", func(t *testing.T) {
		m.click(t, "openai", "Pause")
		trayWait(t, "/v1/status to say paused", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Services) != 1 || !st.Services[0].Paused {
				return fmt.Errorf("services %+v", st.Services)
			}
			return nil
		})
		_, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "research", Service: "openai", MaxWaitMS: wire.Wait(0)})
		var refused *ipc.RefusedError
		if !errors.As(err, &refused) || refused.Reason != "paused" {
			t.Fatalf("acquire while paused: %v, want refused with reason paused", err)
		}
		trayWait(t, "the Pause checkbox to be ticked", func() error {
			n, err := m.find("openai", "Pause")
			if err == nil && (n.Toggle != "checkmark" || !n.Checked) {
				err = fmt.Errorf("Pause is %+v", n)
			}
			return err
		})
	})

	t.Run("web fallback switch", func(t *testing.T) {
		m.click(t, "openai", "Web fallback")
		trayWait(t, "/v1/status to say the fallback is on", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if fb := st.Services[0].Fallback; fb == nil || !fb.Enabled {
				return fmt.Errorf("fallback %+v", fb)
			}
			return nil
		})
		trayWait(t, "the checkbox to be ticked and Open in browser enabled", func() error {
			fb, err := m.find("openai", "Web fallback")
			if err != nil {
				return err
			}
			open, err := m.find("openai", "Open in browser")
			if err != nil {
				return err
			}
			if !fb.Checked || !open.Enabled {
				return fmt.Errorf("Web fallback %+v, Open in browser %+v", fb, open)
			}
			return nil
		})
	})

	t.Run("agent priority", func(t *testing.T) {
		trayWait(t, "research at normal priority in the menu", func() error {
			n, err := m.find("Agents", "research", "Normal priority")
			if err == nil && !n.Checked {
				err = fmt.Errorf("Normal priority not ticked: %+v", n)
			}
			return err
		})
		m.click(t, "Agents", "research", "Low priority")
		trayWait(t, "research at low priority", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			for _, a := range st.Agents {
				if a.Name == "research" && a.Priority == "low" {
					return nil
				}
			}
			return fmt.Errorf("agents %+v", st.Agents)
		})
		trayWait(t, "the priority checkboxes to follow", func() error {
			ag, err := m.find("Agents", "research")
			if err != nil {
				return err
			}
			for label, want := range map[string]bool{"High priority": false, "Normal priority": false, "Low priority": true} {
				if n, err := ag.child(label); err != nil || n.Checked != want {
					return fmt.Errorf("%s: %+v %v, want checked=%v", label, n, err, want)
				}
			}
			return nil
		})
	})

	t.Run("pause an agent", func(t *testing.T) {
		m.click(t, "Agents", "research", "Pause")
		trayWait(t, "/v1/status to say research is paused", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			for _, a := range st.Agents {
				if a.Name == "research" && a.Paused {
					return nil
				}
			}
			return fmt.Errorf("agents %+v", st.Agents)
		})
		trayWait(t, "the agent's Pause checkbox to be ticked", func() error {
			n, err := m.find("Agents", "research", "Pause")
			if err == nil && !n.Checked {
				err = fmt.Errorf("not ticked: %+v", n)
			}
			return err
		})
	})

	t.Run("start at login", func(t *testing.T) {
		entry := filepath.Join(a.dir, "xdg", "autostart", "quotabar.desktop")
		m.click(t, "Start at login")
		trayWait(t, "the autostart entry", func() error {
			b, err := os.ReadFile(entry)
			if err == nil && !strings.Contains(string(b), "\nExec=\"") {
				err = fmt.Errorf("entry without Exec:\n%s", b)
			}
			return err
		})
		trayWait(t, "Start at login to be ticked", func() error {
			n, err := m.find("Start at login")
			if err == nil && !n.Checked {
				err = fmt.Errorf("not ticked: %+v", n)
			}
			return err
		})
		m.click(t, "Start at login")
		trayWait(t, "the autostart entry to go", func() error {
			if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		})
	})

	t.Run("quota notifications", func(t *testing.T) {
		trayWait(t, "Quota notifications to be ticked (on by default)", func() error {
			n, err := m.find("Quota notifications")
			if err == nil && !n.Checked {
				err = fmt.Errorf("not ticked: %+v", n)
			}
			return err
		})
		m.click(t, "Quota notifications")
		trayWait(t, "the switch saved in the state and shown unticked", func() error {
			b, err := os.ReadFile(filepath.Join(a.dir, "state", "state.json"))
			if err != nil || !strings.Contains(string(b), `"notify": false`) {
				return fmt.Errorf("state %s: %v", b, err)
			}
			n, err := m.find("Quota notifications")
			if err == nil && n.Checked {
				err = fmt.Errorf("still ticked: %+v", n)
			}
			return err
		})
		m.click(t, "Quota notifications")
	})

	// A new service lands before the top-level separator, which systray
	// cannot remove: the menu is rebuilt, and must look as if built afresh.
	t.Run("a service added to the config", func(t *testing.T) {
		cfg := trayConfig + "[services.anthropic]\nlimits = [\"50 requests/1m\"]\n"
		if err := os.WriteFile(filepath.Join(a.dir, "config.toml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		trayWait(t, "the new service in the menu", func() error {
			root, err := m.layout()
			if err != nil {
				return err
			}
			var labels []string
			for _, k := range root.Kids {
				labels = append(labels, k.Label)
			}
			want := []string{"anthropic", "openai", "Agents", "", "Open config file", "Copy socket path", "Quota notifications", "Start at login", "", "Quit"}
			if len(labels) != len(want) {
				return fmt.Errorf("top level %q, want %q", labels, want)
			}
			for i := range want {
				if !strings.HasPrefix(labels[i], want[i]) || (want[i] == "" && labels[i] != "") {
					return fmt.Errorf("top level %q, want %q", labels, want)
				}
			}
			return nil
		})
		if n, err := m.find("openai", "Pause"); err != nil || !n.Checked {
			t.Errorf("after the rebuild openai's Pause is %+v, %v; want ticked", n, err)
		}
	})

	t.Run("quit", func(t *testing.T) {
		m.quit(t)
		a.waitExit(t)
	})
}

// TestTrayWithoutHost: with a bus but no tray host the app says so once,
// keeps its item on the bus, and registers when a host appears.
func TestTrayWithoutHost(t *testing.T) {
	bus := startPrivateBus(t)
	a := startTrayApp(t, bus)
	const msg = "no tray host is visible yet"
	trayWait(t, "the no-host message", func() error {
		if !strings.Contains(a.out.String(), msg) {
			return errors.New("not logged yet")
		}
		return nil
	})
	conn := busConnect(t, bus)
	w := startWatcher(t, conn)
	m := registeredMenu(t, conn, w)
	trayWait(t, "the menu", func() error {
		_, err := m.find("openai")
		return err
	})
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.waitExit(t)
	if n := strings.Count(a.out.String(), msg); n != 1 {
		t.Errorf("the no-host message was logged %d times, want once", n)
	}
}

// TestTrayWithoutBus: without a session bus the app runs as the daemon
// alone and says so once.
func TestTrayWithoutBus(t *testing.T) {
	// godbus finds a systemd user bus by its fixed path whatever the
	// environment says; this test needs a machine without one.
	if p := fmt.Sprintf("/run/user/%d/bus", os.Getuid()); trayFileExists(p) {
		t.Skipf("a session bus is always found at %s here", p)
	}
	a := startTrayApp(t, "")
	if n := strings.Count(a.out.String(), "no menu bar, running the daemon alone"); n != 1 {
		t.Errorf("the no-bus message was logged %d times, want once:\n%s", n, a.out.String())
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.waitExit(t)
}

func trayFileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestDesktopExec(t *testing.T) {
	for exe, want := range map[string]string{
		"/usr/bin/quotabar":         `"/usr/bin/quotabar"`,
		"/opt/my apps/quotabar":     `"/opt/my apps/quotabar"`,
		`/o"d/$x/a\b/100%/quotabar`: `"/o\\"d/\\$x/a\\\\b/100%%/quotabar"`,
	} {
		if got := desktopExec(exe); got != want {
			t.Errorf("desktopExec(%q) = %s, want %s", exe, got, want)
		}
	}
}
