package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// fallbackConfig has one service that admits one request an hour, so the
// second acquire is refused, with the given fallback table.
func fallbackConfig(chromePath, fallback string) string {
	return fmt.Sprintf(`
chrome_path = %q

[proxy]
enabled = false

[services.svc]
limits = ["1 requests/1h"]
fallback = %s
`, chromePath, fallback)
}

// titledSite serves /page/NAME with the title NAME.
func titledSite(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/page/")
		fmt.Fprintf(w, "<!doctype html><title>%s</title><body>%s</body>", name, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tabTitle attaches to an opened tab as an agent would, and reads its title.
func tabTitle(t *testing.T, res wire.OpenResult) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := remote.NewAllocator(ctx, res.CDPURL)
	defer cancelAlloc()
	tctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithTargetID(target.ID(res.TargetID)), chromedp.WithDetachOnCancel())
	defer cancelTab()
	if err := chromedp.Do(tctx, chromedp.WaitReady("body")); err != nil {
		t.Fatalf("attaching to %s: %v", res.CDPURL, err)
	}
	title, err := chromedp.Run(tctx, chromedp.Title())
	if err != nil {
		t.Fatalf("reading the title: %v", err)
	}
	return title
}

func devToolsAnswers(cdpURL string) bool {
	u, err := url.Parse(cdpURL)
	if err != nil {
		return false
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + u.Host + "/json/version")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

func apiCode(err error) string {
	if ae, ok := errors.AsType[*wire.APIError](err); ok {
		return strconv.Itoa(ae.Status) + " " + string(ae.Code)
	}
	return fmt.Sprint(err)
}

func TestFallbackChromeOverSocket(t *testing.T) {
	chrome := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	site := titledSite(t)
	td := newTestDaemon(t, fallbackConfig(chrome,
		fmt.Sprintf(`{ browser = "chrome", url = %q, enabled = true, headless = true }`, site.URL+"/page/home")))
	d := td.start(t)
	profiles := filepath.Join(d.StateDir(), "browsers")
	t.Cleanup(func() {
		d.Shutdown(context.Background())
		for _, p := range testenv.ProcessesNaming(profiles) {
			t.Errorf("left behind: %s", p)
		}
	})
	c := td.client()
	ctx := context.Background()

	// A refused acquire points at the fallback.
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc"}); err != nil {
		t.Fatalf("first acquire: %v", err)
	}
	_, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc", MaxWaitMS: wire.Wait(0)})
	refused, ok := errors.AsType[*ipc.RefusedError](err)
	if !ok {
		t.Fatalf("second acquire = %v, want a refusal", err)
	}
	if want := (wire.FallbackRef{Enabled: true, Open: "/v1/services/svc/fallback/open"}); refused.Fallback == nil || *refused.Fallback != want {
		t.Fatalf("refusal fallback = %+v, want %+v", refused.Fallback, want)
	}

	// Open starts Chromium and answers a tab an agent can drive.
	res, err := c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if res.Browser != "chrome" || res.URL != site.URL+"/page/home" || res.TargetID == "" || !strings.HasPrefix(res.CDPURL, "ws://127.0.0.1:") {
		t.Fatalf("open = %+v", res)
	}
	if title := tabTitle(t, res); title != "home" {
		t.Fatalf("title = %q, want home", title)
	}
	res2, err := c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	if portOf := func(s string) string { u, _ := url.Parse(s); return u.Port() }; portOf(res2.CDPURL) != portOf(res.CDPURL) {
		t.Fatalf("second open used another browser: %s vs %s", res2.CDPURL, res.CDPURL)
	}
	if st, _ := serviceStatus(t, c, "svc"); st.Fallback == nil || st.Fallback.OpenSessions != 2 || !st.Fallback.Enabled {
		t.Fatalf("status fallback = %+v, want enabled with 2 open sessions", st.Fallback)
	}
	if err := c.CloseFallback(ctx, "svc", wire.CloseRequest{TargetID: res2.TargetID}); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.CloseFallback(ctx, "svc", wire.CloseRequest{TargetID: res2.TargetID}); apiCode(err) != "404 not_found" {
		t.Fatalf("closing the closed tab = %v, want 404 not_found", err)
	}

	// Switching off closes the browser; opens are then refused.
	info, err := c.SetFallback(ctx, "svc", false)
	if err != nil {
		t.Fatalf("switching off: %v", err)
	}
	if info != (wire.FallbackInfo{Browser: "chrome", Enabled: false, OpenSessions: 0}) {
		t.Fatalf("switch answer = %+v", info)
	}
	if devToolsAnswers(res.CDPURL) {
		t.Fatal("the browser still answers after the fallback was switched off")
	}
	if ps := testenv.ProcessesNaming(profiles); len(ps) > 0 {
		t.Fatalf("browser processes after switching off: %q", ps)
	}
	if _, err := c.OpenFallback(ctx, "svc", "a1"); apiCode(err) != "409 fallback_disabled" {
		t.Fatalf("open while off = %v, want 409 fallback_disabled", err)
	}

	// Back on: a new browser; quitting the app closes it.
	if _, err := c.SetFallback(ctx, "svc", true); err != nil {
		t.Fatalf("switching on: %v", err)
	}
	res, err = c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open after switching on: %v", err)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if devToolsAnswers(res.CDPURL) {
		t.Fatal("the browser still answers after the daemon quit")
	}
	if ps := testenv.ProcessesNaming(profiles); len(ps) > 0 {
		t.Fatalf("browser processes after quit: %q", ps)
	}
}

func TestFallbackErrorsOverSocket(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-chrome")
	td := newTestDaemon(t, fallbackConfig(missing, `{ browser = "chrome", url = "http://127.0.0.1:1/", enabled = true, headless = true }`)+`
[services.plain]
limits = ["10 requests/1m"]
`)
	td.start(t)
	c := td.client()
	ctx := context.Background()

	_, err := c.OpenFallback(ctx, "svc", "a1")
	if apiCode(err) != "503 browser_unavailable" || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "chrome_path") {
		t.Fatalf("open without a browser = %v, want 503 browser_unavailable naming %s and chrome_path", err, missing)
	}
	for _, tc := range []struct {
		name    string
		service string
		req     wire.CloseRequest
		want    string
	}{
		{"no id", "svc", wire.CloseRequest{}, "400 bad_request"},
		{"both ids", "svc", wire.CloseRequest{TargetID: "a", SessionID: "b"}, "400 bad_request"},
		{"unknown tab", "svc", wire.CloseRequest{TargetID: "nope"}, "404 not_found"},
		{"unknown session", "svc", wire.CloseRequest{SessionID: "nope"}, "404 not_found"},
		{"service without fallback", "plain", wire.CloseRequest{TargetID: "a"}, "404 not_found"},
		{"unknown service", "nosuch", wire.CloseRequest{TargetID: "a"}, "404 unknown_service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.CloseFallback(ctx, tc.service, tc.req); apiCode(err) != tc.want {
				t.Fatalf("close = %v, want %s", err, tc.want)
			}
		})
	}
	if _, err := c.SetFallback(ctx, "plain", true); apiCode(err) != "404 not_found" {
		t.Fatalf("switching a service without fallback = %v, want 404 not_found", err)
	}
}

func TestFallbackSystemOverSocket(t *testing.T) {
	bin := t.TempDir()
	record := filepath.Join(bin, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + "\n"
	for _, name := range []string{"xdg-open", "open"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	td := newTestDaemon(t, fallbackConfig("", `{ browser = "system", url = "http://127.0.0.1:1/chat", enabled = true }`))
	td.start(t)
	res, err := td.client().OpenFallback(context.Background(), "svc", "a1")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if res != (wire.OpenResult{Browser: "system", URL: "http://127.0.0.1:1/chat"}) {
		t.Fatalf("open = %+v, want only browser and url", res)
	}
	if got, err := os.ReadFile(record); err != nil || string(got) != "http://127.0.0.1:1/chat\n" {
		t.Fatalf("the opener got %q (%v), want the service's address", got, err)
	}
}

// TestFallbackCookieSurvivesAppRestart: a site's cookie set through the
// fallback is still sent after the app quits and starts again, because quit
// closes Chrome with Browser.close and the profile is kept in the state dir.
func TestFallbackCookieSurvivesAppRestart(t *testing.T) {
	chrome := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "qb", Value: "kept", Path: "/", MaxAge: 3600})
		fmt.Fprint(w, "<!doctype html><title>set</title><body>set</body>")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v := "none"
		if c, err := r.Cookie("qb"); err == nil {
			v = c.Value
		}
		fmt.Fprintf(w, "<!doctype html><title>%s</title><body>%s</body>", v, v)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	conf := func(path string) string {
		return fallbackConfig(chrome, fmt.Sprintf(`{ browser = "chrome", url = %q, enabled = true, headless = true }`, site.URL+path))
	}
	td := newTestDaemon(t, conf("/set"))
	ctx := context.Background()

	d := td.start(t)
	profiles := filepath.Join(d.StateDir(), "browsers")
	t.Cleanup(func() {
		for _, p := range testenv.ProcessesNaming(profiles) {
			t.Errorf("left behind: %s", p)
		}
	})
	res, err := td.client().OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if title := tabTitle(t, res); title != "set" {
		t.Fatalf("title = %q, want set", title)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("quit: %v", err)
	}

	td.writeConfig(t, conf("/get"))
	d = td.start(t)
	res, err = td.client().OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open after restart: %v", err)
	}
	if title := tabTitle(t, res); title != "kept" {
		t.Fatalf("after restart the site got cookie %q, want kept", title)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("quit: %v", err)
	}
}

// TestFallbackConfigEditClosesBrowser: an edit that switches the fallback
// off in the file (the person never flipped it at run time) closes its
// browser, and opens are then refused.
func TestFallbackConfigEditClosesBrowser(t *testing.T) {
	chrome := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	site := titledSite(t)
	conf := func(enabled bool) string {
		return fallbackConfig(chrome, fmt.Sprintf(`{ browser = "chrome", url = %q, enabled = %t, headless = true }`, site.URL+"/page/x", enabled))
	}
	td := newTestDaemon(t, conf(true))
	d := td.start(t)
	profiles := filepath.Join(d.StateDir(), "browsers")
	t.Cleanup(func() {
		d.Shutdown(context.Background())
		for _, p := range testenv.ProcessesNaming(profiles) {
			t.Errorf("left behind: %s", p)
		}
	})
	c := td.client()
	ctx := context.Background()
	res, err := c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	td.writeConfig(t, conf(false))
	// Chrome exiting publishes no event.
	testenv.WaitFor(t, 30*time.Second, "the edit to close the browser", func() bool {
		return !devToolsAnswers(res.CDPURL) && len(testenv.ProcessesNaming(profiles)) == 0
	})
	if _, err := c.OpenFallback(ctx, "svc", "a1"); apiCode(err) != "409 fallback_disabled" {
		t.Fatalf("open after the edit = %v, want 409 fallback_disabled", err)
	}
}

// TestFallbackWebBudget: web_limits become the limiter service
// "<service>.web", which agents acquire per web action through the socket,
// separately from the API's own budget.
func TestFallbackWebBudget(t *testing.T) {
	td := newTestDaemon(t, fallbackConfig("", `{ browser = "system", url = "http://127.0.0.1:1/chat", web_limits = ["2 requests/1h"] }`))
	td.start(t)
	c := td.client()
	ctx := context.Background()

	web, ok := serviceStatus(t, c, "svc.web")
	if !ok {
		t.Fatal("no service svc.web in /v1/status")
	}
	if len(web.Limits) != 1 || web.Limits[0].Quota != 2 || web.Limits[0].Unit != "requests" || web.Limits[0].WindowMS != 3600000 {
		t.Fatalf("svc.web limits = %+v, want 2 requests per hour", web.Limits)
	}
	for i := range 2 {
		if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc.web", MaxWaitMS: wire.Wait(0)}); err != nil {
			t.Fatalf("web action %d: %v", i+1, err)
		}
	}
	_, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc.web", MaxWaitMS: wire.Wait(0)})
	if refused, ok := errors.AsType[*ipc.RefusedError](err); !ok || refused.RetryAfter <= 0 {
		t.Fatalf("third web action = %v, want a refusal with a retry time", err)
	}
	// The API's budget is its own: the web actions took none of it.
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc", MaxWaitMS: wire.Wait(0)}); err != nil {
		t.Fatalf("API call after the web budget ran out: %v", err)
	}
	// A refusal of the API tells the agent of the fallback, switched off.
	_, err = c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc", MaxWaitMS: wire.Wait(0)})
	refused, ok := errors.AsType[*ipc.RefusedError](err)
	if want := (wire.FallbackRef{Enabled: false, Open: "/v1/services/svc/fallback/open"}); !ok || refused.Fallback == nil || *refused.Fallback != want {
		t.Fatalf("second API call = %v, want a refusal naming the fallback %+v", err, want)
	}
	if web, _ := serviceStatus(t, c, "svc.web"); web.Counters.Granted != 2 || web.Counters.Refused != 1 {
		t.Fatalf("svc.web counters = %+v, want 2 granted and 1 refused", web.Counters)
	}
}

// webDriver sends one W3C WebDriver command with plain net/http, as an
// agent in another language would, and returns the answer's "value".
func webDriver(t *testing.T, method, u string, body any) json.RawMessage {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		in = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, in)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var out struct{ Value json.RawMessage }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s, %s (%v)", method, u, resp.Status, out.Value, err)
	}
	return out.Value
}

// TestFallbackWebKitOverSocket: a WebKit fallback opened through the socket
// is a WebDriver session that another client drives with plain HTTP; the
// one session per driver is refused clearly; the site's cookie is carried
// into the next session.
func TestFallbackWebKitOverSocket(t *testing.T) {
	testenv.LookPath(t, "WebKitWebDriver")
	testenv.StartXvfb(t)
	// The site shows the cookie it got as the title, and sets it only
	// while setting is on: the second session must have it from quotabar.
	var setting atomic.Bool
	setting.Store(true)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := "none"
		if c, err := r.Cookie("qb"); err == nil {
			v = c.Value
		}
		if setting.Load() {
			http.SetCookie(w, &http.Cookie{Name: "qb", Value: "kept", Path: "/", MaxAge: 3600})
		}
		fmt.Fprintf(w, "<!doctype html><title>%s</title><body>%s</body>", v, v)
	}))
	t.Cleanup(site.Close)
	td := newTestDaemon(t, fallbackConfig("", fmt.Sprintf(`{ browser = "webkit", url = %q, enabled = true }`, site.URL+"/")))
	td.start(t)
	c := td.client()
	ctx := context.Background()

	res, err := c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if res.Browser != "webkit" || res.SessionID == "" || !strings.HasPrefix(res.WebDriverURL, "http://127.0.0.1:") {
		t.Fatalf("open = %+v, want a webkit session on 127.0.0.1", res)
	}
	session := res.WebDriverURL + "/session/" + res.SessionID
	var title string
	if err := json.Unmarshal(webDriver(t, http.MethodGet, session+"/title", nil), &title); err != nil || title != "none" {
		t.Fatalf("title = %q (%v), want none (no cookie yet)", title, err)
	}
	webDriver(t, http.MethodPost, session+"/url", map[string]string{"url": site.URL + "/again"})
	if err := json.Unmarshal(webDriver(t, http.MethodGet, session+"/title", nil), &title); err != nil || title != "kept" {
		t.Fatalf("title after navigating = %q (%v), want kept (the cookie just set)", title, err)
	}
	if st, _ := serviceStatus(t, c, "svc"); st.Fallback == nil || st.Fallback.OpenSessions != 1 {
		t.Fatalf("status fallback = %+v, want 1 open session", st.Fallback)
	}
	if _, err := c.OpenFallback(ctx, "svc", "a2"); apiCode(err) != "409 fallback_busy" {
		t.Fatalf("second open = %v, want 409 fallback_busy", err)
	}
	if err := c.CloseFallback(ctx, "svc", wire.CloseRequest{SessionID: res.SessionID}); err != nil {
		t.Fatalf("close: %v", err)
	}

	// The next session starts with an empty profile; quotabar restores the
	// site's cookie into it.
	setting.Store(false)
	res, err = c.OpenFallback(ctx, "svc", "a1")
	if err != nil {
		t.Fatalf("open of the next session: %v", err)
	}
	session = res.WebDriverURL + "/session/" + res.SessionID
	webDriver(t, http.MethodPost, session+"/url", map[string]string{"url": site.URL + "/later"})
	if err := json.Unmarshal(webDriver(t, http.MethodGet, session+"/title", nil), &title); err != nil || title != "kept" {
		t.Fatalf("the next session's page saw cookie %q (%v), want kept", title, err)
	}
}
