package webfallback

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	driverStartWait = 15 * time.Second
	driverStopWait  = 5 * time.Second
)

// webkitSession is a WebDriver server running one session for a service.
type webkitSession struct {
	log       *slog.Logger
	id        string
	driverURL string // http://127.0.0.1:PORT, as the driver sees it
	// client and transport reach the driver: over TCP, or through the
	// Unix socket of its network namespace (isolated).
	client    *http.Client
	transport http.RoundTripper
	isolated  bool
	// proxyURL is the browser's HTTP proxy in the namespace, "" for none.
	proxyURL string
	// cleanup, if set, frees what the session holds besides the driver
	// (sockets, the egress proxy); stop runs it once.
	cleanup     func()
	cleanupOnce sync.Once
	cmd         *exec.Cmd
	exited      chan struct{}
	output      *tailBuffer
	cookieFile  string
	saved       []wdCookie         // the cookie file at the start of the session
	restored    map[cookieKey]bool // the saved cookies the session accepted
	// relay is the only way agents reach the session; nil until it runs.
	relay *wdRelay
	// closing is set once the Manager closes the session itself, so that
	// its exit is not reported as the browser's own.
	closing atomic.Bool
}

// publicID is the session id agents know, "" before the relay runs.
func (w *webkitSession) publicID() string {
	if w.relay == nil {
		return ""
	}
	return w.relay.publicID
}

func (w *webkitSession) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// webdriverError is an error answer of a WebDriver server.
type webdriverError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *webdriverError) Error() string {
	return fmt.Sprintf("webdriver: %s (%d): %s", e.Code, e.Status, e.Message)
}

// wd sends a WebDriver command over TCP and decodes the "value" of the
// answer into out.
func wd(ctx context.Context, method, u string, in, out any) error {
	return wdWith(ctx, http.DefaultClient, method, u, in, out)
}

// wdWith is wd through client.
func wdWith(ctx context.Context, client *http.Client, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Value webdriverError }
		if json.Unmarshal(data, &e) != nil || e.Value.Code == "" {
			return fmt.Errorf("webdriver %s %s: %s: %.200s", method, u, resp.Status, data)
		}
		e.Value.Status = resp.StatusCode
		return &e.Value
	}
	if out == nil {
		return nil
	}
	v := struct{ Value any }{out}
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("webdriver %s %s: %w", method, u, err)
	}
	return nil
}

func (w *webkitSession) call(ctx context.Context, method, path string, in, out any) error {
	return wdWith(ctx, w.client, method, w.driverURL+"/session/"+w.id+path, in, out)
}

// openWebKit starts a WebDriver server and a session for the service, adds
// the service's saved cookies and opens t.URL. The caller holds s.op.
func (m *Manager) openWebKit(ctx context.Context, s *service, t Target) (Session, error) {
	s.mu.Lock()
	w := s.webkit
	s.mu.Unlock()
	if w != nil {
		var cur string
		if w.alive() && w.call(ctx, http.MethodGet, "/url", nil, &cur) == nil {
			return Session{}, fmt.Errorf("%w (session %s)", ErrBusy, w.publicID())
		}
		// The person closed the window or the driver died: start over.
		m.closeWebKit(ctx, s, w)
	}
	driver, err := findWebKitDriver(m.opts.WebKitDriverPath)
	if err != nil {
		return Session{}, err
	}
	dir, err := m.dir("webkit", s.name)
	if err != nil {
		return Session{}, err
	}
	start := time.Now()
	log := m.log.With("service", s.name, "browser", WebKit)
	w, err = startDriver(ctx, log, driver, dir)
	if err != nil {
		return Session{}, err
	}
	w.log = log
	w.cookieFile = filepath.Join(dir, "cookies.json")
	if err := w.newSession(ctx, driver, dir); err != nil {
		w.stop()
		return Session{}, err
	}
	if w.relay, err = newWDRelay(w.log, s.name, w.driverURL, w.id, w.transport); err != nil {
		w.stop()
		return Session{}, fmt.Errorf("listening for agents: %w", err)
	}
	s.mu.Lock()
	s.webkit = w
	s.mu.Unlock()
	go m.watchWebKit(s, w)
	if err := w.restoreCookies(ctx, t.URL); err != nil {
		w.log.Warn("restoring cookies", "err", err)
	}
	if err := w.call(ctx, http.MethodPost, "/url", map[string]string{"url": t.URL}, nil); err != nil {
		m.closeWebKit(ctx, s, w)
		return Session{}, fmt.Errorf("opening %s in webkit: %w", t.URL, err)
	}
	w.relay.touch()
	// The driver's own session id is the key to its port: it is not logged.
	w.log.Info("started webkit session", "session", w.publicID(), "relay_port", w.relay.port, "private_network", w.isolated, "took", time.Since(start).Round(time.Millisecond))
	if webkitExposure != "" && !w.isolated {
		w.log.Warn(webkitExposure)
	}
	return Session{Browser: WebKit, URL: t.URL, WebDriverURL: w.relay.url(), SessionID: w.publicID()}, nil
}

// webkitDriver is a WebDriver server and how to ask it for a session.
type webkitDriver struct {
	path string
	args func(port int) []string
	// caps returns the capabilities of the session; dir is the service's
	// private directory, for a wrapper of the browser; proxy, if not "",
	// is the HTTP proxy the browser must use.
	caps func(dir, proxy string) (map[string]any, error)
	// unavailable turns a failed session into the error that says what to
	// do, when the failure means the machine is not set up (Safari's remote
	// automation switch), or returns nil.
	unavailable func(err error) error
}

// errNoNamespace says that the driver could not be put in a network
// namespace of its own; startDriver falls back to the host's loopback.
var errNoNamespace = errors.New("no private network namespace")

// startDriver starts the driver where no other user can reach its ports:
// in a private network namespace where the platform has one (Linux,
// isolatedDriver). Where the namespace is refused, and on macOS, it starts
// the driver on a free port of 127.0.0.1 and waits until it answers.
// Another program can take the port between our probe and the driver's
// bind, so a driver that exits at once is tried again.
func startDriver(ctx context.Context, log *slog.Logger, d webkitDriver, dir string) (*webkitSession, error) {
	w, err := isolatedDriver(ctx, log, d, dir)
	switch {
	case err == nil && w != nil:
		return w, nil
	case errors.Is(err, errNoNamespace):
		log.Warn("cannot start the webkit driver in a private network namespace; its ports and the browser's inspector are open to every local user while the session is open", "err", err)
	case err != nil:
		return nil, err
	}
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		w := &webkitSession{
			driverURL: "http://127.0.0.1:" + strconv.Itoa(port),
			exited:    make(chan struct{}),
			output:    &tailBuffer{max: 4096},
			client:    http.DefaultClient,
			transport: http.DefaultTransport,
		}
		w.cmd = exec.Command(d.path, d.args(port)...)
		w.cmd.Env = browserEnv()
		w.cmd.Stdout, w.cmd.Stderr = w.output, w.output
		// A group of its own, so that stop reaches the browser it starts.
		// and so that it dies with us (see driverSysProcAttr).
		w.cmd.SysProcAttr = driverSysProcAttr()
		if err := w.cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting %s: %w", d.path, err)
		}
		// Ready as soon as the port accepts: the caller's POST /session is
		// then the first request, so that the window in which another user
		// could take the driver's one session is as short as can be (if
		// someone does, our session is refused and the driver stopped).
		if w.waitStarted(ctx, driverStartWait, "tcp", strings.TrimPrefix(w.driverURL, "http://")) {
			return w, nil
		}
		w.stop()
		lastErr = fmt.Errorf("%s did not answer on %s: %s", d.path, w.driverURL, w.output.String())
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, lastErr
}

// browserEnv is the environment of the browsers quotabar starts (Chrome,
// and the WebDriver driver with the browser it starts). Without a session bus (DBUS_SESSION_BUS_ADDRESS unset, as under a
// bare X server or in a service), GTK would autolaunch one over X11
// (dbus-launch) with an accessibility bus and xdg-desktop-portal behind it,
// and those outlive the browser and the daemon: one set per session, until
// the user's inotify instances run out. Point it at no bus instead; with a
// desktop's bus, the browser uses that one.
func browserEnv() []string {
	env := os.Environ()
	if runtime.GOOS == "linux" && os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		env = append(env, "DBUS_SESSION_BUS_ADDRESS="+noSessionBus, "NO_AT_BRIDGE=1")
	}
	return env
}

// noSessionBus is a bus address that cannot be connected to, so nothing is
// autolaunched.
const noSessionBus = "unix:path=/dev/null"

// waitStarted watches the started w.cmd and waits, up to timeout, until
// addr on network accepts a connection; it reports whether it did with the
// driver still alive.
func (w *webkitSession) waitStarted(ctx context.Context, timeout time.Duration, network, addr string) bool {
	go func() {
		w.cmd.Wait()
		close(w.exited)
	}()
	ready := waitUntil(ctx, timeout, func() bool {
		if !w.alive() {
			return true
		}
		c, err := net.DialTimeout(network, addr, probeWait)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return ready && w.alive()
}

func (w *webkitSession) newSession(ctx context.Context, d webkitDriver, dir string) error {
	var res struct {
		SessionID string `json:"sessionId"`
	}
	caps, err := d.caps(dir, w.proxyURL)
	if err != nil {
		return err
	}
	in := map[string]any{"capabilities": map[string]any{"alwaysMatch": caps}}
	if err := wdWith(ctx, w.client, http.MethodPost, w.driverURL+"/session", in, &res); err != nil {
		if uerr := d.unavailable(err); uerr != nil {
			return uerr
		}
		return fmt.Errorf("starting a webkit session: %w: %s", err, w.output.String())
	}
	if res.SessionID == "" {
		return errors.New("starting a webkit session: the driver answered no session id")
	}
	w.id = res.SessionID
	return nil
}

// restoreCookies opens the origin of u, where a cookie of that site may be
// added, and adds the saved cookies. WebDriver refuses cookies of other
// domains; they stay in the file for a later session.
func (w *webkitSession) restoreCookies(ctx context.Context, u string) error {
	saved, err := loadCookies(w.cookieFile)
	if err != nil {
		return err
	}
	w.saved, w.restored = saved, map[cookieKey]bool{}
	now := time.Now()
	var live []wdCookie
	for _, c := range saved {
		if !c.expired(now) {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return nil
	}
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	origin := pu.Scheme + "://" + pu.Host + "/"
	if err := w.call(ctx, http.MethodPost, "/url", map[string]string{"url": origin}, nil); err != nil {
		return fmt.Errorf("opening %s to add cookies: %w", origin, err)
	}
	for _, c := range live {
		if err := w.call(ctx, http.MethodPost, "/cookie", map[string]any{"cookie": c}, nil); err != nil {
			w.log.Debug("cookie not restored", "name", c.Name, "domain", c.Domain, "err", err)
			continue
		}
		w.restored[c.key()] = true
	}
	return nil
}

// saveCookies merges the session's cookies into the service's cookie file.
func (w *webkitSession) saveCookies(ctx context.Context) error {
	var cs []wdCookie
	if err := w.call(ctx, http.MethodGet, "/cookie", nil, &cs); err != nil {
		return fmt.Errorf("reading the session's cookies: %w", err)
	}
	return saveCookies(w.cookieFile, mergeCookies(w.saved, w.restored, cs, time.Now()))
}

// closeWebKit saves the session's cookies, ends the session and stops the
// driver. The caller holds s.op.
func (m *Manager) closeWebKit(ctx context.Context, s *service, w *webkitSession) error {
	w.closing.Store(true)
	var errs []error
	if w.alive() && w.id != "" {
		if err := w.saveCookies(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := w.call(ctx, http.MethodDelete, "", nil, nil); err != nil {
			w.log.Debug("ending the webkit session", "err", err)
		}
	}
	if w.relay != nil {
		w.relay.close()
	}
	errs = append(errs, w.stop())
	s.mu.Lock()
	if s.webkit == w {
		s.webkit = nil
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

// stop ends the driver and its browser: SIGTERM to the group, SIGKILL after
// driverStopWait; then it frees the session's sockets.
func (w *webkitSession) stop() error {
	defer w.cleanupOnce.Do(func() {
		if w.cleanup != nil {
			w.cleanup()
		}
	})
	pid := w.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if waitUntil(context.Background(), driverStopWait, func() bool { return !w.alive() && !alive(-pid) }) {
		return nil
	}
	killGroup(pid)
	if waitUntil(context.Background(), driverStopWait, func() bool { return !w.alive() && !alive(-pid) }) {
		return nil
	}
	return fmt.Errorf("webkit driver %d did not exit", pid)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}
