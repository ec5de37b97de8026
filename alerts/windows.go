package alerts

import (
	"fmt"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

// observeWindows does for a service's subscription windows (5-hour, week)
// what Observe does for its limits: once per crossing of a threshold of
// the window's use, when it is used up or rejected, and when it resets.
// The event's unit is the window ("5-hour window"), its quota 100 and its
// remaining the percent left.
func (w *Watcher) observeWindows(s wire.ServiceStatus, v quotaview.Service, thresholds []int, seen map[limitKey]bool, now time.Time, events []Event) []Event {
	for _, win := range v.Windows {
		unit := win.Label + " window"
		key := limitKey{s.Name, unit, 0}
		seen[key] = true
		ls := w.limits[key]
		if ls == nil {
			ls = &limitState{}
			w.limits[key] = ls
		}
		used := min(win.UsedPercent(), 100)
		if win.Rejected {
			used = 100
		}
		l := quotaview.Limit{Unit: unit, Quota: 100, Remaining: int64(100 - used), ResetsIn: win.ResetsIn}
		ev, ok := ls.observe(l, thresholds)
		if !ok {
			continue
		}
		ev.Service, ev.Unit, ev.Quota, ev.Remaining, ev.UsedPercent, ev.Time = s.Name, unit, 100, l.Remaining, used, now.UTC()
		if win.ResetsIn > 0 {
			at := now.Add(win.ResetsIn).UTC()
			ev.ResetsAt = &at
		}
		ev.Message = windowMessage(ev, win)
		events = append(events, ev)
	}
	return events
}

func windowMessage(ev Event, win quotaview.Window) string {
	resets := ""
	if win.ResetsIn > 0 {
		resets = ", resets in " + quotaview.Duration(win.ResetsIn)
	}
	switch ev.Event {
	case QuotaLow:
		return fmt.Sprintf("%s has used %d%% of its %s%s", ev.Service, ev.UsedPercent, ev.Unit, resets)
	case QuotaExhausted:
		return fmt.Sprintf("%s has used up its %s%s; agents wait", ev.Service, ev.Unit, resets)
	}
	return fmt.Sprintf("%s's %s is back: %d%% used", ev.Service, ev.Unit, ev.UsedPercent)
}
