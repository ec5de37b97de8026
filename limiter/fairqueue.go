package limiter

import (
	"math"
	"slices"
	"time"
)

// Rule 2, queues per service: priorities between levels, weighted fair
// queueing between agents within a level, FIFO within an agent.

type class struct {
	flows  map[*agent]*flow
	active []*flow // flows with waiters, in activation order
	vtime  float64 // start tag of the last request served
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
		if f.lastFinish <= c.vtime {
			delete(c.flows, w.agent) // its tags no longer matter
		}
	}
	w.svc.queued--
	w.agent.queued--
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

// pickKey orders the candidates of one priority: start tag; then, among
// flows level at vtime, the one whose last request finished earliest (an
// agent that was idle, having used less than its share, before the
// backlogged ones, whose last finish is their start: a light agent's
// request goes ahead of a heavy agent's backlog, not after a round of
// everyone's); then the finish tag (the smaller request first: a short
// call is not kept waiting for everyone's big ones); then arrival.
type pickKey struct {
	start  float64
	last   float64
	finish float64
	seq    uint64
}

func (k pickKey) less(o pickKey) bool {
	switch {
	case k.start != o.start:
		return k.start < o.start
	case k.last != o.last:
		return k.last < o.last
	case k.finish != o.finish:
		return k.finish < o.finish
	}
	return k.seq < o.seq
}

// A candidate is a flow's head that its agent's own caps allow now.
type candidate struct {
	w  *waiter
	f  *flow
	ci int // its class
}

// pick returns the head that goes next among the flows whose agent's own
// caps allow it. The priority it comes from is the highest with a
// candidate, unless a lower one is owed a grant (floor.go); within the
// priority, the smallest fair-queueing tag, or for an owed grant the
// oldest request that has aged, if any. An agent held back by its own cap
// holds back no one else; agentWake is when the first such agent frees.
func (l *Limiter) pick(s *service, now time.Time) (best *waiter, floor bool, agentWake time.Time) {
	cands := make([]candidate, 0, 16) // on the stack for the usual few
	var never []*waiter
	top := -1
	for ci := len(s.classes) - 1; ci >= 0; ci-- {
		if len(s.classes[ci].active) == 0 {
			continue
		}
		if at := s.reservedUntil(ci, now); !at.IsZero() {
			// Past a window's reserve: this priority waits for its reset.
			if agentWake.IsZero() || at.Before(agentWake) {
				agentWake = at
			}
			continue
		}
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
			cands = append(cands, candidate{w, f, ci})
		}
	}
	for _, w := range never {
		l.unqueue(w)
		w.done <- result{err: exceeds(s, w.agent, w.cost)}
	}
	if top < 0 {
		return nil, false, agentWake
	}
	ci, floor := top, false
	if owed := l.owedLevel(s, cands, top, now); owed >= 0 {
		ci, floor = owed, true
	}
	if floor {
		if w := l.oldestAged(cands, ci, now); w != nil {
			w.share, w.aged = s.share(w.cost), true
			return w, true, agentWake
		}
	}
	var bestKey pickKey
	c := &s.classes[ci]
	for _, cd := range cands {
		if cd.ci != ci {
			continue
		}
		cd.w.share = s.share(cd.w.cost)
		k := pickKey{start: math.Max(c.vtime, cd.f.lastFinish), last: cd.f.lastFinish, seq: cd.w.seq}
		k.finish = k.start + cd.w.share/cd.w.agent.weight()
		if best == nil || k.less(bestKey) {
			best, bestKey = cd.w, k
		}
	}
	best.aged = false
	return best, floor, agentWake
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

// unqueue takes w out of its queue and marks it answered.
func (l *Limiter) unqueue(w *waiter) {
	l.dequeue(w)
	w.state = finished
	if w.timer != nil {
		w.timer.Stop()
	}
}
