package webfallback

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
)

func webkitManager(t *testing.T) *Manager {
	t.Helper()
	testenv.LookPath(t, "WebKitWebDriver")
	testenv.StartXvfb(t)
	if _, err := findWebKitDriver(""); err != nil {
		testenv.Missing(t, "%v", err) // no MiniBrowser
	}
	m := New(Options{Dir: shortDir(t)})
	t.Cleanup(func() {
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return m
}

// wdDrive drives the session the way another client would: plain HTTP.
func wdDrive(t *testing.T, s Session, navigate string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := s.WebDriverURL + "/session/" + s.SessionID
	if navigate != "" {
		if err := wd(ctx, http.MethodPost, base+"/url", map[string]string{"url": navigate}, nil); err != nil {
			t.Fatalf("navigating: %v", err)
		}
	}
	var title string
	if err := wd(ctx, http.MethodGet, base+"/title", nil, &title); err != nil {
		t.Fatalf("reading the title: %v", err)
	}
	return title
}

func TestWebKitSessionAndCookies(t *testing.T) {
	m := webkitManager(t)
	site := testSite(t)
	ctx := openCtx(t)

	s, err := m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL + "/set/kept"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if s.Browser != WebKit || s.SessionID == "" || !strings.HasPrefix(s.WebDriverURL, "http://127.0.0.1:") || s.CDPURL != "" {
		t.Fatalf("Open = %+v, want a webkit session on 127.0.0.1", s)
	}
	if u, err := url.Parse(s.WebDriverURL); err != nil {
		t.Fatalf("webdriver_url %q: %v", s.WebDriverURL, err)
	} else {
		checkLoopbackOnly(t, u.Port())
	}
	if got := wdDrive(t, s, ""); got != "set" {
		t.Fatalf("title = %q, want set", got)
	}
	if got := wdDrive(t, s, site.URL+"/page/second"); got != "second" {
		t.Fatalf("title after navigating = %q, want second", got)
	}
	if n := m.OpenSessions("svc"); n != 1 {
		t.Fatalf("OpenSessions = %d, want 1", n)
	}
	if _, err := m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), s.SessionID) {
		t.Fatalf("second Open = %v, want ErrBusy naming the open session", err)
	}
	if err := m.Close(ctx, "svc", "not-the-session"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Close of an unknown session = %v, want ErrNotFound", err)
	}
	driverPID := webkitOf(t, m, "svc").cmd.Process.Pid
	if err := m.Close(ctx, "svc", s.SessionID); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if groupAlive(driverPID) {
		t.Fatalf("driver %d or its browser still runs after Close", driverPID)
	}
	if n := m.OpenSessions("svc"); n != 0 {
		t.Fatalf("OpenSessions after Close = %d, want 0", n)
	}

	file := filepath.Join(m.opts.Dir, "webkit", "svc", "cookies.json")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("cookie file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cookie file mode %v, want 0600", fi.Mode().Perm())
	}

	s, err = m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL + "/cookie"})
	if err != nil {
		t.Fatalf("Open of the next session: %v", err)
	}
	if got := wdDrive(t, s, ""); got != "cookie=kept" {
		t.Fatalf("the next session's page saw %q, want cookie=kept", got)
	}
	driverPID = webkitOf(t, m, "svc").cmd.Process.Pid
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if groupAlive(driverPID) {
		t.Fatalf("driver %d or its browser still runs after Shutdown", driverPID)
	}
}

func TestWebKitUnavailable(t *testing.T) {
	site := testSite(t)
	ctx := openCtx(t)
	for _, tc := range []struct {
		name, display, path, want string
	}{
		{"no display", "", "", "DISPLAY"},
		{"no driver", ":99", "", "install webkit2gtk-driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DISPLAY", tc.display)
			t.Setenv("WAYLAND_DISPLAY", "")
			t.Setenv("PATH", t.TempDir())
			m := New(Options{Dir: t.TempDir(), WebKitDriverPath: tc.path})
			_, err := m.Open(ctx, Target{Service: "svc", Browser: WebKit, URL: site.URL})
			ue, ok := errors.AsType[*UnavailableError](err)
			if !ok || !strings.Contains(ue.Error(), tc.want) {
				t.Fatalf("Open = %v, want *UnavailableError saying %q", err, tc.want)
			}
		})
	}
}

// webkitOf returns the open WebKit session of a service, failing the test
// when there is none.
func webkitOf(t testing.TB, m *Manager, svc string) *webkitSession {
	t.Helper()
	s := m.lookup(svc)
	if s == nil {
		t.Fatalf("service %s was never opened", svc)
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.webkit == nil {
		t.Fatalf("service %s has no webkit session", svc)
		return nil
	}
	return s.webkit
}
