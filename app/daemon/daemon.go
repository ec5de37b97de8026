package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/internal/notify"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// Options says where the daemon keeps its files. Empty fields take the
// defaults (environment, then platform).
type Options struct {
	ConfigPath string // config.DefaultConfigPath
	StateDir   string // config.DefaultStateDir
	SocketPath string // ipc.SocketPath
	Logger     *slog.Logger
}

// part is a piece of the daemon beside the limiter and the socket server
// (today the web fallback and the HTTP proxy). Every part is built in
// newParts, brought in line with the configuration once before the socket
// serves and again after every applied edit, and stopped at shutdown in
// the reverse order of building. A new piece of the daemon implements part
// (and routedPart if it answers on the socket) and is added to newParts.
type part interface {
	// Reconfigure brings the part in line with cfg: at start-up, and after
	// a good configuration edit has been applied to the limiter.
	Reconfigure(cfg *config.Config)
	// Shutdown stops the part. It runs after the server stops accepting and
	// before the state is saved for the last time.
	Shutdown(ctx context.Context) error
}

var (
	_ part            = (*fallback)(nil)
	_ server.Fallback = (*fallback)(nil)
	_ routedPart      = (*proxyPart)(nil)
)

// routedPart is a part that adds routes to the socket API (a Go ServeMux
// pattern, e.g. "GET /v1/proxy"). They are registered before the server
// serves, so that a client asking at once is never told a route does not
// exist; they get the server's checks (peer uid, body size, JSON errors).
type routedPart interface {
	part
	Routes(handle func(pattern string, h http.Handler))
}

// Daemon is a running quotabar: configuration, limiter, socket server,
// parts and saved state. Its methods are safe for concurrent use.
type Daemon struct {
	Limiter *limiter.Limiter
	Server  *server.Server
	Logger  *slog.Logger

	configPath string
	stateDir   string
	socketPath string
	ln         net.Listener
	sockInfo   os.FileInfo // the socket file we created, to remove only ours

	// The parts, built once in StartDaemon and never replaced.
	fallback *fallback
	proxy    *proxyPart
	alerts   *alertsPart
	parts    []part // in building order

	cluster *clusterPart // nil without a [cluster] table; also in parts

	reloadMu sync.Mutex // one Reload at a time
	cfgData  []byte     // the file cfg was parsed from; guarded by reloadMu

	mu         sync.Mutex
	cfg        *config.Config
	fallbackOn map[string]bool // switches flipped at run time
	notifyOn   *bool           // the menu's notifications switch, nil until flipped
	cfgSubs    notify.Hub      // poked after each applied configuration edit

	saverEnd  chan struct{}
	saveMu    sync.Mutex // one write of the state file at a time
	lastSaved []byte     // what the state file holds; guarded by saveMu

	stopOnce sync.Once
	stopErr  error
	stopping chan struct{} // closed when Shutdown begins
	done     chan struct{} // closed when Shutdown has finished
	serveErr chan error
	watcher  *watcher
}

// saveDelay gathers a burst of changes the limiter makes on its own
// (learned limits, cooldowns, counters) into one write, and bounds what a
// crash can lose of them. A person's change is saved before it is
// acknowledged (Persist), not after this delay.
const saveDelay = 250 * time.Millisecond

// StartDaemon loads the configuration (writing the default one on first
// start), restores the saved state, builds the limiter, the socket server
// and the parts, and starts serving on the socket and watching the
// configuration. If another quotabar is serving the socket it fails with an
// error wrapping *socket.AlreadyRunningError. ctx only bounds start-up: the
// daemon runs until Shutdown.
func StartDaemon(ctx context.Context, opts Options) (_ *Daemon, err error) {
	d := &Daemon{
		Logger:     opts.Logger,
		configPath: opts.ConfigPath,
		stateDir:   opts.StateDir,
		socketPath: opts.SocketPath,
		fallbackOn: map[string]bool{},
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
		if d.configPath, err = config.DefaultConfigPath(); err != nil {
			return nil, err
		}
	}
	if d.stateDir == "" {
		if d.stateDir, err = config.DefaultStateDir(); err != nil {
			return nil, err
		}
	}
	if d.socketPath == "" {
		if d.socketPath, err = socket.Path(); err != nil {
			return nil, err
		}
	}

	created, err := config.EnsureConfig(d.configPath)
	if err != nil {
		return nil, err
	}
	if created {
		d.Logger.Info("wrote the default configuration; edit it to match your accounts", "path", d.configPath)
	}
	d.cfgData, err = config.ReadConfigFile(d.configPath)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Parse(d.configPath, d.cfgData)
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

	d.Limiter, err = limiter.New(cfg.Limiter(), limiter.WithLogger(d.Logger))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.configPath, err)
	}
	defer func() {
		if err != nil {
			d.Limiter.Close()
		}
	}()
	d.restoreState()

	if d.cluster, err = newClusterPart(d, cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && d.cluster != nil {
			d.cluster.Shutdown(context.Background())
		}
	}()
	d.newParts()
	scfg := server.Config{
		Limiter:  d.Limiter,
		Fallback: d.fallback,
		Version:  wire.Version,
		Logger:   d.Logger,
		Persist:  d.Persist,
	}
	if d.cluster != nil {
		scfg.Cluster = d.cluster
	}
	d.Server = server.New(scfg)
	for _, p := range d.parts {
		if r, ok := p.(routedPart); ok {
			r.Routes(d.Server.Handle)
		}
	}
	// The parts start before the socket serves: the first GET /v1/proxy
	// already has the proxy's address.
	for _, p := range d.parts {
		p.Reconfigure(cfg)
	}

	go d.saver()
	go func() { d.serveErr <- d.Server.Serve(d.ln) }()
	d.alerts.start()

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

// newParts builds every part of the daemon; this is the one place a new
// part is added. The parts may read d.Config, d.Limiter and d.StateDir but
// not d.Server, which is built after them (it serves the fallback).
func (d *Daemon) newParts() {
	// Adding a part: build it here, list it in d.parts. A part the server
	// itself calls (as the fallback is) gets a field too.
	d.fallback = newFallback(d)
	d.proxy = newProxyPart(d)
	d.alerts = newAlertsPart(d)
	d.parts = []part{d.fallback, d.proxy, d.alerts}
	if d.cluster != nil {
		d.parts = append(d.parts, d.cluster)
	}
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

// Config returns the configuration in force. It is replaced, never changed,
// by an edit: callers may keep and read it.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// ConfigChanged returns a channel poked after each applied configuration
// edit, and a function that stops the pokes.
func (d *Daemon) ConfigChanged() (<-chan struct{}, func()) { return d.cfgSubs.Subscribe() }

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

// SetFallbackEnabled flips the web-fallback switch of service and saves it
// before it returns: the switch is a person's change, and an answer that
// says it is done must survive a crash. It fails when the service is not
// configured or has no fallback, or when the state cannot be saved (the
// switch is then flipped, but only until a restart).
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
	if d.Server != nil {
		d.Server.Notify()
	}
	return d.Persist()
}

// SetServicePaused pauses or resumes a service, as the menu and the API
// do, and saves the state before it returns.
func (d *Daemon) SetServicePaused(service string, paused bool) error {
	if _, err := d.Limiter.SetServicePaused(service, paused); err != nil {
		return err
	}
	return d.Persist()
}

// ResetService clears a service's cooldown and learned limits, as the menu
// and POST /v1/services/{name}/reset do, and saves the state before it
// returns.
func (d *Daemon) ResetService(service string) error {
	if err := d.Limiter.Reset(service); err != nil {
		return err
	}
	d.Logger.Info("reset: cooldown and learned limits cleared", "service", service)
	d.Server.Notify()
	return d.Persist()
}

// UpdateAgent changes an agent's pause or priority, as the menu and the
// API do, and saves the state before it returns.
func (d *Daemon) UpdateAgent(agent string, u limiter.AgentUpdate) error {
	if _, err := d.Limiter.UpdateAgent(agent, u); err != nil {
		return err
	}
	return d.Persist()
}

// Persist writes the state now and returns once it is on disk (file and
// directory synced). It is how a person's change becomes durable before it
// is acknowledged; changes the limiter makes on its own are saved by the
// saver, after saveDelay.
func (d *Daemon) Persist() error {
	if err := d.save(); err != nil {
		return fmt.Errorf("the change is made but not saved, so a restart would undo it: %w", err)
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
	switch {
	case errors.Is(err, ErrTrailingData):
		// Moved aside; the state before the garbage is whole and is
		// restored.
		d.Logger.Warn("saved state partly restored", "err", err)
	case err != nil:
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
	d.notifyOn = st.Notify
	d.mu.Unlock()
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
		case <-timer.C:
			armed = false
			if err := d.save(); err != nil {
				d.Logger.Error("state not saved; changes made now may be lost on restart", "err", err)
			}
		}
	}
}

// save writes the state as it is now, unless the file already holds it.
// The snapshot is taken under saveMu, so that of two saves racing the later
// snapshot is the one that lands on disk.
func (d *Daemon) save() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	st := SavedState{Limiter: d.Limiter.Snapshot()}
	d.mu.Lock()
	if len(d.fallbackOn) > 0 {
		st.Fallback = make(map[string]bool, len(d.fallbackOn))
		for k, v := range d.fallbackOn {
			st.Fallback[k] = v
		}
	}
	st.Notify = d.notifyOn
	d.mu.Unlock()
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	if bytes.Equal(data, d.lastSaved) {
		return nil // nothing to sync to disk
	}
	if err := writeState(d.statePath(), data); err != nil {
		return err
	}
	d.lastSaved = data
	return nil
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
		for i := len(d.parts) - 1; i >= 0; i-- {
			if err := d.parts[i].Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		<-d.saverEnd
		if err := d.save(); err != nil {
			errs = append(errs, fmt.Errorf("saving the state: %w", err))
		}
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
