package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/quotabar/quotabar/proxy"
)

func init() { startProxy = startHTTPProxy }

// proxyPart runs the HTTP proxy for agents that cannot be changed (package
// proxy) inside the daemon, and answers GET /v1/proxy on the socket so that
// `quotabar run` can find it.
type proxyPart struct {
	d *Daemon

	mu     sync.Mutex
	token  string // loaded on first start, kept across restarts of the listener
	listen string // the configured address; "" while off
	p      *proxy.Proxy
	srv    *http.Server
	url    string // what the listener really got, e.g. port 0 resolved
	note   string // why the proxy is not where, or not as, configured
	err    error  // why the last apply failed; nil when it did not
}

// proxyShutdownWait bounds how long a stopping proxy lets calls in flight
// (long streams) finish before it cuts them.
const proxyShutdownWait = 5 * time.Second

func startHTTPProxy(d *Daemon) (part, error) {
	pp := &proxyPart{d: d}
	d.Server.Handle("GET /v1/proxy", http.HandlerFunc(pp.serveInfo))
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if err := pp.applyNoting(d.Config()); err != nil {
		// Stay a part of the daemon, off, so that an edit of [proxy] can
		// start it without a restart.
		d.Logger.Error("the HTTP proxy did not start; agents using it will fail", "err", err)
	}
	return pp, nil
}

// apply brings the proxy in line with cfg: started, stopped, moved to a new
// address, or only given the new services. pp.mu is held.
func (pp *proxyPart) apply(cfg *Config) error {
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
	pp.note = ""
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another program has the port. Agents started by `quotabar run`
		// find the proxy wherever it is (GET /v1/proxy), so it still
		// runs, on a free port of the same host; tools given the fixed
		// URL by hand need the port freed or [proxy] listen changed.
		host, _, _ := net.SplitHostPort(want)
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err == nil {
			pp.note = fmt.Sprintf("proxy.listen %s is in use by another program; the proxy listens on %s instead, which `quotabar run` finds; to keep a fixed address, stop that program or set another port under [proxy] listen", want, ln.Addr())
			pp.d.Logger.Warn(pp.note)
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
	pp.url = "http://" + ln.Addr().String()
	pp.d.Logger.Info("HTTP proxy for agents listening", "url", pp.url)
	return nil
}

// applyNoting is apply keeping its error for GET /v1/proxy, so that
// `quotabar run` can say why there is no proxy. pp.mu is held.
func (pp *proxyPart) applyNoting(cfg *Config) error {
	pp.err = pp.apply(cfg)
	return pp.err
}

// stop closes the listener and gives calls in flight a moment to end.
// pp.mu is held.
func (pp *proxyPart) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), proxyShutdownWait)
	defer cancel()
	if err := pp.srv.Shutdown(ctx); err != nil {
		pp.srv.Close()
		pp.d.Logger.Warn("the HTTP proxy cut calls still in flight when it stopped", "err", err)
	}
	pp.p, pp.srv, pp.listen, pp.url = nil, nil, "", ""
}

func (pp *proxyPart) Reconfigure(cfg *Config) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if err := pp.applyNoting(cfg); err != nil {
		pp.d.Logger.Error("the HTTP proxy could not apply the new configuration", "err", err)
	}
}

func (pp *proxyPart) Shutdown(ctx context.Context) error {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.srv != nil {
		pp.stop()
	}
	return nil
}

func (pp *proxyPart) info() proxy.Info {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.p == nil {
		in := proxy.Info{}
		if pp.err != nil {
			in.Problem = "the HTTP proxy did not start: " + pp.err.Error()
		}
		return in
	}
	in := proxy.Info{Enabled: true, URL: pp.url, Token: pp.token, Listen: pp.listen, Problem: pp.note}
	for _, s := range pp.d.Config().Services {
		if s.BaseURL != "" {
			in.Services = append(in.Services, proxy.ServiceInfo{Name: s.Name, Preset: s.Preset, BaseURL: s.BaseURL})
		}
	}
	return in
}

func (pp *proxyPart) serveInfo(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(pp.info())
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func proxyServices(cfg *Config) []proxy.Service {
	svcs := make([]proxy.Service, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		pr, _ := LookupPreset(s.Preset)
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
		return fmt.Errorf("proxy.listen %q: want host:port such as %q: %w", addr, DefaultProxyListen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("proxy.listen %q: the proxy only listens on a loopback address (127.0.0.1 or ::1), so that other hosts cannot reach it", addr)
}
