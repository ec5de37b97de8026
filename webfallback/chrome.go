package webfallback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// chromeBrowser is one Chrome process that this Manager started on a
// service's profile with --remote-debugging-pipe. It has no DevTools port:
// the Manager owns the pipe (mux) and agents reach it only through the relay
// with a secret. Chrome exits when the pipe closes, so it cannot outlive the
// daemon, not even a kill -9 of it.
type chromeBrowser struct {
	log    *slog.Logger
	dir    string
	pid    int
	exited chan struct{} // closed when the browser process exited
	mux    *cdpMux
	relay  *cdpRelay
	b      *chromedp.Browser
	cancel context.CancelFunc // ends our connection and the relay
	gone   chan struct{}      // closed when the browser's pipe closed
	// closing is set once the Manager closes the browser itself, so that
	// its exit is not reported as the browser's own.
	closing atomic.Bool

	mu    sync.Mutex
	tabs  map[string]struct{} // open page targets
	blank []target.ID         // the start page
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

// openChrome opens t.URL in a new tab of the service's browser, starting it
// first if needed. The caller holds s.op.
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
		go m.watchChrome(s, cb)
	}
	id, err := cb.newTab(ctx, t.URL)
	if err != nil {
		return Session{}, fmt.Errorf("opening a chrome tab for %s: %w", s.name, err)
	}
	secret := cb.relay.grantFor(id)
	return Session{Browser: Chrome, URL: t.URL, CDPURL: cb.relay.browserURL(secret), TargetID: id}, nil
}

// startChrome starts Chrome on the service's profile with the DevTools pipe
// and the relay in front of it.
func (m *Manager) startChrome(ctx context.Context, svc string, headless bool) (*chromeBrowser, error) {
	dir, err := m.dir("chrome", svc)
	if err != nil {
		return nil, err
	}
	log := m.log.With("service", svc, "browser", Chrome)
	closeLegacyBrowser(ctx, log, dir)

	path, err := findChrome(m.chromePath())
	if err != nil {
		return nil, err
	}
	if !headless && needsDisplay() {
		return nil, &UnavailableError{Browser: Chrome, Msg: "no display for a visible Chrome window (neither DISPLAY nor WAYLAND_DISPLAY is set); run on a desktop session or set the fallback to headless"}
	}
	args := []string{
		"--remote-debugging-pipe",
		"--user-data-dir=" + dir,
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-quic",
	}
	if headless {
		args = append(args, "--headless", "--disable-gpu")
	}
	if m.opts.NoSandbox || os.Getuid() == 0 {
		args = append(args, "--no-sandbox")
	}
	args = append(args, "about:blank")
	start := time.Now()
	cb, err := launchChrome(ctx, log, path, args)
	if err != nil {
		return nil, err
	}
	cb.dir = dir
	if err := cb.connect(ctx); err != nil {
		cb.kill()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	log.Info("started browser", "path", path, "pid", cb.pid, "relay_port", cb.relay.port, "headless", headless, "took", time.Since(start).Round(time.Millisecond))
	return cb, nil
}

// launchChrome starts the process with the pipe on its descriptors 3 and 4
// and waits for its first answer on it.
func launchChrome(ctx context.Context, log *slog.Logger, path string, args []string) (*chromeBrowser, error) {
	childR, parentW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating the DevTools pipe: %w", err)
	}
	parentR, childW, err := os.Pipe()
	if err != nil {
		childR.Close()
		parentW.Close()
		return nil, fmt.Errorf("creating the DevTools pipe: %w", err)
	}
	out := &tailBuffer{max: 8192}
	cmd := exec.Command(path, args...)
	cmd.Env = browserEnv() // no autolaunched session bus (webkit.go)
	cmd.ExtraFiles = []*os.File{childR, childW}
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, so that a kill reaches the zygote and renderers.
	cmd.SysProcAttr = chromeSysProcAttr()
	err = cmd.Start()
	childR.Close()
	childW.Close()
	if err != nil {
		parentR.Close()
		parentW.Close()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	cb := &chromeBrowser{
		log: log, pid: cmd.Process.Pid, exited: make(chan struct{}),
		gone: make(chan struct{}), tabs: map[string]struct{}{}, blankDone: make(chan struct{}),
	}
	go func() {
		cmd.Wait()
		close(cb.exited)
	}()
	var popts []chromedp.PipeOption
	if os.Getenv("QB_CDP_DEBUG") != "" {
		popts = append(popts, chromedp.WithPipeDebugf(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }))
	}
	cb.mux = newCDPMux(chromedp.NewPipeConn(parentR, parentW, popts...), log)
	wctx, cancel := context.WithTimeout(ctx, startupWait)
	defer cancel()
	if err := cb.mux.call(wctx, "", browser.CommandGetVersion, nil, nil); err != nil {
		killGroup(cb.pid)
		<-cb.exited
		if errors.Is(err, errMuxClosed) {
			return nil, fmt.Errorf("chrome %s exited at start: %s", path, out.String())
		}
		return nil, fmt.Errorf("chrome %s did not answer on its DevTools pipe: %w: %s", path, err, out.String())
	}
	return cb, nil
}

// connect starts the relay and the Manager's own chromedp connection (a
// session of the mux), and follows the browser's tabs.
func (cb *chromeBrowser) connect(ctx context.Context) error {
	relay, err := newCDPRelay(cb.mux, cb.log)
	if err != nil {
		return fmt.Errorf("listening for agents: %w", err)
	}
	cb.relay = relay
	bctx, bcancel := context.WithCancel(context.Background())
	cb.cancel = func() { bcancel(); relay.close() }
	go func() {
		<-cb.mux.done
		close(cb.gone)
		cb.cancel()
	}()
	c, err := cb.mux.attach(ctx, "")
	if err != nil {
		cb.cancel()
		return fmt.Errorf("attaching to the browser: %w", err)
	}
	b, err := chromedp.NewBrowserTransport(bctx, muxTransport{c})
	if err != nil {
		c.close()
		cb.cancel()
		return err
	}
	cb.b = b
	// Subscribe before discovery so that no closed tab is missed.
	destroyed := cdp.Events(bctx, b, target.TargetDestroyed)
	go func() {
		for ev, err := range destroyed {
			if err != nil {
				return
			}
			cb.mu.Lock()
			delete(cb.tabs, string(ev.TargetID))
			cb.mu.Unlock()
			// An agent that closed its tab loses its way in with it.
			relay.revokeTarget(string(ev.TargetID))
		}
	}()
	// The start page; wait for it so that the first Open can close it.
	// Chrome announces existing and new targets once discovery is on.
	firstCtx, firstCancel := context.WithTimeout(ctx, 10*time.Second)
	defer firstCancel()
	created := cdp.Events(firstCtx, b, target.TargetCreated)
	if _, err := cdp.Call(ctx, b, target.SetDiscoverTargets, target.SetDiscoverTargetsParams{Discover: true}); err != nil {
		cb.cancel()
		return fmt.Errorf("following the browser's tabs: %w", err)
	}
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
	return nil
}

// kill ends a browser that failed to start.
func (cb *chromeBrowser) kill() {
	if cb.cancel != nil {
		cb.cancel()
	}
	killGroup(cb.pid)
	<-cb.exited
}

// closeLegacyBrowser closes, with Browser.close so that it writes its
// cookies, a browser that an earlier version of quotabar left running on
// the profile with an open DevTools port: that port is the door this
// version closes, and a second Chrome on the profile would only hand its
// work to the running one.
func closeLegacyBrowser(ctx context.Context, log *slog.Logger, dir string) {
	wsURL, ok := probeActivePort(ctx, dir)
	if !ok {
		return
	}
	pid := singletonPID(dir)
	log.Warn("closing a browser with an open DevTools port left on the profile by an earlier version", "pid", pid)
	if err := sendBrowserClose(ctx, wsURL); err != nil {
		log.Warn("Browser.close of the old browser failed", "err", err)
	}
	if pid > 0 && !waitUntil(ctx, closeGrace, func() bool { return !alive(pid) }) {
		killGroup(pid)
	}
	os.Remove(filepath.Join(dir, "DevToolsActivePort"))
}

func (cb *chromeBrowser) isGone() bool {
	select {
	case <-cb.gone:
		return true
	default:
		return false
	}
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
	cb.relay.revokeTarget(id)
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
	cb.closing.Store(true)
	defer cb.cancel()
	if !cb.running() {
		return nil
	}
	start := time.Now()
	// The answer may not come: the browser can exit first.
	cctx, cancel := context.WithTimeout(ctx, probeWait)
	if err := cb.mux.call(cctx, "", browser.CommandClose, nil, nil); err != nil && !errors.Is(err, errMuxClosed) {
		cb.log.Debug("Browser.close", "err", err)
	}
	cancel()
	if waitUntil(ctx, closeGrace, func() bool { return !cb.running() }) {
		cb.log.Info("browser closed", "pid", cb.pid, "took", time.Since(start).Round(time.Millisecond))
		return nil
	}
	cb.log.Warn("browser did not exit after Browser.close; killing it", "pid", cb.pid)
	killGroup(cb.pid)
	// The kill must not depend on ctx, which may be what ran out.
	if waitUntil(context.Background(), killGrace, func() bool { return !cb.running() }) {
		return nil
	}
	return fmt.Errorf("browser process %d did not exit after SIGKILL", cb.pid)
}

// running reports whether the browser's processes still exist.
func (cb *chromeBrowser) running() bool {
	select {
	case <-cb.exited:
		// The browser is gone; its helpers may still be on their way out.
		return alive(-cb.pid)
	default:
		return true
	}
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
