package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// Options says where the daemon keeps its files. Empty fields take the
// defaults (environment, then platform).
type Options struct {
	ConfigPath string // DefaultConfigPath
	StateDir   string // DefaultStateDir
	SocketPath string // ipc.SocketPath
	Logger     *slog.Logger
}

// part is an optional piece of the daemon that lives in its own file of this
// package (the web fallback, the proxy) and is started through a hook below.
type part interface {
	// Reconfigure is called after a good configuration edit has been applied
	// to the limiter.
	Reconfigure(cfg *Config)
	// Shutdown stops the part. It runs after the server stops accepting and
	// before the state is saved for the last time.
	Shutdown(ctx context.Context) error
}

// fallbackPart is the web fallback as the daemon needs it: served by the
// socket API and stopped at shutdown.
type fallbackPart interface {
	server.Fallback
	part
}

// Hooks set by the files of this package that implement optional parts. Each
// is nil until its part is built in; StartDaemon then runs without it.
var (
	// newFallback builds the web fallback (fallback.go). It runs before the
	// server is made, because the server serves it.
	newFallback func(d *Daemon) (fallbackPart, error)
	// startProxy starts the HTTP proxy (proxy.go) once the socket is
	// serving.
	startProxy func(d *Daemon) (part, error)
)

// Daemon is a running quotabar: configuration, limiter, socket server and
// saved state. Its methods are safe for concurrent use.
type Daemon struct {
	Limiter *limiter.Limiter
	Server  *server.Server
	Logger  *slog.Logger

	configPath string
	stateDir   string
	socketPath string
	ln         net.Listener
	sockInfo   os.FileInfo // the socket file we created, to remove only ours

	reloadMu sync.Mutex // one Reload at a time
	cfgData  []byte     // the file cfg was parsed from; guarded by reloadMu

	mu         sync.Mutex
	cfg        *Config
	fallbackOn map[string]bool // switches flipped at run time
	parts      []part
	cfgSubs    map[chan struct{}]struct{}

	saveNow   chan struct{}
	saverEnd  chan struct{}
	lastSaved []byte // what the state file holds; only the saver and Shutdown touch it, one after the other

	stopOnce sync.Once
	stopErr  error
	stopping chan struct{} // closed when Shutdown begins
	done     chan struct{} // closed when Shutdown has finished
	serveErr chan error
	watcher  *watcher
}

// saveDelay gathers a burst of changes into one write, and bounds what a
// crash can lose.
const saveDelay = 250 * time.Millisecond

// StartDaemon loads the configuration (writing the default one on first
// start), restores the saved state, builds the limiter and starts serving on
// the socket and watching the configuration. If another quotabar is serving
// the socket it fails with an error wrapping *socket.AlreadyRunningError.
// ctx only bounds start-up: the daemon runs until Shutdown.
func StartDaemon(ctx context.Context, opts Options) (_ *Daemon, err error) {
	d := &Daemon{
		Logger:     opts.Logger,
		configPath: opts.ConfigPath,
		stateDir:   opts.StateDir,
		socketPath: opts.SocketPath,
		fallbackOn: map[string]bool{},
		cfgSubs:    map[chan struct{}]struct{}{},
		saveNow:    make(chan struct{}, 1),
		saverEnd:   make(chan struct{}),
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
		serveErr:   make(chan error, 1),
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.configPath == "" {
		if d.configPath, err = DefaultConfigPath(); err != nil {
			return nil, err
		}
	}
	if d.stateDir == "" {
		if d.stateDir, err = DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	if d.socketPath == "" {
		if d.socketPath, err = socket.Path(); err != nil {
			return nil, err
		}
	}

	created, err := ensureConfig(d.configPath)
	if err != nil {
		return nil, err
	}
	if created {
		d.Logger.Info("wrote the default configuration; edit it to match your accounts", "path", d.configPath)
	}
	d.cfgData, err = os.ReadFile(d.configPath)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cfg, err := ParseConfig(d.configPath, d.cfgData)
	if err != nil {
		return nil, err
	}
	d.cfg = cfg
	if err := os.MkdirAll(d.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the state directory: %w", err)
	}

	// Claim the socket before touching the state: a second instance must
	// not overwrite the running one's saved state.
	d.ln, err = socket.Listen(d.socketPath)
	if err != nil {
		return nil, err
	}
	d.sockInfo, _ = os.Stat(d.socketPath)
	defer func() {
		if err != nil {
			d.ln.Close()
			d.removeSocket()
		}
	}()

	d.Limiter, err = limiter.New(cfg.Limiter())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.configPath, err)
	}
	defer func() {
		if err != nil {
			d.Limiter.Close()
		}
	}()
	d.restoreState()

	var fb server.Fallback
	if newFallback != nil {
		p, err := newFallback(d)
		if err != nil {
			return nil, fmt.Errorf("starting the web fallback: %w", err)
		}
		fb = p
		d.parts = append(d.parts, p)
	}
	d.Server = server.New(server.Config{
		Limiter:  d.Limiter,
		Fallback: fb,
		Version:  wire.Version,
		Logger:   d.Logger,
	})

	go d.saver()
	go func() { d.serveErr <- d.Server.Serve(d.ln) }()

	if startProxy != nil {
		p, err := startProxy(d)
		if err != nil {
			d.Logger.Error("the HTTP proxy did not start; agents using it will fail", "err", err)
		} else {
			d.parts = append(d.parts, p)
		}
	}

	if w, werr := d.watchConfig(); werr != nil {
		// Without watching, edits need a restart: worth a warning, not a
		// refusal to start.
		d.Logger.Warn("not watching the configuration for edits; restart quotabar after editing it", "err", werr)
	} else {
		d.watcher = w
	}

	go func() {
		err := <-d.serveErr
		select {
		case <-d.stopping:
			return // Serve ends because of Shutdown
		default:
		}
		d.Logger.Error("the socket server stopped; shutting down", "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}()
	d.Logger.Info("quotabar is running", "socket", d.socketPath, "config", d.configPath, "state", d.statePath())
	return d, nil
}

// RunDaemon runs the daemon until ctx is done, SIGINT or SIGTERM arrives, or
// the server fails, then shuts it down gracefully. It is `quotabar serve`.
func RunDaemon(ctx context.Context, opts Options) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := StartDaemon(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		d.Logger.Info("shutting down")
	case <-d.Done():
	}
	// A second signal now ends the process at once, for a shutdown that
	// hangs.
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Shutdown(sctx)
}

// RunApp is what a bare `quotabar` runs: the menu-bar app when it is built
// in (tray hook), else the daemon alone.
func RunApp(ctx context.Context, opts Options) error {
	if runTray != nil {
		return runTray(ctx, opts)
	}
	return RunDaemon(ctx, opts)
}

// runTray, set by the menu-bar files (tray*.go), runs the daemon with its
// menu-bar UI.
var runTray func(ctx context.Context, opts Options) error

// Config returns the configuration in force. It is replaced, never changed,
// by an edit: callers may keep and read it.
func (d *Daemon) Config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// ConfigChanged returns a channel poked after each applied configuration
// edit, and a function that stops the pokes.
func (d *Daemon) ConfigChanged() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	d.cfgSubs[ch] = struct{}{}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.cfgSubs, ch)
		d.mu.Unlock()
	}
}

// SocketPath is the socket the daemon serves.
func (d *Daemon) SocketPath() string { return d.socketPath }

// ConfigPath is the configuration file the daemon reads and watches.
func (d *Daemon) ConfigPath() string { return d.configPath }

// StateDir is the directory of the saved state (and browser profiles).
func (d *Daemon) StateDir() string { return d.stateDir }

func (d *Daemon) statePath() string { return filepath.Join(d.stateDir, StateFile) }

// Done is closed once the daemon has shut down.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// FallbackEnabled reports whether the web fallback of service is switched
// on: the switch as last flipped at run time, else the configured value.
func (d *Daemon) FallbackEnabled(service string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on, ok := d.fallbackOn[service]; ok {
		return on
	}
	s, _ := d.cfg.Service(service)
	return s.Fallback.Enabled
}

// SetFallbackEnabled flips the web-fallback switch of service and saves it.
// It fails when the service is not configured or has no fallback.
func (d *Daemon) SetFallbackEnabled(service string, on bool) error {
	d.mu.Lock()
	s, ok := d.cfg.Service(service)
	if !ok || s.Fallback.Browser == "" {
		d.mu.Unlock()
		if !ok {
			return fmt.Errorf("service %q is not configured", service)
		}
		return fmt.Errorf("service %q has no web fallback; add `fallback = { browser = \"chrome\" }` to [services.%s] in %s", service, service, d.configPath)
	}
	d.fallbackOn[service] = on
	d.mu.Unlock()
	d.requestSave()
	if d.Server != nil {
		d.Server.Notify()
	}
	return nil
}

// restoreState loads the saved state into the limiter. A file that does not
// decode is moved aside with a warning: starting clean beats not starting.
// Entries the limiter cannot use are named in a warning and dropped at the
// next save; everything else in the file is restored.
func (d *Daemon) restoreState() {
	path := d.statePath()
	st, err := LoadState(path)
	if err != nil {
		d.Logger.Warn("saved state not restored", "err", err)
		return
	}
	if err := d.Limiter.Restore(st.Limiter); err != nil {
		d.Logger.Warn("saved state partly restored: these entries are dropped", "path", path, "err", err)
	}
	d.mu.Lock()
	for svc, on := range st.Fallback {
		d.fallbackOn[svc] = on
	}
	d.mu.Unlock()
}

// requestSave asks the saver to write the state soon.
func (d *Daemon) requestSave() {
	select {
	case d.saveNow <- struct{}{}:
	default:
	}
}

// saver writes the state after every change, a burst at a time, until
// shutdown, which writes the last one itself.
func (d *Daemon) saver() {
	defer close(d.saverEnd)
	changed, unsubscribe := d.Limiter.Subscribe()
	defer unsubscribe()
	timer := time.NewTimer(saveDelay)
	timer.Stop()
	// The timer is armed by the first change and not pushed back by later
	// ones: under steady traffic the state is still written every saveDelay.
	armed := false
	arm := func() {
		if !armed {
			timer.Reset(saveDelay)
			armed = true
		}
	}
	for {
		select {
		case <-d.stopping:
			return
		case _, ok := <-changed:
			if !ok {
				return
			}
			arm()
		case <-d.saveNow:
			arm()
		case <-timer.C:
			armed = false
			d.save()
		}
	}
}

func (d *Daemon) save() {
	st := SavedState{Limiter: d.Limiter.Snapshot()}
	d.mu.Lock()
	if len(d.fallbackOn) > 0 {
		st.Fallback = make(map[string]bool, len(d.fallbackOn))
		for k, v := range d.fallbackOn {
			st.Fallback[k] = v
		}
	}
	d.mu.Unlock()
	data, err := encodeState(st)
	if err == nil {
		if bytes.Equal(data, d.lastSaved) {
			return // nothing to sync to disk
		}
		err = writeState(d.statePath(), data)
	}
	if err != nil {
		d.Logger.Error("state not saved; changes made now may be lost on restart", "err", err)
		return
	}
	d.lastSaved = data
}

// Shutdown stops the daemon: the socket stops accepting and waiting acquires
// are answered 503 shutting_down, the parts stop, the state is saved one
// last time and the socket file is removed. Calls after the first return the
// first one's result.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() {
		defer close(d.done)
		close(d.stopping)
		var errs []error
		if d.watcher != nil {
			d.watcher.stop()
		}
		if err := d.Server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the server: %w", err))
		}
		d.mu.Lock()
		parts := d.parts
		d.mu.Unlock()
		for i := len(parts) - 1; i >= 0; i-- {
			if err := parts[i].Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		<-d.saverEnd
		d.save()
		d.Limiter.Close()
		d.ln.Close()
		d.removeSocket()
		d.stopErr = errors.Join(errs...)
		d.Logger.Info("quotabar stopped")
	})
	return d.stopErr
}

// removeSocket removes the socket file if it is still the one this daemon
// created (a listener normally removes it on close; this covers listeners
// that do not, without touching another instance's socket).
func (d *Daemon) removeSocket() {
	now, err := os.Stat(d.socketPath)
	if err != nil || d.sockInfo == nil || !os.SameFile(now, d.sockInfo) {
		return
	}
	os.Remove(d.socketPath)
}
