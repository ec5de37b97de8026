package quotaview

import (
	"math"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// Window is one subscription window of a service (Claude's 5-hour or
// weekly window, Codex's primary or secondary): known only as a fraction
// used and a reset.
type Window struct {
	Name  string
	Label string // "5-hour", "week", or the name
	// Used is the fraction used; it may exceed 1.
	Used float64
	// ResetsIn is 0 when the reset is not known or has passed.
	ResetsIn time.Duration
	// Rejected: the provider refused calls until the reset. Warning: it
	// warned, or 80% or the reserve was passed. Reserved: only high
	// priority goes on.
	Rejected, Warning, Reserved bool
}

// Left is the fraction of the window that is left, 0 to 1.
func (w Window) Left() float64 { return min(max(1-w.Used, 0), 1) }

// UsedPercent is the share of the window used, rounded, as the menu shows it.
func (w Window) UsedPercent() int { return int(math.Round(w.Used * 100)) }

// ShownWindow is the window to show for the service: its tightest one,
// when it has one as tight as its tightest limit or tighter.
func (s Service) ShownWindow() (Window, bool) {
	if s.TightestWindow < 0 {
		return Window{}, false
	}
	w := s.Windows[s.TightestWindow]
	if s.Tightest >= 0 && s.Limits[s.Tightest].Left() < w.Left() {
		return Window{}, false
	}
	return w, true
}

// viewWindows fills v's windows from s: those whose use is known.
func viewWindows(v *Service, s wire.ServiceStatus, now time.Time) {
	for _, w := range s.Windows {
		if w.Utilization == nil {
			continue
		}
		win := Window{Name: w.Name, Label: w.Label, Used: *w.Utilization,
			Rejected: w.Status == "rejected", Warning: w.Warning, Reserved: w.Reserved}
		if win.Label == "" {
			win.Label = w.Name
		}
		if w.ResetsAt != nil && w.ResetsAt.After(now) {
			win.ResetsIn = w.ResetsAt.Sub(now)
		}
		v.Windows = append(v.Windows, win)
		if v.TightestWindow < 0 || win.Left() < v.Windows[v.TightestWindow].Left() {
			v.TightestWindow = len(v.Windows) - 1
		}
	}
}

// windowsExhausted: a window rejected, or is used up.
func windowsExhausted(v Service) bool {
	for _, w := range v.Windows {
		if w.Rejected || w.Used >= 1 {
			return true
		}
	}
	return false
}

// windowsLow: a window has under LowFraction left, or warns.
func windowsLow(v Service) bool {
	for _, w := range v.Windows {
		if w.Warning || w.Left() < LowFraction {
			return true
		}
	}
	return false
}
