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
//
// The log alone would let a backlog take a whole quota in one instant and
// then, a window later, again: grants would come in synchronized bursts and
// anyone arriving in between would wait for the next one. So a token bucket
// paces grants too (see pacer).
type ledger struct {
	policy Policy
	cap    int64  // quota minus headroom
	source string // "config" or "headers"
	log    []*grant
	used   int64 // sum of log[i].cost[policy.Unit]
	pace   pacer
	// pacedUntil ends the pacing of a long window after a cooldown.
	pacedUntil time.Time
}

// Which grants are paced depends on the window. Up to a minute (the
// per-minute quotas of most APIs), every grant: a lone caller's burst is
// then held to a tenth of the quota too, which costs it at most a few
// seconds and keeps it from taking a whole window in one instant that
// everyone else then waits out. Up to an hour, only a backlog (requests
// waiting behind others): a lone caller of "1000 tokens/1h" would
// otherwise wait minutes between calls. Longer windows ("40 requests/5h",
// meant to be used in bursts) only for a minute after a cooldown.
const (
	alwaysPaced = time.Minute
	pacedWindow = time.Hour
)

func newLedger(p Policy, headroom float64, source string) *ledger {
	d := &ledger{policy: p, source: source}
	d.setQuota(p.Quota, headroom)
	return d
}

// setQuota sets the quota and, from it and the window, the pacer.
func (d *ledger) setQuota(q int64, headroom float64) {
	d.policy.Quota = q
	d.cap = max(0, q-int64(math.Floor(headroom*float64(q))))
	d.pace.rate = rate.Limit(float64(d.cap) / d.span().Seconds())
	burst := float64(max(1, d.cap/10, min(d.cap, 10)))
	if grow := burst - d.pace.burst; grow > 0 && !d.pace.last.IsZero() {
		d.pace.tokens += grow // a raised quota is there to use now
	}
	d.pace.burst = burst
}

func (d *ledger) paced(now time.Time) bool {
	return d.policy.Window <= pacedWindow || now.Before(d.pacedUntil)
}

// A pacer is a token bucket at a policy's average rate (quota per window)
// with a burst of a tenth of the quota (at least 10, or the whole quota when
// that is smaller); see alwaysPaced for which grants it holds back. It
// never lowers the long-run rate, which is all the log allows anyway; it
// only spreads grants out. A cost above the burst passes when the bucket is
// full and leaves it in debt. The arithmetic is x/time/rate's (rate.Limit,
// tokens from elapsed time, capped at the burst), but a rate.Limiter cannot
// take tokens back once a reservation's time has passed, and usage reports
// refund estimates long after the grant, so the bucket is kept here.
type pacer struct {
	rate   rate.Limit
	burst  float64
	tokens float64
	last   time.Time // zero: never used, full
}

func (p *pacer) level(now time.Time) float64 {
	if p.last.IsZero() {
		return p.burst
	}
	if !now.After(p.last) {
		return p.tokens
	}
	return min(p.burst, p.tokens+now.Sub(p.last).Seconds()*float64(p.rate))
}

// add takes n tokens (a negative n gives them back), possibly into debt.
func (p *pacer) add(now time.Time, n float64) {
	p.tokens = min(p.burst, p.level(now)-n)
	if now.After(p.last) {
		p.last = now
	}
}

// wait is how long until a cost of c may pass: when the bucket holds c, or
// is full for a cost above the burst.
func (p *pacer) wait(now time.Time, c float64) time.Duration {
	need := min(c, p.burst)
	lvl := p.level(now)
	if lvl >= need || p.rate <= 0 {
		return 0
	}
	// Rounded up by a microsecond so that the timer never fires a hair
	// early and finds the bucket still short.
	return time.Duration((need-lvl)/float64(p.rate)*float64(time.Second)) + time.Microsecond
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
	if (backlog || d.policy.Window <= alwaysPaced) && d.paced(now) {
		if w := d.pace.wait(now, float64(c)); w > 0 {
			return false, now.Add(w)
		}
	}
	return true, time.Time{}
}

// add logs g. A paced grant may leave the pacer in debt; an unpaced one
// only empties it, so a lone caller's calls never delay the pacing of a
// backlog that forms later.
func (d *ledger) add(now time.Time, g *grant, backlog bool) {
	d.prune(now)
	d.log = append(d.log, g)
	c := g.cost[d.policy.Unit]
	d.used += c
	if backlog || d.policy.Window <= alwaysPaced {
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

// startPacing empties the pacer down to a twentieth of the capacity at t,
// the end of a cooldown or of a spent budget, so that the backlog waiting
// for that moment trickles out at the policy's rate instead of all at once.
// A long window, not paced otherwise, is paced for a minute.
func (d *ledger) startPacing(t time.Time) {
	if keep := float64(max(1, d.cap/20)); d.pace.level(t) > keep {
		d.pace.add(t, d.pace.level(t)-keep)
	}
	if d.policy.Window > pacedWindow {
		d.pacedUntil = t.Add(time.Minute)
	}
}

// A budget is what the provider's headers said is left of one limit: at
// most remaining more of unit may be granted until the limit resets,
// counting every grant made after the reporting call (the provider had not
// seen those). Refilling providers (OpenAI, Anthropic: reset is "full
// again at") give back the used part, limit - remaining, steadily until the
// reset; a fixed window (GitHub) gives nothing back before it. Once the
// reset passes the budget is dropped and the policy's ledger rules alone.
type budget struct {
	unit      Unit
	name      string // the provider's name for the limit, if any
	limit     int64  // the provider's quota, 0 when not given
	window    time.Duration
	remaining int64 // after headroom
	refill    int64 // comes back linearly from at to until
	since     uint64
	spent     int64
	at, until time.Time
	source    string  // "headers", or "config" when restored from a configured limit
	ledger    *ledger // the policy it tells about, nil when none is known
}

// avail is what the budget allows at now.
func (b *budget) avail(now time.Time) float64 {
	a := float64(b.remaining - b.spent)
	if b.refill > 0 && now.After(b.at) {
		a += float64(b.refill) * min(1, float64(now.Sub(b.at))/float64(b.until.Sub(b.at)))
	}
	return a
}

// check reports whether cost c of the budget's unit may be granted at now,
// and if not when it may. A spent budget holds back every request, even one
// that does not name its unit: the provider would refuse it all the same.
func (b *budget) check(now time.Time, c int64) (bool, time.Time) {
	if !now.Before(b.until) {
		return true, time.Time{}
	}
	need := float64(max(c, 1))
	a := b.avail(now)
	if c == 0 && a > 0 || a >= need {
		return true, time.Time{}
	}
	if b.refill <= 0 {
		return false, b.until
	}
	// When the refill brings avail up to need, rounded up a microsecond.
	frac := (need - float64(b.remaining-b.spent)) / float64(b.refill)
	at := b.at.Add(time.Duration(frac*float64(b.until.Sub(b.at))) + time.Microsecond)
	if at.After(b.until) || !at.After(now) {
		at = b.until
	}
	return false, at
}
