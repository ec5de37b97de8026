package limiter_test

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// A share cuts every window to share × capacity; a request bigger than the
// share but within the capacity waits instead of failing, and a new share
// releases it.
func TestShare(t *testing.T) {
	tests := []struct {
		name      string
		share     float64
		wantGrant int // of 20 one-request calls within one window of 10 s
	}{
		{name: "whole", share: 1, wantGrant: 10},
		{name: "half", share: 0.5, wantGrant: 5},
		{name: "third", share: 1.0 / 3, wantGrant: 3},
		{name: "none", share: 0, wantGrant: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Quota 10 per 10 s: a burst of 10 (the pacer's minimum) is allowed.
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(10, limiter.Requests, 10*time.Second))}})
			if err := l.SetShare("s", tc.share); err != nil {
				t.Fatal(err)
			}
			r := &runner{t: t, l: l, clk: clk}
			for range 20 {
				r.add(submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour}))
			}
			r.run(9*time.Second, 100*time.Millisecond, true)
			if len(r.leases) != tc.wantGrant || len(r.errs) != 0 {
				t.Fatalf("share %v: %d grants, errors %v; want %d grants", tc.share, len(r.leases), r.errs, tc.wantGrant)
			}
			d, err := l.Demand("s")
			if err != nil {
				t.Fatal(err)
			}
			if !d.Backlog || d.Queued != 20-tc.wantGrant || d.Share != tc.share || d.Top != limiter.Normal || d.Weight != 1 {
				t.Fatalf("demand %+v", d)
			}
			if want := float64(tc.wantGrant) / 10; d.Used != want {
				t.Fatalf("used %v, want %v", d.Used, want)
			}
			// The whole capacity back: the rest of the window's room is
			// granted (paced, so over the next second), never more.
			if err := l.SetShare("s", 1); err != nil {
				t.Fatal(err)
			}
			r.run(time.Second, 10*time.Millisecond, true)
			if n := len(r.leases); n > 10 || n < tc.wantGrant || (n == tc.wantGrant && n < 10) {
				t.Fatalf("after share 1: %d grants, want more than %d (or all 10) and at most 10", n, tc.wantGrant)
			}
		})
	}
}

func TestShareErrors(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(10, limiter.Requests, time.Second))}})
	for _, bad := range []float64{-0.1, 1.5} {
		code(t, l.SetShare("s", bad), limiter.CodeBadRequest)
	}
	code(t, l.SetShare("nope", 0.5), limiter.CodeUnknownService)
	code(t, l.ApplyCooldown("nope", t0), limiter.CodeUnknownService)
	code(t, l.LearnLimits("s", []limiter.Policy{{Quota: 0, Unit: limiter.Tokens, Window: time.Second}}), limiter.CodeBadRequest)
	if _, err := l.Demand("nope"); err == nil {
		t.Fatal("Demand of an unknown service succeeded")
	}
}

// A cooldown from the cluster holds the queue like a 429 here, without
// counting a 429, and a shorter one does not cut it.
func TestApplyCooldown(t *testing.T) {
	l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(100, limiter.Requests, time.Second))}})
	if err := l.ApplyCooldown("s", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyCooldown("s", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	st := serviceStatus(t, l, "s")
	if !st.CooldownUntil.Equal(t0.Add(2*time.Second)) || st.Provider429 != 0 {
		t.Fatalf("status %+v", st)
	}
	p := submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Minute})
	clk.Advance(1990 * time.Millisecond)
	if _, ok := granted(t, p); ok {
		t.Fatal("granted during the cooldown")
	}
	clk.Advance(20 * time.Millisecond)
	if _, ok := granted(t, p); !ok {
		t.Fatal("not granted after the cooldown")
	}
	if st := serviceStatus(t, l, "s"); !st.CooldownUntil.IsZero() {
		t.Fatalf("still cooling down: %+v", st)
	}
}

// Limits learned elsewhere apply here, but never over a configured unit.
func TestLearnLimits(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(100, limiter.Requests, time.Minute))}})
	err := l.LearnLimits("s", []limiter.Policy{pol(5, limiter.Requests, time.Second), pol(1000, limiter.Tokens, time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	st := serviceStatus(t, l, "s")
	if len(st.Limits) != 2 || st.Limits[1].Unit != limiter.Tokens || st.Limits[1].Quota != 1000 || st.Limits[1].Source != "headers" {
		t.Fatalf("limits %+v", st.Limits)
	}
	d, _ := l.Demand("s")
	if len(d.Learned) != 1 || d.Learned[0] != pol(1000, limiter.Tokens, time.Minute) {
		t.Fatalf("learned %+v", d.Learned)
	}
	_, err = l.Acquire(t.Context(), limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: 1001}})
	code(t, err, limiter.CodeCostExceedsQuota)
}
