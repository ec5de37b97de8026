package limiter

// Rule 8, pauses: a paused service or agent is refused with
// ReasonPaused, and its waiters are refused at once. Also the run-time
// priority of an agent.

// SetServicePaused pauses or resumes a service. Pausing refuses its waiters
// at once with ReasonPaused.
func (l *Limiter) SetServicePaused(service string, paused bool) (ServiceStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return ServiceStatus{}, err
	}
	if s.paused != paused {
		s.paused = paused
		if paused {
			l.refuseAll(s, func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
		}
		l.dispatch(s)
		l.notify()
	}
	return l.serviceStatus(s, l.clock.Now()), nil
}

// UpdateAgent changes an agent's run-time pause and priority. An agent not
// seen before is registered, as on first use, so that a person can pause or
// reprioritise an agent before it starts. Pausing refuses its waiters at once
// with ReasonPaused; a new priority moves its waiting requests that did not
// name one. Setting PriorityUnset returns to the configured priority.
func (l *Limiter) UpdateAgent(name string, u AgentUpdate) (AgentStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ValidName(name); err != nil {
		return AgentStatus{}, &Error{Code: CodeBadRequest, Message: "agent: " + err.Error()}
	}
	if u.Priority != nil && (*u.Priority < PriorityUnset || *u.Priority > High) {
		return AgentStatus{}, badRequest("priority %d is not low, normal or high", *u.Priority)
	}
	a := l.agents[name]
	if a == nil {
		// Not seen yet: last_seen stays unknown until it asks.
		a = &agent{name: name, cfg: AgentConfig{Name: name}}
		l.agents[name] = a
	}
	if u.Priority != nil && *u.Priority != a.prio {
		before := a.priority()
		a.prio = *u.Priority
		if a.priority() != before {
			l.requeueAgent(a)
		}
	}
	if u.Paused != nil && *u.Paused != a.paused {
		a.paused = *u.Paused
		if a.paused {
			for _, s := range l.services {
				l.refuseWhere(s, func(w *waiter) bool { return w.agent == a },
					func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
			}
		}
	}
	l.dispatchAll()
	l.notify()
	return l.agentStatus(a), nil
}
