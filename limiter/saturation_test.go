package limiter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/limiter"
)

// This file checks rule 2 under saturation (issue 11) against the fake
// providers of internal/sim, called in-process on the fake clock: every
// grant is a call, every call's answer (and its headers) is reported.

// satClient is one agent of a saturation scenario: closed-loop clients keep
// Outstanding requests queued; open-loop ones arrive at random, Every on
// average: Poisson arrivals, or for an occasional ("light") agent evenly
// spread from half to one and a half times Every apart.
type satClient struct {
	name        string
	role        string // "heavy", "busy", "high", "light", "low"
	prio        limiter.Priority
	outstanding int
	every       time.Duration
}

func (c *satClient) gap(rng *rand.Rand) time.Duration {
	if c.role == "light" {
		return time.Duration((0.5 + rng.Float64()) * float64(c.every))
	}
	return time.Duration(rng.ExpFloat64() * float64(c.every))
}

type satReq struct {
	p      *limiter.Pending
	c      *satClient
	at     time.Time
	ahead  int // high requests waiting when it arrived (for "high")
	seqNum int
}

type satGrant struct {
	at    time.Time
	role  string
	wait  time.Duration
	ahead int
}

type satResult struct {
	grants   []satGrant
	refused  int64 // 429s from the provider
	accepted int64
}

// runSaturation runs clients against a provider of quota requests per
// window, counted as kind, for windows windows, and returns every grant.
func runSaturation(t *testing.T, quota int64, window time.Duration, kind sim.WindowKind, windows int, clients []*satClient, cfg limiter.Config) satResult {
	t.Helper()
	clk := fakeclock.New(t0)
	pol := limiter.Policy{Quota: quota, Unit: limiter.Requests, Window: window}
	prov, err := sim.NewProvider(sim.ProviderConfig{Limits: []limiter.Policy{pol}, Window: kind, Dialect: "openai", Now: clk.Now, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services = []limiter.ServiceConfig{{Name: "api", Dialect: limiter.DialectOpenAI, Limits: []limiter.Policy{pol}}}
	for _, c := range clients {
		cfg.Agents = append(cfg.Agents, limiter.AgentConfig{Name: c.name, Priority: c.prio})
	}
	l, err := limiter.New(cfg, limiter.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	l.Seed(1)
	defer l.Close()
	rng := rand.New(rand.NewPCG(11, uint64(quota)))
	end := t0.Add(time.Duration(windows) * window)
	var (
		res     satResult
		pending []*satReq
		next    = map[*satClient]time.Time{} // next arrival of open-loop clients
		n       int
	)
	submit := func(c *satClient) {
		ahead := 0
		if c.role == "high" {
			for _, r := range pending {
				if r.c.role == "high" {
					ahead++
				}
			}
		}
		p, err := l.Submit(limiter.Request{Agent: c.name, Service: "api", MaxWait: 24 * time.Hour})
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		n++
		pending = append(pending, &satReq{p: p, c: c, at: clk.Now(), ahead: ahead, seqNum: n})
	}
	call := func(ls limiter.Lease) {
		body, _ := json.Marshal(sim.CallRequest{Agent: ls.Agent, MaxTokens: 10})
		rec := httptest.NewRecorder()
		prov.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/call", bytes.NewReader(body)))
		if _, err := l.Report(limiter.Report{Lease: ls.ID, Service: "api", Status: rec.Code, Header: sim.Headers(rec.Header())}); err != nil {
			t.Fatalf("report: %v", err)
		}
		if rec.Code == http.StatusTooManyRequests {
			res.refused++
		} else {
			res.accepted++
		}
	}
	for _, c := range clients {
		if c.every > 0 {
			next[c] = t0.Add(c.gap(rng))
		}
		for range c.outstanding {
			submit(c)
		}
	}
	for {
		// Collect answers; closed-loop clients ask again at once.
		keep := pending[:0]
		var again []*satClient
		for _, r := range pending {
			ls, err, ok := r.p.Poll()
			switch {
			case !ok:
				keep = append(keep, r)
				continue
			case err != nil:
				t.Fatalf("%s refused: %v", r.c.name, err)
			}
			res.grants = append(res.grants, satGrant{at: ls.GrantedAt, role: r.c.role, wait: ls.Waited, ahead: r.ahead})
			call(ls)
			if r.c.outstanding > 0 && clk.Now().Before(end) {
				again = append(again, r.c)
			}
		}
		pending = keep
		for _, c := range again {
			submit(c)
		}
		if len(again) > 0 {
			continue // the new requests may be granted at this instant
		}
		// Then on to the next event: a limiter timer or an arrival.
		at, ok := clk.Next()
		for c, a := range next {
			if !ok || a.Before(at) {
				at, ok = a, true
			}
			_ = c
		}
		if !ok || !at.Before(end) {
			break
		}
		clk.AdvanceTo(at)
		for c, a := range next {
			if !a.After(clk.Now()) {
				submit(c)
				next[c] = a.Add(c.gap(rng))
			}
		}
	}
	slices.SortStableFunc(res.grants, func(a, b satGrant) int { return a.at.Compare(b.at) })
	return res
}

// p99 of xs.
func p99(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

// maxCount returns the most grants any half-open window [s, s+w) holds,
// for windows starting at or after from.
func maxCount(gs []satGrant, w time.Duration, from time.Time) int {
	best, j := 0, 0
	for i := range gs {
		if gs[i].at.Before(from) {
			continue
		}
		if j < i {
			j = i
		}
		for j < len(gs) && gs[j].at.Before(gs[i].at.Add(w)) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// Under a backlog from many agents (a flood, busy agents, low ones) with
// high-priority and light requests arriving at random, at quotas from 10 to
// 6000 a window and against sliding, fixed and token-bucket providers:
// no 429, no window over quota, goodput at least 97%; after the first
// window no quarter window holds more than a quarter of the quota plus one
// grant (no herd at window starts); a high request waits at most two grant
// intervals beyond the high requests granted before it, and a light
// agent's request two grant intervals beyond the high ones (which go first
// by priority), p99.
func TestEvenSpacingUnderSaturation(t *testing.T) {
	const window = time.Minute
	for _, quota := range []int64{10, 20, 50, 100, 500, 6000} {
		for _, kind := range []sim.WindowKind{sim.Sliding, sim.Fixed, sim.Bucket} {
			t.Run(fmt.Sprintf("%d per window, %v", quota, kind), func(t *testing.T) {
				interval := window / time.Duration(quota)
				// Enough windows for a thousand grants or so (so that a
				// p99 means something), at least 4.
				windows := int(max(4, 1200/quota))
				clients := []*satClient{
					{name: "heavy", role: "heavy", prio: limiter.Normal, outstanding: int(min(quota, 200)) + 4},
					{name: "busy-1", role: "busy", prio: limiter.Normal, outstanding: 2},
					{name: "busy-2", role: "busy", prio: limiter.Normal, outstanding: 2},
					{name: "low-1", role: "low", prio: limiter.Low, outstanding: 2},
					{name: "low-2", role: "low", prio: limiter.Low, outstanding: 2},
					// High requests: a tenth of the quota, at random.
					{name: "high-1", role: "high", prio: limiter.High, every: 20 * interval},
					{name: "high-2", role: "high", prio: limiter.High, every: 20 * interval},
					// A light agent: one request every 25 grant intervals.
					{name: "light", role: "light", prio: limiter.Normal, every: 25 * interval},
				}
				res := runSaturation(t, quota, window, kind, windows, clients, limiter.Config{})
				if res.refused != 0 {
					t.Errorf("%d calls refused with 429 by the %v provider", res.refused, kind)
				}
				if got := maxCount(res.grants, window, t0); int64(got) > quota {
					t.Errorf("a window holds %d grants, quota %d", got, quota)
				}
				goodput := float64(res.accepted) / float64(int64(windows)*quota)
				if goodput < 0.97 {
					t.Errorf("goodput %.2f%% of the quota, want at least 97%%", 100*goodput)
				}
				quarter := maxCount(res.grants, window/4, t0.Add(window))
				if limit := float64(quota)/4 + 1; float64(quarter) > limit {
					t.Errorf("a quarter window after the first window holds %d grants, more than a quarter of the quota plus one (%.2f)", quarter, limit)
				}
				// The high requests ahead of a request are those granted
				// while it waited (by fair queueing between the high
				// agents, not only those that came first).
				var high, light []float64
				for i, g := range res.grants {
					if g.role != "high" && g.role != "light" {
						continue
					}
					ahead := 0
					for j := i - 1; j >= 0 && res.grants[j].at.After(g.at.Add(-g.wait)); j-- {
						if res.grants[j].role == "high" {
							ahead++
						}
					}
					beyond := float64(g.wait)/float64(interval) - float64(ahead)
					if g.role == "high" {
						high = append(high, beyond)
					} else {
						light = append(light, beyond)
					}
				}
				if len(high) < 10 || len(light) < 5 {
					t.Fatalf("%d high and %d light grants: too few to judge", len(high), len(light))
				}
				hp, lp := p99(high), p99(light)
				t.Logf("goodput %.2f%%, quarter max %d (%.3f of quota), high p99 %.2f intervals beyond those ahead, light p99 %.2f intervals",
					100*goodput, quarter, float64(quarter)/float64(quota), hp, lp)
				if hp > 2 {
					t.Errorf("high p99 %.2f grant intervals beyond the highs ahead, want at most 2", hp)
				}
				if lp > 2 {
					t.Errorf("light p99 %.2f grant intervals, want at most 2", lp)
				}
			})
		}
	}
}

// With high priority saturating the quota alone, low priority still
// receives its floor share (within 10%), whatever the quota, and no low
// request waits longer than the documented bound: MaxAging plus 1/share + 1
// grant intervals for itself and each low request ahead of it.
func TestFloorShareUnderSaturation(t *testing.T) {
	const window = time.Minute
	tests := []struct {
		quota    int64
		lowShare float64
		lows     int // closed-loop low clients, one request each
	}{
		{20, 0, 3},
		{100, 0, 3},
		{100, 0.2, 4},
		{6000, 0, 3},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d per window, low share %v", tc.quota, tc.lowShare), func(t *testing.T) {
			share := tc.lowShare
			if share == 0 {
				share = limiter.DefaultLowShare
			}
			interval := window / time.Duration(tc.quota)
			clients := []*satClient{{name: "boss", role: "high", prio: limiter.High, outstanding: int(min(tc.quota, 200)) + 4}}
			for i := range tc.lows {
				clients = append(clients, &satClient{name: fmt.Sprintf("low-%d", i), role: "low", prio: limiter.Low, outstanding: 1})
			}
			windows := 8
			if tc.quota > 500 {
				windows = 3 // 18,000 grants already
			}
			res := runSaturation(t, tc.quota, window, sim.Sliding, windows, clients, limiter.Config{LowShare: tc.lowShare})
			var low, all int
			var worst time.Duration
			for _, g := range res.grants {
				if g.at.Before(t0.Add(window)) {
					continue // the first window: credits start at zero
				}
				all++
				if g.role == "low" {
					low++
					worst = max(worst, g.wait)
				}
			}
			got := float64(low) / float64(all)
			bound := limiter.DefaultMaxAging + time.Duration(float64(tc.lows)*(1/share+1)*float64(interval))
			t.Logf("low got %.4f of %d grants (floor %.2f); longest low wait %v (bound %v)", got, all, share, worst, bound)
			if math.Abs(got-share) > share/10 {
				t.Errorf("low received %.4f of the grants, want its floor share %.2f within 10%%", got, share)
			}
			if worst > bound {
				t.Errorf("a low request waited %v, more than its bound %v", worst, bound)
			}
			if res.refused != 0 {
				t.Errorf("%d 429s", res.refused)
			}
		})
	}
}
