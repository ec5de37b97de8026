package limiter_test

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/quotabar/quotabar/limiter"
)

// Rule 1: no sliding window of a policy's length holds more grants than its
// quota, for the service's policies and for an agent's own cap, while the
// quota is still used almost fully.
func TestSafetySlidingWindow(t *testing.T) {
	tests := []struct {
		name     string
		service  []limiter.Policy
		agentCap []limiter.Policy
		cost     func(r *rand.Rand) limiter.Cost
		check    []limiter.Policy // policies checked on all grants
		capCheck []limiter.Policy // policies checked on agent a0's grants
		minUse   float64          // of the binding policy; 0.97 when 0
	}{
		{
			name:    "one request policy",
			service: []limiter.Policy{pol(10, limiter.Requests, time.Minute)},
			cost:    func(*rand.Rand) limiter.Cost { return nil },
			check:   []limiter.Policy{pol(10, limiter.Requests, time.Minute)},
		},
		{
			name:    "two request policies",
			service: []limiter.Policy{pol(5, limiter.Requests, 10*time.Second), pol(20, limiter.Requests, time.Minute)},
			cost:    func(*rand.Rand) limiter.Cost { return nil },
			check:   []limiter.Policy{pol(5, limiter.Requests, 10*time.Second), pol(20, limiter.Requests, time.Minute)},
		},
		{
			name:    "requests and tokens with mixed costs",
			service: []limiter.Policy{pol(60, limiter.Requests, time.Minute), pol(10000, limiter.Tokens, time.Minute)},
			cost: func(r *rand.Rand) limiter.Cost {
				return limiter.Cost{limiter.Requests: 1, limiter.Tokens: 1 + r.Int64N(400)}
			},
			check: []limiter.Policy{pol(60, limiter.Requests, time.Minute), pol(10000, limiter.Tokens, time.Minute)},
		},
		{
			// Costs far above the pacer's burst (a tenth of the quota) pass
			// when it is full, and the log alone keeps the windows safe.
			// A head of up to half the quota waits for that much room:
			// about a fifth of each window goes unused.
			name:    "costs up to half the quota",
			service: []limiter.Policy{pol(100, limiter.Requests, time.Minute), pol(10000, limiter.Tokens, time.Minute)},
			cost: func(r *rand.Rand) limiter.Cost {
				return limiter.Cost{limiter.Requests: 1, limiter.Tokens: 1000 + r.Int64N(4001)}
			},
			check:  []limiter.Policy{pol(100, limiter.Requests, time.Minute), pol(10000, limiter.Tokens, time.Minute)},
			minUse: 0.75,
		},
		{
			name:     "agent cap inside a larger service",
			service:  []limiter.Policy{pol(100, limiter.Requests, time.Minute)},
			agentCap: []limiter.Policy{pol(7, limiter.Requests, 30*time.Second)},
			cost:     func(*rand.Rand) limiter.Cost { return nil },
			check:    []limiter.Policy{pol(100, limiter.Requests, time.Minute)},
			capCheck: []limiter.Policy{pol(7, limiter.Requests, 30*time.Second)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", tc.service...)},
				Agents:   []limiter.AgentConfig{{Name: "a0", Limits: tc.agentCap}},
			})
			r := &runner{t: t, l: l, clk: clk}
			rng := rand.New(rand.NewPCG(7, 7))
			// Demand always exceeds the quotas: 700 requests from 3 agents.
			for i := range 700 {
				r.add(submit(t, l, limiter.Request{
					Agent: fmt.Sprintf("a%d", i%3), Service: "s", Cost: tc.cost(rng), MaxWait: time.Hour,
				}))
			}
			r.run(10*time.Minute, 250*time.Millisecond, true)
			if len(r.errs) > 0 {
				t.Fatalf("unexpected refusals: %#v", r.errs[0])
			}
			for _, p := range tc.check {
				// Even a window longer by the transit margin holds no more
				// than the quota, so calls that reach the provider a little
				// late or early do not cross it there either.
				got, at := maxInWindow(r.recs(p.Unit), span(p.Window))
				if got > p.Quota {
					t.Errorf("window of %v from %v holds %d %s, quota %d", span(p.Window), at.Sub(t0), got, p.Unit, p.Quota)
				}
			}
			// Utilization: the demand outnumbers what the policies allow
			// in the run, so the binding policy must be used nearly fully
			// in [t0, t0+10m). (Costs up to 4% of a quota leave about half
			// a cost unused per window: the head waits for room.)
			best := 0.0
			for _, p := range tc.check {
				var total int64
				for _, g := range r.recs(p.Unit) {
					if g.at.Before(t0.Add(10 * time.Minute)) {
						total += g.amount
					}
				}
				best = max(best, float64(total)/float64(int64(10*time.Minute/p.Window)*p.Quota))
			}
			minUse := cmp.Or(tc.minUse, 0.97)
			t.Logf("the binding policy was used %.1f%%", 100*best)
			if best < minUse && tc.capCheck == nil {
				t.Errorf("the binding policy was used %.1f%%, want at least %.0f%%", 100*best, 100*minUse)
			}
			for _, p := range tc.capCheck {
				var recs []grantRec
				for _, ls := range r.leases {
					if ls.Agent == "a0" {
						recs = append(recs, grantRec{ls.GrantedAt, ls.Cost[p.Unit]})
					}
				}
				if got, at := maxInWindow(recs, p.Window); got > p.Quota {
					t.Errorf("agent cap: window from %v holds %d, quota %d", at.Sub(t0), got, p.Quota)
				}
			}
		})
	}
}

// The checker above can fail: a token bucket with burst = quota grants twice
// the quota in one sliding window, which is why the limiter keeps a log.
func TestSafetyCheckerCatchesTokenBucket(t *testing.T) {
	const quota = 10
	b := rate.NewLimiter(rate.Limit(float64(quota)/60), quota)
	var recs []grantRec
	for s := 0; s < 120; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		for b.AllowN(now, 1) {
			recs = append(recs, grantRec{now, 1})
		}
	}
	if got, _ := maxInWindow(recs, time.Minute); got <= quota {
		t.Fatalf("token bucket held %d in a minute; the checker should see more than %d", got, quota)
	}
}

func TestCostExceedsQuota(t *testing.T) {
	tests := []struct {
		name     string
		service  limiter.ServiceConfig
		agentCap []limiter.Policy
		cost     limiter.Cost
		wantErr  bool
		inMsg    string
	}{
		{"fits exactly", svcCfg("s", pol(1000, limiter.Tokens, time.Minute)), nil, limiter.Cost{limiter.Tokens: 1000}, false, ""},
		{"over the service quota", svcCfg("s", pol(1000, limiter.Tokens, time.Minute)), nil, limiter.Cost{limiter.Tokens: 1001}, true, `service "s"`},
		{"over the quota less headroom", limiter.ServiceConfig{Name: "s", Limits: []limiter.Policy{pol(1000, limiter.Tokens, time.Minute)}, Headroom: 0.1}, nil, limiter.Cost{limiter.Tokens: 950}, true, "headroom"},
		{"over the agent's own cap", svcCfg("s", pol(1000, limiter.Tokens, time.Minute)), []limiter.Policy{pol(100, limiter.Tokens, time.Minute)}, limiter.Cost{limiter.Tokens: 101}, true, `agent "a"`},
		{"unit the service does not limit", svcCfg("s", pol(10, limiter.Requests, time.Minute)), nil, limiter.Cost{limiter.Requests: 1, limiter.OutputTokens: 1 << 40}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{tc.service},
				Agents:   []limiter.AgentConfig{{Name: "a", Limits: tc.agentCap}},
			})
			_, err := l.Submit(limiter.Request{Agent: "a", Service: "s", Cost: tc.cost})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("want a grant, got %#v", err)
				}
				return
			}
			e := code(t, err, limiter.CodeCostExceedsQuota)
			if !strings.Contains(e.Message, tc.inMsg) {
				t.Errorf("message %q does not mention %q", e.Message, tc.inMsg)
			}
		})
	}
}

// Rule 3: waiting requests charge nothing; only the head is reserved.
func TestReserveOnlyAtHead(t *testing.T) {
	tests := []struct {
		name    string
		first   int64
		waiting int
		each    int64
	}{
		{"one waiter", 60, 1, 50},
		{"many waiters", 10, 200, 95},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(100, limiter.Tokens, time.Minute))}})
			first := submit(t, l, limiter.Request{Agent: "a", Service: "s", Cost: limiter.Cost{limiter.Tokens: tc.first}})
			if _, ok := granted(t, first); !ok {
				t.Fatal("first request not granted at once")
			}
			var ps []*limiter.Pending
			for range tc.waiting {
				ps = append(ps, submit(t, l, limiter.Request{Agent: "b", Service: "s", Cost: limiter.Cost{limiter.Tokens: tc.each}, MaxWait: time.Hour}))
			}
			st := serviceStatus(t, l, "s")
			if st.Queued != tc.waiting || st.Limits[0].Remaining != 100-tc.first {
				t.Fatalf("queued %d remaining %d; want %d and %d (waiters charge nothing)", st.Queued, st.Limits[0].Remaining, tc.waiting, 100-tc.first)
			}
			clk.Advance(span(time.Minute))
			if _, ok := granted(t, ps[0]); !ok {
				t.Fatal("head not granted once the window passed")
			}
			if got := serviceStatus(t, l, "s").Limits[0].Remaining; got != 100-tc.each {
				t.Errorf("remaining %d after the head's grant, want %d", got, 100-tc.each)
			}
		})
	}
}

// Every call counts one request unless its cost names requests itself; a
// report of a call made without asking is charged the same way.
func TestRequestCost(t *testing.T) {
	tests := []struct {
		name          string
		report        bool // charged by a report without a lease
		cost          limiter.Cost
		wantRequests  int64
		wantTokens    int64
		wantLeaseCost limiter.Cost
	}{
		{"nil cost", false, nil, 1, 0, limiter.Cost{limiter.Requests: 1}},
		{"empty cost", false, limiter.Cost{}, 1, 0, limiter.Cost{limiter.Requests: 1}},
		{"tokens only", false, limiter.Cost{limiter.Tokens: 100}, 1, 100, limiter.Cost{limiter.Requests: 1, limiter.Tokens: 100}},
		{"a batch of requests", false, limiter.Cost{limiter.Requests: 3, limiter.Tokens: 10}, 3, 10, limiter.Cost{limiter.Requests: 3, limiter.Tokens: 10}},
		{"requests named zero", false, limiter.Cost{limiter.Requests: 0, limiter.Tokens: 10}, 0, 10, limiter.Cost{limiter.Requests: 0, limiter.Tokens: 10}},
		{"report without usage", true, nil, 1, 0, nil},
		{"report of tokens only", true, limiter.Cost{limiter.Tokens: 40}, 1, 40, nil},
		{"report naming requests", true, limiter.Cost{limiter.Requests: 2, limiter.Tokens: 40}, 2, 40, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Windows over an hour are not paced: the ledgers alone count.
			l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
				svcCfg("s", pol(100, limiter.Requests, 2*time.Hour), pol(1000, limiter.Tokens, 2*time.Hour)),
			}})
			if tc.report {
				if _, err := l.Report(limiter.Report{Agent: "a", Service: "s", Status: 200, Usage: tc.cost}); err != nil {
					t.Fatal(err)
				}
			} else {
				ls, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "s", Cost: tc.cost}))
				if !ok {
					t.Fatal("not granted")
				}
				if !maps.Equal(ls.Cost, tc.wantLeaseCost) {
					t.Errorf("lease cost %v, want %v", ls.Cost, tc.wantLeaseCost)
				}
			}
			st := serviceStatus(t, l, "s")
			if got := 100 - st.Limits[0].Remaining; got != tc.wantRequests {
				t.Errorf("%d requests charged, want %d", got, tc.wantRequests)
			}
			if got := 1000 - st.Limits[1].Remaining; got != tc.wantTokens {
				t.Errorf("%d tokens charged, want %d", got, tc.wantTokens)
			}
		})
	}
}

// Rule 1 under everything at once: random costs, priorities, agents and
// waits, a capped agent, a concurrency cap, refunds, lease expiry, rare
// 429s and their cooldowns. Whatever happens, no window (with the transit
// margin) of any policy or of the agent's cap holds more than its quota,
// counting each grant at its reported usage (refunds only: an overrun the
// provider bills after the fact is not a grant).
func TestSafetyRandomOperations(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			pols := []limiter.Policy{pol(50, limiter.Requests, 10*time.Second), pol(5000, limiter.Tokens, time.Minute), pol(3000, limiter.Requests, 2*time.Hour)}
			capP := pol(20, limiter.Requests, 30*time.Second)
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{{Name: "s", Limits: pols, MaxConcurrent: 8}},
				Agents:   []limiter.AgentConfig{{Name: "a0", Limits: []limiter.Policy{capP}, Weight: 2}, {Name: "a1", Priority: limiter.Low}},
				LeaseTTL: 20 * time.Second, MaxAging: 3 * time.Second,
			})
			rng := rand.New(rand.NewPCG(seed, 99))
			type rec struct {
				ls   limiter.Lease
				cost limiter.Cost
			}
			var pend []*limiter.Pending
			var open []*rec
			var all []*rec
			for step := 0; step < 4000; step++ {
				switch x := rng.IntN(10); {
				case x < 5:
					c := limiter.Cost{limiter.Tokens: rng.Int64N(600)}
					if rng.IntN(5) == 0 {
						c[limiter.Requests] = rng.Int64N(3)
					}
					p, err := l.Submit(limiter.Request{Agent: fmt.Sprintf("a%d", rng.IntN(4)), Service: "s", Cost: c,
						Priority: limiter.Priority(rng.IntN(4)), MaxWait: time.Duration(rng.IntN(30)) * time.Second})
					if err == nil {
						pend = append(pend, p)
					}
				case x < 8 && len(open) > 0:
					i := rng.IntN(len(open))
					r := open[i]
					open = append(open[:i], open[i+1:]...)
					var usage limiter.Cost
					if rng.IntN(2) == 0 {
						usage = limiter.Cost{limiter.Tokens: rng.Int64N(r.cost[limiter.Tokens] + 1)}
						r.cost = limiter.Cost{limiter.Requests: r.cost[limiter.Requests], limiter.Tokens: usage[limiter.Tokens]}
					}
					st := 200
					if rng.IntN(40) == 0 {
						st = 429
					}
					l.Report(limiter.Report{Lease: r.ls.ID, Status: st, Usage: usage})
				default:
					clk.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
				}
				keep := pend[:0]
				for _, p := range pend {
					ls, err, ok := p.Poll()
					if !ok {
						keep = append(keep, p)
						continue
					}
					if err == nil {
						r := &rec{ls: ls, cost: ls.Cost}
						open = append(open, r)
						all = append(all, r)
					}
				}
				pend = keep
			}
			for _, p := range pols {
				var recs []grantRec
				for _, r := range all {
					recs = append(recs, grantRec{r.ls.GrantedAt, r.cost[p.Unit]})
				}
				if got, at := maxInWindow(recs, span(p.Window)); got > p.Quota {
					t.Errorf("%v: the window from %v holds %d", p, at.Sub(t0), got)
				}
			}
			var recs []grantRec
			for _, r := range all {
				if r.ls.Agent == "a0" {
					recs = append(recs, grantRec{r.ls.GrantedAt, r.cost[capP.Unit]})
				}
			}
			if got, at := maxInWindow(recs, span(capP.Window)); got > capP.Quota {
				t.Errorf("agent cap %v: the window from %v holds %d", capP, at.Sub(t0), got)
			}
			if len(all) < 300 {
				t.Errorf("only %d grants: the run is too idle to judge", len(all))
			}
		})
	}
}
