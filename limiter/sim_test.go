package limiter_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// TestSimulation runs 10,000 requests from 20 agents with mixed weights,
// priorities and costs against 500 requests/1m + 200000 tokens/1m on the
// fake clock, and checks safety, utilization, fairness, weights and
// priority together.
//
// Workload (deterministic): 14 normal agents (one of weight 2) with a
// backlog from the start; 4 low agents with a backlog; 2 high agents that
// send one request every 3 s each. Tokens per request are 100..900, so
// tokens (about 400 requests a minute) bind before requests do.
func TestSimulation(t *testing.T) {
	const (
		reqQuota = 500
		tokQuota = 200000
		window   = time.Minute
		total    = 10000
	)
	type agentSpec struct {
		name   string
		prio   limiter.Priority
		weight float64
	}
	var specs []agentSpec
	for i := range 14 {
		w := 1.0
		if i == 0 {
			w = 2
		}
		specs = append(specs, agentSpec{fmt.Sprintf("normal%02d", i), limiter.Normal, w})
	}
	for i := range 4 {
		specs = append(specs, agentSpec{fmt.Sprintf("low%d", i), limiter.Low, 1})
	}
	for i := range 2 {
		specs = append(specs, agentSpec{fmt.Sprintf("high%d", i), limiter.High, 1})
	}
	cfg := limiter.Config{Services: []limiter.ServiceConfig{svcCfg("api",
		pol(reqQuota, limiter.Requests, window), pol(tokQuota, limiter.Tokens, window))}}
	for _, s := range specs {
		cfg.Agents = append(cfg.Agents, limiter.AgentConfig{Name: s.name, Priority: s.prio, Weight: s.weight})
	}
	l, clk := newLim(t, cfg)
	rng := rand.New(rand.NewPCG(42, 42))
	cost := func() limiter.Cost {
		return limiter.Cost{limiter.Requests: 1, limiter.Tokens: 100 + rng.Int64N(801)}
	}
	r := &runner{t: t, l: l, clk: clk}
	sent := 0
	send := func(agent string) {
		r.add(submit(t, l, limiter.Request{Agent: agent, Service: "api", Cost: cost(), MaxWait: 2 * time.Hour}))
		sent++
	}
	// Backlogs: 570 per normal agent, 250 per low agent; the high agents'
	// 1,000 requests arrive over the run.
	for range 570 {
		for _, s := range specs[:14] {
			send(s.name)
		}
	}
	for range 250 {
		for _, s := range specs[14:18] {
			send(s.name)
		}
	}
	highLeft := total - sent
	var busyUntil time.Time // when the first normal agent ran dry
	for step := 0; len(r.pending) > 0 || highLeft > 0; step++ {
		if step%3 == 0 && highLeft > 0 {
			send("high0")
			send("high1")
			highLeft -= 2
		}
		clk.Advance(time.Second)
		r.poll(true)
		if busyUntil.IsZero() {
			for _, s := range specs[:14] {
				if agentStatus(t, l, s.name).Queued == 0 {
					busyUntil = clk.Now()
					break
				}
			}
		}
		if step > 4*3600 {
			t.Fatal("simulation did not finish in 4 hours")
		}
	}
	if len(r.errs) > 0 {
		t.Fatalf("%d refusals, first %#v", len(r.errs), r.errs[0])
	}
	if len(r.leases) != total {
		t.Fatalf("%d grants, want %d", len(r.leases), total)
	}

	t.Run("safety", func(t *testing.T) {
		for _, p := range []limiter.Policy{pol(reqQuota, limiter.Requests, window), pol(tokQuota, limiter.Tokens, window)} {
			if got, at := maxInWindow(r.recs(p.Unit), p.Window); got > p.Quota {
				t.Errorf("the minute from %v holds %d %s, quota %d", at.Sub(t0), got, p.Unit, p.Quota)
			}
		}
	})

	t.Run("utilization", func(t *testing.T) {
		// The queue never ran empty before the last grant: every whole
		// minute up to it must be (nearly) fully used on the binding unit.
		last := r.leases[0].GrantedAt
		for _, ls := range r.leases {
			if ls.GrantedAt.After(last) {
				last = ls.GrantedAt
			}
		}
		minutes := int64(last.Sub(t0) / window)
		var req, tok int64
		for _, ls := range r.leases {
			if ls.GrantedAt.Before(t0.Add(time.Duration(minutes) * window)) {
				req += ls.Cost[limiter.Requests]
				tok += ls.Cost[limiter.Tokens]
			}
		}
		u := max(float64(req)/float64(minutes*reqQuota), float64(tok)/float64(minutes*tokQuota))
		t.Logf("%d whole minutes: %d requests, %d tokens, utilization %.2f%%", minutes, req, tok, 100*u)
		if u < 0.97 {
			t.Errorf("utilization %.2f%%, want at least 97%%", 100*u)
		}
	})

	// Shares while every normal agent still had a backlog, in the dominant
	// unit (what fair queueing balances).
	share := map[string]float64{}
	for _, ls := range r.leases {
		if ls.GrantedAt.Before(busyUntil) {
			share[ls.Agent] += max(float64(ls.Cost[limiter.Requests])/reqQuota, float64(ls.Cost[limiter.Tokens])/tokQuota)
		}
	}
	if testing.Verbose() {
		per := map[string][4]int{}
		for _, ls := range r.leases {
			if m := int(ls.GrantedAt.Sub(t0) / time.Minute); m < 4 {
				x := per[ls.Agent]
				x[m]++
				per[ls.Agent] = x
			}
		}
		t.Logf("grants per agent in the first 4 minutes: %v", per)
	}
	var equal []float64
	for _, s := range specs[1:14] {
		equal = append(equal, share[s.name])
	}

	t.Run("fairness", func(t *testing.T) {
		var sum, sq float64
		for _, x := range equal {
			sum += x
			sq += x * x
		}
		jain := sum * sum / (float64(len(equal)) * sq)
		t.Logf("busy for %v; Jain's index over %d equal agents: %.4f", busyUntil.Sub(t0), len(equal), jain)
		if busyUntil.Sub(t0) < 5*time.Minute {
			t.Fatalf("normal agents were busy together only %v; the workload is too small to judge", busyUntil.Sub(t0))
		}
		if jain < 0.95 {
			t.Errorf("Jain's index %.4f, want at least 0.95", jain)
		}
	})

	t.Run("weights", func(t *testing.T) {
		var mean float64
		for _, x := range equal {
			mean += x / float64(len(equal))
		}
		ratio := share["normal00"] / mean
		t.Logf("weight-2 agent's share is %.3fx a weight-1 agent's", ratio)
		if math.Abs(ratio-2) > 0.2 {
			t.Errorf("weight-2 agent got %.3fx a weight-1 agent's share, want 2x ±10%%", ratio)
		}
	})

	t.Run("priority", func(t *testing.T) {
		p99 := func(prio string) time.Duration {
			var ws []time.Duration
			for _, ls := range r.leases {
				if ls.Agent[:len(prio)] == prio {
					ws = append(ws, ls.Waited)
				}
			}
			slices.Sort(ws)
			return ws[len(ws)*99/100]
		}
		high, low := p99("high"), p99("low")
		t.Logf("p99 wait: high %v, low %v", high, low)
		if high*5 > low {
			t.Errorf("p99 wait of high %v is more than a fifth of low's %v", high, low)
		}
	})
}
