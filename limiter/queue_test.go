package limiter_test

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Rule 2, between priorities: strict order, but a lone low (or normal)
// request behind a high backlog is served at its level's first owed grant:
// when the level's floor credit reaches a whole grant (1/share grants), or
// once the request has waited MaxAging, whichever comes first (plus the
// slot it then waits for).
func TestPriorityAgingBound(t *testing.T) {
	tests := []struct {
		name     string
		maxAging time.Duration
		prio     limiter.Priority
		bound    time.Duration // at one grant a second
	}{
		{"low, 5s", 5 * time.Second, limiter.Low, 5 * time.Second},
		{"low, 15s", 15 * time.Second, limiter.Low, 15 * time.Second},
		{"normal, 8s", 8 * time.Second, limiter.Normal, 8 * time.Second},
		{"low, default bound: the floor share comes first", 0, limiter.Low, 20 * time.Second},            // 1/0.05 grants
		{"normal, 30s: the floor share comes first", 30 * time.Second, limiter.Normal, 10 * time.Second}, // 1/0.10
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One request a second; a high-priority agent always has a
			// backlog, so without a floor or aging the low request would
			// starve.
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Second))},
				MaxAging: tc.maxAging,
			})
			r := &runner{t: t, l: l, clk: clk}
			for range 200 {
				r.add(submit(t, l, limiter.Request{Agent: "boss", Service: "s", Priority: limiter.High, MaxWait: time.Hour}))
			}
			clk.Advance(500 * time.Millisecond)
			low := submit(t, l, limiter.Request{Agent: "bg", Service: "s", Priority: tc.prio, MaxWait: time.Hour})
			var ls limiter.Lease
			for i := 0; ; i++ {
				clk.Advance(100 * time.Millisecond)
				r.poll(true)
				var ok bool
				if ls, ok = granted(t, low); ok {
					break
				}
				if i > 10*int(tc.bound/time.Second)*10 {
					t.Fatalf("the %v request was never granted", tc.prio)
				}
			}
			if ls.Waited < tc.bound-time.Second || ls.Waited > tc.bound+time.Second {
				t.Errorf("waited %v; want between %v (strict priority first) and %v (the bound plus one slot)", ls.Waited, tc.bound-time.Second, tc.bound+time.Second)
			}
			if n := len(r.leases); n == 0 {
				t.Error("the high-priority backlog got nothing")
			}
		})
	}
}

// Rule 2, within a priority: weighted fair queueing between agents, FIFO
// within an agent, a light agent does not wait behind a heavy backlog.
func TestFairQueueing(t *testing.T) {
	type agentLoad struct {
		name    string
		weight  float64
		backlog int
		every   time.Duration // a new request this often instead of a backlog
	}
	tests := []struct {
		name   string
		agents []agentLoad
		check  func(t *testing.T, byAgent map[string][]limiter.Lease)
	}{
		{
			name:   "equal weights share equally",
			agents: []agentLoad{{"a", 1, 300, 0}, {"b", 1, 300, 0}, {"c", 1, 300, 0}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				for _, n := range []string{"a", "b", "c"} {
					if got := len(by[n]); got < 95 || got > 105 {
						t.Errorf("agent %s got %d of 300 grants, want 100±5", n, got)
					}
				}
			},
		},
		{
			name:   "weight 2 gets twice weight 1",
			agents: []agentLoad{{"w1", 1, 400, 0}, {"w2", 2, 400, 0}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				ratio := float64(len(by["w2"])) / float64(len(by["w1"]))
				if math.Abs(ratio-2) > 0.2 {
					t.Errorf("weight-2 agent got %.2fx the weight-1 agent's grants, want 2±0.2", ratio)
				}
			},
		},
		{
			name:   "light agent does not wait behind a heavy backlog",
			agents: []agentLoad{{"heavy", 1, 1000, 0}, {"light", 1, 0, 20 * time.Second}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				if len(by["light"]) < 10 {
					t.Fatalf("light agent got %d grants", len(by["light"]))
				}
				for _, ls := range by["light"] {
					if ls.Waited > 2*time.Second {
						t.Errorf("light agent's request waited %v behind the backlog, want at most 2 slots", ls.Waited)
					}
				}
			},
		},
		{
			name:   "FIFO within an agent",
			agents: []agentLoad{{"a", 1, 200, 0}, {"b", 1, 200, 0}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				for _, n := range []string{"a", "b"} {
					// by holds the leases in the agent's order of asking,
					// and a grant a second: each strictly after the last.
					if len(by[n]) < 100 {
						t.Fatalf("agent %s got %d grants", n, len(by[n]))
					}
					for i := 1; i < len(by[n]); i++ {
						if !by[n][i].GrantedAt.After(by[n][i-1].GrantedAt) {
							t.Fatalf("agent %s: request %d granted at %v, not after request %d at %v",
								n, i, by[n][i].GrantedAt.Sub(t0), i-1, by[n][i-1].GrantedAt.Sub(t0))
						}
					}
				}
			},
		},
		{
			// Work-conserving: an agent alone may use the whole service.
			name:   "an agent alone uses everything",
			agents: []agentLoad{{"solo", 1, 400, 0}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				// One a second, less the 1% transit margin of each window.
				if got := len(by["solo"]); got < 295 {
					t.Errorf("a lone agent got %d grants in 300 one-a-second slots, want at least 295", got)
				}
			},
		},
		{
			// Work-conserving: what a light agent leaves, the heavy one uses.
			name:   "a heavy agent takes what a light one leaves",
			agents: []agentLoad{{"heavy", 1, 1000, 0}, {"light", 1, 0, 10 * time.Second}},
			check: func(t *testing.T, by map[string][]limiter.Lease) {
				if got := len(by["heavy"]) + len(by["light"]); got < 295 || len(by["light"]) < 29 {
					t.Errorf("heavy %d + light %d grants in 300 slots, want at least 295 with all 30 of light's", len(by["heavy"]), len(by["light"]))
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Second))}}
			for _, a := range tc.agents {
				cfg.Agents = append(cfg.Agents, limiter.AgentConfig{Name: a.name, Weight: a.weight})
			}
			l, clk := newLim(t, cfg)
			r := &runner{t: t, l: l, clk: clk}
			// asked holds each agent's requests in the order it asked.
			asked := map[string][]*limiter.Pending{}
			ask := func(agent string) {
				p := submit(t, l, limiter.Request{Agent: agent, Service: "s", MaxWait: time.Hour})
				r.add(p)
				asked[agent] = append(asked[agent], p)
			}
			for i := 0; ; i++ {
				more := false
				for _, a := range tc.agents {
					if i < a.backlog {
						ask(a.name)
						more = true
					}
				}
				if !more {
					break
				}
			}
			const run = 300 * time.Second
			for s := time.Duration(0); s < run; s += time.Second {
				for _, a := range tc.agents {
					if a.every > 0 && s%a.every == 0 {
						ask(a.name)
					}
				}
				r.poll(true)
				clk.Advance(time.Second)
			}
			r.poll(true)
			// Each agent's grants in its order of asking. The granted ones
			// must be the first it asked: a later request granted while
			// an earlier one still waits breaks FIFO.
			by := map[string][]limiter.Lease{}
			for agent, ps := range asked {
				waiting := -1
				for i, p := range ps {
					ls, ok := granted(t, p)
					switch {
					case !ok && waiting < 0:
						waiting = i
					case ok && waiting >= 0:
						t.Fatalf("agent %s: request %d granted while its request %d still waits", agent, i, waiting)
					case ok:
						by[agent] = append(by[agent], ls)
					}
				}
			}
			tc.check(t, by)
		})
	}
}

// An agent held back only by its own cap does not hold back other agents,
// and the capped agent is served again as soon as its cap frees.
func TestAgentCapDoesNotBlockOthers(t *testing.T) {
	tests := []struct {
		name  string
		cap   limiter.Policy
		other limiter.Priority
	}{
		{"capped agent first in line, other normal", pol(2, limiter.Requests, time.Minute), limiter.Normal},
		{"capped agent high, other low", pol(1, limiter.Requests, 30*time.Second), limiter.Low},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", pol(1000, limiter.Requests, time.Minute))},
				Agents: []limiter.AgentConfig{
					{Name: "capped", Priority: limiter.High, Limits: []limiter.Policy{tc.cap}},
					{Name: "other", Priority: tc.other},
				},
			})
			r := &runner{t: t, l: l, clk: clk}
			for range 10 {
				r.add(submit(t, l, limiter.Request{Agent: "capped", Service: "s", MaxWait: time.Hour}))
			}
			for range 10 {
				r.add(submit(t, l, limiter.Request{Agent: "other", Service: "s", MaxWait: time.Hour}))
			}
			r.poll(true)
			by := map[string]int{}
			for _, ls := range r.leases {
				by[ls.Agent]++
			}
			if by["capped"] != int(tc.cap.Quota) || by["other"] != 10 {
				t.Fatalf("at once: capped %d (want its cap %d), other %d (want all 10)", by["capped"], tc.cap.Quota, by["other"])
			}
			clk.Advance(span(tc.cap.Window))
			r.poll(true)
			if n := len(r.leases) - 10; n != 2*int(tc.cap.Quota) {
				t.Errorf("after one cap window the capped agent has %d grants, want %d", n, 2*tc.cap.Quota)
			}
		})
	}
}

// Queue limit: more waiters than QueueLimit are shed.
func TestQueueLimitSheds(t *testing.T) {
	for _, limit := range []int{1, 5} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{
				Services:   []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Hour))},
				QueueLimit: limit,
			})
			submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			for range limit {
				submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Minute})
			}
			_, err := l.Submit(limiter.Request{Agent: "a", Service: "s", MaxWait: time.Minute})
			re := refused(t, err, limiter.ReasonShed)
			if re.Service != "s" || re.Agent != "a" || re.RetryAfter <= 0 {
				t.Errorf("refusal %+v: want service, agent and a retry time", re)
			}
			if st := serviceStatus(t, l, "s"); st.Queued != limit || st.Refused != 1 {
				t.Errorf("queued %d refused %d, want %d and 1", st.Queued, st.Refused, limit)
			}
		})
	}
}

// Aging is per request and does not promote a level at once: of four aged
// low requests behind a high backlog, one goes at once, and each next one
// a floor share's worth of grants (1/share) after the one before, so the
// level receives
// its floor share and no more (the first may use the credit the level had
// saved, at most one grant), and the high backlog keeps the rest. The k-th
// waits at most MaxAging plus k owed slots.
func TestAgingServesLevelEveryBound(t *testing.T) {
	tests := []struct {
		name     string
		maxAging time.Duration
		lowShare float64
		lows     []string // agents of the low requests, in order of asking
	}{
		{"one agent, 5s, share 0.05", 5 * time.Second, 0.05, []string{"bg", "bg", "bg", "bg"}},
		{"two agents, 8s, share 0.1", 8 * time.Second, 0.1, []string{"bg1", "bg2", "bg1", "bg2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Second))},
				MaxAging: tc.maxAging, LowShare: tc.lowShare,
			})
			r := &runner{t: t, l: l, clk: clk}
			for range 200 {
				r.add(submit(t, l, limiter.Request{Agent: "boss", Service: "s", Priority: limiter.High, MaxWait: time.Hour}))
			}
			clk.Advance(500 * time.Millisecond)
			var lows []*limiter.Pending
			for _, a := range tc.lows {
				lows = append(lows, submit(t, l, limiter.Request{Agent: a, Service: "s", Priority: limiter.Low, MaxWait: time.Hour}))
			}
			slot := time.Duration(float64(time.Second) / tc.lowShare) // grants between owed ones
			r.run(tc.maxAging+time.Duration(len(tc.lows)+1)*slot, 100*time.Millisecond, true)
			var waits []time.Duration
			for k, p := range lows {
				ls, ok := granted(t, p)
				if !ok {
					t.Fatalf("low request %d never granted (waits so far %v)", k+1, waits)
				}
				waits = append(waits, ls.Waited)
			}
			slices.Sort(waits)
			for k, w := range waits {
				hi := tc.maxAging + time.Duration(k)*(slot+time.Second) + time.Second
				if w > hi {
					t.Errorf("low grant %d waited %v, more than its bound %v", k+1, w, hi)
				}
				// The credit the level had when the first aged may go
				// with it (at most one grant's worth); past that, one
				// owed grant per slot.
				if k > 0 && w-waits[0] < time.Duration(k-1)*slot-2*time.Second {
					t.Errorf("low grant %d only %v after the first: aged requests were promoted together (want at least %v)", k+1, w-waits[0], time.Duration(k-1)*slot)
				}
			}
			if waits[0] < tc.maxAging-time.Second {
				t.Errorf("the first low grant waited %v, less than MaxAging %v: strict priority first", waits[0], tc.maxAging)
			}
			if high := len(r.leases); high < int(float64(len(r.leases)+len(tc.lows))*(1-tc.lowShare))-len(tc.lows) {
				t.Errorf("the high backlog got only %d grants", high)
			}
		})
	}
}
