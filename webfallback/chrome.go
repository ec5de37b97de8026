package webfallback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
)

// Waits of the Chrome life cycle. closeGrace is generous because a browser
// that flushes a large profile to a slow disk is doing what we asked.
const (
	closeGrace  = 20 * time.Second
	killGrace   = 5 * time.Second
	probeWait   = 2 * time.Second
	pollEvery   = 25 * time.Millisecond
	startupWait = 30 * time.Second
	commitWait  = 15 * time.Second // for a slow site to answer the first byte
)

// chromeBrowser is one Chrome process running on a service's profile,
// started by this Manager or by an earlier run of the program.
type chromeBrowser struct {
	log    *slog.Logger
	dir    string
	wsURL  string // ws://127.0.0.1:PORT/devtools/browser/ID
	port   string
	pid    int // 0 when unknown (a reused browser without SingletonLock)
	b      *chromedp.Browser
	cancel context.CancelFunc // ends our connection, never the browser
	gone   chan struct{}      // closed when the connection drops

	mu    sync.Mutex
	tabs  map[string]struct{} // open page targets
	blank []target.ID         // the start page of a browser we started
	// blankDone is closed once the start page is closed (or there was none).
	blankDone chan struct{}
}

// findChrome returns the configured Chrome path, or the first Chrome or
// Chromium of the platform's usual places.
func findChrome(configured string) (string, error) {
	if configured != "" {
		fi, err := os.Stat(configured)
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return "", &UnavailableError{Browser: Chrome, Msg: fmt.Sprintf(
				"chrome_path %q is not an executable file; install Chrome or Chromium and set chrome_path to its program, or remove chrome_path to search the usual places", configured)}
		}
		return configured, nil
	}
	names, paths := chromeCandidates()
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	looked := make([]string, 0, len(paths)+1)
	looked = append(looked, paths...)
	if len(names) > 0 {
		looked = append(looked, strings.Join(names, ", ")+" on PATH")
	}
	return "", &UnavailableError{Browser: Chrome, Msg: fmt.Sprintf(
		"no Chrome or Chromium found (looked in %s); %s or set chrome_path in the config",
		strings.Join(looked, "; "), chromeInstallHint)}
}

// openChrome opens t.URL in a new tab of the service's browser, starting or
// reusing the browser first. The caller holds s.op.
func (m *Manager) openChrome(ctx context.Context, s *service, t Target) (Session, error) {
	s.mu.Lock()
	cb := s.chrome
	s.mu.Unlock()
	if cb != nil && cb.isGone() {
		// The person closed the window, or the browser crashed.
		cb.cancel()
		cb = nil
	}
	if cb == nil {
		var err error
		if cb, err = m.startChrome(ctx, s.name, t.Headless); err != nil {
			return Session{}, err
		}
		s.mu.Lock()
		s.chrome = cb
		s.mu.Unlock()
	}
	id, err := cb.newTab(ctx, t.URL)
	if err != nil {
		return Session{}, fmt.Errorf("opening a chrome tab for %s: %w", s.name, err)
	}
	return Session{Browser: Chrome, URL: t.URL, CDPURL: cb.pageURL(id), TargetID: id}, nil
}

// startChrome connects to the browser that runs on the service's profile, or
// starts one.
func (m *Manager) startChrome(ctx context.Context, svc string, headless bool) (*chromeBrowser, error) {
	dir, err := m.dir("chrome", svc)
	if err != nil {
		return nil, err
	}
	log := m.log.With("service", svc, "browser", Chrome)
	if wsURL, ok := probeActivePort(ctx, dir); ok {
		allocCtx, allocCancel := remote.NewAllocator(context.Background(), wsURL, remote.NoModifyURL)
		cb, err := connectChrome(ctx, allocCtx, allocCancel, false)
		if err == nil {
			cb.log, cb.dir, cb.wsURL, cb.pid = log, dir, wsURL, singletonPID(dir)
			cb.port = portOf(wsURL)
			log.Info("reusing running browser", "pid", cb.pid, "port", cb.port)
			return cb, nil
		}
		// It answered the probe and then failed; starting a second browser
		// on the profile would only hand the request to it, so say so.
		return nil, fmt.Errorf("connecting to the browser already running on %s: %w", dir, err)
	}

	path, err := findChrome(m.chromePath())
	if err != nil {
		return nil, err
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dir),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("remote-debugging-port", "0"),
		chromedp.Flag("remote-debugging-address", "127.0.0.1"),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WSURLReadTimeout(startupWait),
		// A websocket, not a pipe, so that agents can attach; KeepOpen so
		// that the browser outlives our connection and runs in a session
		// (and process group) of its own.
		remote.WebSocket,
		chromedp.KeepOpen,
	}
	if headless {
		opts = append(opts, chromedp.Flag("headless", true), chromedp.Flag("disable-gpu", true))
	} else {
		opts = append(opts, chromedp.VisibleWindow)
	}
	if m.opts.NoSandbox || os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	start := time.Now()
	cb, err := connectChrome(ctx, allocCtx, allocCancel, true)
	if errors.Is(err, chromedp.ErrNoDisplay) {
		return nil, &UnavailableError{Browser: Chrome, Msg: "no display for a visible Chrome window; run on a desktop session or set the fallback to headless", Err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	cb.log, cb.dir = log, dir
	cb.port = portOf(cb.wsURL)
	log.Info("started browser", "path", path, "pid", cb.pid, "port", cb.port, "headless", headless, "took", time.Since(start).Round(time.Millisecond))
	return cb, nil
}

// connectChrome makes the chromedp context of allocCtx connect to its
// browser (starting it for an exec allocator), and starts following the
// browser's tabs. The first Run binds the browser connection to the context
// it is given, so it gets the long-lived context and ctx only bounds the wait.
func connectChrome(ctx context.Context, allocCtx context.Context, allocCancel context.CancelFunc, started bool) (*chromeBrowser, error) {
	bctx, bcancel := chromedp.NewContext(allocCtx)
	cancel := func() { bcancel(); allocCancel() }
	errc := make(chan error, 1)
	go func() {
		_, err := chromedp.Targets(bctx)
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		cancel()
		if <-errc == nil && started {
			// It started just as we gave up: do not leave it behind.
			if p := chromedp.FromContext(bctx).Browser.Process(); p != nil {
				killGroup(p.Pid)
			}
		}
		return nil, ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	b := chromedp.FromContext(bctx).Browser
	cb := &chromeBrowser{b: b, cancel: cancel, gone: make(chan struct{}), tabs: map[string]struct{}{}, blankDone: make(chan struct{})}
	if started {
		cb.wsURL, _ = chromedp.KeptOpen(bctx)
		if p := b.Process(); p != nil {
			cb.pid = p.Pid
		}
	}
	// Subscribe before discovery so that no closed tab is missed.
	destroyed := cdp.Events(bctx, b, target.TargetDestroyed)
	go func() {
		for ev, err := range destroyed {
			if err != nil {
				break
			}
			cb.mu.Lock()
			delete(cb.tabs, string(ev.TargetID))
			cb.mu.Unlock()
		}
		<-bctx.Done()
		close(cb.gone)
	}()
	fail := func(err error) (*chromeBrowser, error) {
		cancel()
		if started {
			killGroup(cb.pid)
		}
		return nil, err
	}
	// A browser we started opens its start page on its own; wait for it,
	// so that the first Open can close it. Chrome announces existing and new
	// targets once discovery is on.
	firstCtx, firstCancel := context.WithTimeout(ctx, 10*time.Second)
	defer firstCancel()
	created := cdp.Events(firstCtx, b, target.TargetCreated)
	if _, err := cdp.Call(ctx, b, target.SetDiscoverTargets, target.SetDiscoverTargetsParams{Discover: true}); err != nil {
		return fail(fmt.Errorf("following the browser's tabs: %w", err))
	}
	if started {
		for ev, err := range created {
			if err != nil {
				break // no start page: nothing to close
			}
			if ev.TargetInfo.Type == "page" {
				cb.blank = append(cb.blank, ev.TargetInfo.TargetID)
				break
			}
		}
		if len(cb.blank) == 0 {
			close(cb.blankDone)
		}
		return cb, nil
	}
	firstCancel()
	close(cb.blankDone)
	res, err := cdp.Call(ctx, b, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		return fail(fmt.Errorf("listing the browser's tabs: %w", err))
	}
	cb.mu.Lock()
	for _, ti := range res.TargetInfos {
		if ti.Type == "page" {
			cb.tabs[string(ti.TargetID)] = struct{}{}
		}
	}
	cb.mu.Unlock()
	return cb, nil
}

func (cb *chromeBrowser) isGone() bool {
	select {
	case <-cb.gone:
		return true
	default:
		return false
	}
}

func (cb *chromeBrowser) pageURL(id string) string {
	return "ws://127.0.0.1:" + cb.port + "/devtools/page/" + id
}

func (cb *chromeBrowser) tabCount() int {
	if cb.isGone() {
		return 0
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return len(cb.tabs)
}

func (cb *chromeBrowser) hasTab(id string) bool {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	_, ok := cb.tabs[id]
	return ok
}

// newTab opens url in a new page target. The blank start page of a browser
// we started is closed once the service's page is there, so that a visible
// window shows only the service.
func (cb *chromeBrowser) newTab(ctx context.Context, u string) (string, error) {
	// Target.createTarget answers while the tab still shows about:blank;
	// an agent attaching then would read the blank page. Wait until the
	// navigation commits (the target's URL leaves about:blank), so that
	// waiting for the document, as any agent does, waits for the service.
	wctx, cancel := context.WithTimeout(ctx, commitWait)
	defer cancel()
	changed := cdp.Events(wctx, cb.b, target.TargetInfoChanged)
	res, err := cdp.Call(ctx, cb.b, target.CreateTarget, target.CreateTargetParams{URL: u})
	if err != nil {
		return "", err
	}
	for ev, err := range changed {
		if err != nil {
			cb.log.Warn("the new tab did not start loading in time", "url", u, "err", err)
			break
		}
		if ev.TargetInfo.TargetID == res.TargetID && ev.TargetInfo.URL != "about:blank" && ev.TargetInfo.URL != "" {
			break
		}
	}
	cancel()
	id := string(res.TargetID)
	cb.mu.Lock()
	cb.tabs[id] = struct{}{}
	blank := cb.blank
	cb.blank = nil
	cb.mu.Unlock()
	if len(blank) > 0 {
		// Closing a tab takes a good part of a second; the agent need not wait.
		go func() {
			defer close(cb.blankDone)
			ctx, cancel := context.WithTimeout(context.Background(), probeWait)
			defer cancel()
			for _, b := range blank {
				if err := cb.closeTarget(ctx, b); err != nil {
					cb.log.Debug("closing the start page", "err", err)
				}
			}
		}()
	}
	return id, nil
}

func (cb *chromeBrowser) closeTab(ctx context.Context, id string) error {
	err := cb.closeTarget(ctx, target.ID(id))
	cb.mu.Lock()
	delete(cb.tabs, id)
	cb.mu.Unlock()
	var cerr *cdproto.Error
	if errors.As(err, &cerr) {
		// The tab went away before we got to it.
		return ErrNotFound
	}
	return err
}

// closeTarget closes a tab and waits until the browser no longer lists it:
// Target.closeTarget answers before the tab is gone, and a tab that is still
// listed would be counted by the next attach.
func (cb *chromeBrowser) closeTarget(ctx context.Context, id target.ID) error {
	if _, err := cdp.Call(ctx, cb.b, target.CloseTarget, target.CloseTargetParams{TargetID: id}); err != nil {
		return err
	}
	waitUntil(ctx, probeWait, func() bool {
		res, err := cdp.Call(ctx, cb.b, target.GetTargets, target.GetTargetsParams{})
		return err != nil || !slices.ContainsFunc(res.TargetInfos, func(ti *target.Info) bool { return ti.TargetID == id })
	})
	return nil
}

// close ends the browser with Browser.close, which makes Chrome write its
// cookies and profile, and waits for its processes to exit. Only a browser
// that ignores Browser.close for closeGrace is killed.
func (cb *chromeBrowser) close(ctx context.Context) error {
	defer cb.cancel()
	if !cb.running() {
		return nil
	}
	start := time.Now()
	if err := sendBrowserClose(ctx, cb.wsURL); err != nil {
		cb.log.Warn("Browser.close failed", "err", err)
	}
	if waitUntil(ctx, closeGrace, func() bool { return !cb.running() }) {
		cb.log.Info("browser closed", "pid", cb.pid, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if cb.pid == 0 {
		return fmt.Errorf("browser on %s did not exit after Browser.close and its process is unknown", cb.dir)
	}
	cb.log.Warn("browser did not exit after Browser.close; killing it", "pid", cb.pid)
	killGroup(cb.pid)
	// The kill must not depend on ctx, which may be what ran out.
	if waitUntil(context.Background(), killGrace, func() bool { return !cb.running() }) {
		return nil
	}
	return fmt.Errorf("browser process %d did not exit after SIGKILL", cb.pid)
}

// running reports whether the browser's processes still exist; for a browser
// of unknown process, whether its DevTools port still answers.
func (cb *chromeBrowser) running() bool {
	if cb.pid > 0 {
		return groupAlive(cb.pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeWait)
	defer cancel()
	_, err := jsonVersion(ctx, cb.port)
	return err == nil
}

// sendBrowserClose sends Browser.close on a connection of its own: chromedp
// keeps that command to itself and does not send it for a kept-open browser.
func sendBrowserClose(ctx context.Context, wsURL string) error {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	conn, err := remote.DialContext(ctx, wsURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Write(ctx, &cdproto.Message{ID: 1, Method: browser.CommandClose}); err != nil {
		return err
	}
	// The reply, or the connection closing as the browser exits; either
	// means the command arrived.
	var msg cdproto.Message
	for {
		if err := conn.Read(ctx, &msg); err != nil || msg.ID == 1 {
			if msg.Error != nil {
				return msg.Error
			}
			return nil
		}
	}
}

// waitUntil polls cond until it holds (true), or d passes or ctx ends (false).
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// probeActivePort returns the browser websocket address of a browser that
// runs on the profile dir: the address in its DevToolsActivePort file, if
// the browser there still answers with that same address.
func probeActivePort(ctx context.Context, dir string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort"))
	if err != nil {
		return "", false
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return "", false
	}
	port, path := strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || !strings.HasPrefix(path, "/devtools/browser/") {
		return "", false
	}
	ws, err := jsonVersion(ctx, port)
	// A port that answers with another browser id belongs to another browser.
	if err != nil || !strings.HasSuffix(ws, path) {
		return "", false
	}
	return "ws://127.0.0.1:" + port + path, true
}

// jsonVersion asks the DevTools HTTP endpoint on port for the browser's
// websocket address.
func jsonVersion(ctx context.Context, port string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/json/version", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/json/version: %s", resp.Status)
	}
	var v struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", fmt.Errorf("/json/version: %w", err)
	}
	return v.WebSocketDebuggerURL, nil
}

// singletonPID returns the browser process id that Chrome writes into the
// SingletonLock symlink of its profile ("hostname-pid"), or 0.
func singletonPID(dir string) int {
	link, err := os.Readlink(filepath.Join(dir, "SingletonLock"))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(link, '-')
	pid, err := strconv.Atoi(link[i+1:])
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func portOf(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	return u.Port()
}
