package limiter

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Rule 9, saved state: what a person changed and what the provider said,
// snapshotted for an atomic save and restored on start.

// State is the limiter's run-time state worth keeping across a restart:
// what a person changed (pauses, priorities) and what the provider said
// (cooldowns, learned limits, what is left of every limit until its reset).
// It marshals to JSON; the app writes it atomically and passes it to
// Restore on start.
type State struct {
	Services map[string]ServiceState `json:"services,omitempty"`
	Agents   map[string]AgentState   `json:"agents,omitempty"`
}

// ServiceState is one service in a State.
type ServiceState struct {
	Paused        bool         `json:"paused,omitempty"`
	CooldownUntil time.Time    `json:"cooldown_until,omitzero"`
	Limits        []LimitState `json:"limits,omitempty"`
	// Windows are the utilization windows still ahead of their reset.
	Windows []WindowState `json:"windows,omitempty"`
}

// LimitState is one limit in a State: its policy, and what was left of it
// until when. Source "headers" marks a limit learned from the provider.
type LimitState struct {
	Unit      Unit      `json:"unit"`
	Quota     int64     `json:"quota"`
	WindowMS  int64     `json:"window_ms"`
	Remaining int64     `json:"remaining"`
	ResetsAt  time.Time `json:"resets_at,omitzero"`
	Source    string    `json:"source"`
}

// AgentState is one agent's run-time overrides in a State.
type AgentState struct {
	Paused   bool   `json:"paused,omitempty"`
	Priority string `json:"priority,omitempty"` // set at run time; "" follows the config
}

// Snapshot returns the state to save.
func (l *Limiter) Snapshot() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	st := State{Services: map[string]ServiceState{}, Agents: map[string]AgentState{}}
	for _, s := range l.sortedServices() {
		ss := ServiceState{Paused: s.paused}
		if now.Before(s.cooldownUntil) {
			ss.CooldownUntil = s.cooldownUntil
		}
		for _, ls := range l.serviceStatus(s, now).Limits {
			if ls.Source == "config" && ls.ResetsAt.IsZero() {
				continue // untouched: nothing to remember
			}
			ss.Limits = append(ss.Limits, LimitState{
				Unit: ls.Unit, Quota: ls.Quota, WindowMS: ls.Window.Milliseconds(),
				Remaining: ls.Remaining, ResetsAt: ls.ResetsAt, Source: ls.Source,
			})
		}
		l.settle(s, now)
		ss.Windows = s.snapshotWindows(now)
		if ss.Paused || !ss.CooldownUntil.IsZero() || len(ss.Limits) > 0 || len(ss.Windows) > 0 {
			st.Services[s.name] = ss
		}
	}
	for name, a := range l.agents {
		as := AgentState{Paused: a.paused}
		if a.prio != PriorityUnset {
			as.Priority = a.prio.String()
		}
		if as != (AgentState{}) {
			st.Agents[name] = as
		}
	}
	return st
}

// Restore applies a saved state on start. Services no longer configured are
// skipped; limits whose reset has passed are dropped. Entries it cannot use
// are reported together in the error; the rest is still applied.
func (l *Limiter) Restore(st State) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	var errs []error
	for name, ss := range st.Services {
		s := l.services[name]
		if s == nil {
			continue
		}
		if ss.Paused && !s.paused {
			s.paused = true
			l.refuseAll(s, func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
		} else {
			s.paused = ss.Paused
		}
		errs = append(errs, s.restoreWindows(ss.Windows, now)...)
		// What was saved is held to MaxHold too: a state saved before
		// the bound, or under a longer one, must not freeze the service.
		// But a window's rejection lasts until that window's reset (a week
		// for a weekly one), which restoreWindows checked against its length.
		limit := later(now.Add(s.maxHold()), s.rejectedUntil(now))
		if ss.CooldownUntil.After(now) && ss.CooldownUntil.After(s.cooldownUntil) {
			s.cooldownSeq, s.cooldownUntil = l.seq, minTime(ss.CooldownUntil, limit)
		}
		for i, ls := range ss.Limits {
			window := min(time.Duration(ls.WindowMS)*time.Millisecond, s.maxHold())
			if !knownUnit(ls.Unit) || ls.Quota < 0 || window < 0 {
				errs = append(errs, fmt.Errorf("service %q limit %d: unit %q, quota %d, window %v is not a limit", name, i+1, ls.Unit, ls.Quota, window))
				continue
			}
			if ls.Source == "headers" && ls.Quota > 0 && window > 0 &&
				!slices.ContainsFunc(s.policies, func(d *ledger) bool { return d.policy.Unit == ls.Unit }) {
				s.learnedAny = true
				l.learn(s, ObservedLimit{Unit: ls.Unit, Limit: ls.Quota, Window: window}, now)
			}
			if ls.ResetsAt.After(now) {
				s.budgets = append(s.budgets, &budget{
					unit: ls.Unit, limit: ls.Quota, window: window, remaining: ls.Remaining,
					since: l.seq, until: minTime(ls.ResetsAt, limit), source: ls.Source,
				})
			}
		}
	}
	for name, as := range st.Agents {
		if err := ValidName(name); err != nil {
			errs = append(errs, fmt.Errorf("agent %q: %w", name, err))
			continue
		}
		prio := PriorityUnset
		if as.Priority != "" {
			p, err := ParsePriority(as.Priority)
			if err != nil {
				errs = append(errs, fmt.Errorf("agent %q: %w", name, err))
			} else {
				prio = p
			}
		}
		a := l.agents[name]
		if a == nil {
			a = &agent{name: name, cfg: AgentConfig{Name: name}}
			l.agents[name] = a
		}
		before := a.priority()
		a.prio = prio
		if a.priority() != before {
			l.requeueAgent(a)
		}
		if as.Paused && !a.paused {
			for _, s := range l.services {
				l.refuseWhere(s, func(w *waiter) bool { return w.agent == a },
					func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
			}
		}
		a.paused = as.Paused
	}
	l.dispatchAll()
	l.notify()
	return errors.Join(errs...)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
