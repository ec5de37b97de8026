package limiter

import "time"

// This file holds agents: their configured and run-time priority and
// weight, and registration on first use.

type agent struct {
	name     string
	cfg      AgentConfig
	prio     Priority // run-time override, PriorityUnset when none
	paused   bool
	caps     []*ledger
	lastSeen time.Time
	inFlight int
	queued   int
	granted  int64
	refused  int64
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
	a := &agent{name: ac.Name, cfg: ac}
	a.caps = rebuildLedgers(now, nil, ac.Limits, 0)
	return a
}

// agentFor returns the named agent, registering it on first use.
func (l *Limiter) agentFor(name string, now time.Time) (*agent, error) {
	if err := ValidName(name); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: "agent: " + err.Error()}
	}
	a := l.agents[name]
	if a == nil {
		a = &agent{name: name, cfg: AgentConfig{Name: name}}
		l.agents[name] = a
	}
	a.lastSeen = now
	return a, nil
}
