package limiter

// This file is the limiter's side of sharing a service between daemons (the
// cluster package does the talking): a share of the service's capacity set
// at run time, a cooldown another daemon saw, limits another daemon learned,
// and the demand this daemon states for its share. It stays pure logic.

import (
	"math"
	"time"
)

// Demand is what one daemon needs of a shared service, read by Demand for
// the cluster's fair-share allocation.
type Demand struct {
	// Queued is how many requests wait; Backlog is Queued > 0.
	Queued  int
	Backlog bool
	// Top is the highest priority that has a request waiting
	// (PriorityUnset when none waits).
	Top Priority
	// Weight is the sum of the weights of the agents waiting at Top, 1
	// when none waits: busy daemons share by their waiting agents' weights.
	Weight float64
	// Used is the largest fraction of any policy's capacity that this
	// daemon's grants still in the window take, in [0, 1+]; it bounds what
	// this daemon can add to any window from now on together with Share.
	Used float64
	// Share is the fraction of the capacity this daemon may use now.
	Share float64
	// CooldownUntil is the service's cooldown, zero when none.
	CooldownUntil time.Time
	// Provider429 counts the 429s reported to this daemon.
	Provider429 int64
	// Learned are the policies learned from headers.
	Learned []Policy
	// Span is the longest time a grant stays in any policy's log: what a
	// grant made now weighs on the provider's windows for.
	Span time.Duration
}

// SetShare sets the fraction of each of the service's capacities (its
// configured and learned policies, less headroom) that this daemon may use
// in any window: 1 when the daemon has the service to itself (the default),
// less when other daemons share it. A request that fits the whole capacity
// but not the share waits for the share to grow or the window to free; it
// is never refused as too big. Lowering the share grants nothing new until
// what is logged fits under it.
func (l *Limiter) SetShare(service string, share float64) error {
	if math.IsNaN(share) || share < 0 || share > 1 {
		return badRequest("share %v must be between 0 and 1", share)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return err
	}
	if s.clusterShare == share {
		return nil
	}
	s.clusterShare = share
	l.dispatch(s)
	l.notify()
	return nil
}

// ApplyCooldown puts the service into a cooldown until until, as a 429 seen
// by another daemon does; a longer cooldown already running is kept. It
// counts no refusal and no 429 here (this daemon was not refused).
func (l *Limiter) ApplyCooldown(service string, until time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return err
	}
	now := l.clock.Now()
	if !until.After(now) || !until.After(s.cooldownUntil) {
		return nil
	}
	if !now.Before(s.cooldownUntil) {
		s.cooldownSeq = l.seq
	}
	s.cooldownUntil = until
	l.dispatch(s)
	l.notify()
	return nil
}

// LearnLimits adds policies another daemon learned from the provider's
// headers, as if this daemon had seen them: a unit the config limits is
// left to the config, and a known policy's quota is updated.
func (l *Limiter) LearnLimits(service string, ps []Policy) error {
	if err := validatePolicies(ps); err != nil {
		return badRequest("learned limits: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return err
	}
	now := l.clock.Now()
	changed := false
	for _, p := range ps {
		configured := false
		for _, d := range s.policies {
			configured = configured || d.policy.Unit == p.Unit
		}
		if configured {
			continue
		}
		known := false
		for _, d := range s.learned {
			known = known || (d.policy == p)
		}
		if known {
			continue
		}
		s.learnedAny = true
		l.learn(s, ObservedLimit{Unit: p.Unit, Limit: p.Quota, Window: p.Window}, now)
		changed = true
	}
	if changed {
		l.dispatch(s)
		l.notify()
	}
	return nil
}

// Demand reads what the service needs here now (see Demand).
func (l *Limiter) Demand(service string) (Demand, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return Demand{}, err
	}
	now := l.clock.Now()
	l.settle(s, now)
	d := Demand{Queued: s.queued, Backlog: s.queued > 0, Share: s.clusterShare, Provider429: s.provider429, Weight: 1}
	if now.Before(s.cooldownUntil) {
		d.CooldownUntil = s.cooldownUntil
	}
	for ci := len(s.classes) - 1; ci >= 0; ci-- {
		if len(s.classes[ci].active) == 0 {
			continue
		}
		d.Top = Priority(ci + 1)
		d.Weight = 0
		for _, f := range s.classes[ci].active {
			d.Weight += f.agent.weight()
		}
		break
	}
	for _, dl := range s.ledgers() {
		dl.prune(now)
		if dl.cap > 0 {
			d.Used = max(d.Used, float64(dl.used)/float64(dl.cap))
		}
		d.Span = max(d.Span, dl.span())
	}
	for _, dl := range s.learned {
		d.Learned = append(d.Learned, dl.policy)
	}
	return d, nil
}

// checkShare is check with the capacity cut to share of it: a cost that
// fits the capacity but not the share waits (never "never": the share may
// grow) until enough of the log leaves the window, or for a window when
// even an empty log would not hold it.
func (d *ledger) checkShare(now time.Time, c int64, backlog bool, share float64) (bool, time.Time) {
	if share >= 1 || c <= 0 || c > d.cap {
		return d.check(now, c, backlog)
	}
	// The cluster rounds shares down to a millionth; the thousandth of a
	// unit added back keeps three thirds of 60 at 20 each (not 19), and
	// cannot lift the sum of fewer than 1000 daemons' floors over the
	// capacity.
	limit := int64(math.Floor(share*float64(d.cap) + 1e-3))
	d.prune(now)
	if need := d.used + c - limit; need > 0 {
		var freed int64
		for _, g := range d.log {
			freed += g.cost[d.policy.Unit]
			if freed >= need {
				return false, g.at.Add(d.span())
			}
		}
		// Not even an empty log fits under the share: wait for a new
		// share (SetShare dispatches) or, failing that, a window.
		return false, now.Add(d.span())
	}
	return d.check(now, c, backlog)
}
