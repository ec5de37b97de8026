package limiter_test

import (
	"cmp"
	"strconv"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Rule 5: a 429 (or 503 with a retry time, or GitHub's 403 with nothing
// left) puts the whole service in one cooldown; waiters stay queued, refused
// acquires get a per-agent jittered retry time.
func TestCooldown(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		header  map[string]string
		want    time.Duration // cooldown length; 0 means none
		maxWant time.Duration // for the random default: (0, maxWant]
	}{
		{name: "429 with Retry-After seconds", status: 429, header: map[string]string{"Retry-After": "20"}, want: 20 * time.Second},
		{name: "429 with retry-after-ms", status: 429, header: map[string]string{"retry-after-ms": "1500"}, want: 1500 * time.Millisecond},
		{name: "429 without a retry time", status: 429, maxWant: time.Second},
		{name: "503 with Retry-After", status: 503, header: map[string]string{"Retry-After": "7"}, want: 7 * time.Second},
		{name: "503 without a retry time is no cooldown", status: 503},
		{name: "GitHub 403 with nothing left", status: 403, header: map[string]string{
			"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
			"x-ratelimit-reset": strconv.FormatInt(t0.Add(30*time.Second).Unix(), 10), "x-ratelimit-resource": "core",
		}, want: 30 * time.Second},
		{name: "403 without rate-limit headers is no cooldown", status: 403},
		{name: "200 is no cooldown", status: 200, header: map[string]string{"Retry-After": "20"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
				{Name: "s", Limits: []limiter.Policy{pol(1000, limiter.Requests, time.Hour)}, MaxConcurrent: 1},
			}})
			call, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
			if !ok {
				t.Fatal("not granted")
			}
			waiter := submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour})
			res, err := l.Report(limiter.Report{Lease: call.ID, Status: tc.status, Header: tc.header})
			if err != nil {
				t.Fatal(err)
			}
			st := serviceStatus(t, l, "s")
			if tc.want == 0 && tc.maxWant == 0 {
				if !res.CooldownUntil.IsZero() || !st.CooldownUntil.IsZero() || res.RetryAfter != 0 {
					t.Fatalf("cooldown %v / %v, retry %v; want none", res.CooldownUntil, st.CooldownUntil, res.RetryAfter)
				}
				if _, ok := granted(t, waiter); !ok {
					t.Error("waiter not granted without a cooldown")
				}
				return
			}
			d := res.CooldownUntil.Sub(clk.Now())
			switch {
			case tc.want > 0 && d != tc.want:
				t.Fatalf("cooldown of %v, want %v", d, tc.want)
			case tc.maxWant > 0 && (d <= 0 || d > tc.maxWant):
				t.Fatalf("cooldown of %v, want in (0, %v]", d, tc.maxWant)
			}
			if !st.CooldownUntil.Equal(res.CooldownUntil) || res.RetryAfter < d {
				t.Errorf("status cooldown %v, report %v, retry after %v: want equal, retry at least %v", st.CooldownUntil, res.CooldownUntil, res.RetryAfter, d)
			}
			if st.Queued != 1 {
				t.Errorf("queued %d during the cooldown, want the waiter kept", st.Queued)
			}
			// Refused acquires get a retry time past the cooldown, jittered
			// per agent.
			retries := map[time.Duration]bool{}
			for _, agent := range []string{"c", "d", "e", "f"} {
				_, err := l.Submit(limiter.Request{Agent: agent, Service: "s"})
				re := refused(t, err, limiter.ReasonCooldown)
				if re.RetryAfter < d {
					t.Errorf("agent %s: retry after %v, within the %v cooldown", agent, re.RetryAfter, d)
				}
				retries[re.RetryAfter] = true
			}
			if len(retries) < 4 {
				t.Errorf("4 agents got only %d distinct retry times", len(retries))
			}
			clk.Advance(d - time.Nanosecond)
			if _, ok := granted(t, waiter); ok {
				t.Fatal("waiter granted during the cooldown")
			}
			clk.Advance(time.Nanosecond)
			if _, ok := granted(t, waiter); !ok {
				t.Error("waiter not granted when the cooldown ended")
			}
		})
	}
}

// Without a retry time the default cooldown grows 1s, 2s, 4s ... up to 60s,
// with full jitter; a 429 from a call sent before the cooldown does not grow
// it again, and a success resets it.
func TestCooldownBackoff(t *testing.T) {
	l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1000, limiter.Requests, time.Hour))}})
	var longest time.Duration
	distinct := map[time.Duration]bool{}
	for k := 1; k <= 10; k++ {
		capd := min(60*time.Second, time.Second<<(k-1))
		call, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
		if !ok {
			t.Fatalf("429 number %d: not granted", k)
		}
		old, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
		if !ok {
			t.Fatal("not granted")
		}
		res, err := l.Report(limiter.Report{Lease: call.ID, Status: 429})
		if err != nil {
			t.Fatal(err)
		}
		d := res.CooldownUntil.Sub(clk.Now())
		if d <= 0 || d > capd {
			t.Fatalf("429 number %d: cooldown %v, want in (0, %v]", k, d, capd)
		}
		// The other call was in flight before the cooldown: its 429 must
		// not double the backoff.
		if _, err := l.Report(limiter.Report{Lease: old.ID, Status: 429}); err != nil {
			t.Fatal(err)
		}
		distinct[d] = true
		longest = max(longest, d)
		clk.Advance(61 * time.Second)
	}
	if len(distinct) < 8 || longest < 10*time.Second {
		t.Errorf("10 backoffs: %d distinct, longest %v; want jittered and growing", len(distinct), longest)
	}
	call, _ := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
	if _, err := l.Report(limiter.Report{Lease: call.ID, Status: 200}); err != nil {
		t.Fatal(err)
	}
	call, _ = granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
	res, _ := l.Report(limiter.Report{Lease: call.ID, Status: 429})
	if d := res.CooldownUntil.Sub(clk.Now()); d > time.Second {
		t.Errorf("after a success the backoff starts again at 1s, got %v", d)
	}
}

// Rule 5: after a cooldown (or an exhausted budget) the backlog is paced by
// the policy's rate, not released at once; and so is a backlog waiting for
// a full window to free (a tenth of the quota at once, then the policy's
// rate), so that the whole quota is not taken in one instant again.
func TestPacedAfterCooldown(t *testing.T) {
	tests := []struct {
		name      string
		policy    limiter.Policy
		block     func(l *limiter.Limiter, obs *limiter.Observation, lease string)
		blockFor  time.Duration
		burst     int // most grants at the instant the block ends
		perSecond float64
		measure   time.Duration // how long to measure the rate; 5s when 0
	}{
		{
			name: "after a 429", policy: pol(600, limiter.Requests, time.Minute),
			block: func(l *limiter.Limiter, _ *limiter.Observation, lease string) {
				l.Report(limiter.Report{Lease: lease, Status: 429, Header: map[string]string{"retry-after": "10"}})
			},
			blockFor: 10 * time.Second, burst: 30, perSecond: 10,
		},
		{
			name: "after remaining 0 until the reset", policy: pol(1200, limiter.Requests, time.Minute),
			block: func(l *limiter.Limiter, obs *limiter.Observation, lease string) {
				*obs = limiter.Observation{Limits: []limiter.ObservedLimit{{Unit: limiter.Requests, Limit: 1200, HasRemaining: true, Remaining: 0, Reset: t0.Add(5 * time.Second)}}}
				l.Report(limiter.Report{Lease: lease, Status: 200, Header: someHeader})
			},
			blockFor: 5 * time.Second, burst: 60, perSecond: 20,
		},
		{
			name: "a backlog when a full window frees", policy: pol(600, limiter.Requests, 10*time.Minute),
			block: func(l *limiter.Limiter, _ *limiter.Observation, _ string) {
				for range 599 { // one caller alone: granted as fast as it asks
					if _, err := l.Submit(limiter.Request{Agent: "a", Service: "s"}); err != nil {
						panic(err)
					}
				}
			},
			blockFor: span(10 * time.Minute), burst: 60, perSecond: 1, measure: 30 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", tc.policy)}})
			call, _ := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
			var obs *limiter.Observation
			if tc.name == "after remaining 0 until the reset" {
				obs = inject(l)
			}
			tc.block(l, obs, call.ID)
			r := &runner{t: t, l: l, clk: clk}
			for range 200 {
				r.add(submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour}))
			}
			clk.Advance(tc.blockFor)
			r.poll(true)
			if n := len(r.leases); n == 0 || n > tc.burst {
				t.Fatalf("%d granted the instant the block ended, want 1 to %d", n, tc.burst)
			}
			at := len(r.leases)
			measure := cmp.Or(tc.measure, 5*time.Second)
			clk.Advance(measure)
			r.poll(true)
			got := float64(len(r.leases)-at) / measure.Seconds()
			if got < tc.perSecond*0.9 || got > tc.perSecond*1.1 {
				t.Errorf("%.1f grants a second after the burst, want the policy's %.0f", got, tc.perSecond)
			}
		})
	}
}

// A report of an expired (or unknown) lease is refused, but what the
// provider said still counts when it names a configured service.
func TestLateReportStillCools(t *testing.T) {
	tests := []struct {
		name     string
		service  string
		wantCool bool
	}{
		{"service named", "s", true},
		{"no service", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(10, limiter.Requests, time.Minute))}, LeaseTTL: time.Second})
			ls, _ := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s"}))
			clk.Advance(2 * time.Second)
			_, err := l.Report(limiter.Report{Lease: ls.ID, Agent: "a", Service: tc.service, Status: 429, Header: map[string]string{"retry-after": "30"}})
			code(t, err, limiter.CodeUnknownLease)
			if cool := !serviceStatus(t, l, "s").CooldownUntil.IsZero(); cool != tc.wantCool {
				t.Errorf("cooling down %v, want %v", cool, tc.wantCool)
			}
		})
	}
}

// Which grants are paced: every grant of a window up to a minute (the idle
// burst at once: a tenth of the quota, or up to 10 but at most half of a
// small one; then its rate), a backlog's only up to an hour, and longer
// windows not at all (outside cooldowns).
func TestPacingScope(t *testing.T) {
	tests := []struct {
		name   string
		policy limiter.Policy
		want   int // of 100 asked for one after another, alone, at once
	}{
		{"per minute: a lone caller is paced too", pol(500, limiter.Requests, time.Minute), 50},
		{"small per-minute quota: the burst is half of it", pol(8, limiter.Requests, time.Minute), 4},
		{"per-minute quota of 50: 10 at once", pol(50, limiter.Requests, time.Minute), 10},
		{"per 10 minutes: a lone caller is not", pol(500, limiter.Requests, 10*time.Minute), 100},
		{"per 5 hours: not paced", pol(500, limiter.Requests, 5*time.Hour), 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", tc.policy)}})
			n := 0
			for range 100 {
				if _, err := l.Submit(limiter.Request{Agent: "a", Service: "s"}); err == nil {
					n++
				}
			}
			if n != tc.want {
				t.Errorf("%d granted at once, want %d", n, tc.want)
			}
		})
	}
}
