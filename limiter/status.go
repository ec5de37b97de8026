package limiter

import (
	"slices"
	"strings"
	"time"
)

// This file builds the Status snapshot the API, the menu and the events
// show.

// Status returns every service and agent, each sorted by name.
func (l *Limiter) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.sweepAgents(now)
	var st Status
	for _, s := range l.sortedServices() {
		st.Services = append(st.Services, l.serviceStatus(s, now))
	}
	names := make([]string, 0, len(l.agents))
	for n := range l.agents {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		st.Agents = append(st.Agents, l.agentStatus(l.agents[n]))
	}
	return st
}

func (l *Limiter) sortedServices() []*service {
	out := make([]*service, 0, len(l.services))
	for _, s := range l.services {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *service) int { return strings.Compare(a.name, b.name) })
	return out
}

func (l *Limiter) serviceStatus(s *service, now time.Time) ServiceStatus {
	l.settle(s, now)
	ss := ServiceStatus{
		Name: s.name, Paused: s.paused, MaxConcurrent: l.concurrencyCap(s),
		InFlight: s.inFlight, Queued: s.queued,
		Granted: s.granted, Refused: s.refused, Provider429: s.provider429,
		ReserveHigh: s.cfg.ReserveHigh, Windows: s.windowStatus(now),
	}
	if now.Before(s.cooldownUntil) {
		ss.CooldownUntil = s.cooldownUntil
	}
	used := map[*budget]bool{}
	for _, d := range s.ledgers() {
		ls := LimitStatus{
			Unit: d.policy.Unit, Quota: d.policy.Quota, Window: d.policy.Window,
			Remaining: d.remaining(now), ResetsAt: d.resetsAt(now), Source: d.source,
		}
		// The tightest budget of the unit is what is really left.
		for _, b := range s.budgets {
			if b.ledger == d || (b.ledger == nil && b.unit == d.policy.Unit && b.limit == d.policy.Quota) {
				used[b] = true
				if r := max(0, int64(b.avail(now))); r <= ls.Remaining {
					ls.Remaining, ls.ResetsAt = r, b.until
				}
			}
		}
		ss.Limits = append(ss.Limits, ls)
	}
	for _, b := range s.budgets {
		if !used[b] {
			ss.Limits = append(ss.Limits, LimitStatus{
				Unit: b.unit, Quota: b.limit, Window: b.window,
				Remaining: max(0, int64(b.avail(now))), ResetsAt: b.until, Source: b.source,
			})
		}
	}
	return ss
}

func (l *Limiter) agentStatus(a *agent) AgentStatus {
	return AgentStatus{
		Name: a.name, Priority: a.priority(), Weight: a.weight(), Paused: a.paused,
		LastSeen: a.lastSeen, InFlight: a.inFlight, Queued: a.queued,
		Granted: a.granted, Refused: a.refused,
	}
}
