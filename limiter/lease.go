package limiter

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Rule 6, leases: a grant holds its reserved cost and a concurrency slot
// until it is reported (usage refunds or charges the difference) or expires.

type lease struct {
	id        string
	svc       *service
	g         *grant
	grantedAt time.Time
	expiresAt time.Time
	timer     Timer
	// refused is set when the provider answered the call 429 (observed
	// before its report, as a stream's headers are): it does not count in
	// the subscription windows' use.
	refused bool
}

// Report ends a lease (when r.Lease is set), corrects its cost from r.Usage,
// and applies what the provider's status and headers say: budgets, learned
// limits, and a cooldown after 429, after 503 with a retry time, or after a
// 403 that says the budget is spent. A report without a lease is an
// observation of a call made without asking; its usage (one request by
// default) is charged. A lease that is unknown (expired or made up) still
// has its headers applied when r.Service names a configured service, then
// the report fails with CodeUnknownLease.
func (l *Limiter) Report(r Report) (ReportResult, error) {
	res, err := l.report(r)
	l.logWarnings(res.Warnings)
	return res, err
}

// logWarnings logs what a report had cut to bounds (they name the service),
// after the lock is released.
func (l *Limiter) logWarnings(ws []string) {
	for _, w := range ws {
		l.log.Warn("limiter: a provider answer was cut to bounds", "warning", w)
	}
}

func (l *Limiter) report(r Report) (ReportResult, error) {
	p := l.parseReport(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ReportResult{}, &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	now := l.clock.Now()
	var usage Cost
	var usageWarn []string
	if r.Usage != nil {
		var err error
		if usage, err = checkCost("usage", r.Usage); err != nil {
			return ReportResult{}, err
		}
		w := warner{service: r.Service}
		if ls := l.leases[r.Lease]; ls != nil && r.Lease != "" {
			w.service = ls.svc.name
		}
		clampUsage(usage, &w)
		usageWarn = w.out
	}
	var (
		ls *lease
		s  *service
		a  *agent
	)
	if r.Lease != "" {
		ls = l.leases[r.Lease]
		if ls == nil {
			msg := fmt.Sprintf("lease %q is not held: it was reported already, expired, or never granted", r.Lease)
			if sv := l.services[r.Service]; sv != nil && ValidName(r.Agent) == nil {
				a, _ := l.agentFor(r.Agent, now)
				l.observe(sv, a, nil, r, p, now)
				l.dispatchAll()
				l.notify()
			}
			return ReportResult{}, &Error{Code: CodeUnknownLease, Message: msg}
		}
		s, a = ls.svc, ls.g.agent
		a.lastSeen = now
	} else {
		var err error
		if s, a, err = l.reportNames("a report", r, now); err != nil {
			return ReportResult{}, err
		}
	}

	var spent Cost // what the call cost, for the windows' counts
	if ls == nil {
		// Charged first: the provider's headers already count this call.
		c := usage
		if c == nil {
			c = Cost{}
		}
		if _, ok := c[Requests]; !ok {
			c[Requests] = 1
		}
		l.charge(s, a, c, now)
		spent = c
	}
	res := l.observe(s, a, ls, r, p, now)
	if ls != nil {
		if usage != nil {
			l.correct(s, ls.g, usage, now)
		}
		l.endLease(ls)
		spent = ls.g.cost
	}
	if r.Status != 429 && (ls == nil || !ls.refused) {
		// Counted after the answer is applied, so that the call that
		// first reveals a window counts in it.
		s.countWindows(a, spent)
	}
	l.dispatchAll()
	l.notify()
	if usageWarn != nil {
		res.Warnings = append(usageWarn, res.Warnings...)
	}
	return res, nil
}

// correct sets g's cost to usage, unit by unit, refunding or charging every
// ledger and budget that counted it.
func (l *Limiter) correct(s *service, g *grant, usage Cost, now time.Time) {
	for u, n := range usage {
		delta := n - g.cost[u]
		if delta == 0 {
			continue
		}
		g.cost[u] = n
		for _, d := range s.ledgers() {
			if d.policy.Unit == u {
				d.adjust(now, g, delta)
			}
		}
		for _, d := range g.agent.caps {
			if d.policy.Unit == u {
				d.adjust(now, g, delta)
			}
		}
		for _, b := range s.budgets {
			if b.unit == u && g.seq > b.since {
				b.spent += delta
			}
		}
	}
}

// charge records usage that happened without a lease.
func (l *Limiter) charge(s *service, a *agent, c Cost, now time.Time) {
	l.seq++
	g := &grant{seq: l.seq, at: now, cost: c, agent: a}
	s.record(now, g, false)
	for _, d := range a.caps {
		d.add(now, g, false)
	}
}

func (l *Limiter) endLease(ls *lease) {
	delete(l.leases, ls.id)
	if ls.timer != nil {
		ls.timer.Stop()
	}
	ls.g.open = false
	ls.svc.inFlight--
	ls.g.agent.inFlight--
}

// revoke takes back a grant whose requester went away before hearing of it:
// it refunds everything and undoes the counters, as if never granted.
func (l *Limiter) revoke(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[id]
	if ls == nil {
		return
	}
	now := l.clock.Now()
	zero := Cost{}
	for u := range ls.g.cost {
		zero[u] = 0
	}
	l.correct(ls.svc, ls.g, zero, now)
	l.endLease(ls)
	ls.svc.granted--
	ls.g.agent.granted--
	l.dispatchAll()
	l.notify()
}

func (l *Limiter) expire(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases[ls.id] != ls {
		return
	}
	l.endLease(ls)
	l.dispatch(ls.svc)
	l.notify()
}

func (l *Limiter) newLeaseID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], l.rng.Uint64())
	return fmt.Sprintf("l_%x", b)
}

// parsed is a report's headers read before the lock was taken, and the
// dialect they were read for.
type parsed struct {
	obs     Observation
	dialect Dialect
	done    bool
}

// parseReport reads r's headers without holding the limiter's lock: header
// parsing is most of a report's cost (microseconds and a dozen
// allocations), and everyone else's decisions would wait for it. The
// dialect comes from a copy of the configuration's dialects that apply
// publishes; a report that names no service but a lease looks up the
// lease's service under the lock, briefly.
func (l *Limiter) parseReport(r Report) parsed {
	if len(r.Header) == 0 && !hasErrorBody(r) {
		return parsed{}
	}
	name := r.Service
	if name == "" && r.Lease != "" {
		l.mu.Lock()
		if ls := l.leases[r.Lease]; ls != nil {
			name = ls.svc.name
		}
		l.mu.Unlock()
	}
	dialects := l.dialects.Load()
	if dialects == nil {
		return parsed{}
	}
	d, ok := (*dialects)[name]
	if !ok {
		return parsed{}
	}
	now := l.clock.Now()
	obs := l.parse(d, r.Header, now)
	if hasErrorBody(r) {
		ParseErrorBody(d, r.Body, now, &obs)
	}
	// Logged here, before the lock: what a provider's answer held that
	// could not be used (utilization.go).
	for _, note := range obs.Notes {
		l.log.Warn("limiter: ignored part of a provider answer", "service", name, "reason", note)
	}
	return parsed{obs: obs, dialect: d, done: true}
}

// hasErrorBody reports whether r carries a refusal's body to read.
func hasErrorBody(r Report) bool { return r.Status >= 400 && len(r.Body) > 0 }

// reportNames finds the service and agent a report or observation without
// a lease names; what is the kind of call, for the error.
func (l *Limiter) reportNames(what string, r Report, now time.Time) (*service, *agent, error) {
	if r.Agent == "" || r.Service == "" {
		return nil, nil, badRequest("%s without a lease needs both agent and service", what)
	}
	s, err := l.lookupService(r.Service)
	if err != nil {
		return nil, nil, err
	}
	a, err := l.agentFor(r.Agent, now)
	if err != nil {
		return nil, nil, err
	}
	return s, a, nil
}
