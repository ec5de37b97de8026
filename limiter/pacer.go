package limiter

import (
	"time"

	"golang.org/x/time/rate"
)

// Rule 2, even spacing: the pacer spreads a backlog's grants at the
// policy's rate instead of letting it take the quota in one burst.

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
