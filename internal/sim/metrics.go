package sim

import (
	"math"
	"slices"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Waits summarises how long calls waited from "want to call" to "call
// sent", in milliseconds.
type Waits struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// Result is what one run of one strategy measured.
type Result struct {
	Strategy Strategy `json:"strategy"`
	Agents   int      `json:"agents"`
	Seconds  float64  `json:"seconds"`
	// Goodput is the provider's accepted usage as a percentage of what its
	// quota allows in that time (quota × time / window), for the policy
	// closest to full (GoodputBy has each unit). It is measured after the
	// run's first window: a token-bucket provider starts full and lets one
	// extra quota through then, which says nothing about steady use.
	Goodput   float64            `json:"goodput_pct"`
	GoodputBy map[string]float64 `json:"goodput_pct_by_unit"`
	Accepted  int64              `json:"accepted"`
	// Provider429 counts 429 answers; Rate429 is them as a percentage of
	// every call sent to the provider.
	Provider429 int64   `json:"provider_429"`
	Rate429     float64 `json:"rate_429_pct"`
	// Failed counts calls an SDK gave up on after its retries.
	Failed int `json:"failed"`
	// DaemonRefusals counts acquires the daemon refused (the agent waited
	// its retry_after_ms and asked again).
	DaemonRefusals int `json:"daemon_refusals"`
	// Wait is "want to call" to "call sent" per priority, over calls wanted
	// before the last window of the run; a call still waiting at the end
	// counts with the time it had waited so far, a call given up on does not
	// count (see Failed).
	Wait map[string]Waits `json:"wait"`
	// Jain is Jain's fairness index of calls accepted per agent (after the
	// first window, like Goodput: at the start, whichever agent asks first
	// takes the idle quota, which is fair but says nothing about sharing)
	// among the busy agents of weight 1 and normal priority, the heavy one
	// included.
	Jain       float64 `json:"jain"`
	JainAgents int     `json:"jain_agents"`
	// Weight2Ratio is a weight-2 agent's calls over a weight-1 busy agent's
	// (0 when the workload has none).
	Weight2Ratio float64 `json:"weight2_ratio,omitempty"`
	// HeavyShare is the heavy agent's calls over a weight-1 busy agent's:
	// 1 when its flood buys it nothing.
	HeavyShare float64 `json:"heavy_ratio"`
	// LightServed is the percentage of the light agents' calls (wanted
	// before the last window) that went through; LightP50 and LightP99
	// their waits.
	LightServed float64 `json:"light_served_pct"`
	LightP50    float64 `json:"light_p50_ms"`
	LightP99    float64 `json:"light_p99_ms"`
	// Quota is the provider's requests per window and GrantIntervalMS the
	// window over it: the spacing of an evenly paced backlog.
	Quota           int64   `json:"quota_requests"`
	GrantIntervalMS float64 `json:"grant_interval_ms"`
	// QuarterMax is the most calls the provider accepted in any quarter of
	// a window after the first window, as a fraction of the quota: 0.25
	// (plus one call) when a backlog is evenly spaced, more when it comes
	// in herds at window starts.
	QuarterMax float64 `json:"quarter_max_frac"`
	// HighP99Intervals and LightP99Intervals are the high-priority and the
	// light agents' p99 waits in grant intervals.
	HighP99Intervals  float64 `json:"high_p99_intervals"`
	LightP99Intervals float64 `json:"light_p99_intervals"`
	// LowShare is the low-priority agents' part of the calls accepted after
	// the first window, in percent: their floor share (5% by default) when
	// higher priorities saturate the quota.
	LowShare float64 `json:"low_share_pct"`
	// Overshoot is the most any window of a policy's length held, over its
	// quota, for the worst policy: above 1 the provider's limit was crossed
	// in the sliding-window sense.
	Overshoot   float64            `json:"overshoot"`
	OvershootBy map[string]float64 `json:"overshoot_by_unit"`
}

// measure turns the provider's record and the agents' records into a
// Result.
func (r *runner) measure(p *Provider, start time.Time) Result {
	res := Result{
		Strategy: r.strategy, Agents: len(r.agents), Seconds: r.w.Duration.Seconds(),
		GoodputBy: map[string]float64{}, OvershootBy: map[string]float64{}, Wait: map[string]Waits{},
	}
	grants := p.Grants()
	st := p.Stats()
	res.Accepted, res.Provider429 = st.Accepted, st.Refused
	if n := st.Accepted + st.Refused; n > 0 {
		res.Rate429 = 100 * float64(st.Refused) / float64(n)
	}

	// Goodput and overshoot, from what the provider accepted.
	perAgent := map[string]int64{}
	used := limiter.Cost{}
	steady := start.Add(min(r.window(), r.w.Duration/2))
	for _, g := range grants {
		if g.At.Before(start) || !g.At.Before(r.end) {
			continue
		}
		if g.At.Before(steady) {
			continue
		}
		perAgent[g.Agent]++
		for u, v := range g.Cost {
			used[u] += v
		}
	}
	var steadyGrants []time.Time
	var lowCalls, allCalls int64
	roles := map[string]string{}
	for _, a := range r.agents {
		roles[a.spec.Name] = a.spec.Role
	}
	for _, g := range grants {
		if g.At.Before(steady) || !g.At.Before(r.end) {
			continue
		}
		steadyGrants = append(steadyGrants, g.At)
		allCalls++
		if roles[g.Agent] == RoleLow {
			lowCalls++
		}
	}
	if allCalls > 0 {
		res.LowShare = 100 * float64(lowCalls) / float64(allCalls)
	}
	for _, pol := range r.w.Provider.Limits {
		if pol.Unit == limiter.Requests {
			res.Quota = pol.Quota
			res.GrantIntervalMS = ms(pol.Window) / float64(pol.Quota)
			res.QuarterMax = float64(MaxIn(steadyGrants, pol.Window/4)) / float64(pol.Quota)
		}
	}
	for _, pol := range r.w.Provider.Limits {
		allowed := float64(pol.Quota) * float64(r.end.Sub(steady)) / float64(pol.Window)
		g := 100 * float64(used[pol.Unit]) / allowed
		res.GoodputBy[string(pol.Unit)] = g
		res.Goodput = max(res.Goodput, g)
		o := Overshoot(grants, pol)
		res.OvershootBy[string(pol.Unit)] = o
		res.Overshoot = max(res.Overshoot, o)
	}

	// Fairness and shares, by calls accepted per agent.
	var fair, busy, weighted []float64
	var heavy float64
	for _, a := range r.agents {
		n := float64(perAgent[a.spec.Name])
		switch a.spec.Role {
		case RoleBusy:
			fair, busy = append(fair, n), append(busy, n)
		case RoleHeavy:
			fair, heavy = append(fair, n), n
		case RoleWeighted:
			weighted = append(weighted, n)
		}
	}
	res.Jain, res.JainAgents = Jain(fair), len(fair)
	if b := mean(busy); b > 0 {
		res.HeavyShare = heavy / b
		if len(weighted) > 0 {
			res.Weight2Ratio = mean(weighted) / b
		}
	}

	// Waits, over calls wanted before the last window so that every one
	// had time to be served.
	cutoff := r.end.Add(-min(r.window(), r.w.Duration/2))
	waits := map[limiter.Priority][]time.Duration{}
	var light []time.Duration
	var lightWanted, lightOK int
	for _, a := range r.agents {
		a.mu.Lock()
		for _, rec := range a.records {
			res.DaemonRefusals += rec.refusals
			if rec.gaveUp {
				res.Failed++
			}
			if !rec.want.Before(cutoff) {
				continue
			}
			isLight := a.spec.Role == RoleLight
			if isLight {
				lightWanted++
				if rec.ok {
					lightOK++
				}
			}
			if rec.gaveUp {
				continue
			}
			w := r.end.Sub(rec.want) // still waiting at the end
			if rec.ok {
				w = rec.sent.Sub(rec.want)
			}
			waits[a.spec.Priority] = append(waits[a.spec.Priority], w)
			if isLight {
				light = append(light, w)
			}
		}
		a.mu.Unlock()
	}
	for prio, ws := range waits {
		res.Wait[prio.String()] = Waits{N: len(ws), P50: ms(percentile(ws, 0.50)), P99: ms(percentile(ws, 0.99))}
	}
	if lightWanted > 0 {
		res.LightServed = 100 * float64(lightOK) / float64(lightWanted)
		res.LightP50 = ms(percentile(light, 0.50))
		res.LightP99 = ms(percentile(light, 0.99))
	}
	if res.GrantIntervalMS > 0 {
		res.HighP99Intervals = res.Wait[limiter.High.String()].P99 / res.GrantIntervalMS
		res.LightP99Intervals = res.LightP99 / res.GrantIntervalMS
	}
	return res
}

// MaxIn is the most of the times ts (in order) within any half-open span
// [t, t+d).
func MaxIn(ts []time.Time, d time.Duration) int {
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(d)) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// window is the longest window of the provider's policies.
func (r *runner) window() time.Duration {
	var w time.Duration
	for _, p := range r.w.Provider.Limits {
		w = max(w, p.Window)
	}
	return w
}

// Jain is Jain's fairness index (Σx)² / (n·Σx²): 1 when every x is equal,
// 1/n when one takes everything.
func Jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// percentile is the nearest-rank q-quantile of ds (sorted in place).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
