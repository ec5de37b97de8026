package tray

// The menu-bar binding. fyne.io/systray keeps global state and its calls
// must not race each other, so one goroutine (onReady, then loop) makes
// every call after Run starts; the menu itself comes from menu.go and
// changes only where the model does.

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"fyne.io/systray"

	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/app/icons"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/limiter"
)

// minRender is the shortest time between two menu updates: on Linux every
// systray call bumps the D-Bus menu revision, on macOS it waits for the main
// thread.
const minRender = time.Second

// Run is what a bare `quotabar` runs: the menu-bar app with the daemon
// inside; quitting from the menu shuts the daemon down. Without a menu bar
// (no session bus on Linux) it says so once and runs the daemon alone.
func Run(ctx context.Context, opts daemon.Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := trayAvailable(log); err != nil {
		log.Warn("no menu bar, running the daemon alone", "reason", err)
		return daemon.RunDaemon(ctx, opts)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.StartDaemon(ctx, opts)
	if err != nil {
		return err
	}
	t := &tray{
		d:       d,
		log:     d.Logger,
		clicks:  make(chan string, 16),
		items:   map[string]*trayNode{},
		stopped: make(chan struct{}),
	}
	t.autostart = autostartEnabled()
	first := t.model(time.Now())
	t.shown = menuModel{Title: first.Title, Tooltip: first.Tooltip, Icon: first.Icon}
	if runtime.GOOS != "darwin" {
		// Before Run the D-Bus item does not exist yet: these are stored and
		// exported with it. (On macOS they need the status item, onReady.)
		setChrome(t.shown)
	}
	systray.Run(func() { t.ready(ctx, first) }, nil)
	<-t.stopped
	stop() // a second signal now ends the process, for a shutdown that hangs
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Shutdown(sctx)
}

// tray owns the systray menu. Only its goroutine calls systray.
type tray struct {
	d         *daemon.Daemon
	log       *slog.Logger
	shown     menuModel // what systray shows now
	items     map[string]*trayNode
	clicks    chan string // keys of clicked items
	autostart bool
	stopped   chan struct{} // closed when loop has made its last systray call
}

// trayNode is a rendered item; separators have no handle.
type trayNode struct {
	h    *systray.MenuItem
	item menuItem // as last applied
	kids []string
}

// ready is systray's onReady: it builds the first menu and returns, because
// systray answers no D-Bus GetLayout until it has; loop takes over.
func (t *tray) ready(ctx context.Context, first menuModel) {
	if runtime.GOOS == "darwin" {
		setChrome(first)
	}
	t.apply(diffMenu(t.shown, first), first)
	go t.loop(ctx)
}

// loop renders on status changes (at most once a second, and every second
// while a countdown shows), runs clicks, and quits systray when the menu's
// Quit is clicked, ctx ends or the daemon stops on its own.
func (t *tray) loop(ctx context.Context) {
	defer close(t.stopped)
	defer systray.Quit()
	changed, stopChanged := t.d.Server.Changed()
	defer stopChanged()
	cfgChanged, stopCfg := t.d.ConfigChanged()
	defer stopCfg()

	last := time.Now()
	var next *time.Timer // the pending render, nil when none is due
	schedule := func(in time.Duration) {
		if next == nil {
			next = time.NewTimer(in)
		}
	}
	due := func() <-chan time.Time {
		if next == nil {
			return nil
		}
		return next.C
	}
	render := func(force bool) {
		if next != nil {
			next.Stop()
			next = nil
		}
		now := time.Now()
		m := t.model(now)
		changes := diffMenu(t.shown, m)
		if force {
			// systray exports the item's properties on D-Bus while onReady
			// runs; a title or icon set in that instant is lost, so set
			// them again once the item is surely up.
			changes = append(changes, change{Op: changeTitle, Item: menuItem{Label: m.Title}},
				change{Op: changeTooltip, Item: menuItem{Label: m.Tooltip}}, change{Op: changeIcon})
		}
		t.apply(changes, m)
		last = now
		if m.Ticking {
			schedule(minRender)
		}
	}
	settle := time.After(2 * time.Second)
	// Agents drop off the menu when idle, which no status change announces.
	idle := time.NewTicker(time.Minute)
	defer idle.Stop()
	if t.shown.Ticking {
		schedule(minRender)
	}
	for {
		select {
		case <-ctx.Done():
			t.log.Info("quitting: " + context.Cause(ctx).Error())
			return
		case <-t.d.Done():
			t.log.Info("quitting: the daemon stopped")
			return
		case <-changed:
			schedule(max(0, minRender-time.Since(last)))
		case <-cfgChanged:
			schedule(max(0, minRender-time.Since(last)))
		case <-due():
			next = nil
			render(false)
		case <-settle:
			render(true)
		case <-idle.C:
			render(false)
		case key := <-t.clicks:
			if quit := t.click(ctx, key); quit {
				t.log.Info("quitting from the menu")
				return
			}
			render(false) // show the result of a click at once
		}
	}
}

// model builds the menu from the daemon's state now.
func (t *tray) model(now time.Time) menuModel {
	return buildMenu(menuInput{
		Status:    t.d.Server.Status(),
		Now:       now,
		ShowTitle: t.d.Config().ShowTitle,
		Autostart: t.autostart,
		Notify:    t.d.NotificationsEnabled(),
		CanOpen:   true,
	})
}

// setChrome sets the menu bar's icon, title and tooltip.
func setChrome(m menuModel) {
	systray.SetTemplateIcon(icons.PNG(m.Icon, 32, true), icons.PNG(m.Icon, 32, false))
	systray.SetTitle(m.Title)
	systray.SetTooltip(m.Tooltip)
}

// apply makes the systray calls for changes, which lead to m.
func (t *tray) apply(changes []change, m menuModel) {
	defer func() { t.shown = m }()
	for _, c := range changes {
		switch c.Op {
		case changeTitle:
			systray.SetTitle(c.Item.Label)
		case changeTooltip:
			systray.SetTooltip(c.Item.Label)
		case changeIcon:
			systray.SetTemplateIcon(icons.PNG(m.Icon, 32, true), icons.PNG(m.Icon, 32, false))
		case changeReset:
			systray.ResetMenu()
			t.items = map[string]*trayNode{}
		case changeRemove:
			t.remove(c.Key)
		case changeAdd:
			t.add(c)
		case changeUpdate:
			n := t.items[c.Key]
			if n == nil || n.h == nil {
				t.log.Error("menu: update of an item that is not shown", "key", c.Key)
				continue
			}
			update(n.h, n.item, c.Item)
			n.item = c.Item
		}
	}
}

func (t *tray) add(c change) {
	var parent *systray.MenuItem
	if c.Parent != "" {
		p := t.items[c.Parent]
		if p == nil || p.h == nil {
			t.log.Error("menu: add to a submenu that is not shown", "key", c.Key, "parent", c.Parent)
			return
		}
		parent = p.h
		p.kids = append(p.kids, c.Key)
	}
	it := c.Item
	n := &trayNode{item: it}
	switch {
	case it.Kind == kindSeparator && parent == nil:
		systray.AddSeparator()
	case it.Kind == kindSeparator:
		parent.AddSeparator()
	case it.Kind == kindCheck && parent == nil:
		n.h = systray.AddMenuItemCheckbox(it.Label, "", it.Checked)
	case it.Kind == kindCheck:
		n.h = parent.AddSubMenuItemCheckbox(it.Label, "", it.Checked)
	case parent == nil:
		n.h = systray.AddMenuItem(it.Label, "")
	default:
		n.h = parent.AddSubMenuItem(it.Label, "")
	}
	t.items[c.Key] = n
	if n.h == nil {
		return
	}
	if it.Disabled {
		n.h.Disable()
	}
	if it.Hidden {
		n.h.Hide()
	}
	if it.Kind == kindAction || it.Kind == kindCheck {
		go forwardClicks(n.h.ClickedCh, c.Key, t.clicks, t.stopped)
	}
}

// forwardClicks turns an item's clicks into its key on clicks, until
// systray closes the item's channel (the item was removed) or the tray stops.
func forwardClicks(from <-chan struct{}, key string, to chan<- string, stopped <-chan struct{}) {
	for range from {
		select {
		case to <- key:
		case <-stopped:
			return
		}
	}
}

func (t *tray) remove(key string) {
	n := t.items[key]
	if n == nil {
		return
	}
	if n.h != nil {
		n.h.Remove() // removes its submenu too
	}
	var forget func(string)
	forget = func(k string) {
		if n := t.items[k]; n != nil {
			delete(t.items, k)
			for _, kid := range n.kids {
				forget(kid)
			}
		}
	}
	forget(key)
	for _, p := range t.items {
		for i, kid := range p.kids {
			if kid == key {
				p.kids = append(p.kids[:i], p.kids[i+1:]...)
				break
			}
		}
	}
}

// update changes what differs between old and it: on Linux every call
// bumps the D-Bus menu revision and makes the panel read the menu again.
func update(h *systray.MenuItem, old, it menuItem) {
	if it.Label != old.Label {
		h.SetTitle(it.Label)
	}
	if it.Checked != old.Checked {
		if it.Checked {
			h.Check()
		} else {
			h.Uncheck()
		}
	}
	if it.Disabled != old.Disabled {
		if it.Disabled {
			h.Disable()
		} else {
			h.Enable()
		}
	}
	if it.Hidden != old.Hidden {
		if it.Hidden {
			h.Hide()
		} else {
			h.Show()
		}
	}
}

// click runs the action of the item clicked; quit reports the Quit item.
func (t *tray) click(ctx context.Context, key string) (quit bool) {
	it := findItem(t.shown.Items, key)
	if it == nil {
		return false // gone since the click was sent
	}
	a := it.Action
	var err error
	switch a.Kind {
	case actQuit:
		return true
	// A person's changes go through the daemon, which saves them before
	// it returns.
	case actPauseService:
		err = t.d.SetServicePaused(a.Name, a.On)
	case actResetService:
		err = t.d.ResetService(a.Name)
	case actPauseAgent:
		err = t.d.UpdateAgent(a.Name, limiter.AgentUpdate{Paused: &a.On})
	case actAgentPriority:
		p := a.Priority
		err = t.d.UpdateAgent(a.Name, limiter.AgentUpdate{Priority: &p})
	case actFallback:
		// Through the fallback, which also closes the browser of a
		// fallback switched off.
		if err = t.d.SwitchFallback(a.Name, a.On); err == nil {
			t.d.Server.Notify()
		}
	case actOpenBrowser:
		// Through the socket, as an agent would: starting a browser takes
		// seconds, and the menu must not wait for it.
		go func() {
			c := &ipc.Client{SocketPath: t.d.SocketPath()}
			if _, err := c.OpenFallback(ctx, a.Name, ""); err != nil {
				t.log.Warn("menu: opening the web fallback failed", "service", a.Name, "err", err)
			}
		}()
	case actOpenConfig:
		name, args := openConfigCommand(t.d.ConfigPath())
		err = startDetached(name, args...)
	case actCopySocket:
		err = copyText(t.d.SocketPath())
	case actNotify:
		err = t.d.SetNotificationsEnabled(a.On)
	case actAutostart:
		var exe string
		if exe, err = os.Executable(); err == nil {
			err = setAutostart(a.On, exe)
		}
		t.autostart = autostartEnabled()
	}
	if err != nil {
		t.log.Warn("menu: "+it.Label+" failed", "err", err)
	}
	return false
}
