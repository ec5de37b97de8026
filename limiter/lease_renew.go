package limiter

import (
	"fmt"
	"time"
)

// This file holds what a caller needs while a call is still under way: a
// lease whose call is streaming stays alive (Renew), and what the provider's
// response headers say counts from the moment they arrived, not from the end
// of a stream that may last minutes (Observe).

// Renew extends a held lease to one LeaseTTL from now and returns its new
// expiry: a call that is still streaming keeps its concurrency slot, and
// its final report still finds the lease. An unknown lease (reported,
// expired or made up) is an Error with CodeUnknownLease.
func (l *Limiter) Renew(id string) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return time.Time{}, &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	ls := l.leases[id]
	if ls == nil {
		return time.Time{}, &Error{Code: CodeUnknownLease, Message: fmt.Sprintf("lease %q is not held: it was reported already, expired, or never granted", id)}
	}
	if ls.timer != nil {
		ls.timer.Stop()
	}
	now := l.clock.Now()
	ls.expiresAt = now.Add(l.cfg.LeaseTTL)
	ls.timer = l.clock.AfterFunc(l.cfg.LeaseTTL, func() { l.expire(ls) })
	return ls.expiresAt, nil
}

// Observe applies what a provider's answer says (r.Status and r.Header:
// budgets, learned limits, a cooldown after a refusal) at once, without
// ending r.Lease and without charging anything; r.Usage is ignored. A
// caller that reads a long stream observes the headers when they arrive
// and reports the usage at the end, with Status 0 and no headers so that
// nothing is applied twice. Without a lease, r.Agent and r.Service name
// the call (an answer to a call that was never granted, such as a refused
// WebSocket upgrade).
func (l *Limiter) Observe(r Report) (ReportResult, error) {
	res, err := l.observeNow(r)
	l.logWarnings(res.Warnings)
	return res, err
}

func (l *Limiter) observeNow(r Report) (ReportResult, error) {
	p := l.parseReport(r)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ReportResult{}, &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	now := l.clock.Now()
	var (
		ls *lease
		s  *service
		a  *agent
	)
	if r.Lease != "" {
		if ls = l.leases[r.Lease]; ls == nil {
			return ReportResult{}, &Error{Code: CodeUnknownLease, Message: fmt.Sprintf("lease %q is not held: it was reported already, expired, or never granted", r.Lease)}
		}
		s, a = ls.svc, ls.g.agent
	} else {
		var err error
		if s, a, err = l.reportNames("an observation", r, now); err != nil {
			return ReportResult{}, err
		}
	}
	a.lastSeen = now
	res := l.observe(s, a, ls, r, p, now)
	l.dispatchAll()
	l.notify()
	return res, nil
}
