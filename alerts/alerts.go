// Package alerts tells people when a quota runs low instead of making them
// look: it watches the daemon's status and, once per crossing, sends a
// desktop notification and runs the person's hook commands when a limit
// passes a threshold, is exhausted, comes back, or a service enters or
// leaves a cooldown.
//
// Watching never waits on what it tells: notifications and hooks run on
// their own goroutines, each bounded by a timeout, and an event that finds
// them all busy is dropped and logged. A failing or hanging hook is logged
// and killed; the daemon goes on.
package alerts

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

// Kind is the kind of an event; hooks are configured per kind.
type Kind string

const (
	QuotaLow       Kind = "quota_low"       // a limit passed a threshold
	QuotaExhausted Kind = "quota_exhausted" // a limit has nothing left
	CooldownStart  Kind = "cooldown_start"  // the provider said 429: every agent waits
	CooldownEnd    Kind = "cooldown_end"    // the cooldown is over
	WindowReset    Kind = "window_reset"    // a low or exhausted limit has quota again
)

// Kinds are every kind, in the order of the config file.
var Kinds = []Kind{QuotaLow, QuotaExhausted, CooldownStart, CooldownEnd, WindowReset}

// Event is what happened, as a hook reads it on stdin (JSON).
type Event struct {
	Event   Kind   `json:"event"`
	Service string `json:"service"`
	// Unit, Quota, Remaining, UsedPercent and WindowMS describe the limit
	// for the quota and window events.
	Unit        string `json:"unit,omitempty"`
	Quota       int64  `json:"quota,omitempty"`
	Remaining   int64  `json:"remaining"`
	UsedPercent int    `json:"used_percent"`
	WindowMS    int64  `json:"window_ms,omitempty"`
	// Threshold is the percentage a quota_low event crossed.
	Threshold     int        `json:"threshold_percent,omitempty"`
	ResetsAt      *time.Time `json:"resets_at,omitempty"`
	CooldownUntil *time.Time `json:"cooldown_until,omitempty"`
	Time          time.Time  `json:"time"`
	// Message says it for a person, as the notification does.
	Message string `json:"message"`
}

// Config is what the person chose. The zero value notifies at 80% and
// 95% and runs no hook.
type Config struct {
	// Notify switches desktop notifications.
	Notify bool
	// Thresholds are the used percentages (1 to 99) that fire quota_low;
	// empty means DefaultThresholds.
	Thresholds []int
	// Hooks are shell commands per kind, run with the event as JSON on
	// stdin.
	Hooks map[Kind]string
	// HookTimeout bounds each hook; 0 means DefaultHookTimeout.
	HookTimeout time.Duration
}

// DefaultThresholds are the quota_low thresholds when none are configured.
var DefaultThresholds = []int{80, 95}

// DefaultHookTimeout bounds a hook when the config names no timeout.
const DefaultHookTimeout = 10 * time.Second

// rearm is how far (in percentage points) use must fall below a threshold
// before it can fire again: a sliding window that hovers around 80% must
// not notify every second.
const rearm = 5

// Check returns an error naming what is wrong with c.
func (c Config) Check() error {
	for _, t := range c.Thresholds {
		if t < 1 || t > 99 {
			return fmt.Errorf("alerts: threshold %d%%: use 1 to 99 (100%% is quota_exhausted)", t)
		}
	}
	for k, cmd := range c.Hooks {
		if !slices.Contains(Kinds, k) {
			return fmt.Errorf("alerts: hook %q: the events are %v", k, Kinds)
		}
		if cmd == "" {
			return fmt.Errorf("alerts: hook %s: the command is empty", k)
		}
	}
	if c.HookTimeout < 0 {
		return fmt.Errorf("alerts: hook timeout %v: use a positive duration", c.HookTimeout)
	}
	return nil
}

// Notifier shows a desktop notification.
type Notifier interface {
	Notify(ctx context.Context, title, body string, urgent bool) error
}

// Watcher turns status changes into events. Observe is not safe for
// concurrent use; SetConfig is.
type Watcher struct {
	log      *slog.Logger
	notifier Notifier
	runHook  func(ctx context.Context, command string, ev Event) error

	mu  sync.Mutex
	cfg Config

	limits  map[limitKey]*limitState
	cooling map[string]bool

	work    chan Event
	wg      sync.WaitGroup
	closed  chan struct{}
	closeMu sync.Once
}

type limitKey struct {
	service, unit string
	window        int64
}

type limitState struct {
	level     int // how many thresholds are crossed
	exhausted bool
}

// queueLen is how many events may wait for the notifier and the hooks.
const queueLen = 64

// New returns a watcher that notifies through n (nil: never) and logs to
// log. Close it to stop its goroutines.
func New(cfg Config, n Notifier, log *slog.Logger) (*Watcher, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{log: log, notifier: n, cfg: cfg, limits: map[limitKey]*limitState{}, cooling: map[string]bool{},
		work: make(chan Event, queueLen), closed: make(chan struct{})}
	w.runHook = w.hook
	w.wg.Add(1)
	go w.dispatch()
	return w, nil
}

// SetConfig applies a new configuration (a reloaded file, the menu's
// switch) from the next event on.
func (w *Watcher) SetConfig(cfg Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	w.mu.Lock()
	w.cfg = cfg
	w.mu.Unlock()
	return nil
}

// Config returns the configuration in force.
func (w *Watcher) Config() Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg
}

// Close stops the watcher and waits for the notifications and hooks under
// way (each is bounded by its timeout).
func (w *Watcher) Close() {
	w.closeMu.Do(func() { close(w.closed) })
	w.wg.Wait()
}

// Run observes status() whenever changed delivers and every recheck (a
// cooldown ends and a window resets by time passing, which nothing pokes)
// until ctx ends or changed is closed.
func (w *Watcher) Run(ctx context.Context, changed <-chan struct{}, recheck time.Duration, status func() wire.StatusResponse) {
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		w.Observe(status(), time.Now())
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changed:
			if !ok {
				return
			}
		case <-tick.C:
		}
	}
}

// Observe compares st with what it saw before and queues an event for
// every crossing. It returns the events, for tests and logs.
func (w *Watcher) Observe(st wire.StatusResponse, now time.Time) []Event {
	thresholds := w.thresholds()
	var events []Event
	seen := map[limitKey]bool{}
	for _, s := range st.Services {
		v := quotaview.ViewService(s, now)
		cooling := v.State == quotaview.Cooldown
		if cooling != w.cooling[s.Name] {
			ev := Event{Event: CooldownEnd, Service: s.Name, Time: now.UTC()}
			if cooling {
				ev.Event, ev.CooldownUntil = CooldownStart, s.CooldownUntil
				ev.Message = fmt.Sprintf("%s is cooling down for %s: the provider said its limit is spent", s.Name, quotaview.Duration(v.CooldownLeft))
			} else {
				ev.Message = fmt.Sprintf("%s's cooldown is over: agents go on", s.Name)
			}
			events = append(events, ev)
			w.cooling[s.Name] = cooling
		}
		for i, l := range v.Limits {
			key := limitKey{s.Name, l.Unit, s.Limits[i].WindowMS}
			seen[key] = true
			ls := w.limits[key]
			if ls == nil {
				ls = &limitState{}
				w.limits[key] = ls
			}
			if ev, ok := ls.observe(l, thresholds); ok {
				ev.Service, ev.Unit, ev.Quota, ev.Remaining, ev.UsedPercent = s.Name, l.Unit, l.Quota, max(l.Remaining, 0), l.UsedPercent()
				ev.WindowMS, ev.ResetsAt, ev.Time = s.Limits[i].WindowMS, s.Limits[i].ResetsAt, now.UTC()
				ev.Message = message(ev, l)
				events = append(events, ev)
			}
		}
		events = w.observeWindows(s, v, thresholds, seen, now, events)
	}
	// A service or limit that went away (a reloaded config) starts afresh
	// if it comes back.
	for k := range w.limits {
		if !seen[k] {
			delete(w.limits, k)
		}
	}
	for _, ev := range events {
		w.log.Info("quota alert", "event", ev.Event, "service", ev.Service, "unit", ev.Unit, "used_percent", ev.UsedPercent)
		select {
		case w.work <- ev:
		default:
			w.log.Warn("quota alert dropped: the notifier and hooks are behind", "event", ev.Event, "service", ev.Service)
		}
	}
	return events
}

func (w *Watcher) thresholds() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := slices.Clone(w.cfg.Thresholds)
	if len(t) == 0 {
		t = slices.Clone(DefaultThresholds)
	}
	slices.Sort(t)
	return slices.Compact(t)
}

// observe moves the limit's state and says what crossing, if any, l is.
// Only the worst new crossing fires: a jump from 10% to 96% is one
// quota_low at 95%, not two.
func (ls *limitState) observe(l quotaview.Limit, thresholds []int) (Event, bool) {
	used := l.UsedPercent()
	wasAlerted := ls.level > 0 || ls.exhausted
	if l.Quota > 0 && l.Remaining <= 0 {
		if ls.exhausted {
			return Event{}, false
		}
		ls.exhausted, ls.level = true, len(thresholds)
		return Event{Event: QuotaExhausted}, true
	}
	// Re-arm what use fell well below.
	if ls.exhausted && (len(thresholds) == 0 || used < thresholds[len(thresholds)-1]-rearm) {
		ls.exhausted = false
	}
	for ls.level > 0 && used < thresholds[ls.level-1]-rearm {
		ls.level--
	}
	level := 0
	for i, t := range thresholds {
		if used >= t {
			level = i + 1
		}
	}
	if level > ls.level {
		ls.level = level
		return Event{Event: QuotaLow, Threshold: thresholds[level-1]}, true
	}
	if wasAlerted && ls.level == 0 && !ls.exhausted {
		return Event{Event: WindowReset}, true
	}
	return Event{}, false
}

func message(ev Event, l quotaview.Limit) string {
	window := quotaview.Duration(l.Window)
	resets := ""
	if l.ResetsIn > 0 {
		resets = ", resets in " + quotaview.Duration(l.ResetsIn)
	}
	switch ev.Event {
	case QuotaLow:
		return fmt.Sprintf("%s has used %d%% of its %d %s per %s (%d left%s)", ev.Service, ev.UsedPercent, l.Quota, l.Unit, window, ev.Remaining, resets)
	case QuotaExhausted:
		return fmt.Sprintf("%s has no %s left of its %d per %s%s; agents wait", ev.Service, l.Unit, l.Quota, window, resets)
	}
	return fmt.Sprintf("%s has %s again: %d of %d per %s left", ev.Service, l.Unit, ev.Remaining, l.Quota, window)
}

var titles = map[Kind]string{
	QuotaLow:       "quota running low",
	QuotaExhausted: "quota exhausted",
	CooldownStart:  "cooling down",
	CooldownEnd:    "cooldown over",
	WindowReset:    "quota is back",
}

// notifyTimeout bounds one desktop notification.
const notifyTimeout = 5 * time.Second

// maxHooks bounds the hooks running at once; an event past it skips its
// hook (logged) rather than queue behind hung ones.
const maxHooks = 8

// dispatch hands queued events to the notifier and the hooks until Close.
func (w *Watcher) dispatch() {
	defer w.wg.Done()
	hooks := make(chan struct{}, maxHooks)
	var running sync.WaitGroup
	defer running.Wait()
	notifyFailing := false
	handle := func(ev Event) {
		cfg := w.Config()
		if cfg.Notify && w.notifier != nil {
			ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
			urgent := ev.Event == QuotaExhausted || ev.Event == CooldownStart
			err := w.notifier.Notify(ctx, "quotabar: "+ev.Service+" "+titles[ev.Event], ev.Message, urgent)
			cancel()
			// A desktop without a notification server fails every time:
			// say so once, until one works again.
			switch {
			case err != nil && !notifyFailing:
				w.log.Warn("desktop notification failed (further failures are logged at debug level)", "event", ev.Event, "service", ev.Service, "err", err)
			case err != nil:
				w.log.Debug("desktop notification failed", "event", ev.Event, "service", ev.Service, "err", err)
			}
			notifyFailing = err != nil
		}
		command := cfg.Hooks[ev.Event]
		if command == "" {
			return
		}
		select {
		case hooks <- struct{}{}:
		default:
			w.log.Warn("hook skipped: too many hooks still running", "event", ev.Event, "running", maxHooks)
			return
		}
		timeout := cfg.HookTimeout
		if timeout == 0 {
			timeout = DefaultHookTimeout
		}
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-hooks }()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := w.runHook(ctx, command, ev); err != nil {
				w.log.Warn("hook failed", "event", ev.Event, "service", ev.Service, "timeout", timeout, "err", err)
			}
		}()
	}
	for {
		select {
		case ev := <-w.work:
			handle(ev)
		case <-w.closed:
			// What was queued before Close is still told.
			for {
				select {
				case ev := <-w.work:
					handle(ev)
				default:
					return
				}
			}
		}
	}
}
