package limiter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Rule 6: leases hold the concurrency slot until reported or expired.
func TestLeasesHoldSlots(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		free    func(t *testing.T, l *limiter.Limiter, clk interface{ Advance(time.Duration) }, first limiter.Lease)
		waitFor time.Duration // when the third request must be granted
	}{
		{
			name: "report frees the slot",
			free: func(t *testing.T, l *limiter.Limiter, _ interface{ Advance(time.Duration) }, first limiter.Lease) {
				if _, err := l.Report(limiter.Report{Lease: first.ID, Status: 200}); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "an unreported lease expires after the TTL",
			ttl:  90 * time.Second,
			free: func(t *testing.T, l *limiter.Limiter, clk interface{ Advance(time.Duration) }, first limiter.Lease) {
				clk.Advance(90*time.Second - time.Millisecond)
				if got := serviceStatus(t, l, "s").InFlight; got != 2 {
					t.Fatalf("in flight %d just before the TTL, want 2", got)
				}
				clk.Advance(time.Millisecond)
			},
			waitFor: 90 * time.Second,
		},
		{
			name: "default TTL",
			free: func(t *testing.T, l *limiter.Limiter, clk interface{ Advance(time.Duration) }, first limiter.Lease) {
				clk.Advance(limiter.DefaultLeaseTTL)
			},
			waitFor: limiter.DefaultLeaseTTL,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				// A window longer than every TTL here, so that grants stay logged.
				Services: []limiter.ServiceConfig{{Name: "s", Limits: []limiter.Policy{pol(100, limiter.Requests, 2*time.Hour)}, MaxConcurrent: 2}},
				LeaseTTL: tc.ttl,
			})
			first, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
			if !ok {
				t.Fatal("first not granted")
			}
			ttl := tc.ttl
			if ttl == 0 {
				ttl = limiter.DefaultLeaseTTL
			}
			if !first.ExpiresAt.Equal(first.GrantedAt.Add(ttl)) || !strings.HasPrefix(first.ID, "l_") || len(first.ID) < 10 {
				t.Errorf("lease %+v: want an l_ id and expiry after %v", first, ttl)
			}
			submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			third := submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour})
			if _, ok := granted(t, third); ok {
				t.Fatal("third request granted past max_concurrent 2")
			}
			tc.free(t, l, clk, first)
			ls, ok := granted(t, third)
			if !ok {
				t.Fatal("third request not granted after a slot was freed")
			}
			if ls.Waited != tc.waitFor {
				t.Errorf("waited %v, want %v", ls.Waited, tc.waitFor)
			}
			// Only the slot is freed: the first call was presumably made,
			// so its cost stays charged, reported without usage or not.
			if got := serviceStatus(t, l, "s").Limits[0].Remaining; got != 97 {
				t.Errorf("remaining %d, want 97 (three grants charged)", got)
			}
			if _, err := l.Report(limiter.Report{Lease: first.ID}); err == nil {
				t.Error("a lease reported twice (or after expiry) was accepted")
			} else {
				code(t, err, limiter.CodeUnknownLease)
			}
		})
	}
}

// Rule 6: reported usage refunds or charges the difference in every ledger.
func TestUsageCorrection(t *testing.T) {
	tests := []struct {
		name          string
		estimate      int64
		usage         limiter.Cost
		wantRemaining int64
	}{
		{"refund", 600, limiter.Cost{limiter.Tokens: 200}, 800},
		{"charge", 300, limiter.Cost{limiter.Tokens: 900}, 100},
		{"exact", 300, limiter.Cost{limiter.Tokens: 300}, 700},
		{"usage of another unit leaves tokens alone", 300, limiter.Cost{limiter.Requests: 1}, 700},
		{"charge past the quota", 500, limiter.Cost{limiter.Tokens: 1500}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				// Windows over an hour are not paced, so the ledgers alone decide.
				Services: []limiter.ServiceConfig{svcCfg("s", pol(1000, limiter.Tokens, 2*time.Hour))},
				Agents:   []limiter.AgentConfig{{Name: "a", Limits: []limiter.Policy{pol(1000, limiter.Tokens, 2*time.Hour)}}},
			})
			ls, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: tc.estimate}}))
			if !ok {
				t.Fatal("not granted")
			}
			clk.Advance(time.Second)
			if _, err := l.Report(limiter.Report{Lease: ls.ID, Usage: tc.usage}); err != nil {
				t.Fatal(err)
			}
			if got := serviceStatus(t, l, "s").Limits[0].Remaining; got != tc.wantRemaining {
				t.Errorf("remaining %d after report, want %d", got, tc.wantRemaining)
			}
			// The agent's cap was corrected the same way: a request of
			// exactly what is left passes, one more token does not.
			if tc.wantRemaining > 0 {
				if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: tc.wantRemaining}})); !ok {
					t.Errorf("a request of the %d tokens left was not granted", tc.wantRemaining)
				}
			}
			_, err := l.Submit(limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: 1}})
			refused(t, err, limiter.ReasonTimeout)
			// Everything leaves the log a window (and margin) after its grant.
			clk.Advance(span(2 * time.Hour))
			if got := serviceStatus(t, l, "s").Limits[0].Remaining; got != 1000 {
				t.Errorf("remaining %d a window later, want 1000", got)
			}
		})
	}
}

// Rule 7: a waiter that goes away consumes nothing; 1,000 of them leave
// every ledger and counter as it was.
func TestCancelLeavesNoTrace(t *testing.T) {
	tests := []struct {
		name   string
		cancel func(l *limiter.Limiter, cancels []context.CancelFunc)
	}{
		{"cancel in order", func(_ *limiter.Limiter, cs []context.CancelFunc) {
			for _, c := range cs {
				c()
			}
		}},
		{"cancel in reverse", func(_ *limiter.Limiter, cs []context.CancelFunc) {
			for i := len(cs) - 1; i >= 0; i-- {
				cs[i]()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", pol(5, limiter.Requests, time.Minute), pol(10000, limiter.Tokens, time.Minute))},
				Agents:   []limiter.AgentConfig{{Name: "a0", Limits: []limiter.Policy{pol(3, limiter.Requests, time.Minute)}}},
			})
			for range 3 { // spaced as the 5/min pacer spaces them after its burst
				if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "a0", Service: "s", Cost: limiter.Cost{limiter.Requests: 1, limiter.Tokens: 100}})); !ok {
					t.Fatal("setup grant failed")
				}
				clk.Advance(16 * time.Second)
			}
			clk.Advance(time.Second)
			before, booksBefore, timersBefore := l.Status(), l.Books(), clk.Pending()

			const n = 1000
			ch, stop := l.Subscribe()
			defer stop()
			errs := make(chan error, n)
			cancels := make([]context.CancelFunc, n)
			for i := range n {
				ctx, cancel := context.WithCancel(context.Background())
				cancels[i] = cancel
				go func(agent string) {
					_, err := l.Acquire(ctx, limiter.Request{Agent: agent, Service: "s", Cost: limiter.Cost{limiter.Requests: 1, limiter.Tokens: 9800}, MaxWait: time.Hour})
					errs <- err
				}([]string{"a0", "a1", "a2", "a3"}[i%4])
			}
			for serviceStatus(t, l, "s").Queued < n {
				<-ch // every enqueue pokes subscribers
			}
			tc.cancel(l, cancels)
			for range n {
				if err := <-errs; !errors.Is(err, context.Canceled) {
					t.Fatalf("Acquire returned %#v, want context.Canceled", err)
				}
			}
			after := l.Status()
			for i := range after.Agents {
				after.Agents[i].LastSeen = time.Time{}
			}
			for i := range before.Agents {
				before.Agents[i].LastSeen = time.Time{}
			}
			if d := diffStatus(before, after); d != "" {
				t.Errorf("status changed by cancelled waiters: %s", d)
			}
			// Inside too: every ledger, pacer, budget, fair-queueing tag
			// and counter, and no timer left behind.
			if got := l.Books(); got != booksBefore {
				t.Errorf("books changed by cancelled waiters:\nbefore\n%s\nafter\n%s", booksBefore, got)
			}
			if got := clk.Pending(); got != timersBefore {
				t.Errorf("%d timers pending after the cancellations, %d before", got, timersBefore)
			}
			// And the next request is served exactly as before.
			if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "a1", Service: "s", Cost: limiter.Cost{limiter.Requests: 1, limiter.Tokens: 100}})); !ok {
				t.Error("a request that fits was not granted after the cancellations")
			}
		})
	}
}

// diffStatus compares two statuses, ignoring agents only present in after
// (registered by the cancelled calls) when they hold nothing.
func diffStatus(a, b limiter.Status) string {
	if len(a.Services) != len(b.Services) {
		return "service count differs"
	}
	for i := range a.Services {
		x, y := a.Services[i], b.Services[i]
		if x.InFlight != y.InFlight || x.Queued != y.Queued || x.Granted != y.Granted || x.Refused != y.Refused || len(x.Limits) != len(y.Limits) {
			return "service counters differ"
		}
		for j := range x.Limits {
			if x.Limits[j] != y.Limits[j] {
				return "limit differs"
			}
		}
	}
	old := map[string]limiter.AgentStatus{}
	for _, ag := range a.Agents {
		old[ag.Name] = ag
	}
	for _, ag := range b.Agents {
		o, ok := old[ag.Name]
		if !ok {
			o = limiter.AgentStatus{Name: ag.Name, Priority: ag.Priority, Weight: ag.Weight}
		}
		if o != ag {
			return "agent " + ag.Name + " differs"
		}
	}
	return ""
}

// A grant whose requester has already gone (its context ended while the
// answer was on its way) is taken back whole: counted and charged only for
// the calls that did return a lease.
func TestGrantToGoneRequesterIsTakenBack(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1000, limiter.Tokens, 2*time.Hour))}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got int64
	for range 100 {
		// Acquire sees both the grant and the ended context ready and
		// picks either: both outcomes must leave consistent books.
		_, err := l.Acquire(ctx, limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: 5}})
		switch {
		case err == nil:
			got++
		case !errors.Is(err, context.Canceled):
			t.Fatalf("Acquire: %#v", err)
		}
	}
	st := serviceStatus(t, l, "s")
	if st.Granted != got || int64(st.InFlight) != got || st.Limits[0].Remaining != 1000-5*got {
		t.Errorf("%d leases returned; status granted %d, in flight %d, remaining %d", got, st.Granted, st.InFlight, st.Limits[0].Remaining)
	}
	if got == 100 {
		t.Log("every call returned its lease; the take-back path did not run this time")
	}
}
