package limiter

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Pending is a request submitted without blocking, for deterministic tests
// that drive the fake clock from one goroutine.
type Pending struct {
	w   *waiter
	r   result
	got bool
}

// Poll returns the answer once there is one.
func (p *Pending) Poll() (Lease, error, bool) {
	if !p.got {
		select {
		case p.r = <-p.w.done:
			p.got = true
		default:
			return Lease{}, nil, false
		}
	}
	return p.r.lease, p.r.err, true
}

// Submit queues req like Acquire but returns at once. A request answered at
// once (refused, or an error) returns its error.
func (l *Limiter) Submit(req Request) (*Pending, error) {
	w, err := l.submit(req)
	if err != nil {
		return nil, err
	}
	return &Pending{w: w}, nil
}

// Seed makes the limiter's jitter and lease IDs repeatable.
func (l *Limiter) Seed(seed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// SetParser replaces ParseHeaders, so observations can be injected.
func (l *Limiter) SetParser(f func(dialect Dialect, h map[string]string, now time.Time) Observation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parse = f
}

// Books renders every ledger, pacer, budget, fair-queueing tag and counter
// of the limiter, so a test can check that something left them as they
// were. Agents that hold and counted nothing are left out (first use
// registers an agent), and so is the grant sequence, which waiters also
// draw from.
func (l *Limiter) Books() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	ledgers := func(ds []*ledger) {
		for _, d := range ds {
			fmt.Fprintf(&b, "  ledger %v cap=%d used=%d log=%d pace=%v/%v@%v pacedUntil=%v\n",
				d.policy, d.cap, d.used, len(d.log), d.pace.tokens, d.pace.burst, d.pace.last, d.pacedUntil)
		}
	}
	for _, s := range l.sortedServices() {
		fmt.Fprintf(&b, "service %s queued=%d inFlight=%d granted=%d refused=%d 429=%d cooldown=%v/%d backoff=%d recent=%d paused=%v wake=%v\n",
			s.name, s.queued, s.inFlight, s.granted, s.refused, s.provider429, s.cooldownUntil, s.cooldownSeq, s.backoff, len(s.recent), s.paused, s.wakeAt)
		fmt.Fprintf(&b, "  floor credit=%v lastFloor=%v\n", s.credit, s.lastFloor)
		ledgers(s.policies)
		ledgers(s.learned)
		for _, bg := range s.budgets {
			fmt.Fprintf(&b, "  budget %+v\n", *bg)
		}
		for ci, c := range s.classes {
			fmt.Fprintf(&b, "  class %d vtime=%v active=%d\n", ci, c.vtime, len(c.active))
			var names []string
			for a, f := range c.flows {
				names = append(names, fmt.Sprintf("    flow %s q=%d last=%v\n", a.name, len(f.q), f.lastFinish))
			}
			slices.Sort(names)
			b.WriteString(strings.Join(names, ""))
		}
	}
	var names []string
	for n := range l.agents {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a := l.agents[n]
		if a.queued == 0 && a.inFlight == 0 && a.granted == 0 && a.refused == 0 && len(a.caps) == 0 && !a.paused && a.prio == PriorityUnset {
			continue
		}
		fmt.Fprintf(&b, "agent %s queued=%d inFlight=%d granted=%d refused=%d paused=%v prio=%v\n",
			n, a.queued, a.inFlight, a.granted, a.refused, a.paused, a.prio)
		ledgers(a.caps)
	}
	fmt.Fprintf(&b, "leases=%d\n", len(l.leases))
	return b.String()
}

// LockHeld reports whether the limiter's lock is held (by anyone).
func (l *Limiter) LockHeld() bool {
	if l.mu.TryLock() {
		l.mu.Unlock()
		return false
	}
	return true
}
