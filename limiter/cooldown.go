package limiter

import "time"

// Rule 5, cooldown: a 429 (or 503 with a retry time, or a 403 saying the
// budget is spent) puts the service into one cooldown; refusals carry a
// jittered retry time.

// jitter spreads retry times of refused agents: up to a tenth of d more,
// and at least up to a quarter second, so agents do not return together.
func (l *Limiter) jitter(d time.Duration) time.Duration {
	d = max(d, 0)
	span := max(d/10, 250*time.Millisecond)
	return d + time.Duration(l.rng.Int64N(int64(span)))
}

// Default cooldown after a 429 that carries no retry time: full jitter over
// an exponentially growing cap, from 1 s doubling to 60 s.
const (
	backoffBase = time.Second
	backoffMax  = 60 * time.Second
)

// observe applies what one provider response says to s: the header
// observation, and a cooldown when the status says the provider refused.
func (l *Limiter) observe(s *service, a *agent, ls *lease, r Report, p parsed, now time.Time) ReportResult {
	obs := p.obs
	if (len(r.Header) > 0 || hasErrorBody(r)) && (!p.done || p.dialect != s.cfg.Dialect) {
		// Parsed for another dialect: the configuration changed meanwhile,
		// or the report named another service than its lease's. Rare;
		// its notes go unlogged, the lock being held.
		obs = l.parse(s.cfg.Dialect, r.Header, now)
		if hasErrorBody(r) {
			ParseErrorBody(s.cfg.Dialect, r.Body, now, &obs)
		}
	}
	w := warner{service: s.name}
	s.boundObservation(&obs, now, &w)
	l.settle(s, now)
	// The provider's answer counts the reporting call and, as far as can be
	// known, every call granted before it (they were sent first). A report
	// without a lease is taken as current.
	since := l.seq
	if ls != nil {
		since = ls.g.seq
	}
	l.applyObservation(s, obs, since, now)
	l.applyWindows(s, obs, now)
	// A refusal that names a subscription window lasts until that
	// window's reset: a 5-hour rejection does not wait for the weekly
	// reset, and a weekly one does not end after 5 hours.
	rej := windowRejection(s, obs, r.Status, now)
	if rej != nil {
		rej = s.boundRejection(rej, obs, now, w.warn)
		s.markRejected(rej, now)
	}

	if r.Status >= 200 && r.Status < 300 {
		s.backoff = 0
	}
	spent := false
	for _, ol := range obs.Limits {
		spent = spent || (ol.HasRemaining && ol.Remaining <= 0)
	}
	refused := rej != nil || r.Status == 429 ||
		(r.Status == 503 && obs.HasRetryAfter) ||
		(r.Status == 403 && (obs.HasRetryAfter || spent))
	if r.Status == 429 {
		s.provider429++
		if ls != nil {
			ls.refused = true
		}
	}
	var res ReportResult
	if refused {
		var d time.Duration
		switch {
		case rej != nil:
			d = rej.Until.Sub(now)
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
	res.Warnings = w.out
	return res
}
