//go:build linux

package tray

// The menu's desktop actions for real: "Open in browser" starts headless
// Chromium through the web fallback, "Copy socket path" and "Open config
// file" run the desktop's tools (fakes on PATH that record what they got),
// and menu updates stay at most one a second under a burst of changes.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/wire"
)

// fakeTool writes a shell script named name into dir that records its
// arguments (one a line) in name.args and its standard input in name.in,
// each written whole so that a poll never reads half a file, and exits with
// code. It calls cat and mv by full path: PATH may hold only dir.
func fakeTool(t *testing.T, dir, name string, code int) {
	t.Helper()
	rec := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" > %[1]s.args.tmp && /bin/mv %[1]s.args.tmp %[1]s.args\n"+
		"/bin/cat > %[1]s.in.tmp && /bin/mv %[1]s.in.tmp %[1]s.in\nexit %[2]d\n", rec, code)
	if err := os.WriteFile(rec, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// toolRecord reads what the fake tool name in dir recorded: "args" or "in".
func toolRecord(dir, name, what string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+"."+what))
	return string(b), err
}

func TestCopyText(t *testing.T) {
	const text = "/run/user/1000/quotabar.sock"
	tests := []struct {
		name    string
		tools   map[string]int // fake tool → exit code
		wayland string
		want    string // the tool that must get the text, "" for none
		wantErr []string
	}{
		{name: "X11 session: xclip before wl-copy", tools: map[string]int{"xclip": 0, "wl-copy": 0}, want: "xclip"},
		{name: "Wayland session: wl-copy first", tools: map[string]int{"xclip": 0, "wl-copy": 0}, wayland: "wayland-0", want: "wl-copy"},
		{name: "only wl-copy", tools: map[string]int{"wl-copy": 0}, want: "wl-copy"},
		{name: "a failing tool hands over", tools: map[string]int{"xclip": 1, "xsel": 0}, want: "xsel"},
		{name: "wl-copy outside Wayland fails, xclip works", tools: map[string]int{"xclip": 0, "wl-copy": 1}, wayland: "wayland-0", want: "xclip"},
		{name: "every tool fails", tools: map[string]int{"xclip": 1}, wantErr: []string{"xclip", "exit status 1"}},
		{name: "no tool", tools: map[string]int{}, wantErr: []string{"no clipboard tool found", "wl-copy", "xclip", "xsel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := t.TempDir()
			for name, code := range tt.tools {
				fakeTool(t, bin, name, code)
			}
			t.Setenv("PATH", bin)
			t.Setenv("WAYLAND_DISPLAY", tt.wayland)
			err := copyText(text)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("copyText succeeded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("copyText: %v", err)
			}
			for name, code := range tt.tools {
				in, err := toolRecord(bin, name, "in")
				switch {
				case name == tt.want && in != text:
					t.Errorf("%s got %q (%v), want %q", name, in, err, text)
				case name != tt.want && code == 0 && err == nil:
					t.Errorf("%s ran too, want only %s", name, tt.want)
				}
			}
			if args, _ := toolRecord(bin, tt.want, "args"); tt.want == "xclip" && args != "-selection\nclipboard\n" {
				t.Errorf("xclip args %q, want -selection clipboard", args)
			}
		})
	}
}

// trayKillBrowsers kills what is left of browsers with a profile under dir,
// after a failed test: a killed app cannot close them.
func trayKillBrowsers(dir string) {
	for _, p := range testenv.ProcessesNaming(dir) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestTrayDesktop(t *testing.T) {
	chrome := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	bus := startPrivateBus(t)
	conn := busConnect(t, bus)
	w := startWatcher(t, conn)

	var visits atomic.Int32
	site := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chat" {
			visits.Add(1)
		}
		fmt.Fprint(rw, "<!doctype html><title>chat</title><body>chat</body>")
	}))
	t.Cleanup(site.Close)

	bin := t.TempDir()
	for _, name := range []string{"xdg-open", "xclip", "wl-copy"} {
		fakeTool(t, bin, name, 0)
	}
	config := fmt.Sprintf(`show_title = true
chrome_path = %q
[proxy]
enabled = false
[services.svc]
limits = ["100 requests/1h"]
fallback = { browser = "chrome", url = %q, headless = true }
`, chrome, site.URL+"/chat")
	a := startTrayAppWith(t, bus, config,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DISPLAY=:97", "WAYLAND_DISPLAY=")
	profiles := filepath.Join(a.dir, "state", "browsers")
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default: // a failed test: let the app close its browser first
			a.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-a.exited:
			case <-time.After(20 * time.Second):
			}
		}
		trayKillBrowsers(profiles)
	})
	m := registeredMenu(t, conn, w)
	c := a.client()
	ctx := context.Background()

	title := func() (string, error) {
		v, err := m.item.GetProperty("org.kde.StatusNotifierItem.Title")
		if err != nil {
			return "", err
		}
		s, _ := v.Value().(string)
		return s, nil
	}
	titleIs := func(want string) func() error {
		return func() error {
			got, err := title()
			if err == nil && got != want {
				err = fmt.Errorf("title %q, want %q", got, want)
			}
			return err
		}
	}

	// Every grant changes the title (one percent of the quota), so without
	// the limit each would set it: count the NewTitle signals.
	t.Run("renders at most once a second", func(t *testing.T) {
		trayWait(t, "the title 100%", titleIs("100%"))
		rule := []dbus.MatchOption{dbus.WithMatchObjectPath(m.item.Path()),
			dbus.WithMatchInterface("org.kde.StatusNotifierItem"), dbus.WithMatchMember("NewTitle")}
		if err := conn.AddMatchSignal(rule...); err != nil {
			t.Fatalf("subscribing to NewTitle: %v", err)
		}
		defer conn.RemoveMatchSignal(rule...)
		sigs := make(chan *dbus.Signal, 256)
		conn.Signal(sigs)
		defer conn.RemoveSignal(sigs)

		const grants = 40
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond) // spread over 2 s, not a wait
		for range grants {
			<-tick.C
			if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "burst", Service: "svc", MaxWaitMS: wire.Wait(0)}); err != nil {
				t.Fatalf("acquire: %v", err)
			}
		}
		tick.Stop()
		trayWait(t, "the title after the burst", titleIs(strconv.Itoa(100-grants)+"%"))
		elapsed := time.Since(start)
		n := 0
		for len(sigs) > 0 {
			if s := <-sigs; s.Name == "org.kde.StatusNotifierItem.NewTitle" {
				n++
			}
		}
		// One render a second from changes, plus the one that sets the
		// title again once the item is surely up.
		if limit := int(elapsed/time.Second) + 2; n > limit || n == 0 {
			t.Errorf("%d title changes over %v for %d grants, want 1 to %d", n, elapsed.Round(time.Millisecond), grants, limit)
		}
		t.Logf("%d grants over %v: %d title updates", grants, elapsed.Round(time.Millisecond), n)
	})

	t.Run("open in browser", func(t *testing.T) {
		if n, err := m.find("svc", "Open in browser"); err != nil || n.Enabled {
			t.Fatalf("with the fallback off, Open in browser is %+v (%v), want greyed out", n, err)
		}
		m.click(t, "svc", "Web fallback")
		trayWait(t, "Open in browser to be enabled", func() error {
			n, err := m.find("svc", "Open in browser")
			if err == nil && !n.Enabled {
				err = fmt.Errorf("still disabled: %+v", n)
			}
			return err
		})
		m.click(t, "svc", "Open in browser")
		trayWait(t, "/v1/status to show the open tab", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			for _, s := range st.Services {
				if s.Name == "svc" && s.Fallback != nil && s.Fallback.Enabled && s.Fallback.OpenSessions == 1 {
					return nil
				}
			}
			return fmt.Errorf("services %+v", st.Services)
		})
		trayWait(t, "the browser to load the service's page", func() error {
			if visits.Load() == 0 {
				return errors.New("no request for /chat yet")
			}
			return nil
		})
		if len(testenv.ProcessesNaming(profiles)) == 0 {
			t.Fatalf("no browser runs with a profile under %s", profiles)
		}
	})

	t.Run("copy socket path", func(t *testing.T) {
		m.click(t, "Copy socket path")
		trayWait(t, "xclip to get the socket path", func() error {
			in, err := toolRecord(bin, "xclip", "in")
			if err == nil && in != a.socket {
				err = fmt.Errorf("xclip got %q, want %q", in, a.socket)
			}
			return err
		})
		if _, err := toolRecord(bin, "wl-copy", "in"); err == nil {
			t.Error("wl-copy ran in an X11 session")
		}
	})

	t.Run("open config file", func(t *testing.T) {
		m.click(t, "Open config file")
		want := filepath.Join(a.dir, "config.toml") + "\n"
		trayWait(t, "xdg-open to get the config path", func() error {
			args, err := toolRecord(bin, "xdg-open", "args")
			if err == nil && args != want {
				err = fmt.Errorf("xdg-open got %q, want %q", args, want)
			}
			return err
		})
	})

	t.Run("switching off closes the browser", func(t *testing.T) {
		m.click(t, "svc", "Web fallback")
		trayWait(t, "the fallback off with no tab open", func() error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if fb := st.Services[0].Fallback; fb == nil || fb.Enabled || fb.OpenSessions != 0 {
				return fmt.Errorf("fallback %+v", fb)
			}
			if ps := testenv.ProcessesNaming(profiles); len(ps) > 0 {
				return fmt.Errorf("browser processes: %q", ps)
			}
			return nil
		})
		// On again, so that quitting has a browser to close.
		m.click(t, "svc", "Web fallback")
		trayWait(t, "Open in browser to be enabled", func() error {
			n, err := m.find("svc", "Open in browser")
			if err == nil && !n.Enabled {
				err = fmt.Errorf("still disabled: %+v", n)
			}
			return err
		})
		m.click(t, "svc", "Open in browser")
		trayWait(t, "a browser again", func() error {
			if st, err := c.Status(ctx); err != nil || st.Services[0].Fallback.OpenSessions != 1 {
				return fmt.Errorf("status %+v, %v", st.Services, err)
			}
			return nil
		})
	})

	t.Run("quit closes the browser", func(t *testing.T) {
		m.quit(t)
		a.waitExit(t)
		if ps := testenv.ProcessesNaming(profiles); len(ps) > 0 {
			t.Fatalf("browser processes left after quit: %q", ps)
		}
	})
}
