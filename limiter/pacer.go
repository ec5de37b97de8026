package limiter

import (
	"time"

	"golang.org/x/time/rate"
)

// Rule 2, even spacing: under a backlog, grants go out evenly spaced at
// the policy's rate (quota per window), one at a time, so no window starts
// with a herd; only a caller that finds the service idle gets a burst.
//
// The log alone (ledger.go) would let a backlog take a whole quota in one
// instant and then, a window later when those grants leave the log
// together, again: grants would come in synchronized bursts, and a request
// arriving in between would wait for the next one. A token bucket with a
// burst does not cure that: while the log is full the bucket refills, and
// its burst goes out the moment the log frees, in step with the last one.
// So a request policy's pacer holds no more than one grant: a bucket as
// large as the largest single cost it has charged (one request at a time:
// one), a grant passes when the bucket holds its cost (or is full), and
// under a backlog it spaces grants 1/rate apart, exactly what the log can
// take, so the log never binds and never frees in a lump. In any quarter
// of a window a backlog then gets at most a quarter of the quota plus one
// grant. Token policies bank more (see paceBurst); the request policy
// spaces their grants.
//
// The burst is kept for idleness instead: a grant that, logged, leaves at
// most the idle burst in the window (a tenth of the quota; for small
// quotas up to 10, but at most half) passes without the pacer, so a lone caller's
// few calls go at once. That cannot repeat under a backlog, whose log
// stays near the quota; after a cooldown or a spent budget it is off for a
// window, so the backlog that waited trickles out paced.
//
// Which grants are paced depends on the window. Up to a minute (the
// per-minute quotas of most APIs), every grant beyond the idle burst. Up
// to an hour, only a backlog (requests waiting behind others): a lone
// caller of "1000 tokens/1h" would otherwise wait minutes between calls.
// Longer windows ("40 requests/5h", meant to be used in bursts) only for a
// minute after a cooldown.
const (
	alwaysPaced = time.Minute
	pacedWindow = time.Hour
)

func (d *ledger) paced(now time.Time) bool {
	return d.policy.Window <= pacedWindow || now.Before(d.pacedUntil)
}

// idleBurst is how much of the window's capacity may be logged for a grant
// to pass without the pacer: a tenth of the capacity, and for small
// quotas up to 10, but never more than half of it (at least one). Half at
// most, so that a backlog that began with the burst is still being paced
// when the burst leaves the log a window later: the log is then half full,
// not idle, and the burst does not come again.
func idleBurst(capacity int64) int64 {
	return max(1, min(capacity/2, max(capacity/10, 10)))
}

// idle reports whether a cost of c finds the ledger idle at now: logged, it
// leaves at most the idle burst in the window. The log must be pruned.
func (d *ledger) idle(now time.Time, c int64) bool {
	return d.even && d.used+c <= idleBurst(d.cap) && !now.Before(d.burstAfter)
}

// A pacer is a token bucket at a policy's rate (capacity per span) holding
// at most one grant: see above. A cost above the burst passes when the
// bucket is full and leaves it in debt. The arithmetic is x/time/rate's
// (rate.Limit, tokens from elapsed time, capped at the burst), but a
// rate.Limiter cannot take tokens back once a reservation's time has
// passed, and usage reports refund estimates long after the grant, so the
// bucket is kept here.
//
// A refund (a report whose usage is below the estimate charged) gives its
// tokens back even above the one unit, up to maxBank: under a backlog they
// are spent at once on the next grants, so the pacer spaces what calls
// really cost, not their estimates.
type pacer struct {
	rate    rate.Limit
	burst   float64
	tokens  float64
	last    time.Time // zero: never used, full
	maxBank float64   // the most refunds may raise tokens to
}

// paceBurst is the pacer's least capacity: one unit.
const paceBurst = 1

// maxLateness is how late a wake-up may fire without costing the backlog
// its slot: a timer on a busy machine fires a little after its time, and a
// bucket of exactly one grant would lose that time at every grant.
const maxLateness = 10 * time.Millisecond

// lateness is the room a request pacer keeps beyond one grant for its
// timers' lateness: maxLateness at the policy's rate, at most one grant.
// It fills only when a wake-up is late (or the service idles): a backlog
// whose timers fire on time never holds more than one grant, and one that
// catches up after a late one takes at most one grant more in a quarter
// window. Per-minute quotas up to 1,500 keep less than a quarter of a
// grant; the compressed benchmark (a minute in a second) keeps one.
func (d *ledger) lateness() float64 {
	return min(1, maxLateness.Seconds()*float64(d.cap)/d.span().Seconds())
}

// paceBurst is the ledger's pacer capacity. For requests, one grant: the
// largest cost charged, so a backlog's grants are evenly spaced. For the
// other units (tokens) a tenth of the capacity (at least 10, or all of a
// smaller one): calls vary in size, and while the request policy holds a
// small call back, the token bucket must bank what it leaves, or the
// tokens of the large calls that follow are lost; the request pacer still
// spaces the grants.
//
// An agent's own cap is not spaced: its pacer keeps that tenth whatever the
// unit, since a burst within one agent's cap holds back no one else.
func (d *ledger) paceBurst() float64 {
	if d.even && d.policy.Unit == Requests {
		return float64(max(paceBurst, min(d.maxCost, d.cap))) + d.lateness()
	}
	return float64(max(1, d.cap/10, min(d.cap, 10), min(d.maxCost, d.cap)))
}

func (p *pacer) level(now time.Time) float64 {
	if p.last.IsZero() {
		return p.burst
	}
	if !now.After(p.last) || p.tokens >= p.burst {
		return p.tokens // refunds above the burst do not grow
	}
	return min(p.burst, p.tokens+now.Sub(p.last).Seconds()*float64(p.rate))
}

// add takes n tokens, possibly into debt; a negative n (a refund) gives
// them back, up to maxBank.
func (p *pacer) add(now time.Time, n float64) {
	lvl := p.level(now)
	if n < 0 {
		p.tokens = max(lvl, min(max(p.burst, p.maxBank), lvl-n))
	} else {
		p.tokens = min(max(p.burst, lvl), lvl-n)
	}
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

// paceRate is the pacer's rate: the capacity per span, less what the idle
// burst took of the current window. Without that, a backlog that began
// with a burst would be paced at the full rate on top of it, fill the log
// before the window ends and stall there for the burst's length: the
// requests arriving meanwhile would wait that long.
func (d *ledger) paceRate() rate.Limit {
	return rate.Limit(float64(max(1, d.cap-d.burstUsed)) / d.span().Seconds())
}

// setRate changes the rate from now on.
func (p *pacer) setRate(now time.Time, r rate.Limit) {
	if !p.last.IsZero() && now.After(p.last) {
		p.tokens, p.last = p.level(now), now
	}
	p.rate = r
}

// startPacing marks t, the end of a cooldown or of a spent budget: the
// backlog waiting for that moment is paced from it, without the idle
// burst for a window, instead of being released at once. A long window,
// not paced otherwise, is paced for a minute.
//
// One grant may go at t itself: the pacer holds exactly one. A long window
// keeps a twentieth of its capacity: its rate (a quota per hours) would
// hold the backlog far longer than the provider does, whose own refill,
// when its headers tell it, paces the backlog through the budget.
func (d *ledger) startPacing(t time.Time) {
	keep := float64(paceBurst)
	if d.policy.Window > pacedWindow {
		keep = float64(max(paceBurst, d.cap/20))
	}
	d.pace.tokens, d.pace.last = keep, t
	d.burstAfter = t.Add(d.span())
	if d.policy.Window > pacedWindow {
		d.pacedUntil = t.Add(time.Minute)
	}
}
