package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/quotabar/quotabar/internal/sim"
)

// Target is one of the project's goals checked against this run.
type Target struct {
	Name  string `json:"name"`
	Want  string `json:"want"`
	Got   string `json:"got"`
	Pass  bool   `json:"pass"`
	Scope string `json:"scope"`
}

// checkTargets judges the run by the goals in issue 6.
func checkTargets(rep Report) []Target {
	var ts []Target
	add := func(scope, name, want, got string, pass bool) {
		ts = append(ts, Target{Name: name, Want: want, Got: got, Pass: pass, Scope: scope})
	}
	for _, r := range rep.Runs {
		scope := fmt.Sprintf("%d agents, %d/window", r.Agents, r.Quota)
		switch r.Strategy {
		case sim.Quotabar:
			add(scope, "quotabar goodput", ">= 97%", pct(r.Goodput), r.Goodput >= 97)
			add(scope, "quotabar 429s", "0", fmt.Sprint(r.Provider429), r.Provider429 == 0)
			limit := 0.25 + 1/float64(max(r.Quota, 1))
			add(scope, "quotabar grants per quarter window", "<= quota/4 + 1",
				fmt.Sprintf("%.3f of the quota (limit %.3f)", r.QuarterMax, limit), r.QuarterMax <= limit+1e-9)
			hi, lo := r.Wait["high"], r.Wait["low"]
			add(scope, "quotabar high p99 wait vs low p99", "<= 1/5",
				fmt.Sprintf("%.0f ms vs %.0f ms (1/%.1f)", hi.P99, lo.P99, lo.P99/max(hi.P99, 1e-9)),
				hi.N > 0 && lo.N > 0 && hi.P99*5 <= lo.P99)
			add(scope, "quotabar fairness (Jain)", ">= 0.95", fmt.Sprintf("%.3f over %d agents", r.Jain, r.JainAgents), r.Jain >= 0.95)
		case sim.QuotabarLearn:
			add(scope, "quotabar-learn goodput", ">= 90%", pct(r.Goodput), r.Goodput >= 90)
			add(scope, "quotabar-learn 429 rate", "<= 0.5%", fmt.Sprintf("%.2f%% (%d)", r.Rate429, r.Provider429), r.Rate429 <= 0.5)
		}
	}
	noop := map[int]DecisionResult{}
	var best DecisionResult
	for _, d := range rep.Decisions {
		switch d.Kind {
		case kindNoop:
			noop[d.Clients] = d
		case kindQuotabar:
			n := noop[d.Clients]
			add(fmt.Sprintf("%d clients", d.Clients), "decision p50 vs no-op socket p50", "<= 2x",
				fmt.Sprintf("%.0f µs vs %.0f µs (%.2fx)", d.P50us, n.P50us, d.VsNoopP50), d.VsNoopP50 > 0 && d.VsNoopP50 <= 2)
			if d.PerSec > best.PerSec {
				best = d
			}
		}
	}
	if best.Clients > 0 {
		add(fmt.Sprintf("%d clients", best.Clients), "decisions per second (best concurrency)", ">= 20000",
			fmt.Sprintf("%.0f", best.PerSec), best.PerSec >= 20000)
	}
	return ts
}

func pct(v float64) string { return fmt.Sprintf("%.1f%%", v) }

func printReport(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, %s, %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.OS, m.Date)
	for _, s := range rep.Scenarios {
		fmt.Fprintf(w, "provider: %s (%s window of %s, %s headers), %d windows per run, 1 s here = %.0f s real\n",
			s.Limits, s.Provider, s.Window, s.Dialect, s.Windows, s.Compression)
	}
	if len(rep.Runs) > 0 {
		fmt.Fprintln(w, "(quarter max: most calls in a quarter window after the first, as a fraction of the quota;"+
			" high and light p99 also in grant intervals, window/quota; low share: low priority's part of the calls)")
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "quota\tagents\tstrategy\tgoodput\t429s\t429 rate\tfailed\thigh p50/p99 ms\thigh p99 ivl\tnormal p50/p99 ms\tlow p50/p99 ms\tlow share\tJain\theavy x\tw2 x\tlight served\tlight p50/p99 ms\tlight p99 ivl\tquarter max\tovershoot\t")
		for _, r := range rep.Runs {
			w2 := "-"
			if r.Weight2Ratio > 0 {
				w2 = fmt.Sprintf("%.2f", r.Weight2Ratio)
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d\t%.2f%%\t%d\t%s\t%.1f\t%s\t%s\t%s\t%.3f\t%.2f\t%s\t%s\t%.0f/%.0f\t%.1f\t%.3f\t%.3f\t\n",
				r.Quota, r.Agents, r.Strategy, pct(r.Goodput), r.Provider429, r.Rate429, r.Failed,
				waits(r.Wait["high"]), r.HighP99Intervals, waits(r.Wait["normal"]), waits(r.Wait["low"]), pct(r.LowShare),
				r.Jain, r.HeavyShare, w2, pct(r.LightServed), r.LightP50, r.LightP99, r.LightP99Intervals, r.QuarterMax, r.Overshoot)
		}
		tw.Flush()
	}

	if len(rep.Decisions) > 0 {
		fmt.Fprintln(w, "\ndecision latency (each row measured in this run):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "clients\tkind\tp50 µs\tp99 µs\tper second\tp50 vs no-op\t")
		for _, d := range rep.Decisions {
			vs := ""
			if d.VsNoopP50 > 0 {
				vs = fmt.Sprintf("%.2fx", d.VsNoopP50)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.0f\t%s\t\n", d.Clients, d.Kind, micro(d.P50us), micro(d.P99us), d.PerSec, vs)
		}
		tw.Flush()
	}
	if mem := rep.Memory; mem != nil {
		fmt.Fprintf(w, "\ndaemon memory with %d acquires waiting: RSS %d KiB (idle %d KiB, %.1f KiB per waiter), peak RSS (VmHWM) %d KiB, heap in use %d KiB (idle %d KiB), %d goroutines\n",
			mem.Waiters, mem.RSSKiB, mem.IdleRSSKiB, mem.PerWaiterKiB, mem.PeakRSSKiB, mem.HeapKiB, mem.IdleHeapKiB, mem.Goroutines)
	}
	fmt.Fprintln(w, "\ntargets:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range rep.Targets {
		verdict := "PASS"
		if !t.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\twant %s\tgot %s\n", verdict, t.Scope, t.Name, t.Want, t.Got)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nwall time %.0f s\n", rep.WallSeconds)
}

func waits(w sim.Waits) string {
	if w.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f", w.P50, w.P99)
}

// micro prints microseconds with a sensible number of digits.
func micro(v float64) string {
	if v < 10 {
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
	}
	return fmt.Sprintf("%.0f", v)
}
