package webfallback

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/quotabar/quotabar/internal/testenv"
)

// TestMain doubles as the "second process" of the attach test: run with
// QB_ATTACH_CDP_URL set, the test binary attaches to that tab, prints its
// title, navigates to QB_ATTACH_NAVIGATE, prints the new title, and exits.
func TestMain(m *testing.M) {
	if os.Getenv("QB_FAKE_DRIVER") != "" {
		os.Exit(fakeDriverMain(os.Args[1:]))
	}
	if d := os.Getenv("QB_NS_SELFTEST_DIR"); d != "" {
		os.Exit(nsSelftestMain(d, os.Getenv("QB_NS_SELFTEST_URL")))
	}
	if p := os.Getenv("QB_PROBE_PORTS"); p != "" {
		os.Exit(probeMain(p, os.Getenv("QB_PROBE_SESSION")))
	}
	if p := os.Getenv("QB_CONNECT_PORTS"); p != "" {
		os.Exit(connectMain(p))
	}
	if d := os.Getenv("QB_OWNER_DIR"); d != "" {
		os.Exit(ownerMain(d, os.Getenv("QB_OWNER_BROWSER"), os.Getenv("QB_OWNER_URL")))
	}
	if u := os.Getenv("QB_ATTACH_CDP_URL"); u != "" {
		os.Exit(attachMain(u, os.Getenv("QB_ATTACH_TARGET"), os.Getenv("QB_ATTACH_NAVIGATE")))
	}
	os.Exit(m.Run())
}

func attachMain(cdpURL, targetID, navigate string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, after, err := attachAndNavigate(ctx, cdpURL, targetID, navigate)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s\n%s\n", before, after)
	return 0
}

// attachAndNavigate is what an agent does with an Open answer: attach to the
// tab over the websocket without owning it, read the title, navigate.
func attachAndNavigate(ctx context.Context, cdpURL, targetID, navigate string) (before, after string, err error) {
	allocCtx, cancelAlloc := remote.NewAllocator(ctx, cdpURL)
	defer cancelAlloc()
	tctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithTargetID(target.ID(targetID)), chromedp.WithDetachOnCancel())
	defer cancelTab()
	if err := chromedp.Do(tctx, chromedp.WaitReady("body")); err != nil {
		return "", "", fmt.Errorf("waiting for the page: %w", err)
	}
	if before, err = chromedp.Run(tctx, chromedp.Title()); err != nil {
		return "", "", fmt.Errorf("reading the title: %w", err)
	}
	if navigate == "" {
		return before, "", nil
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(navigate)); err != nil {
		return "", "", fmt.Errorf("navigating: %w", err)
	}
	if after, err = chromedp.Run(tctx, chromedp.Title()); err != nil {
		return "", "", fmt.Errorf("reading the title: %w", err)
	}
	return before, after, nil
}

// pageTitle attaches to the tab and returns its title once the page loaded.
func pageTitle(t testing.TB, s Session) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	title, _, err := attachAndNavigate(ctx, s.CDPURL, s.TargetID, "")
	if err != nil {
		t.Fatalf("attaching to %s: %v", s.CDPURL, err)
	}
	return title
}

// shortDir is a temporary directory with a short path: Chrome puts a Unix
// socket in its profile, and socket paths are limited to about 100 bytes.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qbwf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chrome's helpers can still write for a moment after it exits.
		var err error
		for range 50 {
			if err = os.RemoveAll(d); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("removing %s: %v", d, err)
	})
	return d
}

// testSite serves pages whose title says what the test needs to know:
//
//	/page/NAME   title NAME
//	/set/VALUE   sets the persistent cookie qb=VALUE, title "set"
//	/cookie      title "cookie=" + the qb cookie the browser sent
func testSite(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, title string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body>%s</body></html>",
			html.EscapeString(title), html.EscapeString(title))
	}
	mux.HandleFunc("/page/{name}", func(w http.ResponseWriter, r *http.Request) { page(w, r.PathValue("name")) })
	mux.HandleFunc("/set/{value}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "qb", Value: r.PathValue("value"), Path: "/", MaxAge: 3600})
		page(w, "set")
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		v := ""
		if c, err := r.Cookie("qb"); err == nil {
			v = c.Value
		}
		page(w, "cookie="+v)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// chromeManager returns a Manager with a fresh profile root for a test that
// needs Chromium; the cleanup shuts it down and fails the test if any
// process still uses the profile root.
func chromeManager(t testing.TB) (*Manager, string) {
	t.Helper()
	path := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	dir := shortDir(t)
	m := New(Options{Dir: dir, ChromePath: path})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		checkNoProcesses(t, dir)
	})
	return m, path
}

// processesUsing returns the ids of the processes whose command line
// mentions dir.
func processesUsing(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func checkNoProcesses(t testing.TB, dir string) {
	t.Helper()
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		return // not Linux; the pid checks of the tests still ran
	}
	if pids := processesUsing(dir); len(pids) > 0 {
		for _, p := range pids {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
			t.Errorf("process %d left behind: %s", p, strings.ReplaceAll(string(b), "\x00", " "))
			killGroup(p)
		}
	}
}

func openCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// loopbackOnly says whether port listens, and only on 127.0.0.1 (or ::1):
// the DevTools and WebDriver ports hand the person's signed-in browser to
// whoever connects. It reads /proc/net, so it answers nil outside Linux.
func loopbackOnly(port string) error {
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("port %q: %w", port, err)
	}
	suffix := fmt.Sprintf(":%04X", p)
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" || !strings.HasSuffix(fields[1], suffix) { // 0A: LISTEN
				continue
			}
			n++
			if a := strings.TrimSuffix(fields[1], suffix); a != "0100007F" && a != "00000000000000000000000001000000" {
				return fmt.Errorf("port %d listens on %s (hex, as /proc/net shows it), want 127.0.0.1 or ::1 only", p, a)
			}
		}
	}
	if _, err := os.Stat("/proc/net/tcp"); err == nil && n == 0 {
		return fmt.Errorf("nothing listens on port %d", p)
	}
	return nil
}

func checkLoopbackOnly(t testing.TB, port string) {
	t.Helper()
	if err := loopbackOnly(port); err != nil {
		t.Fatal(err)
	}
}

// TestLoopbackOnly proves the check tells loopback from other addresses
// (127.0.0.2 stands in for a wider one without listening beyond this host).
func TestLoopbackOnly(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("reads /proc/net")
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{{"127.0.0.1:0", true}, {"127.0.0.2:0", false}} {
		t.Run(tc.addr, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.addr)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", tc.addr, err)
			}
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			err = loopbackOnly(port)
			ln.Close()
			if (err == nil) != tc.ok {
				t.Fatalf("loopbackOnly(%s) = %v, want ok=%v", ln.Addr(), err, tc.ok)
			}
		})
	}
	if err := loopbackOnly("1"); err == nil {
		t.Fatal("loopbackOnly of a port nothing listens on = nil, want an error")
	}
}
