package webfallback

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
)

// browserOf returns the running Chrome of a service, failing the test when
// there is none.
func browserOf(t testing.TB, m *Manager, svc string) *chromeBrowser {
	t.Helper()
	s := m.lookup(svc)
	if s == nil {
		t.Fatalf("service %s was never opened", svc)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.chrome == nil {
		t.Fatalf("service %s has no browser", svc)
		return nil
	}
	return s.chrome
}

func TestChromeOpenAttachFromAnotherProcess(t *testing.T) {
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)

	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/first", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s.Browser != Chrome || s.TargetID == "" || s.URL != site.URL+"/page/first" {
		t.Fatalf("Open = %+v, want a chrome tab on the page", s)
	}
	relay := browserOf(t, m, "svc").relay
	if want := "ws://127.0.0.1:" + relay.port + "/"; !strings.HasPrefix(s.CDPURL, want) || !strings.Contains(s.CDPURL, "/devtools/browser/") {
		t.Fatalf("cdp_url = %q, want a browser URL of the relay %s", s.CDPURL, want)
	}
	if n := m.OpenSessions("svc"); n != 1 {
		t.Fatalf("OpenSessions = %d, want 1 (the start page must be closed)", n)
	}
	checkLoopbackOnly(t, relay.port)

	// A real second process attaches, reads the title and navigates.
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"QB_ATTACH_CDP_URL="+s.CDPURL,
		"QB_ATTACH_TARGET="+s.TargetID,
		"QB_ATTACH_NAVIGATE="+site.URL+"/page/second")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("attaching process: %v\n%s", err, stderr)
	}
	if got := strings.Fields(string(out)); len(got) != 2 || got[0] != "first" || got[1] != "second" {
		t.Fatalf("attaching process saw titles %q, want [first second]", got)
	}

	// Its detach left the tab open, on the page it navigated to.
	if n := m.OpenSessions("svc"); n != 1 {
		t.Fatalf("OpenSessions after the agent left = %d, want 1", n)
	}
	if title := pageTitle(t, s); title != "second" {
		t.Fatalf("title after the agent left = %q, want second", title)
	}
}

func TestChromeReusesRunningBrowser(t *testing.T) {
	m, path := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)

	s1, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/a", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	first := browserOf(t, m, "svc")
	s2, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/b", Headless: true})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if browserOf(t, m, "svc") != first || s2.TargetID == s1.TargetID {
		t.Fatalf("second Open started another browser or reused the tab: %+v %+v", s1, s2)
	}
	if n := m.OpenSessions("svc"); n != 2 {
		t.Fatalf("OpenSessions = %d, want 2", n)
	}

	if title := pageTitle(t, s2); title != "b" {
		t.Fatalf("title = %q, want b", title)
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if groupAlive(first.pid) {
		t.Fatalf("browser %d still runs after Shutdown", first.pid)
	}
	if _, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL, Headless: true}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Open after Shutdown = %v, want ErrClosed", err)
	}
	_ = path
}

func TestChromeCookieSurvivesShutdown(t *testing.T) {
	m, path := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)

	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/set/kept", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if title := pageTitle(t, s); title != "set" {
		t.Fatalf("title = %q, want set", title)
	}
	pid := browserOf(t, m, "svc").pid
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if groupAlive(pid) {
		t.Fatalf("browser %d still runs after Shutdown", pid)
	}

	m2 := New(Options{Dir: m.opts.Dir, ChromePath: path})
	t.Cleanup(func() { m2.Shutdown(context.Background()) })
	s, err = m2.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/cookie", Headless: true})
	if err != nil {
		t.Fatalf("Open after restart: %v", err)
	}
	if browserOf(t, m2, "svc").pid == pid {
		t.Fatal("the restarted Manager reused the closed browser")
	}
	if title := pageTitle(t, s); title != "cookie=kept" {
		t.Fatalf("after restart the page saw %q, want cookie=kept", title)
	}
}

func TestChromeCloseTabAndService(t *testing.T) {
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)

	tgt := Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/x", Headless: true}
	s1, err := m.Open(ctx, tgt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s2, err := m.Open(ctx, tgt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := m.Close(ctx, "svc", s1.TargetID); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := m.OpenSessions("svc"); n != 1 {
		t.Fatalf("OpenSessions after closing a tab = %d, want 1", n)
	}
	for _, tc := range []struct{ name, svc, id string }{
		{"closed tab", "svc", s1.TargetID},
		{"unknown id", "svc", "nope"},
		{"empty id", "svc", ""},
		{"other service", "other", s2.TargetID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Close(ctx, tc.svc, tc.id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Close(%q, %q) = %v, want ErrNotFound", tc.svc, tc.id, err)
			}
		})
	}

	pid := browserOf(t, m, "svc").pid
	if err := m.CloseService(ctx, "svc"); err != nil {
		t.Fatalf("CloseService: %v", err)
	}
	if groupAlive(pid) {
		t.Fatalf("browser %d still runs after CloseService", pid)
	}
	if n := m.OpenSessions("svc"); n != 0 {
		t.Fatalf("OpenSessions after CloseService = %d, want 0", n)
	}
	if err := m.CloseService(ctx, "svc"); err != nil {
		t.Fatalf("second CloseService: %v", err)
	}
	// The next open starts a fresh browser.
	if _, err := m.Open(ctx, tgt); err != nil {
		t.Fatalf("Open after CloseService: %v", err)
	}
	if browserOf(t, m, "svc").pid == pid {
		t.Fatal("Open after CloseService reused the closed browser")
	}
}

func TestChromeUnavailable(t *testing.T) {
	site := testSite(t)
	ctx := openCtx(t)
	t.Run("configured path missing", func(t *testing.T) {
		dir := shortDir(t)
		missing := filepath.Join(dir, "no-such-chrome")
		m := New(Options{Dir: dir, ChromePath: missing})
		_, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL, Headless: true})
		ue, ok := errors.AsType[*UnavailableError](err)
		if !ok {
			t.Fatalf("Open = %v, want *UnavailableError", err)
		}
		if !strings.Contains(ue.Error(), missing) || !strings.Contains(ue.Error(), "chrome_path") {
			t.Fatalf("message %q must name the path and the chrome_path setting", ue.Error())
		}
	})
	t.Run("nothing on PATH", func(t *testing.T) {
		if _, paths := chromeCandidates(); len(paths) > 0 {
			t.Skip("this platform also looks outside PATH (app bundles), which the test cannot hide")
		}
		t.Setenv("PATH", shortDir(t))
		m := New(Options{Dir: shortDir(t)})
		_, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL, Headless: true})
		ue, ok := errors.AsType[*UnavailableError](err)
		if !ok {
			t.Fatalf("Open = %v, want *UnavailableError", err)
		}
		for _, want := range []string{"no Chrome or Chromium found", "chromium", "chrome_path"} {
			if !strings.Contains(ue.Error(), want) {
				t.Fatalf("message %q does not say %q", ue.Error(), want)
			}
		}
	})
}

func TestOpenRejectsBadTargets(t *testing.T) {
	m := New(Options{Dir: shortDir(t)})
	ctx := openCtx(t)
	for _, tc := range []struct {
		name string
		t    Target
		want string
	}{
		{"relative url", Target{Service: "svc", Browser: Chrome, URL: "/chat"}, "absolute http"},
		{"ftp url", Target{Service: "svc", Browser: Chrome, URL: "ftp://127.0.0.1/"}, "absolute http"},
		{"unknown browser", Target{Service: "svc", Browser: "lynx", URL: "http://127.0.0.1/"}, "chrome, webkit or system"},
		{"slash in service", Target{Service: "a/b", Browser: Chrome, URL: "http://127.0.0.1/"}, "service name"},
		{"dot-dot service", Target{Service: "..", Browser: Chrome, URL: "http://127.0.0.1/"}, "service name"},
		{"empty service", Target{Service: "", Browser: Chrome, URL: "http://127.0.0.1/"}, "service name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Open(ctx, tc.t)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%+v) = %v, want an error about %q", tc.t, err, tc.want)
			}
		})
	}
}

// BenchmarkChromeOpen measures the time from Open to a tab an agent has
// attached to and read: "cold" starts the browser each time, "warm" opens a
// tab in the running browser, and "attach" is the baseline of attaching to
// and reading an already open tab.
func BenchmarkChromeOpen(b *testing.B) {
	m, _ := chromeManager(b)
	site := testSite(b)
	ctx := context.Background()
	tgt := Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/bench", Headless: true}
	usable := func(s Session) {
		if title := pageTitle(b, s); title != "bench" {
			b.Fatalf("title = %q", title)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			s, err := m.Open(ctx, tgt)
			if err != nil {
				b.Fatal(err)
			}
			usable(s)
			b.StopTimer()
			if err := m.CloseService(ctx, "svc"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("warm", func(b *testing.B) {
		for b.Loop() {
			s, err := m.Open(ctx, tgt)
			if err != nil {
				b.Fatal(err)
			}
			usable(s)
			b.StopTimer()
			if err := m.Close(ctx, "svc", s.TargetID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("attach", func(b *testing.B) {
		s, err := m.Open(ctx, tgt)
		if err != nil {
			b.Fatal(err)
		}
		usable(s)
		for b.Loop() {
			usable(s)
		}
	})
}

// TestChromeRestartsAfterBrowserDied: a browser that died (crash, or the
// person quit it) is noticed, and the next Open starts a new one.
func TestChromeRestartsAfterBrowserDied(t *testing.T) {
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)
	tgt := Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/x", Headless: true}
	if _, err := m.Open(ctx, tgt); err != nil {
		t.Fatalf("Open: %v", err)
	}
	dead := browserOf(t, m, "svc")
	killGroup(dead.pid)
	if !waitUntil(ctx, 10*time.Second, func() bool { return m.OpenSessions("svc") == 0 && !groupAlive(dead.pid) }) {
		t.Fatalf("the killed browser still counts %d open tabs", m.OpenSessions("svc"))
	}
	s, err := m.Open(ctx, tgt)
	if err != nil {
		t.Fatalf("Open after the browser died: %v", err)
	}
	if now := browserOf(t, m, "svc"); now.pid == dead.pid {
		t.Fatal("Open after the browser died reused it")
	}
	if title := pageTitle(t, s); title != "x" {
		t.Fatalf("title = %q, want x", title)
	}
}

// TestChromeVisibleWindow starts Chrome with a window, as on a desktop, on a
// private X server.
func TestChromeVisibleWindow(t *testing.T) {
	testenv.StartXvfb(t)
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/shown"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if title := pageTitle(t, s); title != "shown" {
		t.Fatalf("title = %q, want shown", title)
	}
	pid := browserOf(t, m, "svc").pid
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(b), "--headless") {
		t.Fatalf("the visible browser runs headless: %s", b)
	}
	if err := m.CloseService(ctx, "svc"); err != nil {
		t.Fatalf("CloseService: %v", err)
	}
	if groupAlive(pid) {
		t.Fatalf("browser %d still runs after CloseService", pid)
	}
}
