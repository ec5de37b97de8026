package tray

// The menu's subscription windows: per service, one row per window
// ("5-hour: 62% used, resets in 1 h 42 m"), a warning mark near the end,
// and the agents that spent the tightest window most.

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// windowSlots is how many windows a service's menu shows. The rows are
// always there, hidden when unused, because systray can only append: a
// window learned later would otherwise land below Pause.
const windowSlots = 3

// menuTopAgents is how many agents the "Top" row names.
const menuTopAgents = 3

// warnMark starts the row of a window in a warning state.
const warnMark = "⚠ "

// windowUsed is a window's fraction used, -1 when not known.
func windowUsed(w wire.WindowStatus) float64 {
	if w.Utilization == nil {
		return -1
	}
	return *w.Utilization
}

// tightestWindow returns the index of the service's most used window and
// what is left of it (0 to 1), or -1 and -1 when none says how much is used.
func tightestWindow(s wire.ServiceStatus) (int, float64) {
	best, left := -1, -1.0
	for i, w := range s.Windows {
		if u := windowUsed(w); u >= 0 && (best < 0 || 1-u < left) {
			// Rounded to a millionth: 1 - 0.93 is 0.0699999..., which
			// percent's floor would show as 6%.
			best, left = i, math.Max(0, math.Round((1-u)*1e6)/1e6)
		}
	}
	return best, left
}

// tightest is what is left of the service's tightest limit or window, as
// left is for limits alone; -1 when it knows of neither.
func tightest(s wire.ServiceStatus) float64 {
	f := left(s)
	if _, w := tightestWindow(s); w >= 0 && (f < 0 || w < f) {
		f = w
	}
	return f
}

// windowWarning reports whether a window of the service is in a warning
// state (the provider warned, 80% or the reserve passed, rejected).
func windowWarning(s wire.ServiceStatus) bool {
	for _, w := range s.Windows {
		if w.Warning {
			return true
		}
	}
	return false
}

// reserved reports whether the service grants only high priority now.
func reserved(s wire.ServiceStatus) bool {
	for _, w := range s.Windows {
		if w.Reserved {
			return true
		}
	}
	return false
}

// windowItems are the window rows of a service's submenu and its "Top"
// row; ticking reports a countdown in them.
func windowItems(s wire.ServiceStatus, key string, now time.Time) (items []menuItem, ticking bool) {
	for i := range windowSlots {
		it := menuItem{Key: fmt.Sprintf("%s/window/%d", key, i), Kind: kindText, Disabled: true, Hidden: i >= len(s.Windows)}
		if i < len(s.Windows) {
			w := s.Windows[i]
			it.Label = w.Summary(now, time.Local)
			if w.Warning {
				it.Label = warnMark + it.Label
			}
			if w.Reserved {
				it.Label += " · high priority only"
			}
			ticking = ticking || (w.ResetsAt != nil && w.ResetsAt.After(now) && w.ResetsAt.Sub(now) < 24*time.Hour)
		} else {
			it.Label = "Window"
		}
		items = append(items, it)
	}
	top := menuItem{Key: key + "/window/top", Kind: kindText, Disabled: true, Label: "Top agents", Hidden: true}
	if i, _ := tightestWindow(s); i >= 0 && len(s.Windows[i].Agents) > 0 {
		w := s.Windows[i]
		var names []string
		for j, a := range w.Agents {
			if j == menuTopAgents {
				break
			}
			names = append(names, fmt.Sprintf("%s %d%%", a.Agent, int(math.Round(a.Share*100))))
		}
		top.Label = "Top of " + cmpOr(w.Label, w.Name) + ": " + strings.Join(names, ", ")
		top.Hidden = false
	}
	return append(items, top), ticking
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
