package limiter

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Rule 4, provider headers are ground truth: an observation sets the
// service's budgets, and a service without configured limits learns them.

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
			// An estimate too short would let through more than the
			// provider allows: the window is the longest of the recent
			// estimates, so it lengthens at once and shortens only once
			// a long one is no longer among them (a reset far out, from
			// a broken answer, gives way to the honest ones).
			if ol.Window == 0 && w > 0 {
				w = d.estimate(w)
			}
			if w > 0 && w != d.policy.Window {
				d.policy.Window = w
			}
			d.setQuota(ol.Limit, s.cfg.Headroom)
			return d
		}
	}
	if w == 0 || len(s.learned) >= maxLearned {
		return nil
	}
	d := newLedger(Policy{Quota: ol.Limit, Unit: ol.Unit, Window: w}, s.cfg.Headroom, "headers", true)
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
	case DialectOpenAI, DialectAnthropic:
		return true
	case DialectIETF:
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
