package webfallback

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quotabar/quotabar/internal/testenv"
)

// closedEvents returns Options whose OnClosed reports on the channel.
func closedEvents(idle time.Duration) (chan [2]string, func(*Options)) {
	ch := make(chan [2]string, 8)
	return ch, func(o *Options) {
		o.IdleTimeout = idle
		o.OnClosed = func(svc, reason string) { ch <- [2]string{svc, reason} }
	}
}

func waitClosed(t *testing.T, ch chan [2]string, want string) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev != [2]string{"svc", want} {
			t.Fatalf("OnClosed(%q, %q), want (svc, %q)", ev[0], ev[1], want)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no OnClosed(svc, %q) within a minute", want)
	}
}

func secretOf(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	secret, _ := splitSecret(u.Path)
	return port, secret
}

func TestChromeIdleTimeoutClosesBrowser(t *testing.T) {
	path := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	dir := shortDir(t)
	events, opt := closedEvents(time.Second)
	o := Options{Dir: dir, ChromePath: path}
	opt(&o)
	m := New(o)
	t.Cleanup(func() {
		m.Shutdown(context.Background())
		checkNoProcesses(t, dir)
	})
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/idle", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	cb := browserOf(t, m, "svc")
	// An agent attaches, reads and leaves; that an attached agent keeps
	// the browser open is TestRelayIdleAccounting's (no sleeping here).
	port, secret := secretOf(t, s.CDPURL)
	if title := pageTitle(t, s); title != "idle" {
		t.Fatalf("title = %q, want idle", title)
	}

	waitClosed(t, events, ClosedIdle)
	if groupAlive(cb.pid) {
		t.Fatalf("browser %d still runs after the idle timeout", cb.pid)
	}
	if err := loopbackOnly(strconv.Itoa(port)); err == nil {
		t.Fatalf("the relay port %d still listens after the idle timeout", port)
	}
	if got := probe(port, "/"+secret, ""); len(got) > 0 {
		t.Fatalf("the cdp_url still lets in by %v", got)
	}
	if n := m.OpenSessions("svc"); n != 0 {
		t.Fatalf("OpenSessions = %d after the idle timeout, want 0", n)
	}
	// The next Open starts a new browser.
	s, err = m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/again", Headless: true})
	if err != nil {
		t.Fatalf("Open after the idle close: %v", err)
	}
	if title := pageTitle(t, s); title != "again" {
		t.Fatalf("title = %q, want again", title)
	}
}

// TestChromeCloseRevokesSecret: closing a tab (through the API or by the
// agent) ends its cdp_url and the connections made with it; other tabs'
// URLs keep working.
func TestChromeCloseRevokesSecret(t *testing.T) {
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
	port, secret1 := secretOf(t, s1.CDPURL)
	_, secret2 := secretOf(t, s2.CDPURL)
	if secret1 == secret2 {
		t.Fatal("two Opens got the same secret")
	}
	c, _, err := websocket.Dial(ctx, s1.CDPURL, nil)
	if err != nil {
		t.Fatalf("attaching: %v", err)
	}
	defer c.CloseNow()
	if err := m.Close(ctx, "svc", s1.TargetID); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := c.Read(rctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("the agent of the closed tab read %v, want the relay to close it (going away)", err)
	}
	if got := probe(port, "/"+secret1, ""); len(got) > 0 {
		t.Fatalf("the closed tab's cdp_url still lets in by %v", got)
	}
	if got := probe(port, "/"+secret2, ""); !slices.Contains(got, "devtools websocket") {
		t.Fatalf("the open tab's cdp_url lets in by %v, want the websocket", got)
	}

	// The agent closes its own tab over CDP: its URL dies with the tab.
	c2, _, err := websocket.Dial(ctx, s2.CDPURL, nil)
	if err != nil {
		t.Fatalf("attaching: %v", err)
	}
	defer c2.CloseNow()
	if err := c2.Write(ctx, websocket.MessageText, []byte(`{"id":1,"method":"Target.closeTarget","params":{"targetId":"`+s2.TargetID+`"}}`)); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := c2.Read(rctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("the agent that closed its tab read %v, want the relay to close it (going away)", err)
			}
			break
		}
	}
	if got := probe(port, "/"+secret2, ""); len(got) > 0 {
		t.Fatalf("the cdp_url of the tab the agent closed still lets in by %v", got)
	}
}

func TestWebKitIdleTimeoutClosesSession(t *testing.T) {
	testenv.LookPath(t, "WebKitWebDriver")
	testenv.StartXvfb(t)
	if _, err := findWebKitDriver(""); err != nil {
		testenv.Missing(t, "%v", err)
	}
	events, opt := closedEvents(time.Second)
	o := Options{Dir: shortDir(t)}
	opt(&o)
	m := New(o)
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL + "/set/idle"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := wdDrive(t, s, ""); got != "set" {
		t.Fatalf("title = %q, want set", got)
	}
	pid := webkitOf(t, m, "svc").cmd.Process.Pid
	port, secret := secretOf(t, s.WebDriverURL)
	waitClosed(t, events, ClosedIdle)
	if len(browserProcesses(pid)) > 0 || alive(pid) {
		t.Fatalf("driver group %d still has %v after the idle timeout", pid, browserProcesses(pid))
	}
	killGroup(pid) // the session bus GLib may have started
	if got := probe(port, "/"+secret, s.SessionID); len(got) > 0 {
		t.Fatalf("the webdriver_url still lets in by %v", got)
	}
	// The idle close saved the session's cookies like any close.
	if _, err := os.Stat(filepath.Join(o.Dir, "webkit", "svc", "cookies.json")); err != nil {
		t.Fatalf("cookie file after the idle close: %v", err)
	}
}

// TestRelayIdleAccounting: a grant is idle only with no client attached and
// no activity for the timeout; the relay is empty only with no grant left
// for the timeout.
func TestRelayIdleAccounting(t *testing.T) {
	t0 := time.Now()
	r := &cdpRelay{grants: map[string]*grant{}, emptySince: t0}
	d := time.Minute
	if !r.emptyFor(t0.Add(d), d) || r.emptyFor(t0.Add(d-time.Second), d) {
		t.Fatal("an unused relay must be empty after the timeout, not before")
	}
	secret := r.grantFor("T1")
	g := r.lookup(secret)
	c := &muxClient{}
	r.touch(g, c, true)
	later := time.Now().Add(2 * d)
	for _, tc := range []struct {
		name     string
		do       func()
		now      time.Time
		idle     bool
		empty    bool
		emptyNow time.Time
	}{
		{"attached", func() {}, later, false, false, later},
		{"detached, recent", func() { r.touch(g, c, false) }, time.Now(), false, false, later},
		{"detached, old", func() {}, later, true, false, later},
		{"revoked", func() { r.revokeTarget("T1") }, later, false, true, time.Now().Add(d)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.do()
			if got := len(r.idleTargets(tc.now, d)) == 1; got != tc.idle {
				t.Fatalf("idle = %v, want %v", got, tc.idle)
			}
			if got := r.emptyFor(tc.emptyNow, d); got != tc.empty {
				t.Fatalf("empty = %v, want %v", got, tc.empty)
			}
		})
	}
	if r.lookup(secret) != nil || r.lookup("") != nil || r.lookup(secret[:10]) != nil {
		t.Fatal("a revoked, empty or partial secret matched")
	}
}
