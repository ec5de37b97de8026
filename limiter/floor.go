package limiter

import (
	"slices"
	"time"
)

// Rule 2, no starvation: between priorities the order is strict, except
// that each lower level is owed a floor share of the service's grants while
// it waits (Config.NormalShare, Config.LowShare), and a lower request that
// has waited Config.MaxAging is served at its level's next owed grant,
// oldest first.
//
// The books are one credit per lower level. Every grant adds the level's
// share to its credit while the level waits (at most up to 1: nothing is
// banked for later bursts); every grant to the level, owed or not, takes 1
// off (down to -1), so a level that is served anyway is owed nothing. A level is owed a grant when its credit reaches 1, or, for
// an aged request, as soon as it is not negative: aging moves an owed grant
// earlier, it does not add one. So under saturation by higher levels a
// level receives its share, give or take a grant, however many of its
// requests have aged (aging promotes one request at a time, never a whole
// level), and a request waits at most MaxAging plus about 1/share grant
// intervals for each aged request of its level ahead of it. Two owed
// grants never follow each other while a higher level waits: a high
// request waits at most one owed grant beyond the pacing.

// creditSlack absorbs the rounding of adding shares: ten grants of 0.1 make
// a whole one.
const creditSlack = 1e-9

// floorShare is the share owed to class ci (Low 0, Normal 1; High none).
func (l *Limiter) floorShare(ci int) float64 {
	switch ci {
	case int(Low) - 1:
		return l.cfg.LowShare
	case int(Normal) - 1:
		return l.cfg.NormalShare
	}
	return 0
}

// owedLevel returns the lower class (below top) owed the next grant, or -1.
// Of two owed at once, the one with more credit goes first, then the higher.
func (l *Limiter) owedLevel(s *service, cands []candidate, top int, now time.Time) int {
	if s.lastFloor {
		return -1
	}
	owed, credit := -1, 0.0
	for ci := top - 1; ci >= 0; ci-- {
		if !slices.ContainsFunc(cands, func(c candidate) bool { return c.ci == ci }) {
			continue
		}
		c := s.credit[ci]
		due := c >= 1-creditSlack || (c >= -creditSlack && l.oldestAged(cands, ci, now) != nil)
		if due && (owed < 0 || c > credit) {
			owed, credit = ci, c
		}
	}
	return owed
}

// oldestAged returns the oldest candidate of class ci that has waited
// MaxAging, or nil. Only heads are candidates: an agent's own requests keep
// their order.
func (l *Limiter) oldestAged(cands []candidate, ci int, now time.Time) *waiter {
	var best *waiter
	for _, c := range cands {
		if c.ci == ci && now.Sub(c.w.enqueued) >= l.cfg.MaxAging && (best == nil || c.w.seq < best.seq) {
			best = c.w
		}
	}
	return best
}

// creditFloors updates the floor credits for a grant to w; floor says it
// was an owed grant (two never follow each other while a higher level
// waits).
func (l *Limiter) creditFloors(s *service, w *waiter, floor bool) {
	served := w.class
	for ci := range len(s.classes) - 1 {
		share := l.floorShare(ci)
		switch {
		case ci == served:
			// Any grant to the level counts against what it is owed: a
			// level served anyway (no one above it waiting) is owed
			// nothing, down to one grant's debt.
			s.credit[ci] = max(-1, s.credit[ci]+share-1)
		case len(s.classes[ci].active) > 0:
			s.credit[ci] = min(1, s.credit[ci]+share)
		default:
			// Not waiting: a debt is paid back over time, nothing is
			// banked.
			s.credit[ci] = min(0, s.credit[ci]+share)
		}
	}
	higherWaits := false
	for ci := served + 1; ci < len(s.classes); ci++ {
		higherWaits = higherWaits || len(s.classes[ci].active) > 0
	}
	s.lastFloor = floor && higherWaits
}
