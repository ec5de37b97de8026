package limiter

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// A service owns its queue, its ledgers (configured and learned), the
// budgets its headers reported, and its cooldown.
type service struct {
	name       string
	cfg        ServiceConfig
	policies   []*ledger // from config
	learned    []*ledger // from headers
	budgets    []*budget
	recent     []*grant // grants since the oldest one still in flight
	learnedAny bool

	clusterShare float64 // fraction of every capacity this daemon may use (share.go); 1 alone

	classes [3]class // Low, Normal, High
	queued  int

	inFlight      int
	paused        bool
	removed       bool
	cooldownUntil time.Time
	cooldownSeq   uint64 // last grant before the cooldown began
	backoff       int    // 429s in a row without a retry time

	wakeAt    time.Time
	wakeTimer Timer
	wakeGen   uint64

	granted, refused, provider429 int64
}

func newService(sc ServiceConfig) *service {
	s := &service{name: sc.Name, cfg: sc, clusterShare: 1}
	for _, p := range sc.Limits {
		s.policies = append(s.policies, newLedger(p, sc.Headroom, "config"))
	}
	return s
}

func (s *service) reconfigure(now time.Time, sc ServiceConfig) {
	old := append(slices.Clone(s.policies), s.learned...)
	s.cfg = sc
	s.policies = rebuildLedgers(now, old, sc.Limits, sc.Headroom)
	// A learned policy of a unit now configured gives way to the config.
	s.learned = slices.DeleteFunc(s.learned, func(d *ledger) bool {
		return slices.ContainsFunc(s.policies, func(p *ledger) bool { return p.policy.Unit == d.policy.Unit })
	})
	for _, d := range s.learned {
		d.setQuota(d.policy.Quota, sc.Headroom)
	}
}

// ledgers returns the configured and the learned ledgers.
func (s *service) ledgers() []*ledger {
	if len(s.learned) == 0 {
		return s.policies
	}
	return append(slices.Clone(s.policies), s.learned...)
}

// record charges a grant to every ledger and budget of the service.
func (s *service) record(now time.Time, g *grant, backlog bool) {
	for _, d := range s.policies {
		d.add(now, g, backlog)
	}
	for _, d := range s.learned {
		d.add(now, g, backlog)
	}
	for _, b := range s.budgets {
		b.spent += g.cost[b.unit]
	}
	s.recent = append(s.recent, g)
}

func (s *service) stopWake() {
	if s.wakeTimer != nil {
		s.wakeTimer.Stop()
		s.wakeTimer = nil
	}
	s.wakeAt = time.Time{}
	s.wakeGen++
}

type class struct {
	flows  map[*agent]*flow
	active []*flow // flows with waiters, in activation order
	vtime  float64 // start tag of the last request served
	// served is when the class last had a grant, or began to wait: aging
	// measures how long a priority has been passed over from here.
	served time.Time
}

// A flow is one agent's FIFO of waiters in one priority of one service.
// Start-time fair queueing (Goyal et al.): the head's start tag is
// max(vtime, the flow's last finish tag), its finish tag start +
// share/weight; the smallest start tag goes first and vtime becomes it. A
// flow that was idle starts at vtime, level with the busiest: a light
// agent's request goes ahead of a heavy agent's backlog. Tags are computed
// only for heads, so a waiter that leaves changes nothing.
type flow struct {
	agent      *agent
	q          []*waiter
	lastFinish float64
	agedFinish float64 // finish tag of its aged requests, in High's virtual time
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

// share is the request's dominant fraction of the service's quotas, the
// size fair queueing charges it. It is computed when the request competes,
// not when it arrives, so that limits learned meanwhile apply to everyone
// alike. Without any known quota a request counts as a thousandth: small,
// like the shares learned later, so learning shifts no one's place much.
func (s *service) share(c Cost) float64 {
	var sh float64
	for _, d := range s.ledgers() {
		if n := c[d.policy.Unit]; n > 0 && d.cap > 0 {
			sh = max(sh, float64(n)/float64(d.cap))
		}
	}
	if sh == 0 {
		for _, b := range s.budgets {
			if n := c[b.unit]; n > 0 && b.limit > 0 {
				sh = max(sh, float64(n)/float64(b.limit))
			}
		}
	}
	if sh == 0 {
		sh = float64(max(c[Requests], 1)) / 1000
	}
	return sh
}

func (l *Limiter) enqueue(w *waiter) {
	c := &w.svc.classes[w.class]
	if c.flows == nil {
		c.flows = map[*agent]*flow{}
	}
	f := c.flows[w.agent]
	if f == nil {
		f = &flow{agent: w.agent}
		c.flows[w.agent] = f
	}
	if len(c.active) == 0 {
		c.served = w.enqueued
	}
	if len(f.q) == 0 {
		c.active = append(c.active, f)
	}
	// Sorted by seq: a waiter moved by a priority change keeps its place.
	i, _ := slices.BinarySearchFunc(f.q, w.seq, func(x *waiter, seq uint64) int {
		return cmpU64(x.seq, seq)
	})
	f.q = slices.Insert(f.q, i, w)
	w.svc.queued++
	w.agent.queued++
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// unqueue takes w out of its queue and marks it answered.
func (l *Limiter) unqueue(w *waiter) {
	l.dequeue(w)
	w.state = finished
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (l *Limiter) dequeue(w *waiter) {
	c := &w.svc.classes[w.class]
	f := c.flows[w.agent]
	if i := slices.Index(f.q, w); i == 0 {
		f.q[0] = nil
		f.q = f.q[1:] // the usual case, a grant: no shifting
	} else {
		f.q = slices.Delete(f.q, i, i+1)
	}
	if len(f.q) == 0 {
		c.active = slices.DeleteFunc(c.active, func(x *flow) bool { return x == f })
		if f.lastFinish <= c.vtime && f.agedFinish <= w.svc.classes[len(w.svc.classes)-1].vtime {
			delete(c.flows, w.agent) // its tags no longer matter
		}
	}
	w.svc.queued--
	w.agent.queued--
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

// requeueAgent moves the agent's waiters that follow its priority into the
// class of its new priority.
func (l *Limiter) requeueAgent(a *agent) {
	cl := int(a.priority()) - 1
	for _, s := range l.services {
		var move []*waiter
		for ci := range s.classes {
			if f := s.classes[ci].flows[a]; f != nil && ci != cl {
				for _, w := range f.q {
					if w.explicit == PriorityUnset {
						move = append(move, w)
					}
				}
			}
		}
		for _, w := range move {
			l.dequeue(w)
			w.class = cl
			l.enqueue(w)
		}
	}
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

// blockedByProvider returns until when the provider has closed the service
// to a request costing c: a cooldown, or a header budget that is spent.
// Zero means not blocked by the provider.
func (s *service) blockedByProvider(now time.Time, c Cost) time.Time {
	var until time.Time
	if now.Before(s.cooldownUntil) {
		until = s.cooldownUntil
	}
	for _, b := range s.budgets {
		if ok, at := b.check(now, c[b.unit]); !ok && at.After(until) {
			until = at
		}
	}
	return until
}

func (l *Limiter) concurrencyCap(s *service) int {
	if s.cfg.MaxConcurrent > 0 {
		return s.cfg.MaxConcurrent
	}
	if len(s.cfg.Limits) == 0 && !s.learnedAny {
		return l.cfg.LearnConcurrency
	}
	return 0
}

// settle ends a cooldown that is over and drops budgets past their reset;
// either starts pacing, so the backlog is not released at once.
func (l *Limiter) settle(s *service, now time.Time) {
	if !s.cooldownUntil.IsZero() && !now.Before(s.cooldownUntil) {
		for _, d := range s.ledgers() {
			d.startPacing(s.cooldownUntil)
		}
		s.cooldownUntil = time.Time{}
	}
	s.budgets = slices.DeleteFunc(s.budgets, func(b *budget) bool {
		if now.Before(b.until) {
			return false
		}
		if b.spent >= b.remaining {
			for _, d := range s.ledgers() {
				if d.policy.Unit == b.unit {
					d.startPacing(b.until)
				}
			}
		}
		return true
	})
	i := 0
	for i < len(s.recent) && !s.recent[i].open {
		s.recent[i] = nil
		i++
	}
	s.recent = s.recent[i:]
	if len(s.recent) == 0 {
		s.recent = nil
	}
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
		w, aged, agentWake := l.pick(s, now)
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
		l.grant(s, w, aged, now)
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

// pickKey orders candidates: priority, then start tag, then finish tag
// (among flows level at vtime, such as every flow that was idle, the
// smaller request goes first: a light agent's short call is not kept
// waiting for a round of everyone's big ones), then arrival.
type pickKey struct {
	rank   int // 1 high (and aged), 2 normal, 3 low
	start  float64
	finish float64
	seq    uint64
}

func (k pickKey) less(o pickKey) bool {
	switch {
	case k.rank != o.rank:
		return k.rank < o.rank
	case k.start != o.start:
		return k.start < o.start
	case k.finish != o.finish:
		return k.finish < o.finish
	}
	return k.seq < o.seq
}

// pick returns the head that goes next among the flows whose agent's own
// caps allow it: by priority, then by fair-queueing finish tag. Aging: a
// priority whose waiters have had no grant for MaxAging while a higher one
// is waiting is served as if it were high, once; its heads then compete in
// High's fair queue (each agent as its own flow there), so a starved
// priority gets a request through at least every MaxAging without a
// backlog of old low requests shutting out the real high ones. A priority
// that is served, however slowly, does not age: under overload the levels
// stay strict. An agent held back by its own cap holds back no one else;
// agentWake is when the first such agent frees.
func (l *Limiter) pick(s *service, now time.Time) (best *waiter, aged bool, agentWake time.Time) {
	type cand struct {
		w  *waiter
		ci int
		f  *flow
	}
	var cands []cand
	var never []*waiter
	top := -1
	for ci := len(s.classes) - 1; ci >= 0; ci-- {
		for _, f := range s.classes[ci].active {
			w := f.q[0]
			if ok, at := agentAllows(w, now); !ok {
				if at.IsZero() {
					never = append(never, w)
				} else if agentWake.IsZero() || at.Before(agentWake) {
					agentWake = at
				}
				continue
			}
			top = max(top, ci)
			cands = append(cands, cand{w, ci, f})
		}
	}
	var bestKey pickKey
	hi := len(s.classes) - 1
	for _, c := range cands {
		isAged := c.ci < top && now.Sub(s.classes[c.ci].served) >= l.cfg.MaxAging
		c.w.share = s.share(c.w.cost)
		k := pickKey{rank: len(s.classes) - c.ci, start: math.Max(s.classes[c.ci].vtime, c.f.lastFinish), seq: c.w.seq}
		if isAged {
			k.rank, k.start = 1, math.Max(s.classes[hi].vtime, c.f.agedFinish)
		}
		k.finish = k.start + c.w.share/c.w.agent.weight()
		if best == nil || k.less(bestKey) {
			best, bestKey, aged = c.w, k, isAged
		}
	}
	for _, w := range never {
		l.unqueue(w)
		w.done <- result{err: exceeds(s, w.agent, w.cost)}
	}
	return best, aged, agentWake
}

// agentAllows checks the agent's own caps; a zero time with false means the
// cost is over a cap's capacity and can never be granted.
func agentAllows(w *waiter, now time.Time) (bool, time.Time) {
	var until time.Time
	for _, d := range w.agent.caps {
		ok, at := d.check(now, w.cost[d.policy.Unit], w.agent.queued > 1)
		if !ok {
			if at.IsZero() {
				return false, time.Time{}
			}
			if at.After(until) {
				until = at
			}
		}
	}
	return until.IsZero(), until
}

// serviceAllows checks everything of the service for w: cooldown,
// concurrency, ledgers, budgets. never names a ledger w's cost exceeds.
func (l *Limiter) serviceAllows(s *service, w *waiter, now time.Time) (ok bool, until time.Time, never *ledger) {
	if now.Before(s.cooldownUntil) {
		return false, s.cooldownUntil, nil
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

func (l *Limiter) grant(s *service, w *waiter, aged bool, now time.Time) {
	backlog, agentBacklog := s.queued > 1, w.agent.queued > 1 // before w leaves
	s.classes[w.class].served = now
	f := s.classes[w.class].flows[w.agent]
	if aged {
		c := &s.classes[len(s.classes)-1]
		start := math.Max(c.vtime, f.agedFinish)
		f.agedFinish = start + w.share/w.agent.weight()
		c.vtime = start
	} else {
		c := &s.classes[w.class]
		start := math.Max(c.vtime, f.lastFinish)
		f.lastFinish = start + w.share/w.agent.weight()
		c.vtime = start
	}
	l.unqueue(w)

	l.seq++
	g := &grant{seq: l.seq, at: now, cost: w.cost, open: true, agent: w.agent}
	s.record(now, g, backlog)
	for _, d := range w.agent.caps {
		d.add(now, g, agentBacklog)
	}
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
