package limiter

import "time"

// This file holds agents: their configured and run-time priority and
// weight, registration on first use, and forgetting the idle ones.

type agent struct {
	name   string
	cfg    AgentConfig
	prio   Priority // run-time override, PriorityUnset when none
	paused bool
	// configured says the agent is in Config.Agents; such agents, and
	// those with a run-time override, are never forgotten.
	configured bool
	caps       []*ledger
	lastSeen   time.Time
	inFlight   int
	queued     int
	granted    int64
	refused    int64
}

func (a *agent) priority() Priority {
	switch {
	case a.prio != PriorityUnset:
		return a.prio
	case a.cfg.Priority != PriorityUnset:
		return a.cfg.Priority
	}
	return Normal
}

func (a *agent) weight() float64 {
	if a.cfg.Weight > 0 {
		return a.cfg.Weight
	}
	return 1
}

func newAgent(now time.Time, ac AgentConfig) *agent {
	a := &agent{name: ac.Name, cfg: ac, configured: true}
	a.caps = rebuildLedgers(now, nil, ac.Limits, 0, false)
	return a
}

// agentFor returns the named agent, registering it on first use.
func (l *Limiter) agentFor(name string, now time.Time) (*agent, error) {
	if err := ValidName(name); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: "agent: " + err.Error()}
	}
	l.sweepAgents(now)
	a := l.agents[name]
	if a == nil {
		a = &agent{name: name, cfg: AgentConfig{Name: name}}
		l.agents[name] = a
	}
	a.lastSeen = now
	return a, nil
}

// forgettable reports whether a is an agent the limiter may forget at now:
// not configured, no run-time override (pause or priority), nothing queued
// or in flight, and not seen for ttl. Its counters go with it; were it to
// come back, it starts afresh, as a new agent does.
func (a *agent) forgettable(now time.Time, ttl time.Duration) bool {
	return !a.configured && !a.paused && a.prio == PriorityUnset &&
		a.queued == 0 && a.inFlight == 0 && now.Sub(a.lastSeen) >= ttl
}

// sweepAgents forgets the agents that are forgettable, at most every
// tenth of the TTL (so the scan over all agents costs O(1) per call
// amortised): without it, every one-shot agent ("quotabar run" names each
// run apart) would stay in every Status, event and menu for good.
func (l *Limiter) sweepAgents(now time.Time) {
	if now.Before(l.nextSweep) {
		return
	}
	ttl := l.cfg.AgentIdleTTL
	l.nextSweep = now.Add(max(ttl/10, time.Second))
	for name, a := range l.agents {
		if !a.forgettable(now, ttl) {
			continue
		}
		delete(l.agents, name)
		for _, s := range l.services {
			for ci := range s.classes {
				delete(s.classes[ci].flows, a) // no waiters: only stale tags
			}
		}
	}
}
