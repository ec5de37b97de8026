package limiter

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

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
type ledger struct {
	policy Policy
	cap    int64  // quota minus headroom
	source string // "config" or "headers"
	log    []*grant
	used   int64 // sum of log[i].cost[policy.Unit]

	// pacer spreads grants after a cooldown or an exhausted budget ends, so
	// a freed quota is not released as a herd; nil or past pacedUntil means
	// not pacing.
	pacer      *rate.Limiter
	pacedUntil time.Time
}

func newLedger(p Policy, headroom float64, source string) *ledger {
	d := &ledger{policy: p, source: source}
	d.setQuota(p.Quota, headroom)
	return d
}

func (d *ledger) setQuota(q int64, headroom float64) {
	d.policy.Quota = q
	d.cap = q - int64(math.Floor(headroom*float64(q)))
}

// prune drops the grants that have left the window ending at now. A grant
// made at t counts in the windows (t-W, t]..(t, t+W): at t+W it is gone.
func (d *ledger) prune(now time.Time) {
	cut := now.Add(-d.policy.Window)
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
}

// check reports whether cost c of the ledger's unit may be granted at now,
// and if not, the earliest time it might be (zero when never, because c is
// over the capacity).
func (d *ledger) check(now time.Time, c int64) (bool, time.Time) {
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
				return false, g.at.Add(d.policy.Window)
			}
		}
		// Only reachable if used is negative; fail safe, retry soon.
		return false, now.Add(time.Second)
	}
	if d.pacing(now) {
		if d.pacer.Burst() < int(c) {
			d.pacer.SetBurstAt(now, int(c))
		}
		tok := d.pacer.TokensAt(now)
		if tok < float64(c) {
			wait := time.Duration((float64(c)-tok)/float64(d.pacer.Limit())*float64(time.Second)) + time.Microsecond
			at := now.Add(wait)
			if at.After(d.pacedUntil) {
				at = d.pacedUntil
			}
			return false, at
		}
	}
	return true, time.Time{}
}

func (d *ledger) pacing(now time.Time) bool {
	return d.pacer != nil && now.Before(d.pacedUntil)
}

func (d *ledger) add(now time.Time, g *grant) {
	d.prune(now)
	d.log = append(d.log, g)
	c := g.cost[d.policy.Unit]
	d.used += c
	if c > 0 && d.pacing(now) {
		d.pacer.AllowN(now, int(c))
	}
}

// adjust records that g's cost in the ledger's unit changed by delta; it
// matters only while g is still in the window.
func (d *ledger) adjust(now time.Time, g *grant, delta int64) {
	d.prune(now)
	if g.at.After(now.Add(-d.policy.Window)) {
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
	return d.log[len(d.log)-1].at.Add(d.policy.Window)
}

// startPacing makes grants from t on trickle at the policy's average rate,
// with a burst of a twentieth of the capacity, for at most one window or a
// minute: enough to spread a released backlog, short enough that a long
// window's quota is not held back for hours.
func (d *ledger) startPacing(t time.Time) {
	every := float64(d.cap) / d.policy.Window.Seconds()
	if every <= 0 {
		return
	}
	d.pacer = rate.NewLimiter(rate.Limit(every), int(max(1, d.cap/20)))
	d.pacer.AllowN(t, 0) // anchor the bucket at t, full
	d.pacedUntil = t.Add(min(d.policy.Window, time.Minute))
}

// A budget is what the provider's headers said is left of one limit: at
// most remaining more of unit may be granted until the limit resets. Grants
// the provider cannot have counted yet when it answered are charged to it:
// every grant after the reporting call, and every call in flight then.
type budget struct {
	unit      Unit
	name      string // the provider's name for the limit, if any
	limit     int64  // the provider's quota, 0 when not given
	window    time.Duration
	remaining int64 // after headroom
	since     uint64
	spent     int64
	until     time.Time
	source    string  // "headers" or "state"
	ledger    *ledger // the policy it tells about, nil when none is known
}

func (b *budget) check(now time.Time, c int64) (bool, time.Time) {
	if c <= 0 || !now.Before(b.until) {
		return true, time.Time{}
	}
	if b.spent+c > b.remaining {
		return false, b.until
	}
	return true, time.Time{}
}
