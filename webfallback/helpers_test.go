package webfallback

import (
	"context"
	"fmt"
	"html"
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
