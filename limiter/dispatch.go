package limiter

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Rule 3, reserve only at the head of the queue: dispatch grants the
// head while every policy, budget and cap of its service and agent can pay.

// exceeds refuses a cost that no ledger of the service or the agent could
// ever admit.
func exceeds(s *service, a *agent, c Cost) error {
	check := func(kind, name string, d *ledger, headroom float64) error {
		n := c[d.policy.Unit]
		if n <= d.cap {
			return nil
		}
		msg := fmt.Sprintf("cost %d %s is more than %s %q's whole limit %q", n, d.policy.Unit, kind, name, d.policy.String())
		if d.cap < d.policy.Quota {
			msg += fmt.Sprintf(" less its headroom of %g%% (%d)", headroom*100, d.cap)
		}
		return &Error{Code: CodeCostExceedsQuota, Message: msg + "; split the call or raise the limit"}
	}
	for _, d := range s.policies {
		if err := check("service", s.name, d, s.cfg.Headroom); err != nil {
			return err
		}
	}
	for _, d := range s.learned {
		if err := check("service", s.name, d, s.cfg.Headroom); err != nil {
			return err
		}
	}
	for _, d := range a.caps {
		if err := check("agent", a.name, d, 0); err != nil {
			return err
		}
	}
	return nil
}

func (l *Limiter) dispatchAll() {
	names := make([]string, 0, len(l.services))
	for n := range l.services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l.dispatch(l.services[n])
	}
}

// dispatch grants queued requests of s while the head can be paid, then
// arms a timer for when the head might be payable.
func (l *Limiter) dispatch(s *service) {
	if l.closed || s.removed {
		return
	}
	now := l.clock.Now()
	l.settle(s, now)
	var wake time.Time
	for s.queued > 0 {
		w, floor, agentWake := l.pick(s, now)
		if w == nil {
			wake = agentWake
			break
		}
		ok, until, never := l.serviceAllows(s, w, now)
		if never != nil {
			l.unqueue(w)
			w.done <- result{err: exceeds(s, w.agent, w.cost)}
			continue
		}
		if !ok {
			// Also wake when an agent's own cap frees: its request may
			// then come first, and it may fit sooner.
			wake = until
			if !agentWake.IsZero() && (wake.IsZero() || agentWake.Before(wake)) {
				wake = agentWake
			}
			break
		}
		l.grant(s, w, floor, now)
	}
	if s.queued == 0 && now.Before(s.cooldownUntil) {
		wake = s.cooldownUntil // to tell subscribers the cooldown is over
	}
	l.setWake(s, now, wake)
}

func (l *Limiter) setWake(s *service, now, at time.Time) {
	if at.IsZero() {
		s.stopWake()
		return
	}
	if s.wakeTimer != nil && s.wakeAt.Equal(at) {
		return
	}
	s.stopWake()
	gen := s.wakeGen
	s.wakeAt = at
	s.wakeTimer = l.clock.AfterFunc(at.Sub(now), func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if s.wakeGen != gen {
			return
		}
		s.wakeTimer = nil
		s.wakeAt = time.Time{}
		l.dispatch(s)
		l.notify()
	})
}

// serviceAllows checks everything of the service for w: cooldown,
// concurrency, ledgers, budgets. never names a ledger w's cost exceeds.
func (l *Limiter) serviceAllows(s *service, w *waiter, now time.Time) (ok bool, until time.Time, never *ledger) {
	if now.Before(s.cooldownUntil) {
		return false, s.cooldownUntil, nil
	}
	if ok, at := s.resumeAllows(now); !ok {
		return false, at, nil
	}
	if c := l.concurrencyCap(s); c > 0 && s.inFlight >= c {
		return false, time.Time{}, nil // a lease ending dispatches again
	}
	ok = true
	for _, d := range s.ledgers() {
		if okd, at := d.checkShare(now, w.cost[d.policy.Unit], s.queued > 1, s.clusterShare); !okd {
			if at.IsZero() {
				return false, time.Time{}, d
			}
			ok = false
			if at.After(until) {
				until = at
			}
		}
	}
	for _, b := range s.budgets {
		if okb, at := b.check(now, w.cost[b.unit]); !okb {
			ok = false
			if at.After(until) {
				until = at
			}
		}
	}
	return ok, until, nil
}

func (l *Limiter) grant(s *service, w *waiter, floor bool, now time.Time) {
	backlog, agentBacklog := s.queued > 1, w.agent.queued > 1 // before w leaves
	l.creditFloors(s, w, floor)
	c := &s.classes[w.class]
	f := c.flows[w.agent]
	start := math.Max(c.vtime, f.lastFinish)
	f.lastFinish = start + w.share/w.agent.weight()
	if !w.aged {
		// An aged request goes out of tag order; the class's virtual
		// time stays with the order of the rest.
		c.vtime = start
	}
	l.unqueue(w)

	l.seq++
	g := &grant{seq: l.seq, at: now, cost: w.cost, open: true, agent: w.agent}
	s.record(now, g, backlog)
	for _, d := range w.agent.caps {
		d.add(now, g, agentBacklog)
	}
	l.resumeGranted(s, now)
	s.inFlight++
	s.granted++
	w.agent.inFlight++
	w.agent.granted++

	id := l.newLeaseID()
	for l.leases[id] != nil {
		id = l.newLeaseID()
	}
	ls := &lease{id: id, svc: s, g: g, grantedAt: now, expiresAt: now.Add(l.cfg.LeaseTTL)}
	ls.timer = l.clock.AfterFunc(l.cfg.LeaseTTL, func() { l.expire(ls) })
	l.leases[id] = ls
	w.done <- result{lease: Lease{
		ID: id, Agent: w.agent.name, Service: s.name, Cost: cloneCost(w.cost),
		GrantedAt: now, ExpiresAt: ls.expiresAt, Waited: now.Sub(w.enqueued),
	}}
}

func cloneCost(c Cost) Cost {
	out := make(Cost, len(c))
	for u, n := range c {
		out[u] = n
	}
	return out
}
