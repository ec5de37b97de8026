package webfallback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Browser kinds of a Target.
const (
	Chrome = "chrome"
	WebKit = "webkit"
	System = "system"
)

// Target is what to open: the web address of a service in one kind of browser.
type Target struct {
	Service string
	Browser string // Chrome, WebKit or System
	URL     string
	// Headless starts Chrome without a window (tests, CI). WebKit and the
	// system browser always show a window.
	Headless bool
}

// Session says how to drive what Open opened. Chrome fills CDPURL and
// TargetID, WebKit fills WebDriverURL and SessionID, System only URL.
type Session struct {
	Browser, URL, CDPURL, TargetID, WebDriverURL, SessionID string
}

// Options configures a Manager.
type Options struct {
	// Dir holds the Chrome profiles and the WebKit cookie files, one per
	// service. It is created with mode 0700.
	Dir string
	// ChromePath and WebKitDriverPath override the search for the browser
	// and the WebDriver server.
	ChromePath, WebKitDriverPath string
	// NoSandbox starts Chrome with --no-sandbox. Chrome refuses to run as
	// root without it, so it is implied when the program runs as root.
	NoSandbox bool
	// IdleTimeout closes what no agent uses: a tab whose cdp_url no agent
	// was connected to for this long, a Chrome with no such tab left, a
	// WebKit session no WebDriver command reached. 0 is DefaultIdleTimeout.
	IdleTimeout time.Duration
	// OnClosed, if set, is called after a browser closed without being asked
	// to (reason ClosedIdle or ClosedExited), for example to tell clients
	// that open_sessions changed. It must not block.
	OnClosed func(service, reason string)
	Logger   *slog.Logger
}

// UnavailableError means the browser cannot run on this machine; the message
// says what to install or configure.
type UnavailableError struct {
	Browser string
	Msg     string
	Err     error // the underlying failure, if any
}

func (e *UnavailableError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *UnavailableError) Unwrap() error { return e.Err }

var (
	// ErrNotFound is returned by Close for a tab or session that is not open.
	ErrNotFound = errors.New("no such open tab or session")
	// ErrBusy is returned by Open when the service's WebKit session is
	// already open: a WebDriver server runs a single session.
	ErrBusy = errors.New("the service's WebKit session is already open; close it first")
	// ErrClosed is returned after Shutdown.
	ErrClosed = errors.New("web fallback manager is shut down")
)

// Manager opens and closes the browsers of the services.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	services map[string]*service
	closed   bool
}

// service is the browser state of one service. op serializes the slow
// operations (starting, opening, closing) of the service so that two
// concurrent opens start one browser; other services are not blocked.
type service struct {
	name string
	op   sync.Mutex

	mu     sync.Mutex // guards the fields below, held only briefly
	chrome *chromeBrowser
	webkit *webkitSession
}

// New returns a Manager. It starts nothing until Open.
func New(opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{opts: opts, log: log.With("component", "webfallback"), services: map[string]*service{}}
}

// SetChromePath changes the configured Chrome program for browsers started
// from now on ("" searches the usual places); running browsers are kept.
func (m *Manager) SetChromePath(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.ChromePath = path
}

// SetIdleTimeout changes Options.IdleTimeout for browsers and sessions
// started from now on (0: DefaultIdleTimeout).
func (m *Manager) SetIdleTimeout(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts.IdleTimeout = d
}

func (m *Manager) chromePath() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opts.ChromePath
}

// validServiceName rejects names that cannot be a directory name of their
// own under Options.Dir.
func validServiceName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		return fmt.Errorf("service name %q: must be non-empty and not contain a slash", name)
	}
	return nil
}

func (m *Manager) service(name string) (*service, error) {
	if err := validServiceName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	s := m.services[name]
	if s == nil {
		s = &service{name: name}
		m.services[name] = s
	}
	return s, nil
}

// lookup returns the service's state if it was ever opened.
func (m *Manager) lookup(name string) *service {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.services[name]
}

// dir returns Options.Dir/kind/service, created 0700.
func (m *Manager) dir(kind, svc string) (string, error) {
	if m.opts.Dir == "" {
		return "", errors.New("webfallback: Options.Dir is empty")
	}
	d := filepath.Join(m.opts.Dir, kind, svc)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("creating the %s directory: %w", kind, err)
	}
	// MkdirAll keeps the mode of directories that exist; a profile holds
	// session cookies, so make sure nobody else can read it.
	for _, p := range []string{m.opts.Dir, filepath.Join(m.opts.Dir, kind), d} {
		if err := os.Chmod(p, 0o700); err != nil {
			return "", fmt.Errorf("restricting %s: %w", p, err)
		}
	}
	return d, nil
}

// Open opens t.URL in t.Browser for t.Service and says how to drive it. A
// Chrome browser already running for the service is reused; a missing
// browser gives an *UnavailableError.
func (m *Manager) Open(ctx context.Context, t Target) (Session, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Session{}, fmt.Errorf("fallback url %q: must be an absolute http or https address", t.URL)
	}
	switch t.Browser {
	case Chrome, WebKit, System:
	default:
		return Session{}, fmt.Errorf("fallback browser %q: must be chrome, webkit or system", t.Browser)
	}
	s, err := m.service(t.Service)
	if err != nil {
		return Session{}, err
	}
	if t.Browser == System {
		// Nothing to track: the person's browser is not ours to close.
		if err := openSystem(ctx, t.URL); err != nil {
			return Session{}, err
		}
		return Session{Browser: System, URL: t.URL}, nil
	}
	s.op.Lock()
	defer s.op.Unlock()
	// Shutdown may have run while we waited for op.
	if m.isClosed() {
		return Session{}, ErrClosed
	}
	if t.Browser == Chrome {
		return m.openChrome(ctx, s, t)
	}
	return m.openWebKit(ctx, s, t)
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Close closes one Chrome tab (id is its target id) or the WebKit session (id
// is its session id) of the service. It returns ErrNotFound when the service
// has no such tab or session open.
func (m *Manager) Close(ctx context.Context, service, id string) error {
	s := m.lookup(service)
	if s == nil || id == "" {
		return ErrNotFound
	}
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	cb, ws := s.chrome, s.webkit
	s.mu.Unlock()
	if ws != nil && ws.publicID() == id {
		err := m.closeWebKit(ctx, s, ws)
		return err
	}
	if cb != nil && cb.hasTab(id) {
		return cb.closeTab(ctx, id)
	}
	return ErrNotFound
}

// CloseService closes the service's browser: Chrome with Browser.close so
// that it writes its cookies, the WebKit session after saving its cookies.
// A service with nothing open is not an error.
func (m *Manager) CloseService(ctx context.Context, service string) error {
	s := m.lookup(service)
	if s == nil {
		return nil
	}
	s.op.Lock()
	defer s.op.Unlock()
	return m.closeService(ctx, s)
}

func (m *Manager) closeService(ctx context.Context, s *service) error {
	s.mu.Lock()
	cb, ws := s.chrome, s.webkit
	s.mu.Unlock()
	var errs []error
	if ws != nil {
		errs = append(errs, m.closeWebKit(ctx, s, ws))
	}
	if cb != nil {
		err := cb.close(ctx)
		s.mu.Lock()
		if s.chrome == cb {
			s.chrome = nil
		}
		s.mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("closing the chrome browser of %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

// OpenSessions returns how many tabs (Chrome) or sessions (WebKit) of the
// service are open. It does no I/O.
func (m *Manager) OpenSessions(service string) int {
	s := m.lookup(service)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	cb, ws := s.chrome, s.webkit
	s.mu.Unlock()
	n := 0
	if cb != nil {
		n += cb.tabCount()
	}
	if ws != nil && ws.alive() {
		n++
	}
	return n
}

// Running returns the services that have a browser of the Manager running,
// each with its kind (Chrome or WebKit).
func (m *Manager) Running() map[string]string {
	m.mu.Lock()
	list := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		list = append(list, s)
	}
	m.mu.Unlock()
	out := map[string]string{}
	for _, s := range list {
		s.mu.Lock()
		if s.chrome != nil && !s.chrome.isGone() {
			out[s.name] = Chrome
		}
		if s.webkit != nil && s.webkit.alive() {
			out[s.name] = WebKit
		}
		s.mu.Unlock()
	}
	return out
}

// Shutdown closes every browser the Manager opened or reused and waits for
// their processes to exit. Later Opens fail with ErrClosed.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	list := make([]*service, 0, len(m.services))
	for _, s := range m.services {
		list = append(list, s)
	}
	m.mu.Unlock()

	errc := make(chan error, len(list))
	for _, s := range list {
		go func() {
			s.op.Lock()
			defer s.op.Unlock()
			errc <- m.closeService(ctx, s)
		}()
	}
	var errs []error
	for range list {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}
