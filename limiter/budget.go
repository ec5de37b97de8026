package limiter

import "time"

// Rule 4, provider headers are ground truth: a budget is what the
// provider said is left of one limit until its reset.

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
