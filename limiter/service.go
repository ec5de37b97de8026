package limiter

import (
	"slices"
	"time"
)

// This file holds a service's state: its ledgers, budgets, cooldown and
// queue counters, and what ends a cooldown or a spent budget.

// A service owns its queue, its ledgers (configured and learned), the
// budgets its headers reported, and its cooldown.
type service struct {
	name       string
	cfg        ServiceConfig
	policies   []*ledger // from config
	learned    []*ledger // from headers
	budgets    []*budget
	recent     []*grant // grants since the oldest one still in flight
	learnedAny bool

	clusterShare float64 // fraction of every capacity this daemon may use (share.go); 1 alone

	classes [3]class // Low, Normal, High
	queued  int
	// credit is what each lower level (Low, Normal) is owed of the
	// grants, and lastFloor says the last grant was owed: see floor.go.
	credit    [2]float64
	lastFloor bool

	inFlight      int
	paused        bool
	removed       bool
	cooldownUntil time.Time
	cooldownSeq   uint64 // last grant before the cooldown began
	backoff       int    // 429s in a row without a retry time

	wakeAt    time.Time
	wakeTimer Timer
	wakeGen   uint64

	granted, refused, provider429 int64

	// Utilization windows (utilization.go), and the spacing of grants
	// after one of them held requests back.
	windows     []*uwindow
	resumeNext  time.Time
	resumeUntil time.Time
}

func newService(sc ServiceConfig) *service {
	s := &service{name: sc.Name, cfg: sc, clusterShare: 1}
	for _, p := range sc.Limits {
		s.policies = append(s.policies, newLedger(p, sc.Headroom, "config", true))
	}
	return s
}

func (s *service) reconfigure(now time.Time, sc ServiceConfig) {
	old := append(slices.Clone(s.policies), s.learned...)
	s.cfg = sc
	s.policies = rebuildLedgers(now, old, sc.Limits, sc.Headroom, true)
	// A learned policy of a unit now configured gives way to the config.
	s.learned = slices.DeleteFunc(s.learned, func(d *ledger) bool {
		return slices.ContainsFunc(s.policies, func(p *ledger) bool { return p.policy.Unit == d.policy.Unit })
	})
	for _, d := range s.learned {
		d.setQuota(d.policy.Quota, sc.Headroom)
	}
}

// ledgers returns the configured and the learned ledgers.
func (s *service) ledgers() []*ledger {
	if len(s.learned) == 0 {
		return s.policies
	}
	return append(slices.Clone(s.policies), s.learned...)
}

// record charges a grant to every ledger and budget of the service.
func (s *service) record(now time.Time, g *grant, backlog bool) {
	for _, d := range s.policies {
		d.add(now, g, backlog)
	}
	for _, d := range s.learned {
		d.add(now, g, backlog)
	}
	for _, b := range s.budgets {
		b.spent += g.cost[b.unit]
	}
	s.recent = append(s.recent, g)
}

func (s *service) stopWake() {
	if s.wakeTimer != nil {
		s.wakeTimer.Stop()
		s.wakeTimer = nil
	}
	s.wakeAt = time.Time{}
	s.wakeGen++
}

// blockedByProvider returns until when the provider has closed the service
// to a request costing c: a cooldown, or a header budget that is spent.
// Zero means not blocked by the provider.
func (s *service) blockedByProvider(now time.Time, c Cost) time.Time {
	var until time.Time
	if now.Before(s.cooldownUntil) {
		until = s.cooldownUntil
	}
	for _, b := range s.budgets {
		if ok, at := b.check(now, c[b.unit]); !ok && at.After(until) {
			until = at
		}
	}
	return until
}

func (l *Limiter) concurrencyCap(s *service) int {
	if s.cfg.MaxConcurrent > 0 {
		return s.cfg.MaxConcurrent
	}
	if len(s.cfg.Limits) == 0 && !s.learnedAny {
		return l.cfg.LearnConcurrency
	}
	return 0
}

// settle ends a cooldown that is over and drops budgets past their reset;
// either starts pacing, so the backlog is not released at once.
func (l *Limiter) settle(s *service, now time.Time) {
	if !s.cooldownUntil.IsZero() && !now.Before(s.cooldownUntil) {
		for _, d := range s.ledgers() {
			d.startPacing(s.cooldownUntil)
		}
		if len(s.windows) > 0 {
			// Subscription services often have no ledgers to pace with.
			s.startResume(s.cooldownUntil)
		}
		s.cooldownUntil = time.Time{}
	}
	s.settleWindows(now)
	s.budgets = slices.DeleteFunc(s.budgets, func(b *budget) bool {
		if now.Before(b.until) {
			return false
		}
		if b.spent >= b.remaining {
			for _, d := range s.ledgers() {
				if d.policy.Unit == b.unit {
					d.startPacing(b.until)
				}
			}
		}
		return true
	})
	i := 0
	for i < len(s.recent) && !s.recent[i].open {
		s.recent[i] = nil
		i++
	}
	s.recent = s.recent[i:]
	if len(s.recent) == 0 {
		s.recent = nil
	}
}
