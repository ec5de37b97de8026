package limiter_test

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
	"github.com/quotabar/quotabar/limiter"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newLim(t testing.TB, cfg limiter.Config) (*limiter.Limiter, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New(t0)
	l, err := limiter.New(cfg, limiter.WithClock(clk))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l.Seed(1)
	t.Cleanup(l.Close)
	return l, clk
}

func pol(q int64, u limiter.Unit, w time.Duration) limiter.Policy {
	return limiter.Policy{Quota: q, Unit: u, Window: w}
}

func svcCfg(name string, ps ...limiter.Policy) limiter.ServiceConfig {
	return limiter.ServiceConfig{Name: name, Limits: ps}
}

func submit(t testing.TB, l *limiter.Limiter, req limiter.Request) *limiter.Pending {
	t.Helper()
	p, err := l.Submit(req)
	if err != nil {
		t.Fatalf("Submit(%+v): %#v", req, err)
	}
	return p
}

// granted returns the lease when p was granted, failing on a refusal.
func granted(t testing.TB, p *limiter.Pending) (limiter.Lease, bool) {
	t.Helper()
	ls, err, ok := p.Poll()
	if !ok {
		return limiter.Lease{}, false
	}
	if err != nil {
		t.Fatalf("want a grant, got %#v", err)
	}
	return ls, true
}

func refused(t testing.TB, err error, want limiter.Reason) *limiter.RefusedError {
	t.Helper()
	var re *limiter.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("want a refusal %q, got %#v", want, err)
	}
	if re.Reason != want {
		t.Fatalf("want reason %q, got %#v", want, re)
	}
	return re
}

func code(t testing.TB, err error, want limiter.Code) *limiter.Error {
	t.Helper()
	var e *limiter.Error
	if !errors.As(err, &e) {
		t.Fatalf("want error code %q, got %#v", want, err)
	}
	if e.Code != want {
		t.Fatalf("want code %q, got %#v", want, e)
	}
	return e
}

func serviceStatus(t testing.TB, l *limiter.Limiter, name string) limiter.ServiceStatus {
	t.Helper()
	for _, s := range l.Status().Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("service %q not in status", name)
	return limiter.ServiceStatus{}
}

func agentStatus(t testing.TB, l *limiter.Limiter, name string) limiter.AgentStatus {
	t.Helper()
	for _, a := range l.Status().Agents {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("agent %q not in status", name)
	return limiter.AgentStatus{}
}

// grantRec is one grant as the safety checker sees it.
type grantRec struct {
	at     time.Time
	amount int64
}

// maxInWindow returns the most usage any half-open window [s, s+w) holds,
// and where it starts. The maximum is reached by a window starting at a grant.
func maxInWindow(recs []grantRec, w time.Duration) (int64, time.Time) {
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].at.Before(recs[j].at) })
	var best, sum int64
	var at time.Time
	j := 0
	for i := range recs {
		// window [recs[i].at, recs[i].at+w)
		if i > 0 {
			sum -= recs[i-1].amount
		}
		if j < i {
			j, sum = i, 0
		}
		for j < len(recs) && recs[j].at.Before(recs[i].at.Add(w)) {
			sum += recs[j].amount
			j++
		}
		if sum > best {
			best, at = sum, recs[i].at
		}
	}
	return best, at
}

// runner drives pending requests with the fake clock: it advances in steps,
// collects grants and reports each lease at once (or after hold).
type runner struct {
	t       testing.TB
	l       *limiter.Limiter
	clk     *fakeclock.Clock
	pending []*limiter.Pending
	leases  []limiter.Lease
	errs    []error
}

func (r *runner) add(p *limiter.Pending) { r.pending = append(r.pending, p) }

// poll collects answers; report ends each new lease at once.
func (r *runner) poll(report bool) {
	keep := r.pending[:0]
	for _, p := range r.pending {
		ls, err, ok := p.Poll()
		switch {
		case !ok:
			keep = append(keep, p)
		case err != nil:
			r.errs = append(r.errs, err)
		default:
			r.leases = append(r.leases, ls)
			if report {
				if _, err := r.l.Report(limiter.Report{Lease: ls.ID}); err != nil {
					r.t.Fatalf("Report: %#v", err)
				}
			}
		}
	}
	r.pending = keep
}

// run advances the clock by step until d has passed, polling after each step.
func (r *runner) run(d, step time.Duration, report bool) {
	end := r.clk.Now().Add(d)
	r.poll(report)
	for r.clk.Now().Before(end) {
		r.clk.Advance(step)
		r.poll(report)
	}
}

func (r *runner) recs(u limiter.Unit) []grantRec {
	var out []grantRec
	for _, ls := range r.leases {
		out = append(out, grantRec{ls.GrantedAt, ls.Cost[u]})
	}
	return out
}

// span is how long the limiter keeps a grant of a policy with window w: the
// window plus a margin of 1% (at most 250 ms) for a call's way to the
// provider.
func span(w time.Duration) time.Duration { return w + min(w/100, 250*time.Millisecond) }
