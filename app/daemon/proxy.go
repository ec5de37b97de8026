package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/proxy"
)

// proxyPart runs the HTTP proxy for agents that cannot be changed (package
// proxy) inside the daemon, and answers GET /v1/proxy on the socket so that
// `quotabar run` can find it.
//
// Two locks, so that GET /v1/proxy never waits for a slow change: applyMu
// orders the changes (start, stop, move), which may take seconds (a
// shutdown lets streams finish, the token is read from disk, the port is
// bound); what GET /v1/proxy reads is published through an atomic pointer
// that a change swaps in one step.
type proxyPart struct {
	d *Daemon

	applyMu sync.Mutex
	token   string // loaded on first start, kept across restarts of the listener; guarded by applyMu
	listen  string // the configured address; "" while off; guarded by applyMu
	p       *proxy.Proxy
	srv     *http.Server

	live    atomic.Pointer[proxyLive] // nil while off
	failure atomic.Pointer[string]    // why the last change failed; nil when it did not
}

// proxyLive is what GET /v1/proxy says about a running proxy.
type proxyLive struct {
	url    string // what the listener really got, e.g. port 0 resolved
	token  string
	listen string // the configured address
	note   string // why the proxy is not at listen; "" when it is
}

// proxyShutdownWait bounds how long a stopping proxy lets calls in flight
// (long streams) finish before it cuts them.
const proxyShutdownWait = 5 * time.Second

// newProxyPart builds the proxy, off; Reconfigure starts it.
func newProxyPart(d *Daemon) *proxyPart { return &proxyPart{d: d} }

// apply brings the proxy in line with cfg: started, stopped, moved to a new
// address, or only given the new services. applyMu is held.
func (pp *proxyPart) apply(cfg *config.Config) error {
	want := ""
	if cfg.Proxy.Enabled {
		want = cfg.Proxy.Listen
	}
	if want == pp.listen && pp.p != nil {
		pp.p.SetMaxWait(cfg.Proxy.MaxWait)
		return pp.p.SetServices(proxyServices(cfg))
	}
	if pp.srv != nil {
		pp.stop()
	}
	if want == "" {
		return nil
	}
	if err := checkLoopback(want); err != nil {
		return err
	}
	if pp.token == "" {
		tok, err := proxy.LoadOrCreateToken(pp.d.StateDir())
		if err != nil {
			return err
		}
		pp.token = tok
	}
	p, err := proxy.New(proxy.Config{
		Limiter:  pp.d.Limiter,
		Token:    pp.token,
		Services: proxyServices(cfg),
		MaxWait:  cfg.Proxy.MaxWait,
		Logger:   pp.d.Logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", want)
	note := ""
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another program has the port. Agents started by `quotabar run`
		// find the proxy wherever it is (GET /v1/proxy), so it still
		// runs, on a free port of the same host; tools given the fixed
		// URL by hand need the port freed or [proxy] listen changed.
		host, _, _ := net.SplitHostPort(want)
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err == nil {
			note = fmt.Sprintf("proxy.listen %s is in use by another program; the proxy listens on %s instead, which `quotabar run` finds; to keep a fixed address, stop that program or set another port under [proxy] listen", want, ln.Addr())
			pp.d.Logger.Warn(note)
		}
	}
	if err != nil {
		return fmt.Errorf("proxy.listen %q: %w; another program may use the port: set another in [proxy] listen, or enabled = false", want, err)
	}
	ln = proxy.Listen(ln)
	srv := proxy.NewServer(p, pp.d.Logger)
	go func() {
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			pp.d.Logger.Error("the HTTP proxy stopped", "err", err)
		}
	}()
	pp.p, pp.srv, pp.listen = p, srv, want
	url := "http://" + ln.Addr().String()
	pp.live.Store(&proxyLive{url: url, token: pp.token, listen: want, note: note})
	pp.d.Logger.Info("HTTP proxy for agents listening", "url", url)
	return nil
}

// stop closes the listener and gives calls in flight a moment to end. GET
// /v1/proxy says "off" from the start of it. applyMu is held.
func (pp *proxyPart) stop() {
	pp.live.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), proxyShutdownWait)
	defer cancel()
	if err := pp.srv.Shutdown(ctx); err != nil {
		pp.srv.Close()
		pp.d.Logger.Warn("the HTTP proxy cut calls still in flight when it stopped", "err", err)
	}
	pp.p, pp.srv, pp.listen = nil, nil, ""
}

// Reconfigure starts, stops, moves or updates the proxy. A proxy that
// cannot start stays a part of the daemon, off, so that an edit of [proxy]
// can start it without a restart.
func (pp *proxyPart) Reconfigure(cfg *config.Config) {
	pp.applyMu.Lock()
	defer pp.applyMu.Unlock()
	err := pp.apply(cfg)
	if err != nil {
		pp.d.Logger.Error("the HTTP proxy is off; agents using it will fail", "err", err)
		msg := "the HTTP proxy did not start: " + err.Error()
		pp.failure.Store(&msg)
		return
	}
	pp.failure.Store(nil)
}

func (pp *proxyPart) Shutdown(ctx context.Context) error {
	pp.applyMu.Lock()
	defer pp.applyMu.Unlock()
	if pp.srv != nil {
		pp.stop()
	}
	return nil
}

// Routes adds GET /v1/proxy, which `quotabar run` asks.
func (pp *proxyPart) Routes(handle func(string, http.Handler)) {
	handle("GET /v1/proxy", http.HandlerFunc(pp.serveInfo))
}

func (pp *proxyPart) info() wire.ProxyInfo {
	live := pp.live.Load()
	if live == nil {
		in := wire.ProxyInfo{}
		if f := pp.failure.Load(); f != nil {
			in.Problem = *f
		}
		return in
	}
	in := wire.ProxyInfo{Enabled: true, URL: live.url, Token: live.token, Listen: live.listen, Problem: live.note}
	for _, s := range pp.d.Config().Services {
		if s.BaseURL != "" {
			in.Services = append(in.Services, wire.ProxyServiceInfo{Name: s.Name, Preset: s.Preset, BaseURL: s.BaseURL})
		}
	}
	return in
}

func (pp *proxyPart) serveInfo(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(pp.info())
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func proxyServices(cfg *config.Config) []proxy.Service {
	svcs := make([]proxy.Service, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		pr, _ := config.LookupPreset(s.Preset)
		svcs = append(svcs, proxy.Service{Name: s.Name, BaseURL: s.BaseURL, Reservation: proxy.Reservation(pr.Reservation)})
	}
	return svcs
}

// checkLoopback refuses a listen address other users on the network could
// reach: the token keeps other local users out, loopback keeps other hosts
// out.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("proxy.listen %q: want host:port such as %q: %w", addr, config.DefaultProxyListen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("proxy.listen %q: the proxy only listens on a loopback address (127.0.0.1 or ::1), so that other hosts cannot reach it", addr)
}
