package limiter_test

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// inject makes every report with headers observe *obs instead of parsing,
// so these tests do not depend on the header dialects.
func inject(l *limiter.Limiter) *limiter.Observation {
	obs := new(limiter.Observation)
	l.SetParser(func(string, map[string]string, time.Time) limiter.Observation { return *obs })
	return obs
}

var someHeader = map[string]string{"x-test": "1"}

// Rule 4: headers are ground truth: remaining (less headroom) is what may
// still be granted until the reset, counting grants the provider had not
// seen; remaining 0 blocks until the reset.
func TestHeadersSetBudget(t *testing.T) {
	tests := []struct {
		name      string
		headroom  float64
		inFlight  int   // other calls granted before the report, still in flight
		after     int   // calls granted after the reporting one, before its report
		remaining int64 // what the provider says
		limit     int64
		wantMore  int // grants allowed after the report until the reset
	}{
		{name: "remaining as is", remaining: 10, limit: 100, wantMore: 10},
		{name: "headroom keeps a margin", headroom: 0.05, remaining: 10, limit: 100, wantMore: 5},
		{name: "grants after the call count", after: 3, remaining: 10, limit: 100, wantMore: 7},
		{name: "calls in flight count", inFlight: 2, remaining: 10, limit: 100, wantMore: 8},
		{name: "remaining 0 blocks", remaining: 0, limit: 100, wantMore: 0},
		{name: "headroom beyond remaining blocks", headroom: 0.2, remaining: 10, limit: 100, wantMore: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
				{Name: "s", Limits: []limiter.Policy{pol(1000, limiter.Requests, time.Minute)}, Headroom: tc.headroom},
			}})
			obs := inject(l)
			for range tc.inFlight {
				submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			}
			call, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
			if !ok {
				t.Fatal("not granted")
			}
			for range tc.after {
				submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			}
			reset := clk.Now().Add(20 * time.Second)
			*obs = limiter.Observation{Limits: []limiter.ObservedLimit{{
				Unit: limiter.Requests, Limit: tc.limit, Remaining: tc.remaining, HasRemaining: true, Reset: reset,
			}}}
			if _, err := l.Report(limiter.Report{Lease: call.ID, Status: 200, Header: someHeader}); err != nil {
				t.Fatal(err)
			}
			more := 0
			var last *limiter.Pending
			for range 50 {
				p := submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour})
				if _, ok := granted(t, p); !ok {
					last = p
					break
				}
				more++
			}
			if more != tc.wantMore {
				t.Errorf("granted %d more before the reset, want %d", more, tc.wantMore)
			}
			if st := serviceStatus(t, l, "s"); st.Limits[0].ResetsAt != reset || st.Limits[0].Remaining != 0 {
				t.Errorf("status limit %+v: want remaining 0 until the reset %v", st.Limits[0], reset)
			}
			// A request that must wait past the reset is refused as a cooldown.
			_, err := l.Submit(limiter.Request{Agent: "c", Service: "s", MaxWait: time.Second})
			re := refused(t, err, limiter.ReasonCooldown)
			if re.RetryAfter < 20*time.Second {
				t.Errorf("retry after %v, want at least the 20s to the reset", re.RetryAfter)
			}
			clk.Advance(20*time.Second - time.Millisecond)
			if _, ok := granted(t, last); ok {
				t.Fatal("granted before the reset")
			}
			clk.Advance(time.Millisecond)
			if _, ok := granted(t, last); !ok {
				t.Error("not granted at the reset")
			}
		})
	}
}

// Rule 4: without configured limits a service allows LearnConcurrency (or
// MaxConcurrent) calls in flight until headers teach it a limit, then it
// enforces the learned policy.
func TestLearnFromHeaders(t *testing.T) {
	tests := []struct {
		name         string
		maxConc      int
		learnConc    int
		wantInFlight int
		observed     limiter.ObservedLimit
		want         limiter.LimitStatus
	}{
		{
			name: "default learn concurrency, window given (IETF)", wantInFlight: limiter.DefaultLearnConcurrency,
			observed: limiter.ObservedLimit{Unit: limiter.Requests, Limit: 50, Remaining: 40, HasRemaining: true, Window: time.Minute},
			want:     limiter.LimitStatus{Unit: limiter.Requests, Quota: 50, Window: time.Minute, Source: "headers"},
		},
		{
			name: "configured learn concurrency, fixed window from reset", learnConc: 2, wantInFlight: 2,
			observed: limiter.ObservedLimit{Unit: limiter.Requests, Limit: 5000, Remaining: 4990, HasRemaining: true, Reset: t0.Add(59 * time.Minute)},
			want:     limiter.LimitStatus{Unit: limiter.Requests, Quota: 5000, Window: time.Hour, Source: "headers"},
		},
		{
			name: "max concurrent wins", maxConc: 6, learnConc: 2, wantInFlight: 6,
			observed: limiter.ObservedLimit{Unit: limiter.Tokens, Limit: 90000, Remaining: 80000, HasRemaining: true, Window: time.Minute},
			want:     limiter.LimitStatus{Unit: limiter.Tokens, Quota: 90000, Window: time.Minute, Source: "headers"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{
				Services:         []limiter.ServiceConfig{{Name: "s", MaxConcurrent: tc.maxConc, Dialect: "ietf"}},
				LearnConcurrency: tc.learnConc,
			})
			obs := inject(l)
			var leases []limiter.Lease
			for range 10 {
				if ls, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour})); ok {
					leases = append(leases, ls)
				}
			}
			if len(leases) != tc.wantInFlight {
				t.Fatalf("%d in flight before learning, want %d", len(leases), tc.wantInFlight)
			}
			*obs = limiter.Observation{Limits: []limiter.ObservedLimit{tc.observed}}
			if _, err := l.Report(limiter.Report{Lease: leases[0].ID, Status: 200, Header: someHeader}); err != nil {
				t.Fatal(err)
			}
			st := serviceStatus(t, l, "s")
			if len(st.Limits) != 1 {
				t.Fatalf("limits %+v, want the learned one", st.Limits)
			}
			got := st.Limits[0]
			got.Remaining, got.ResetsAt = 0, time.Time{}
			if got != tc.want {
				t.Errorf("learned %+v, want %+v", got, tc.want)
			}
			if tc.maxConc == 0 && st.MaxConcurrent != 0 {
				t.Errorf("max concurrent %d after learning, want no cap", st.MaxConcurrent)
			}
		})
	}
}

// The learned window of a refilling bucket (OpenAI, Anthropic) comes from
// reset × limit / used, rounded up to a usual window.
func TestLearnBucketWindow(t *testing.T) {
	tests := []struct {
		name    string
		limit   int64
		remain  int64
		resetIn time.Duration
		want    time.Duration
	}{
		{"one of 60 per minute used", 60, 59, time.Second, time.Minute},
		{"120ms to refill one of 500", 500, 499, 120 * time.Millisecond, time.Minute},
		{"tokens refill in 6m of a day", 1000000, 995834, 6 * time.Minute, 24 * time.Hour},
		{"half used of a per-second limit", 10, 5, 500 * time.Millisecond, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", Dialect: "openai"}}})
			obs := inject(l)
			*obs = limiter.Observation{Limits: []limiter.ObservedLimit{{
				Unit: limiter.Requests, Limit: tc.limit, Remaining: tc.remain, HasRemaining: true, Reset: clk.Now().Add(tc.resetIn), Dialect: "openai",
			}}}
			if _, err := l.Report(limiter.Report{Agent: "a", Service: "s", Status: 200, Header: someHeader}); err != nil {
				t.Fatal(err)
			}
			st := serviceStatus(t, l, "s")
			if len(st.Limits) != 1 || st.Limits[0].Window != tc.want {
				t.Errorf("learned %+v, want window %v", st.Limits, tc.want)
			}
		})
	}
}
