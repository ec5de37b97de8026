package limiter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
	"github.com/quotabar/quotabar/limiter"
)

func renewLimiter(t *testing.T, cfg limiter.Config) (*limiter.Limiter, *fakeclock.Clock) {
	t.Helper()
	clk := fakeclock.New(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	l, err := limiter.New(cfg, limiter.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l, clk
}

func renewService(t *testing.T, l *limiter.Limiter) limiter.ServiceStatus {
	t.Helper()
	for _, s := range l.Status().Services {
		if s.Name == "s" {
			return s
		}
	}
	t.Fatal("service s missing from the status")
	return limiter.ServiceStatus{}
}

// A streaming call renews its lease: it keeps its slot past the TTL, and its
// final usage is charged (issue 12 item 7).
func TestRenewKeepsAStreamingLeaseAndItsUsage(t *testing.T) {
	l, clk := renewLimiter(t, limiter.Config{
		Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 1,
			Limits: []limiter.Policy{{Quota: 1000, Unit: limiter.Tokens, Window: time.Hour}}}},
		LeaseTTL: 2 * time.Second,
	})
	ls, err := l.Acquire(context.Background(), limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: 10}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // 4.5 s of streaming, more than twice the TTL
		clk.Advance(1500 * time.Millisecond)
		exp, err := l.Renew(ls.ID)
		if err != nil {
			t.Fatalf("Renew while streaming: %v", err)
		}
		if want := clk.Now().Add(2 * time.Second); !exp.Equal(want) {
			t.Errorf("renewed expiry %v, want %v", exp, want)
		}
		if got := renewService(t, l).InFlight; got != 1 {
			t.Fatalf("in flight %d while the stream runs, want 1", got)
		}
	}
	if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: 200, Usage: limiter.Cost{limiter.Tokens: 400}}); err != nil {
		t.Fatalf("final report after renewals: %v", err)
	}
	if got := renewService(t, l).Limits[0].Remaining; got != 600 {
		t.Errorf("remaining %d tokens after a 400-token stream, want 600", got)
	}

	// Without renewal the lease expires at its TTL, and Renew says so.
	ls2, err := l.Acquire(context.Background(), limiter.Request{Agent: "a", Service: "s"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	var le *limiter.Error
	if _, err := l.Renew(ls2.ID); !errors.As(err, &le) || le.Code != limiter.CodeUnknownLease {
		t.Errorf("Renew of an expired lease: %v, want %s", err, limiter.CodeUnknownLease)
	}
}

// Observe applies headers and refusals when they arrive, without ending the
// lease or charging anything (issue 12 items 3 and 6).
func TestObserveAppliesAtOnceWithoutEndingOrCharging(t *testing.T) {
	l, clk := renewLimiter(t, limiter.Config{
		Services: []limiter.ServiceConfig{{Name: "s",
			Limits: []limiter.Policy{{Quota: 100, Unit: limiter.Requests, Window: time.Hour}}}},
	})
	ls, err := l.Acquire(context.Background(), limiter.Request{Agent: "a", Service: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Observe(limiter.Report{Lease: ls.ID, Status: 200, Header: map[string]string{"x-ratelimit-limit-requests": "100"}}); err != nil {
		t.Fatal(err)
	}
	if st := renewService(t, l); st.InFlight != 1 || st.Limits[0].Remaining != 99 {
		t.Errorf("after Observe: in flight %d, remaining %d; want the lease held and one request charged (1, 99)", st.InFlight, st.Limits[0].Remaining)
	}
	// A refused call that was never granted: a cooldown, no charge.
	rr, err := l.Observe(limiter.Report{Agent: "a", Service: "s", Status: 429, Header: map[string]string{"retry-after": "5"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(5 * time.Second); !rr.CooldownUntil.Equal(want) {
		t.Errorf("cooldown until %v, want %v", rr.CooldownUntil, want)
	}
	if st := renewService(t, l); st.Limits[0].Remaining != 99 {
		t.Errorf("remaining %d after observing a refused upgrade, want 99 (nothing charged)", st.Limits[0].Remaining)
	}
	if _, err := l.Report(limiter.Report{Lease: ls.ID}); err != nil {
		t.Fatalf("the lease must still be reportable after Observe: %v", err)
	}
	var le *limiter.Error
	if _, err := l.Observe(limiter.Report{Lease: ls.ID, Status: 200}); !errors.As(err, &le) || le.Code != limiter.CodeUnknownLease {
		t.Errorf("Observe of a reported lease: %v, want %s", err, limiter.CodeUnknownLease)
	}
	if _, err := l.Observe(limiter.Report{Service: "s"}); err == nil {
		t.Error("Observe without a lease or an agent succeeded")
	}
}
