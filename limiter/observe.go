package limiter

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Default cooldown after a 429 that carries no retry time: full jitter over
// an exponentially growing cap, from 1 s doubling to 60 s.
const (
	backoffBase = time.Second
	backoffMax  = 60 * time.Second
)

// observe applies what one provider response says to s: the header
// observation, and a cooldown when the status says the provider refused.
func (l *Limiter) observe(s *service, a *agent, ls *lease, r Report, now time.Time) ReportResult {
	var obs Observation
	if len(r.Header) > 0 {
		obs = l.parse(s.cfg.Dialect, r.Header, now)
	}
	l.settle(s, now)
	// The provider's answer counts the reporting call and, as far as can be
	// known, every call granted before it (they were sent first). A report
	// without a lease is taken as current.
	since := l.seq
	if ls != nil {
		since = ls.g.seq
	}
	l.applyObservation(s, obs, since, now)

	if r.Status >= 200 && r.Status < 300 {
		s.backoff = 0
	}
	spent := false
	for _, ol := range obs.Limits {
		spent = spent || (ol.HasRemaining && ol.Remaining <= 0)
	}
	refused := r.Status == 429 ||
		(r.Status == 503 && obs.HasRetryAfter) ||
		(r.Status == 403 && (obs.HasRetryAfter || spent))
	if r.Status == 429 {
		s.provider429++
	}
	var res ReportResult
	if refused {
		var d time.Duration
		switch {
		case obs.HasRetryAfter:
			d = obs.RetryAfter
		case spent:
			// Until a spent fixed window resets; a refilling limit comes
			// back before its "full" time, and its budget tracks that.
			for _, ol := range obs.Limits {
				if ol.HasRemaining && ol.Remaining <= 0 && ol.Reset.After(now) && !refills(ol) {
					d = max(d, ol.Reset.Sub(now))
				}
			}
		}
		// A call granted before the current cooldown began says nothing
		// new: without a retry time of its own it neither grows the
		// backoff nor extends the cooldown.
		stale := now.Before(s.cooldownUntil) && ls != nil && ls.g.seq <= s.cooldownSeq
		if d <= 0 && !stale {
			s.backoff++
			capd := backoffMax
			if s.backoff < 7 {
				capd = min(backoffMax, backoffBase<<(s.backoff-1))
			}
			d = time.Duration(l.rng.Int64N(int64(capd)) + 1)
		}
		if !now.Before(s.cooldownUntil) {
			s.cooldownSeq = l.seq
		}
		if until := now.Add(d); d > 0 && until.After(s.cooldownUntil) {
			s.cooldownUntil = until
		}
		res.RetryAfter = l.jitter(s.cooldownUntil.Sub(now))
	}
	if now.Before(s.cooldownUntil) {
		res.CooldownUntil = s.cooldownUntil
	}
	return res
}

// applyObservation makes the headers ground truth: each limit with a
// remaining count becomes a budget until its reset, charged with every grant
// after the reporting call (seq > since); each limit with a quota, for a
// unit the config does not limit, becomes (or updates) a learned policy.
func (l *Limiter) applyObservation(s *service, obs Observation, since uint64, now time.Time) {
	for _, ol := range obs.Limits {
		if !knownUnit(ol.Unit) || (ol.Limit <= 0 && !ol.HasRemaining) {
			continue
		}
		s.learnedAny = true
		var match *ledger
		for _, d := range s.policies {
			if d.policy.Unit == ol.Unit && (match == nil || d.policy.Quota == ol.Limit || d.policy.Window == ol.Window) {
				match = d
			}
		}
		if match == nil && ol.Limit > 0 {
			match = l.learn(s, ol, now)
		}
		if !ol.HasRemaining {
			continue
		}
		limit, window := ol.Limit, ol.Window
		if match != nil {
			if limit == 0 {
				limit = match.policy.Quota
			}
			if window == 0 {
				window = match.policy.Window
			}
		}
		until := ol.Reset
		if until.IsZero() {
			until = now.Add(cmp.Or(window, time.Minute))
		}
		if !until.After(now) {
			continue // already reset: the observation is stale
		}
		b := &budget{
			unit: ol.Unit, limit: limit, window: window,
			remaining: ol.Remaining - int64(math.Floor(s.cfg.Headroom*float64(limit))),
			since:     since, at: now, until: until, source: "headers", ledger: match, name: ol.Name,
		}
		if ol.Approximate {
			b.remaining -= 500 // rounded to the nearest thousand: assume the worst
		}
		if refills(ol) && !ol.Reset.IsZero() && ol.Limit > ol.Remaining {
			b.refill = ol.Limit - ol.Remaining
		}
		for _, g := range s.recent {
			if g.seq > since {
				b.spent += g.cost[b.unit]
			}
		}
		s.budgets = slices.DeleteFunc(s.budgets, func(o *budget) bool {
			return o.unit == b.unit && o.name == b.name && (o.limit == b.limit || o.limit == 0 || b.limit == 0)
		})
		s.budgets = append(s.budgets, b)
		if len(s.budgets) > maxBudgets {
			// The oldest observation is the stalest: it gives way.
			s.budgets = slices.Delete(s.budgets, 0, len(s.budgets)-maxBudgets)
		}
	}
}

// maxBudgets and maxLearned bound what headers can make a service keep.
// Providers have a few limits each; a broken or hostile upstream naming a
// new limit or window in every answer must not grow the books without end
// (every learned policy logs every grant of its window, and every grant is
// checked against every budget).
const (
	maxBudgets = 32
	maxLearned = 8
)

// learn records or updates the learned policy that ol describes and returns
// its ledger, or nil when the window cannot be told.
func (l *Limiter) learn(s *service, ol ObservedLimit, now time.Time) *ledger {
	w := inferWindow(ol, now)
	for _, d := range s.learned {
		if d.policy.Unit == ol.Unit && (ol.Window == 0 || d.policy.Window == ol.Window) {
			// Estimates only ever lengthen the window: a too-short one
			// would let through more than the provider allows.
			if w > d.policy.Window {
				d.policy.Window = w
			}
			d.setQuota(ol.Limit, s.cfg.Headroom)
			return d
		}
	}
	if w == 0 || len(s.learned) >= maxLearned {
		return nil
	}
	d := newLedger(Policy{Quota: ol.Limit, Unit: ol.Unit, Window: w}, s.cfg.Headroom, "headers")
	src := s.recent
	for _, o := range s.ledgers() {
		if o.policy.Window >= w {
			src = o.log
			break
		}
	}
	d.seed(now, src)
	s.learned = append(s.learned, d)
	return d
}

// refills reports whether the limit's reset is "full again at" of a
// steadily refilling limit (OpenAI, Anthropic; also what the IETF fields
// describe when they come with a window), rather than the end of a fixed
// window (GitHub), before which nothing comes back.
func refills(ol ObservedLimit) bool {
	switch ol.Dialect {
	case "openai", "anthropic":
		return true
	case "ietf":
		return ol.Window > 0
	}
	return false
}

// standardWindows are the windows providers use: an estimate just short of
// one (the reset seen is always a little early) is taken as it.
var standardWindows = []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour}

// inferWindow returns the window of an observed limit: given, or estimated
// from its reset. Whatever the provider's model (sliding log, refilling
// bucket, fixed window), the time until the limit is full again is at most
// the window, and close to it whenever the limit was just used: so the
// estimate is the reset itself, and the caller keeps the longest seen.
func inferWindow(ol ObservedLimit, now time.Time) time.Duration {
	if ol.Window > 0 {
		return ol.Window
	}
	if !ol.Reset.After(now) {
		return 0
	}
	d := ol.Reset.Sub(now)
	for _, std := range standardWindows {
		if d >= std-std/10 && d <= std {
			return std
		}
	}
	return d
}
