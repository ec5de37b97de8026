package wire

import (
	"fmt"
	"math"
	"time"
)

// WindowStatus is one utilization window of a service (a subscription's
// 5-hour or weekly window): how much of it is used, when it resets, and
// which agents used it since it started.
type WindowStatus struct {
	// Name is the provider's name for the window ("5h", "7d", "7d_oi",
	// "overage"; for Codex its length, "codex_other:5h" for another limit
	// family; "day" for a Gemini per-day quota).
	Name string `json:"name"`
	// Label is how a person reads it: "5-hour", "week", "day", or Name.
	Label string `json:"label"`
	// Title is the provider's display name for the limit, when it gives one.
	Title string `json:"title,omitempty"`
	// LengthMS is the window's length; 0 when not known.
	LengthMS int64 `json:"length_ms"`
	// Utilization is the fraction used, 0 to 1 (it may exceed 1); null when
	// the provider did not say.
	Utilization *float64   `json:"utilization"`
	ResetsAt    *time.Time `json:"resets_at"`
	// Status is the provider's word: "allowed", "allowed_warning",
	// "rejected", or "" when it gave none.
	Status string `json:"status"`
	// Warning is true when the provider warned, a threshold (80%, or the
	// reserve) was passed, or the window rejected.
	Warning bool `json:"warning"`
	// Reserved is true while only high priority is granted (past
	// 1 - reserve_high).
	Reserved   bool       `json:"reserved"`
	ObservedAt *time.Time `json:"observed_at"`
	// Since is when the period that Requests, Tokens and Agents cover
	// began: the window's start, or when quotabar first saw it if later.
	Since    *time.Time    `json:"since"`
	Requests int64         `json:"requests"`
	Tokens   int64         `json:"tokens"`
	Agents   []WindowAgent `json:"agents"`
}

// WindowAgent is one agent's use of a window since it started.
type WindowAgent struct {
	Agent    string `json:"agent"`
	Requests int64  `json:"requests"`
	Tokens   int64  `json:"tokens"`
	// Share is the agent's part of the window's use seen here, of its
	// tokens (of its requests when no tokens were counted); a window's
	// shares add up to 1.
	Share float64 `json:"share"`
}

// Summary is the window as a person reads it in the menu and in
// `quotabar status`: "5-hour: 62% used, resets in 1 h 42 m", or for a reset
// a day or more away "week: 31% used, resets Thu 09:00" (in loc).
func (w WindowStatus) Summary(now time.Time, loc *time.Location) string {
	label := w.Label
	if label == "" {
		label = w.Name
	}
	s := label + ": "
	if w.Utilization != nil {
		s += fmt.Sprintf("%d%% used", int(math.Round(*w.Utilization*100)))
	} else {
		s += "use not known"
	}
	if w.Status == "rejected" {
		s += ", limit reached"
	}
	if w.ResetsAt != nil && w.ResetsAt.After(now) {
		s += ", resets " + ResetText(*w.ResetsAt, now, loc)
	}
	return s
}

// ResetText says when a reset comes: "in 1 h 42 m" (or "in 40 s") when
// less than a day away, else the weekday and time in loc, "Thu 09:00".
func ResetText(at, now time.Time, loc *time.Location) string {
	d := at.Sub(now)
	switch {
	case d >= 24*time.Hour:
		return at.In(loc).Format("Mon 15:04")
	case d >= time.Minute:
		// Rounded up: "in 0 m" would be wrong until the very end.
		m := int((d + time.Minute - 1) / time.Minute)
		if m >= 60 {
			return fmt.Sprintf("in %d h %d m", m/60, m%60)
		}
		return fmt.Sprintf("in %d m", m)
	}
	return fmt.Sprintf("in %d s", int((d+time.Second-1)/time.Second))
}
