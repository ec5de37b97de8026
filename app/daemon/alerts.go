package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/quotabar/quotabar/alerts"
	"github.com/quotabar/quotabar/app/config"
)

// alertsRecheck is how often the alerts look at the status with nothing
// poked: a cooldown ends and a window resets by time passing alone.
const alertsRecheck = time.Second

// alertsPart tells the person about quota crossings (package alerts):
// desktop notifications and the configured hooks. The menu's switch for
// notifications overrides the file's notify and is saved in the state.
type alertsPart struct {
	d        *Daemon
	w        *alerts.Watcher
	notifier alerts.Notifier

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// newAlertsPart builds the watcher; start runs it once the server exists.
// A configuration the watcher refuses (config.Parse checks the same rules,
// so only a bug gets here) runs it without hooks rather than not at all.
func newAlertsPart(d *Daemon) *alertsPart {
	p := &alertsPart{d: d, notifier: alerts.SystemNotifier()}
	log := d.Logger.With("part", "alerts")
	w, err := alerts.New(p.config(d.Config()), p.notifier, log)
	if err != nil {
		log.Error("alerts: configuration refused; notifying without hooks", "err", err)
		w, _ = alerts.New(alerts.Config{Notify: true}, p.notifier, log)
	}
	p.w = w
	return p
}

// start watches the server's status until Shutdown.
func (p *alertsPart) start() {
	ctx, cancel := context.WithCancel(context.Background())
	changed, stop := p.d.Server.Changed()
	p.mu.Lock()
	p.cancel, p.done = cancel, make(chan struct{})
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		defer stop()
		p.w.Run(ctx, changed, alertsRecheck, p.d.Server.Status)
	}()
}

func (p *alertsPart) Reconfigure(cfg *config.Config) {
	if err := p.w.SetConfig(p.config(cfg)); err != nil {
		p.d.Logger.Error("alerts: configuration refused; keeping the previous one", "err", err)
	}
}

func (p *alertsPart) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.w.Close()
	if c, ok := p.notifier.(interface{ Close() error }); ok {
		c.Close()
	}
	return nil
}

// config is what the watcher runs with: cfg's [alerts] with the menu's
// switch, and without hooks when another user could have written them.
func (p *alertsPart) config(cfg *config.Config) alerts.Config {
	a := p.d.alertsConfig(cfg)
	if len(a.Hooks) > 0 {
		if err := alerts.CheckHookSource(cfg.Path); err != nil {
			p.d.Logger.Error("alerts: the configured hooks are not run", "config", cfg.Path, "err", err)
			a.Hooks = nil
		}
	}
	return a
}

// alertsConfig is cfg's [alerts] with the menu's switch applied.
func (d *Daemon) alertsConfig(cfg *config.Config) alerts.Config {
	a := cfg.Alerts
	d.mu.Lock()
	if d.notifyOn != nil {
		a.Notify = *d.notifyOn
	}
	d.mu.Unlock()
	return a
}

// NotificationsEnabled reports whether desktop notifications are on: the
// menu's switch when it was flipped, else the file's [alerts] notify.
func (d *Daemon) NotificationsEnabled() bool {
	return d.alertsConfig(d.Config()).Notify
}

// SetNotificationsEnabled flips desktop notifications, as the menu does,
// and saves the choice before it returns.
func (d *Daemon) SetNotificationsEnabled(on bool) error {
	d.mu.Lock()
	d.notifyOn = &on
	d.mu.Unlock()
	if d.alerts != nil {
		d.alerts.Reconfigure(d.Config())
	}
	return d.Persist()
}
