package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/quotabar/quotabar/app/config"
)

// reloadDelay lets an editor finish its burst of writes and renames before
// the file is read.
const reloadDelay = 150 * time.Millisecond

// watcher reloads the configuration when its file changes.
type watcher struct {
	fs    *fsnotify.Watcher
	quit  chan struct{}
	ended chan struct{}
}

// watchConfig watches the directory of the configuration file, not the file:
// editors save by writing a new file and renaming it over the old one, which
// a watch on the old file would not survive. A symlinked file is watched in
// its target's directory too.
func (d *Daemon) watchConfig() (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, p := range []string{d.configPath, resolved(d.configPath)} {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		names[abs] = true
		if err := fw.Add(filepath.Dir(abs)); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watching %s: %w", filepath.Dir(abs), err)
		}
	}
	w := &watcher{fs: fw, quit: make(chan struct{}), ended: make(chan struct{})}
	go w.run(d, names)
	return w, nil
}

func resolved(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}

func (w *watcher) run(d *Daemon, names map[string]bool) {
	defer close(w.ended)
	timer := time.NewTimer(reloadDelay)
	timer.Stop()
	// broken is set while the file on disk is not the configuration in
	// force, so that undoing a broken edit is acknowledged, not silent.
	broken := false
	for {
		select {
		case <-w.quit:
			timer.Stop()
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if abs, err := filepath.Abs(ev.Name); err == nil && names[abs] {
				timer.Reset(reloadDelay)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			d.Logger.Warn("watching the configuration", "err", err)
		case <-timer.C:
			changed, err := d.Reload()
			switch {
			case errors.Is(err, os.ErrNotExist):
				d.Logger.Warn("the configuration file is gone; keeping the one in force until it is back", "path", d.configPath)
			case err != nil:
				d.Logger.Error("configuration edit not applied; keeping the previous configuration", "err", err)
			case changed:
				d.Logger.Info("configuration reloaded", "path", d.configPath)
			case broken:
				d.Logger.Info("the configuration file is back to the configuration in force", "path", d.configPath)
			}
			broken = err != nil
		}
	}
}

func (w *watcher) stop() {
	close(w.quit)
	<-w.ended
	w.fs.Close()
}

// Reload reads the configuration file again and applies it: the limiter is
// reconfigured in place (queued requests stay queued) and the parts are told.
// A file that does not check leaves everything as it was and the error says
// which line and key are wrong. It reports whether anything changed: a file
// saved without changes is not applied again.
func (d *Daemon) Reload() (changed bool, err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	data, err := config.ReadConfigFile(d.configPath)
	if err != nil {
		return false, err
	}
	if d.cfgData != nil && bytes.Equal(data, d.cfgData) {
		return false, nil
	}
	cfg, err := config.Parse(d.configPath, data)
	if err != nil {
		return false, err
	}
	if err := d.Limiter.Reconfigure(cfg.Limiter()); err != nil {
		return false, fmt.Errorf("%s: %w", d.configPath, err)
	}
	d.mu.Lock()
	d.cfg = cfg
	d.cfgData = data
	d.mu.Unlock()
	d.cfgSubs.Notify()
	for _, p := range d.parts {
		p.Reconfigure(cfg)
	}
	return true, nil
}
