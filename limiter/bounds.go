package limiter

import (
	"fmt"
	"slices"
	"time"
)

// Rules 4 and 5, bounded: headers are ground truth, but one answer of a
// broken or hostile upstream may not freeze a service for a month. A
// cooldown, the reset of a spent limit and a learned window are each held
// to the service's MaxHold (by default its dialect's, DefaultMaxHold);
// what was cut is said in ReportResult.Warnings for the daemon to log, and
// Reset clears what an answer left.

// dialectMaxHold is the longest any provider of a dialect documents for a
// limit's window or retry time, with room: OpenAI and Anthropic API limits
// go up to a day (requests per day); GitHub's windows are an hour; the
// IETF fields and unknown providers get a day too.
var dialectMaxHold = map[Dialect]time.Duration{
	DialectAll:       24 * time.Hour,
	DialectOpenAI:    24 * time.Hour,
	DialectAnthropic: 24 * time.Hour,
	DialectGitHub:    2 * time.Hour,
	DialectIETF:      24 * time.Hour,
}

// DefaultMaxHold is the MaxHold of a service of dialect d that sets none:
// a day, or for GitHub two hours.
func DefaultMaxHold(d Dialect) time.Duration {
	if h, ok := dialectMaxHold[d]; ok {
		return h
	}
	return 24 * time.Hour
}

func (s *service) maxHold() time.Duration {
	if s.cfg.MaxHold > 0 {
		return s.cfg.MaxHold
	}
	return DefaultMaxHold(s.cfg.Dialect)
}

// boundObservation caps what obs may impose on s at now, and says what it
// cut.
func (s *service) boundObservation(obs *Observation, now time.Time, w *warner) {
	hold := s.maxHold()
	if obs.HasRetryAfter && obs.RetryAfter > hold {
		w.warn("the provider asked to retry after %v; held to %v (max_hold)", obs.RetryAfter, hold)
		obs.RetryAfter = hold
	}
	for i := range obs.Limits {
		ol := &obs.Limits[i]
		if limit := now.Add(hold); ol.Reset.After(limit) {
			w.warn("the provider's %s limit resets in %v; held to %v (max_hold)", ol.Unit, ol.Reset.Sub(now).Round(time.Second), hold)
			ol.Reset = limit
		}
		if ol.Window > hold {
			w.warn("the provider's %s limit has a window of %v; held to %v (max_hold)", ol.Unit, ol.Window, hold)
			ol.Window = hold
		}
	}
}

// maxEstimates is how many window estimates a learned policy keeps: its
// window is the longest of them, so one too long (a reset far out) gives
// way to honest ones after that many answers.
const maxEstimates = 32

// estimate records an estimate of a learned policy's window and returns the
// window: the longest of the last maxEstimates.
func (d *ledger) estimate(w time.Duration) time.Duration {
	if len(d.estimates) == 0 {
		d.estimates = append(d.estimates, d.policy.Window)
	}
	if len(d.estimates) >= maxEstimates {
		d.estimates = slices.Delete(d.estimates, 0, len(d.estimates)-maxEstimates+1)
	}
	d.estimates = append(d.estimates, w)
	return slices.Max(d.estimates)
}

// Reset clears what the provider's answers left on service: its cooldown
// and backoff, the budgets its headers set, and the limits it learned. The
// configured limits and the log of grants stay (they are what was really
// sent); the waiting backlog resumes paced. It is the way out of a
// cooldown or a learned limit that is wrong.
func (l *Limiter) Reset(service string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	s, err := l.lookupService(service)
	if err != nil {
		return err
	}
	now := l.clock.Now()
	s.cooldownUntil, s.cooldownSeq, s.backoff = time.Time{}, 0, 0
	s.budgets = nil
	s.learned = nil
	s.learnedAny = false
	for _, d := range s.policies {
		d.startPacing(now)
	}
	l.dispatch(s)
	l.notify()
	return nil
}

// clampUsage holds every figure of a usage to maxCount: a provider's usage
// beyond it is nonsense, but the call ran and its report must still end
// its lease.
func clampUsage(u Cost, w *warner) {
	for unit, n := range u {
		if n > maxCount {
			w.warn("usage %s %d is beyond %d; counted as %d", unit, n, int64(maxCount), int64(maxCount))
			u[unit] = maxCount
		}
	}
}

// warner collects a report's warnings, each naming the service.
type warner struct {
	service string
	out     []string
}

func (w *warner) warn(format string, args ...any) {
	w.out = append(w.out, fmt.Sprintf("service %q: ", w.service)+fmt.Sprintf(format, args...))
}
