package sim

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// transit is how far apart a grant and its call's arrival at the provider
// may drift (the agent's socket round trip and HTTP call on a busy machine).
// Overshoot is judged over windows this much shorter than the policy's, so
// that it measures the daemon's decisions, not the machine's scheduling.
const transit = 10 * time.Millisecond

func worstOvershoot(p []Grant, limits []limiter.Policy) float64 {
	var worst float64
	for _, pol := range limits {
		pol.Window -= transit
		worst = max(worst, Overshoot(p, pol))
	}
	return worst
}

// TestQuotabarScenarios runs small simulations through the real daemon and
// socket and checks quotabar's promise: no 429 and no window over its quota,
// while the quota is still put to use.
func TestQuotabarScenarios(t *testing.T) {
	testenv.RealTime(t)
	std := func(mod func(*Workload)) Workload {
		w, err := Standard(5, time.Second, 3, 60)
		if err != nil {
			t.Fatal(err)
		}
		mod(&w)
		return w
	}
	tests := []struct {
		name        string
		w           Workload
		strategy    Strategy
		minGoodput  float64
		max429Share float64 // percent of calls sent
	}{
		// OpenAI's model: a token bucket, its headers on every answer.
		{"limits configured, openai bucket", std(func(*Workload) {}), Quotabar, 85, 0},
		// The strictest provider, with no headers to lean on: the
		// daemon's own sliding-window ledger must hold alone. A grant and
		// its call's arrival are a socket round trip and an HTTP call
		// apart, and that gap varies, so a window packed to the last token
		// at the daemon can be crossed at the provider (with the provider's
		// exact limits some runs here see a 429 or two, up to about 1% of
		// calls, and 2% headroom does not prevent it under -race). The
		// daemon is given windows 100 ms longer, the margin a careful user
		// configures for a strict provider.
		{"limits configured with a transit margin, strict sliding window, no headers", std(func(w *Workload) {
			w.Provider.Window, w.Provider.Dialect = Sliding, ""
			for _, p := range w.Provider.Limits {
				p.Window += 100 * time.Millisecond
				w.Limits = append(w.Limits, p)
			}
		}), Quotabar, 85, 0},
		{"limits learned from openai headers", std(func(*Workload) {}), QuotabarLearn, 80, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, grants := runScenario(t, tt.w, tt.strategy)
			if tt.max429Share == 0 && res.Provider429 != 0 {
				t.Errorf("provider answered %d calls with 429, want none", res.Provider429)
			}
			if res.Rate429 > tt.max429Share {
				t.Errorf("429 rate %.2f%%, want at most %.2f%%", res.Rate429, tt.max429Share)
			}
			if tt.strategy == Quotabar {
				if o := worstOvershoot(grants, tt.w.Provider.Limits); o > 1 {
					t.Errorf("a window held %.3f of its quota, want at most 1", o)
				}
			}
			if res.Goodput < tt.minGoodput {
				t.Errorf("goodput %.1f%%, want at least %.0f%%", res.Goodput, tt.minGoodput)
			}
			t.Logf("goodput %.1f%% (%v), %d accepted, %d 429s, overshoot %v, waits %v",
				res.Goodput, res.GoodputBy, res.Accepted, res.Provider429, res.OvershootBy, res.Wait)
		})
	}
}

// TestSDKRetryBaseline checks that the measurements can fail: uncoordinated
// SDK retries against a bucket provider draw 429s and, from its full
// bucket, more than a quota in the first window.
func TestSDKRetryBaseline(t *testing.T) {
	testenv.RealTime(t)
	w, err := Standard(5, time.Second, 2, 60)
	if err != nil {
		t.Fatal(err)
	}
	res, grants := runScenario(t, w, SDKRetry)
	if res.Provider429 == 0 {
		t.Error("no 429s from uncoordinated retries")
	}
	if o := worstOvershoot(grants, w.Provider.Limits); o <= 1 {
		t.Errorf("worst window %.3f of quota; a full bucket should let more through", o)
	}
	if res.HeavyShare < 2 {
		t.Errorf("heavy agent got %.2fx a busy agent's calls; with 4x the calls in flight it should get more than 2x", res.HeavyShare)
	}
}

func runScenario(t *testing.T, w Workload, s Strategy) (Result, []Grant) {
	t.Helper()
	var grants []Grant
	res, err := run(context.Background(), w, s, func(p *Provider) { grants = p.Grants() })
	if err != nil {
		t.Fatal(err)
	}
	return res, grants
}

func TestStandardWorkload(t *testing.T) {
	for _, n := range []int{5, 20, 50} {
		w, err := Standard(n, time.Second, 3, 60)
		if err != nil {
			t.Fatal(err)
		}
		roles := map[string]int{}
		names := map[string]bool{}
		for _, a := range w.Agents {
			roles[a.Role]++
			if names[a.Name] {
				t.Errorf("n=%d: agent name %q twice", n, a.Name)
			}
			names[a.Name] = true
		}
		if len(w.Agents) != n || roles[RoleLight] < 1 || roles[RoleHeavy] != 1 || roles[RoleHigh] < 1 || roles[RoleLow] < 1 || roles[RoleBusy] < 1 {
			t.Errorf("n=%d: %d agents with roles %v", n, len(w.Agents), roles)
		}
	}
	if _, err := Standard(4, time.Second, 3, 60); err == nil {
		t.Error("Standard(4) gave no error")
	}
}

func TestRunRejectsBadWorkloads(t *testing.T) {
	good, err := Standard(5, time.Second, 2, 60)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mod    func(*Workload)
		wantIn string
	}{
		{"no agents", func(w *Workload) { w.Agents = nil }, "needs agents"},
		{"no duration", func(w *Workload) { w.Duration = 0 }, "positive duration"},
		{"bad name", func(w *Workload) { w.Agents[0].Name = "a b" }, "agent 0"},
		{"twice", func(w *Workload) { w.Agents[1].Name = w.Agents[0].Name }, "twice"},
		{"idle busy agent", func(w *Workload) { w.Agents[1].Workers = 0 }, "worker"},
		{"poisson without rate", func(w *Workload) { w.Agents[0].Rate = 0 }, "positive rate"},
		{"prompt range upside down", func(w *Workload) { w.Agents[1].PromptMax = 1 }, "prompt_min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := good
			w.Agents = slices.Clone(good.Agents)
			tt.mod(&w)
			_, err := Run(context.Background(), w, SDKRetry)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %v, want one containing %q", err, tt.wantIn)
			}
		})
	}
	if _, err := Run(context.Background(), good, "psychic"); err == nil {
		t.Error("unknown strategy accepted")
	}
	// A call bigger than the provider's whole quota is answered 400: the
	// run must stop and say so rather than count it as a refusal.
	huge := good
	huge.Agents = slices.Clone(good.Agents)
	huge.Agents[1].PromptMin, huge.Agents[1].PromptMax = 90000, 90000
	if _, err := Run(context.Background(), huge, Quotabar); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a call over the whole quota: error %v, want one naming the 400", err)
	}
}

// maxIn counts the most times in any half-open span: the quarter-window
// column of the benchmark.
func TestMaxIn(t *testing.T) {
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, time.Unix(0, 0).Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	tests := []struct {
		name string
		ts   []time.Time
		d    time.Duration
		want int
	}{
		{"none", nil, time.Second, 0},
		{"evenly spaced", at(0, 250, 500, 750, 1000), 250 * time.Millisecond, 1},
		{"a herd at the start", at(0, 1, 2, 3, 600, 900), 250 * time.Millisecond, 4},
		{"the span is half-open", at(0, 250), 250 * time.Millisecond, 1},
		{"all in one", at(0, 10, 20), time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxIn(tt.ts, tt.d); got != tt.want {
				t.Errorf("maxIn = %d, want %d", got, tt.want)
			}
		})
	}
}
