// Package quotaview reads a daemon status the way a person asks about it:
// per service, what is left of its tightest limit, when that resets, and
// whether it is cooling down, paused or exhausted. The MCP server, the
// status line and the alerts share it so that they all say the same thing.
package quotaview

import (
	"cmp"
	"slices"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// State is a service's condition, worst last.
type State int

const (
	OK        State = iota
	Low             // a limit has less than LowFraction left
	Exhausted       // a limit has nothing left until it resets
	Paused          // the person paused the service
	Cooldown        // the provider said 429; every agent waits
)

// LowFraction is what Low means: under a fifth left.
const LowFraction = 0.2

func (s State) String() string {
	switch s {
	case Low:
		return "low"
	case Exhausted:
		return "exhausted"
	case Paused:
		return "paused"
	case Cooldown:
		return "cooldown"
	}
	return "ok"
}

// Limit is one limit of a service.
type Limit struct {
	Unit      string
	Quota     int64
	Remaining int64
	Window    time.Duration
	// ResetsIn is 0 when the reset time is not known or has passed.
	ResetsIn time.Duration
	Learned  bool // from the provider's headers, not the config
}

// Left is the fraction of the quota that is left, 0 to 1.
func (l Limit) Left() float64 {
	if l.Quota <= 0 {
		return 1
	}
	return min(max(float64(l.Remaining)/float64(l.Quota), 0), 1)
}

// UsedPercent is the share of the quota used, 0 to 100, rounded down.
func (l Limit) UsedPercent() int {
	if l.Quota <= 0 {
		return 0
	}
	used := l.Quota - min(max(l.Remaining, 0), l.Quota)
	return int(used * 100 / l.Quota)
}

// Service is one service's view.
type Service struct {
	Name   string
	State  State
	Limits []Limit
	// Tightest is the index in Limits of the limit with the least left,
	// -1 when the service has no limits yet (they are being learned).
	Tightest int
	// Windows are the service's subscription windows whose use is known
	// (windows.go); TightestWindow is the index of the one with the least
	// left, -1 when there is none.
	Windows        []Window
	TightestWindow int
	// CooldownLeft is how long the cooldown still lasts, 0 if none.
	CooldownLeft         time.Duration
	InFlight, Queued     int
	FallbackConfigured   bool
	FallbackEnabled      bool
	FallbackOpenSessions int
}

// Left is what is left of the tightest limit or window, 1 when there is
// none.
func (s Service) Left() float64 {
	left := 1.0
	if s.Tightest >= 0 {
		left = s.Limits[s.Tightest].Left()
	}
	if w, ok := s.ShownWindow(); ok {
		left = min(left, w.Left())
	}
	return left
}

// Services views every service of st at now, in the daemon's order.
func Services(st wire.StatusResponse, now time.Time) []Service {
	out := make([]Service, 0, len(st.Services))
	for _, s := range st.Services {
		out = append(out, ViewService(s, now))
	}
	return out
}

// ViewService views one service at now.
func ViewService(s wire.ServiceStatus, now time.Time) Service {
	v := Service{Name: s.Name, Tightest: -1, TightestWindow: -1, InFlight: s.InFlight, Queued: s.Queued}
	viewWindows(&v, s, now)
	if f := s.Fallback; f != nil {
		v.FallbackConfigured, v.FallbackEnabled, v.FallbackOpenSessions = true, f.Enabled, f.OpenSessions
	}
	for i, l := range s.Limits {
		lim := Limit{Unit: l.Unit, Quota: l.Quota, Remaining: l.Remaining,
			Window: time.Duration(l.WindowMS) * time.Millisecond, Learned: l.Source == "headers"}
		if l.ResetsAt != nil && l.ResetsAt.After(now) {
			lim.ResetsIn = l.ResetsAt.Sub(now)
		}
		v.Limits = append(v.Limits, lim)
		if v.Tightest < 0 || lim.Left() < v.Limits[v.Tightest].Left() {
			v.Tightest = i
		}
	}
	switch {
	case s.CooldownUntil != nil && s.CooldownUntil.After(now):
		v.State, v.CooldownLeft = Cooldown, s.CooldownUntil.Sub(now)
	case s.Paused:
		v.State = Paused
	case v.Tightest >= 0 && v.Limits[v.Tightest].Remaining <= 0, windowsExhausted(v):
		v.State = Exhausted
	case v.Tightest >= 0 && v.Left() < LowFraction, windowsLow(v):
		v.State = Low
	}
	return v
}

// Tightest returns the service a person should look at first: the worst
// state, then the least left, then the soonest reset. ok is false when st
// has no services.
func Tightest(services []Service) (Service, bool) {
	if len(services) == 0 {
		return Service{}, false
	}
	return slices.MinFunc(services, func(a, b Service) int {
		if c := cmp.Compare(b.State, a.State); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Left(), b.Left()); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	}), true
}

// Share is the agent's share of a contended service: its weight over the
// weights of the agents that are not paused (itself included). It is 1
// when the agent is alone or unknown.
func Share(st wire.StatusResponse, agent string) float64 {
	var mine, total float64
	found := false
	for _, a := range st.Agents {
		w := a.Weight
		if w <= 0 {
			w = 1
		}
		if a.Name == agent {
			mine, found = w, true
		}
		if !a.Paused || a.Name == agent {
			total += w
		}
	}
	if !found {
		mine = 1
		total++
	}
	if total == 0 {
		return 1
	}
	return mine / total
}

// Duration prints d the way people write windows and countdowns: 45s,
// 4.1s, 2m30s, 5h, 1h30m.
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	s := d.String()
	for _, suffix := range []string{"m0s", "h0m"} {
		if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
			s = s[:len(s)-len(suffix)+1]
		}
	}
	return s
}
