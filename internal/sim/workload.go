package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Shape is how an agent's calls arrive.
type Shape int

const (
	// Busy is a closed loop: Workers calls in flight, each followed at once
	// by the next, like an agent that always has work.
	Busy Shape = iota
	// Poisson is an open loop of Rate calls per second at random times.
	Poisson
	// Bursty is an open loop of Burst calls at once every Period.
	Bursty
)

// Roles group agents for the metrics.
const (
	RoleBusy     = "busy"     // normal priority, weight 1, closed loop
	RoleHeavy    = "heavy"    // like busy, but many calls in flight: a flood
	RoleWeighted = "weighted" // like busy, weight 2
	RoleLow      = "low"      // low priority, closed loop
	RoleHigh     = "high"     // high priority, bursts
	RoleLight    = "light"    // normal priority, a few small calls
)

// AgentSpec describes one agent of a workload.
type AgentSpec struct {
	Name     string
	Role     string
	Priority limiter.Priority
	Weight   float64
	Shape    Shape
	Workers  int           // Busy: calls in flight
	Rate     float64       // Poisson: calls per second
	Burst    int           // Bursty: calls per burst
	Period   time.Duration // Bursty: time between bursts
	// Each call's prompt is uniform in [PromptMin, PromptMax] tokens, its
	// max_tokens is MaxTokens and its real completion is uniform in
	// [MaxTokens/5, MaxTokens]: the estimate a client reserves (prompt +
	// max_tokens) is always at least the real usage.
	PromptMin, PromptMax int64
	MaxTokens            int64
}

// Estimate is the most tokens one of the agent's calls can use.
func (a AgentSpec) Estimate() int64 { return a.PromptMax + a.MaxTokens }

// Workload is one scenario: a provider and the agents that share it.
type Workload struct {
	Provider ProviderConfig
	Agents   []AgentSpec
	// Duration is how long agents make calls.
	Duration time.Duration
	// Compression is how many real seconds one simulated second stands for;
	// delays a strategy takes from the real world (SDK backoff, the
	// daemon's aging bound) are divided by it.
	Compression float64
	// Limits are the daemon's configured limits under Quotabar; nil means
	// the provider's own.
	Limits []limiter.Policy
	// Headroom is the daemon's: the fraction of every quota it keeps in
	// reserve (the quotabar strategies only).
	Headroom float64
	Seed     uint64
}

// Standard returns the benchmark's workload for n agents (n >= 5): a
// provider allowing 100 requests and 80,000 tokens per window (6,000
// requests and 4.8M tokens a minute when window is 60s/compression),
// counted as a token bucket and reported in OpenAI's headers, as OpenAI
// does; calls of 40-60 ms; and a mix of agents:
//
//   - n/10 light agents (at least 1): small calls at random, each at a
//     quarter of a fair share of the requests quota (at most 2 a second),
//     so that a fair scheduler should serve them at once;
//   - one heavy agent: 16 calls in flight, a flood;
//   - n/10 high-priority agents (at least 1): bursts of 3 calls every second;
//   - n/5 low-priority busy agents (at least 1);
//   - n/10 busy agents of weight 2 (none at n < 10);
//   - the rest busy agents of weight 1.
//
// Busy agents (of every priority and weight) keep 4 calls in flight, more
// than their fair share needs even at 5 agents, so that each always has a
// request waiting and a fair scheduler must split the quota evenly between
// them and the heavy one. They have the same call sizes as the heavy
// agent, so fairness can be judged by calls alone.
func Standard(n int, window time.Duration, windows int, compression float64) (Workload, error) {
	return StandardQuota(n, 100, window, windows, compression)
}

// StandardQuota is Standard with a provider of quota requests per window
// (and 800 tokens per request, at least 80,000: a small request quota, such
// as a lower tier's 20 a minute, is the limit that binds, not calls that
// are each a tenth of a small token quota); the high-priority bursts
// shrink with the quota (3 calls at 100, at least 1), so that they stay
// bursts, not a saturating load.
func StandardQuota(n int, quota int64, window time.Duration, windows int, compression float64) (Workload, error) {
	if quota < 1 {
		return Workload{}, fmt.Errorf("sim: the standard workload needs a quota of at least 1 request a window, got %d", quota)
	}
	if n < 5 {
		return Workload{}, fmt.Errorf("sim: the standard workload needs at least 5 agents, got %d", n)
	}
	if window <= 0 || windows <= 0 || compression <= 0 {
		return Workload{}, fmt.Errorf("sim: window, windows and compression must be positive")
	}
	w := Workload{
		Provider: ProviderConfig{
			Limits: []limiter.Policy{
				{Quota: quota, Unit: limiter.Requests, Window: window},
				{Quota: max(800*quota, 80000), Unit: limiter.Tokens, Window: window},
			},
			Window:  Bucket,
			Dialect: limiter.DialectOpenAI,
			Latency: 40 * time.Millisecond,
			Jitter:  20 * time.Millisecond,
		},
		Duration:    time.Duration(windows) * window,
		Compression: compression,
		Seed:        1,
	}
	busy := func(name, role string, prio limiter.Priority, weight float64, workers int) AgentSpec {
		return AgentSpec{Name: name, Role: role, Priority: prio, Weight: weight, Shape: Busy, Workers: workers,
			PromptMin: 200, PromptMax: 1000, MaxTokens: 500}
	}
	add := func(count int, f func(i int) AgentSpec) {
		for i := range count {
			w.Agents = append(w.Agents, f(i))
		}
	}
	light, high, low, weighted := max(1, n/10), max(1, n/10), max(1, n/5), n/10
	lightRate := 2.0
	for _, p := range w.Provider.Limits {
		if p.Unit == limiter.Requests {
			lightRate = min(lightRate, float64(p.Quota)/p.Window.Seconds()/float64(4*n))
		}
	}
	add(light, func(i int) AgentSpec {
		return AgentSpec{Name: fmt.Sprintf("light-%d", i+1), Role: RoleLight, Priority: limiter.Normal, Weight: 1, Shape: Poisson,
			Rate: lightRate, PromptMin: 50, PromptMax: 150, MaxTokens: 100}
	})
	add(1, func(int) AgentSpec { return busy("heavy", RoleHeavy, limiter.Normal, 1, 16) })
	add(high, func(i int) AgentSpec {
		return AgentSpec{Name: fmt.Sprintf("high-%d", i+1), Role: RoleHigh, Priority: limiter.High, Weight: 1,
			Shape: Bursty, Burst: int(max(1, 3*quota/100)), Period: time.Second, PromptMin: 200, PromptMax: 1000, MaxTokens: 500}
	})
	add(low, func(i int) AgentSpec { return busy(fmt.Sprintf("low-%d", i+1), RoleLow, limiter.Low, 1, 4) })
	add(weighted, func(i int) AgentSpec { return busy(fmt.Sprintf("w2-%d", i+1), RoleWeighted, limiter.Normal, 2, 4) })
	add(n-len(w.Agents), func(i int) AgentSpec { return busy(fmt.Sprintf("busy-%d", i+1), RoleBusy, limiter.Normal, 1, 4) })
	return w, nil
}

// validate checks what Run relies on.
func (w Workload) validate() error {
	if len(w.Agents) == 0 || w.Duration <= 0 || w.Compression <= 0 {
		return errors.New("sim: a workload needs agents, a positive duration and a positive compression")
	}
	seen := map[string]bool{}
	for i, a := range w.Agents {
		if err := limiter.ValidName(a.Name); err != nil {
			return fmt.Errorf("sim: agent %d: %w", i, err)
		}
		if seen[a.Name] {
			return fmt.Errorf("sim: agent %q appears twice", a.Name)
		}
		seen[a.Name] = true
		switch {
		case a.Shape == Busy && a.Workers < 1:
			return fmt.Errorf("sim: busy agent %q needs at least 1 worker", a.Name)
		case a.Shape == Poisson && a.Rate <= 0:
			return fmt.Errorf("sim: poisson agent %q needs a positive rate", a.Name)
		case a.Shape == Bursty && (a.Burst < 1 || a.Period <= 0):
			return fmt.Errorf("sim: bursty agent %q needs a burst of at least 1 and a positive period", a.Name)
		case a.Shape < Busy || a.Shape > Bursty:
			return fmt.Errorf("sim: agent %q has unknown shape %d", a.Name, a.Shape)
		case a.PromptMin < 0 || a.PromptMax < a.PromptMin || a.MaxTokens < 0:
			return fmt.Errorf("sim: agent %q: want 0 <= prompt_min <= prompt_max and max_tokens >= 0", a.Name)
		}
	}
	return nil
}
