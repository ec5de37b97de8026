package limiter_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// inject makes every report with headers observe *obs instead of parsing,
// so these tests do not depend on the header dialects.
func inject(l *limiter.Limiter) *limiter.Observation {
	obs := new(limiter.Observation)
	l.SetParser(func(limiter.Dialect, map[string]string, time.Time) limiter.Observation { return *obs })
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
		{name: "calls granted before it count as seen", inFlight: 2, remaining: 10, limit: 100, wantMore: 10},
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

// The learned window is the longest time-to-full seen (never more than the
// window, and close to it right after use), taken as a usual window when
// just short of one, or the window the headers give.
func TestLearnWindow(t *testing.T) {
	tests := []struct {
		name   string
		resets []time.Duration // successive observations' time to reset
		window time.Duration   // given by the headers
		want   time.Duration
	}{
		{"grows to the longest reset", []time.Duration{1200 * time.Millisecond, 30 * time.Second, 45 * time.Second}, 0, 45 * time.Second},
		{"just short of a minute is a minute", []time.Duration{20 * time.Second, 58 * time.Second}, 0, time.Minute},
		{"a shorter reset later does not shrink it", []time.Duration{1950 * time.Millisecond, 100 * time.Millisecond}, 0, 1950 * time.Millisecond},
		{"given window wins", []time.Duration{3 * time.Second}, time.Minute, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", Dialect: "openai"}}})
			obs := inject(l)
			for _, d := range tc.resets {
				*obs = limiter.Observation{Limits: []limiter.ObservedLimit{{
					Unit: limiter.Requests, Limit: 500, Remaining: 400, HasRemaining: true,
					Reset: clk.Now().Add(d), Window: tc.window, Dialect: "openai",
				}}}
				if _, err := l.Report(limiter.Report{Agent: "a", Service: "s", Status: 200, Header: someHeader}); err != nil {
					t.Fatal(err)
				}
				clk.Advance(time.Millisecond)
			}
			st := serviceStatus(t, l, "s")
			if len(st.Limits) != 1 || st.Limits[0].Window != tc.want || st.Limits[0].Source != "headers" {
				t.Errorf("learned %+v, want window %v", st.Limits, tc.want)
			}
		})
	}
}

// A refilling provider's budget comes back steadily until the reset; a
// fixed window's does not.
func TestBudgetRefill(t *testing.T) {
	tests := []struct {
		name    string
		dialect string
		window  time.Duration
		at      time.Duration // after the observation
		want    int           // grants possible then
	}{
		{"openai, halfway", "openai", 0, 5 * time.Second, 50},
		{"anthropic, a fifth of the way", "anthropic", 0, 2 * time.Second, 20},
		{"ietf with a window, halfway", "ietf", 10 * time.Second, 5 * time.Second, 50},
		{"github fixed window, halfway", "github", 0, 5 * time.Second, 0},
		// At the reset the spent budget ends and grants are paced from a
		// twentieth of the quota, not released at once.
		{"github fixed window, at the reset", "github", 0, 10 * time.Second, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
				{Name: "s", Limits: []limiter.Policy{pol(100, limiter.Requests, 2*time.Hour)}},
			}})
			obs := inject(l)
			*obs = limiter.Observation{Limits: []limiter.ObservedLimit{{
				Unit: limiter.Requests, Limit: 100, Remaining: 0, HasRemaining: true,
				Reset: clk.Now().Add(10 * time.Second), Window: tc.window, Dialect: limiter.Dialect(tc.dialect),
			}}}
			if _, err := l.Report(limiter.Report{Agent: "x", Service: "s", Status: 200, Header: someHeader}); err != nil {
				t.Fatal(err)
			}
			// The 2h ledger has room: the budget is what binds a backlog
			// waiting from the observation on.
			r := &runner{t: t, l: l, clk: clk}
			for range 200 {
				r.add(submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour}))
			}
			clk.Advance(tc.at + time.Millisecond) // wake-ups are rounded up a hair
			r.poll(false)
			if n := len(r.leases); n != tc.want {
				t.Errorf("%d grants %v after remaining 0, want %d", n, tc.at, tc.want)
			}
		})
	}
}

// Rule 4, remaining = 0, per dialect, from the providers' own headers: the
// service is blocked at once. A fixed window (GitHub, or IETF fields
// without a window) stays blocked until its reset. A refilling limit
// (OpenAI and Anthropic, whose reset means "full again at", and IETF with a
// window) stays blocked until its first unit is back, reset/limit after the
// observation, and not a moment before.
func TestRemainingZeroBlocks(t *testing.T) {
	reset := 10 * time.Second
	at := t0.Add(reset)
	tests := []struct {
		name    string
		dialect string
		status  int
		header  map[string]string
		open    time.Duration // when the first waiter is granted
		refills bool          // then exactly one is, the next a unit later
	}{
		{"openai", "openai", 200, map[string]string{
			"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s",
		}, 100 * time.Millisecond, true},
		{"openai 429", "openai", 429, map[string]string{
			"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s",
			"retry-after-ms": "100",
		}, 100 * time.Millisecond, true},
		{"anthropic", "anthropic", 200, map[string]string{
			"anthropic-ratelimit-requests-limit": "100", "anthropic-ratelimit-requests-remaining": "0",
			"anthropic-ratelimit-requests-reset": at.Format(time.RFC3339),
		}, 100 * time.Millisecond, true},
		{"ietf with a window", "ietf", 200, map[string]string{
			"RateLimit-Policy": `"burst";q=100;w=10`, "RateLimit": `"burst";r=0;t=10`,
		}, 100 * time.Millisecond, true},
		{"ietf without a window", "ietf", 200, map[string]string{
			"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "10",
		}, reset, false},
		{"github", "github", 200, map[string]string{
			"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-used": "100",
			"x-ratelimit-reset": strconv.FormatInt(at.Unix(), 10), "x-ratelimit-resource": "core",
		}, reset, false},
		{"github 403", "github", 403, map[string]string{
			"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-used": "100",
			"x-ratelimit-reset": strconv.FormatInt(at.Unix(), 10), "x-ratelimit-resource": "core",
		}, reset, false},
		{"any dialect, github's headers", "", 200, map[string]string{
			"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": strconv.FormatInt(at.Unix(), 10),
		}, reset, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The configured 2h ledger has room and paces nothing: the
			// headers alone hold the service back.
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
				{Name: "s", Limits: []limiter.Policy{pol(1000, limiter.Requests, 2*time.Hour)}, Dialect: limiter.Dialect(tc.dialect)},
			}})
			if _, err := l.Report(limiter.Report{Agent: "x", Service: "s", Status: tc.status, Header: tc.header}); err != nil {
				t.Fatal(err)
			}
			if st := serviceStatus(t, l, "s"); st.Limits[0].Remaining != 0 {
				t.Errorf("status remaining %d after remaining 0, want 0", st.Limits[0].Remaining)
			}
			_, err := l.Submit(limiter.Request{Agent: "a", Service: "s"})
			refused(t, err, limiter.ReasonCooldown)
			r := &runner{t: t, l: l, clk: clk}
			for range 20 {
				r.add(submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour}))
			}
			clk.Advance(tc.open - time.Millisecond)
			r.poll(false)
			if n := len(r.leases); n != 0 {
				t.Fatalf("%d granted %v after remaining 0, before the service opens at %v", n, clk.Now().Sub(t0), tc.open)
			}
			clk.Advance(2 * time.Millisecond) // wake-ups are rounded up a hair
			r.poll(false)
			n := len(r.leases)
			switch {
			case n == 0:
				t.Fatalf("nothing granted at %v", tc.open)
			case tc.refills && n != 1:
				t.Fatalf("%d granted when the first unit came back, want 1", n)
			}
			if tc.refills {
				// Then one a unit (100 ms) later: paced by the refill.
				clk.Advance(tc.open - 2*time.Millisecond)
				r.poll(false)
				if n := len(r.leases); n != 1 {
					t.Fatalf("%d granted before the second unit was back, want 1", n)
				}
				clk.Advance(2 * time.Millisecond)
				r.poll(false)
				if n := len(r.leases); n != 2 {
					t.Fatalf("%d granted when the second unit was back, want 2", n)
				}
			}
		})
	}
}

// Headers cannot grow a service's books without end: an upstream naming a
// new limit, or a new window, in every answer leaves at most a bounded
// number of budgets and learned policies, and the service keeps working.
func TestHeadersBookkeepingIsBounded(t *testing.T) {
	tests := []struct {
		name  string
		limit func(i int) limiter.ObservedLimit
	}{
		{"a new limit name each time", func(i int) limiter.ObservedLimit {
			return limiter.ObservedLimit{Unit: limiter.Requests, Limit: 1000, Remaining: 900, HasRemaining: true,
				Reset: t0.Add(time.Hour), Name: fmt.Sprintf("p%d", i), Dialect: "ietf"}
		}},
		{"a new window each time", func(i int) limiter.ObservedLimit {
			return limiter.ObservedLimit{Unit: limiter.Requests, Limit: 1000, Window: time.Duration(i+1) * time.Minute, Dialect: "ietf"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", Dialect: "ietf"}}})
			obs := inject(l)
			for i := range 500 {
				*obs = limiter.Observation{Limits: []limiter.ObservedLimit{tc.limit(i)}}
				if _, err := l.Report(limiter.Report{Agent: "a", Service: "s", Status: 200, Header: someHeader}); err != nil {
					t.Fatal(err)
				}
			}
			books := l.Books()
			if n := strings.Count(books, "  budget "); n > 32 {
				t.Errorf("%d budgets kept after 500 distinct limits, want at most 32", n)
			}
			if n := strings.Count(books, "  ledger "); n == 0 || n > 8 {
				t.Errorf("%d policies learned from 500 distinct ones, want 1 to 8", n)
			}
			// The 500 reported calls are charged; once they have paced out
			// of the learned windows, calls are granted again.
			p := submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour})
			clk.Advance(10 * time.Minute)
			if _, ok := granted(t, p); !ok {
				t.Error("the service no longer grants")
			}
		})
	}
}

// Headers are parsed before the limiter's lock is taken: a report's parse,
// most of its cost, does not hold up everyone else's decisions. Checked for
// a report naming its service and for one naming only its lease; the
// observation still applies (the budget it sets binds).
func TestReportParsesHeadersOutsideLock(t *testing.T) {
	for _, tt := range []struct {
		name    string
		service string
	}{{"report names the service", "api"}, {"report names only the lease", ""}} {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{
				Name: "api", Dialect: limiter.DialectOpenAI, Limits: []limiter.Policy{pol(100, limiter.Requests, time.Minute)},
			}}})
			calls, heldDuring := 0, 0
			l.SetParser(func(d limiter.Dialect, h map[string]string, now time.Time) limiter.Observation {
				calls++
				if l.LockHeld() {
					heldDuring++
				}
				if d != limiter.DialectOpenAI {
					t.Errorf("parsed for dialect %q, want openai", d)
				}
				return limiter.ParseHeaders(d, h, now)
			})
			ls, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "api"}))
			if !ok {
				t.Fatal("not granted")
			}
			if _, err := l.Report(limiter.Report{Lease: ls.ID, Service: tt.service, Status: 200, Header: map[string]string{
				"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s",
			}}); err != nil {
				t.Fatalf("Report: %v", err)
			}
			if calls != 1 || heldDuring != 0 {
				t.Fatalf("parsed %d times, %d of them under the lock; want once, outside it", calls, heldDuring)
			}
			_, err := l.Acquire(t.Context(), limiter.Request{Agent: "a", Service: "api"})
			refused(t, err, limiter.ReasonCooldown)
		})
	}
}
