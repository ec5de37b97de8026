package limiter

import (
	"math"
	"slices"
	"time"
)

// Rule 1, limits are policies: a ledger enforces one policy exactly, so no
// sliding window of its length ever holds more grants than its quota.

// A grant is one granted request as the ledgers see it. Its cost is the
// amount charged now: the estimate at first, the real usage once reported.
// Every ledger of the service and of the agent holds the same *grant, so a
// correction is one map write plus one adjustment per ledger.
type grant struct {
	seq   uint64 // grant order across the limiter
	at    time.Time
	cost  Cost
	open  bool // lease still in flight
	agent *agent
}

// A ledger enforces one policy exactly: it logs every grant of the last
// window and admits a cost only when the logged usage plus the cost fits the
// capacity. Because every grant is checked against all grants of the window
// ending at its own instant, and later windows only lose old entries, no
// sliding window of the policy's length ever holds more than the capacity.
//
// The log alone would let a backlog take a whole quota in one instant and
// then, a window later, again; so a pacer spaces grants too (pacer.go).
type ledger struct {
	policy Policy
	cap    int64  // quota minus headroom
	source string // "config" or "headers"
	log    []*grant
	used   int64 // sum of log[i].cost[policy.Unit]
	pace   pacer
	// pacedUntil ends the pacing of a long window after a cooldown.
	pacedUntil time.Time
	// even says grants are spaced evenly under a backlog, as a service's
	// are (pacer.go); an agent's own cap keeps a burst of a tenth of it.
	even bool
	// bursts are the grants of the idle burst still in the window, and
	// burstUsed their sum: the pacer leaves room for them (paceRate).
	bursts    []burstEntry
	burstUsed int64
	// estimates are the recent window estimates of a learned policy
	// (bounds.go).
	estimates []time.Duration
	// maxCost is the largest single cost charged: the pacer's burst.
	maxCost int64
	// burstAfter is when the idle burst is allowed again after a
	// cooldown or a spent budget.
	burstAfter time.Time
}

type burstEntry struct {
	at time.Time
	n  int64
}

func newLedger(p Policy, headroom float64, source string, even bool) *ledger {
	d := &ledger{policy: p, source: source, even: even}
	d.setQuota(p.Quota, headroom)
	return d
}

// setQuota sets the quota and, from it and the window, the pacer.
func (d *ledger) setQuota(q int64, headroom float64) {
	d.policy.Quota = q
	old := d.cap
	d.cap = max(0, q-int64(math.Floor(headroom*float64(q))))
	if grow := d.cap - old; grow > 0 && !d.pace.last.IsZero() {
		// A raised quota is there to use now.
		d.pace.tokens = d.pace.level(d.pace.last) + float64(grow)
	}
	d.pace.setRate(d.pace.last, d.paceRate())
	d.pace.burst = d.paceBurst()
	d.pace.maxBank = max(d.pace.burst, float64(idleBurst(d.cap)))
}

// transitMax bounds the margin a ledger adds to its window (see span).
const transitMax = 250 * time.Millisecond

// span is how long a grant stays in the log: the window, plus a margin of a
// hundredth of it (at most transitMax) for the call's way to the provider. A
// grant and its call's arrival are a socket round trip and an HTTP request
// apart, and that gap varies from call to call: without the margin, a
// window packed to the last unit here could be one unit over at a provider
// that counts exactly. It costs at most 1% of the quota's use.
func (d *ledger) span() time.Duration {
	return d.policy.Window + min(d.policy.Window/100, transitMax)
}

// prune drops the grants that have left the log at now: a grant made at t
// counts until t + span.
func (d *ledger) prune(now time.Time) {
	cut := now.Add(-d.span())
	i := 0
	for i < len(d.log) && !d.log[i].at.After(cut) {
		d.used -= d.log[i].cost[d.policy.Unit]
		d.log[i] = nil
		i++
	}
	if i > 0 {
		d.log = d.log[i:]
	}
	if len(d.log) == 0 {
		d.log = nil
		d.used = 0
	}
	j := 0
	for j < len(d.bursts) && !d.bursts[j].at.After(cut) {
		d.burstUsed -= d.bursts[j].n
		j++
	}
	if j > 0 {
		d.bursts = d.bursts[j:]
		if len(d.bursts) == 0 {
			d.bursts, d.burstUsed = nil, 0
		}
		d.pace.setRate(now, d.paceRate())
	}
}

// check reports whether cost c of the ledger's unit may be granted at now,
// and if not, the earliest time it might be (zero when never, because c is
// over the capacity). backlog says others wait behind this request: only a
// backlog is paced.
func (d *ledger) check(now time.Time, c int64, backlog bool) (bool, time.Time) {
	if c <= 0 {
		return true, time.Time{}
	}
	if c > d.cap {
		return false, time.Time{}
	}
	d.prune(now)
	if need := d.used + c - d.cap; need > 0 {
		var freed int64
		for _, g := range d.log {
			freed += g.cost[d.policy.Unit]
			if freed >= need {
				return false, g.at.Add(d.span())
			}
		}
		// Only reachable if used is negative; fail safe, retry soon.
		return false, now.Add(time.Second)
	}
	if (backlog || d.policy.Window <= alwaysPaced) && d.paced(now) && !d.idle(now, c) {
		if w := d.pace.wait(now, float64(c)); w > 0 {
			return false, now.Add(w)
		}
	}
	return true, time.Time{}
}

// add logs g. A paced grant may leave the pacer in debt; an unpaced one
// (an idle burst's, or a lone caller's of a long window) only empties it,
// so it never delays the pacing of a backlog that forms later.
func (d *ledger) add(now time.Time, g *grant, backlog bool) {
	d.prune(now)
	c := g.cost[d.policy.Unit]
	idle := d.idle(now, c)
	// A grant of the idle burst that the pacer would have held back: the
	// pacer leaves room for it while it is in the window.
	burst := idle && d.even && c > 0 && d.pace.wait(now, float64(c)) > 0
	if c > d.maxCost {
		d.maxCost = c
		d.pace.burst = d.paceBurst()
	}
	d.log = append(d.log, g)
	d.used += c
	if burst {
		d.bursts = append(d.bursts, burstEntry{now, c})
		d.burstUsed += c
		d.pace.setRate(now, d.paceRate())
	}
	if (backlog || d.policy.Window <= alwaysPaced) && !idle {
		d.pace.add(now, float64(c))
	} else {
		d.pace.add(now, min(float64(c), max(0, d.pace.level(now))))
	}
}

// adjust records that g's cost in the ledger's unit changed by delta; it
// matters only while g is still in the window.
func (d *ledger) adjust(now time.Time, g *grant, delta int64) {
	d.pace.add(now, float64(delta))
	d.prune(now)
	if g.at.After(now.Add(-d.span())) {
		d.used += delta
	}
}

// remaining is what the ledger would still admit at now (before pacing).
func (d *ledger) remaining(now time.Time) int64 {
	d.prune(now)
	return max(0, d.cap-d.used)
}

// resetsAt is when the whole window is clear again (zero when it is clear).
func (d *ledger) resetsAt(now time.Time) time.Time {
	d.prune(now)
	if len(d.log) == 0 {
		return time.Time{}
	}
	return d.log[len(d.log)-1].at.Add(d.span())
}

// rebuildLedgers makes ledgers for ps, keeping the log of an old ledger with
// the same unit and window, and seeding a new one from the longest old log
// (every ledger logs every grant), so that a reload cannot forget recent
// grants and release a quota twice.
func rebuildLedgers(now time.Time, old []*ledger, ps []Policy, headroom float64, even bool) []*ledger {
	var longest *ledger
	for _, d := range old {
		if longest == nil || d.policy.Window > longest.policy.Window {
			longest = d
		}
	}
	var out []*ledger
	for _, p := range ps {
		var d *ledger
		for _, o := range old {
			if o.policy.Unit == p.Unit && o.policy.Window == p.Window && !slices.Contains(out, o) {
				d = o
				break
			}
		}
		if d != nil {
			d.setQuota(p.Quota, headroom)
			out = append(out, d)
			continue
		}
		d = newLedger(p, headroom, "config", even)
		if longest != nil {
			d.seed(now, longest.log)
		}
		out = append(out, d)
	}
	return out
}

// seed logs the grants of src that are still inside d's window.
func (d *ledger) seed(now time.Time, src []*grant) {
	cut := now.Add(-d.span())
	for _, g := range src {
		if g.at.After(cut) {
			d.log = append(d.log, g)
			d.used += g.cost[d.policy.Unit]
		}
	}
}
