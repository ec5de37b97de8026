package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/webfallback"
)

// closeWait bounds closing a service's browser when its fallback is switched
// off or removed: Chrome writes its profile before it exits.
const closeWait = 30 * time.Second

// fallback serves the web fallbacks of the configured services: the switch
// is the daemon's (saved with the state), the browsers are the Manager's.
type fallback struct {
	d   *Daemon
	m   *webfallback.Manager
	log *slog.Logger
}

// newFallback builds the web fallback; it starts no browser until an agent
// or the person opens one. Profiles live under the state directory, in
// "browsers", one per service.
func newFallback(d *Daemon) *fallback {
	dir := filepath.Join(d.StateDir(), "browsers")
	return &fallback{
		d: d,
		m: webfallback.New(webfallback.Options{
			Dir: dir, ChromePath: d.Config().ChromePath, IdleTimeout: d.Config().FallbackIdleTimeout, Logger: d.Logger,
			// An idle or exited browser changes open_sessions.
			OnClosed: func(string, string) {
				if d.Server != nil {
					d.Server.Notify()
				}
			},
		}),
		log: d.Logger.With("component", "fallback"),
	}
}

// config returns the service's fallback configuration, ok=false when the
// service is not configured or has no fallback.
func (f *fallback) config(service string) (config.FallbackConfig, bool) {
	s, ok := f.d.Config().Service(service)
	if !ok || s.Fallback.Browser == "" {
		return config.FallbackConfig{}, false
	}
	return s.Fallback, true
}

func (f *fallback) Info(service string) (wire.FallbackInfo, bool) {
	fc, ok := f.config(service)
	if !ok {
		return wire.FallbackInfo{}, false
	}
	return wire.FallbackInfo{
		Browser:      fc.Browser,
		Enabled:      f.d.FallbackEnabled(service),
		OpenSessions: f.m.OpenSessions(service),
	}, true
}

func (f *fallback) noFallback(service string) error {
	if _, ok := f.d.Config().Service(service); !ok {
		return &wire.APIError{Status: http.StatusNotFound, Code: "unknown_service",
			Message: fmt.Sprintf("service %q is not configured", service)}
	}
	return &wire.APIError{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("service %q has no web fallback configured; add fallback = { browser = \"chrome\", url = \"...\" } to its section of %s", service, f.d.ConfigPath())}
}

// SetEnabled flips and saves the switch. Switching off closes the service's
// browser before answering, so that the answer's open_sessions is true.
func (f *fallback) SetEnabled(service string, enabled bool) (wire.FallbackInfo, error) {
	if _, ok := f.config(service); !ok {
		return wire.FallbackInfo{}, f.noFallback(service)
	}
	if err := f.d.SetFallbackEnabled(service, enabled); err != nil {
		return wire.FallbackInfo{}, err
	}
	f.log.Info("web fallback switched", "service", service, "enabled", enabled)
	if !enabled {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		if err := f.m.CloseService(ctx, service); err != nil {
			f.log.Error("closing the browser of a switched-off fallback", "service", service, "err", err)
		}
	}
	info, _ := f.Info(service)
	return info, nil
}

// switchFromMenu is SetEnabled for the menu, which must not wait seconds for
// a browser to close: the switch flips at once, and a browser of a fallback
// switched off closes in the background, unless the person switched it on
// again meanwhile.
func (f *fallback) switchFromMenu(service string, on bool) error {
	if _, ok := f.config(service); !ok {
		return f.noFallback(service)
	}
	if err := f.d.SetFallbackEnabled(service, on); err != nil {
		return err
	}
	f.log.Info("web fallback switched from the menu", "service", service, "enabled", on)
	if on {
		return nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		if f.d.FallbackEnabled(service) {
			return
		}
		if err := f.m.CloseService(ctx, service); err != nil {
			f.log.Error("closing the browser of a switched-off fallback", "service", service, "err", err)
		}
		f.d.Server.Notify() // open_sessions changed
	}()
	return nil
}

// SwitchFallback is the menu's web-fallback switch: the switch flips and is
// saved at once, and a browser of a fallback switched off closes in the
// background, so that the menu does not wait seconds for it.
func (d *Daemon) SwitchFallback(service string, on bool) error {
	return d.fallback.switchFromMenu(service, on)
}

func disabledError(service string) error {
	return &wire.APIError{Status: http.StatusConflict, Code: "fallback_disabled",
		Message: fmt.Sprintf("the web fallback of %q is switched off; the person can turn it on in the menu, or PUT /v1/services/%s/fallback {\"enabled\": true}", service, service)}
}

func (f *fallback) Open(ctx context.Context, service, agent string) (wire.OpenResult, error) {
	fc, ok := f.config(service)
	if !ok {
		return wire.OpenResult{}, f.noFallback(service)
	}
	if !f.d.FallbackEnabled(service) {
		return wire.OpenResult{}, disabledError(service)
	}
	s, err := f.m.Open(ctx, webfallback.Target{Service: service, Browser: fc.Browser, URL: fc.URL, Headless: fc.Headless})
	if err != nil {
		return wire.OpenResult{}, f.apiError(service, err)
	}
	// The switch may have been turned off while the browser started; the
	// switch wins.
	if !f.d.FallbackEnabled(service) {
		f.m.CloseService(context.WithoutCancel(ctx), service)
		return wire.OpenResult{}, disabledError(service)
	}
	f.log.Info("web fallback opened", "service", service, "agent", agent, "browser", s.Browser)
	return wire.OpenResult{Browser: s.Browser, URL: s.URL, CDPURL: s.CDPURL, TargetID: s.TargetID,
		WebDriverURL: s.WebDriverURL, SessionID: s.SessionID}, nil
}

func (f *fallback) apiError(service string, err error) error {
	if ue, ok := errors.AsType[*webfallback.UnavailableError](err); ok {
		return &wire.APIError{Status: http.StatusServiceUnavailable, Code: "browser_unavailable", Message: ue.Error()}
	}
	switch {
	case errors.Is(err, webfallback.ErrBusy):
		return &wire.APIError{Status: http.StatusConflict, Code: "fallback_busy", Message: err.Error()}
	case errors.Is(err, webfallback.ErrClosed):
		return &wire.APIError{Status: http.StatusServiceUnavailable, Code: "shutting_down", Message: "quotabar is shutting down"}
	case errors.Is(err, webfallback.ErrNotFound):
		return &wire.APIError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("service %q has no such open tab or session; it may have been closed already", service)}
	}
	return fmt.Errorf("web fallback of %s: %w", service, err)
}

func (f *fallback) Close(ctx context.Context, service string, req wire.CloseRequest) error {
	if _, ok := f.config(service); !ok {
		return f.noFallback(service)
	}
	id := req.TargetID
	switch {
	case req.TargetID != "" && req.SessionID != "":
		return &wire.APIError{Status: http.StatusBadRequest, Code: "bad_request", Message: "give target_id (chrome) or session_id (webkit), not both"}
	case req.SessionID != "":
		id = req.SessionID
	case id == "":
		return &wire.APIError{Status: http.StatusBadRequest, Code: "bad_request", Message: "target_id (chrome) or session_id (webkit) is required"}
	}
	if err := f.m.Close(ctx, service, id); err != nil {
		return f.apiError(service, err)
	}
	return nil
}

// Reconfigure follows a configuration edit: the browser of a fallback that
// was removed, changed browser, or is now off (the file's value, unless the
// person flipped the switch at run time) is closed. Closing takes seconds,
// so it runs in the background.
func (f *fallback) Reconfigure(cfg *config.Config) {
	f.m.SetChromePath(cfg.ChromePath)
	f.m.SetIdleTimeout(cfg.FallbackIdleTimeout)
	var stale []string
	for name, kind := range f.m.Running() {
		s, ok := cfg.Service(name)
		if !ok || s.Fallback.Browser != kind || !f.d.FallbackEnabled(name) {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		for _, name := range stale {
			f.log.Info("closing the browser of a reconfigured fallback", "service", name)
			if err := f.m.CloseService(ctx, name); err != nil {
				f.log.Error("closing the browser of a reconfigured fallback", "service", name, "err", err)
			}
		}
	}()
}

// Shutdown closes every browser with Browser.close, so that cookies set in
// the last seconds are on disk for the next start.
func (f *fallback) Shutdown(ctx context.Context) error {
	if err := f.m.Shutdown(ctx); err != nil {
		return fmt.Errorf("closing the web fallback browsers: %w", err)
	}
	return nil
}
