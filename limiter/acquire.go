package limiter

import (
	"context"
	"time"
)

// Rule 7, cancellation: an acquire queues a waiter, and a waiter whose
// caller goes away (or times out) leaves the queue and consumes nothing.

// checkCost checks c and returns a private copy.
func checkCost(field string, c Cost) (Cost, error) {
	out := make(Cost, len(c)+1)
	for u, n := range c {
		if !knownUnit(u) {
			return nil, badRequest("%s: unit %q is not one of requests, tokens, input_tokens, output_tokens", field, u)
		}
		if n < 0 {
			return nil, badRequest("%s: %s is %d; costs must not be negative", field, u, n)
		}
		out[u] = n
	}
	return out, nil
}

// requestCost is checkCost for an acquire: every call is one request unless
// the cost says otherwise (nil or empty means just that).
func requestCost(c Cost) (Cost, error) {
	out, err := checkCost("cost", c)
	if err != nil {
		return nil, err
	}
	if _, ok := out[Requests]; !ok {
		out[Requests] = 1
	}
	return out, nil
}

// Acquire asks permission for one call and blocks until it is granted, until
// req.MaxWait passes on the limiter's clock, or until ctx ends. A refusal is
// a *RefusedError, a request that can never be served an *Error; when ctx
// ends first the request leaves the queue, consumes nothing, and ctx.Err()
// is returned.
func (l *Limiter) Acquire(ctx context.Context, req Request) (Lease, error) {
	w, err := l.submit(req)
	if err != nil {
		return Lease{}, err
	}
	select {
	case r := <-w.done:
		return r.lease, r.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.state == waiting {
		l.withdraw(w)
		l.mu.Unlock()
		return Lease{}, ctx.Err()
	}
	l.mu.Unlock()
	// Granted or refused while ctx ended: a grant is taken back whole.
	if r := <-w.done; r.err == nil {
		l.revoke(r.lease.ID)
	}
	return Lease{}, ctx.Err()
}

type waiterState int8

const (
	waiting waiterState = iota
	finished
)

type result struct {
	lease Lease
	err   error
}

type waiter struct {
	seq      uint64
	svc      *service
	agent    *agent
	cost     Cost
	explicit Priority // as asked; PriorityUnset follows the agent
	class    int      // index into service.classes
	share    float64  // dominant fraction of the service's quotas, set by pick
	aged     bool     // picked as an aged request of a level owed a grant
	enqueued time.Time
	state    waiterState
	timer    Timer
	done     chan result
}

// submit validates req and either answers it at once (a grant, or an error)
// or leaves a waiter queued whose done channel will carry the answer.
func (l *Limiter) submit(req Request) (*waiter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, &Error{Code: CodeShuttingDown, Message: "quotabar is shutting down"}
	}
	now := l.clock.Now()
	s, err := l.lookupService(req.Service)
	if err != nil {
		return nil, err
	}
	a, err := l.agentFor(req.Agent, now)
	if err != nil {
		return nil, err
	}
	cost, err := requestCost(req.Cost)
	if err != nil {
		return nil, err
	}
	if req.Priority < PriorityUnset || req.Priority > High {
		return nil, badRequest("priority %d is not low, normal or high", req.Priority)
	}
	if req.MaxWait < 0 {
		return nil, badRequest("max wait %v must not be negative", req.MaxWait)
	}
	if err := exceeds(s, a, cost); err != nil {
		return nil, err
	}
	prio := req.Priority
	if prio == PriorityUnset {
		prio = a.priority()
	}
	w := &waiter{
		svc: s, agent: a, cost: cost, explicit: req.Priority, class: int(prio) - 1,
		enqueued: now, done: make(chan result, 1),
	}
	switch {
	case s.paused || a.paused:
		return nil, l.refusal(w, ReasonPaused, 0)
	case s.queued >= l.cfg.QueueLimit:
		return nil, l.refusal(w, ReasonShed, l.estimate(s, w, now))
	}
	l.settle(s, now)
	if until := s.blockedByProvider(now, cost); until.Sub(now) > req.MaxWait {
		return nil, l.refusal(w, ReasonCooldown, until.Sub(now))
	}
	if until := s.reservedUntil(w.class, now); until.Sub(now) > req.MaxWait {
		return nil, l.refusal(w, ReasonReserved, until.Sub(now))
	}
	l.seq++ // waiters and grants share one sequence; only its order matters
	w.seq = l.seq
	l.enqueue(w)
	l.dispatch(s)
	if w.state == waiting {
		if req.MaxWait == 0 {
			reason := ReasonTimeout
			if until := s.blockedByProvider(now, cost); !until.IsZero() {
				reason = ReasonCooldown
			}
			est := l.estimate(s, w, now)
			l.unqueue(w)
			l.dispatch(s)
			l.notify()
			return nil, l.refusal(w, reason, est)
		}
		w.timer = l.clock.AfterFunc(req.MaxWait, func() { l.timeout(w) })
	}
	l.notify()
	return w, nil
}

// withdraw removes a waiter whose requester went away; nothing is counted.
func (l *Limiter) withdraw(w *waiter) {
	l.unqueue(w)
	l.dispatch(w.svc)
	l.notify()
}

func (l *Limiter) timeout(w *waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.state != waiting {
		return
	}
	now := l.clock.Now()
	reason := ReasonTimeout
	if !w.svc.blockedByProvider(now, w.cost).IsZero() {
		reason = ReasonCooldown
	} else if !w.svc.reservedUntil(w.class, now).IsZero() {
		reason = ReasonReserved
	}
	est := l.estimate(w.svc, w, now)
	l.unqueue(w)
	w.done <- result{err: l.refusal(w, reason, est)}
	l.dispatch(w.svc)
	l.notify()
}

// refusal counts a refusal and builds its error, with a retry time jittered
// per call so that refused agents come back spread out.
func (l *Limiter) refusal(w *waiter, reason Reason, retry time.Duration) *RefusedError {
	w.svc.refused++
	w.agent.refused++
	return &RefusedError{Reason: reason, RetryAfter: l.jitter(retry), Service: w.svc.name, Agent: w.agent.name}
}

// refuseWhere answers every waiter of s that match with the error mk makes.
func (l *Limiter) refuseWhere(s *service, match func(*waiter) bool, mk func(*waiter) error) {
	var out []*waiter
	for ci := range s.classes {
		for _, f := range s.classes[ci].active {
			for _, w := range f.q {
				if match(w) {
					out = append(out, w)
				}
			}
		}
	}
	for _, w := range out {
		l.unqueue(w)
		w.done <- result{err: mk(w)}
	}
}

func (l *Limiter) refuseAll(s *service, mk func(*waiter) error) {
	l.refuseWhere(s, func(*waiter) bool { return true }, mk)
}

// estimate guesses how long until a request like w could be granted: until
// the service is free again, plus the requests queued at its priority or
// above, spaced at the tightest request policy's average rate.
func (l *Limiter) estimate(s *service, w *waiter, now time.Time) time.Duration {
	var d time.Duration
	if s.wakeAt.After(now) {
		d = s.wakeAt.Sub(now)
	}
	if until := s.blockedByProvider(now, w.cost); until.After(now) {
		d = max(d, until.Sub(now))
	}
	if until := s.reservedUntil(w.class, now); until.After(now) {
		d = max(d, until.Sub(now))
	}
	ahead := 0
	for ci := w.class; ci < len(s.classes); ci++ {
		for _, f := range s.classes[ci].active {
			ahead += len(f.q)
		}
	}
	var gap time.Duration
	for _, dl := range s.ledgers() {
		if dl.policy.Unit == Requests && dl.cap > 0 {
			gap = max(gap, dl.policy.Window/time.Duration(dl.cap))
		}
	}
	return d + time.Duration(ahead)*gap
}
