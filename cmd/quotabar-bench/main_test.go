package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/sim"
)

// TestMain lets the test binary stand in for the benchmark binary when it
// re-executes itself as the daemon or no-op child.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "--child-config" || os.Args[1] == "--serve-noop") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"too few agents", []string{"--agents", "5,3"}, "at least 5"},
		{"no quota", []string{"--quotas", "100,0"}, "--quotas"},
		{"not a number", []string{"--clients", "1,x"}, "--clients"},
		{"unknown strategy", []string{"--strategies", "quotabar,magic"}, "unknown strategy"},
		{"unknown provider", []string{"--provider", "leaky"}, "--provider"},
		{"one window", []string{"--windows", "1"}, "at least 2"},
		{"stray argument", []string{"extra"}, "unexpected argument"},
		{"unknown flag", []string{"--fast"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if o.compression != 60 || len(o.agents) != 3 || len(o.quotas) != 2 || len(o.strategies) != 4 || o.provider != sim.Bucket {
					t.Errorf("defaults: %+v", o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHistQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Microsecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0, time.Microsecond}} {
		got := h.quantile(tt.q)
		if diff := float64(got-tt.want) / float64(tt.want); diff < -0.04 || diff > 0.04 {
			t.Errorf("quantile(%v) = %v, want %v within 4%%", tt.q, got, tt.want)
		}
	}
}

func TestCheckTargets(t *testing.T) {
	good := sim.Result{Strategy: sim.Quotabar, Agents: 5, Goodput: 98, Jain: 0.99, JainAgents: 3, Quota: 20, QuarterMax: 0.3,
		Wait: map[string]sim.Waits{"high": {N: 5, P99: 10}, "low": {N: 5, P99: 100}}}
	bad := good
	bad.Goodput, bad.Provider429, bad.Jain, bad.QuarterMax = 90, 3, 0.9, 0.35
	bad.Wait = map[string]sim.Waits{"high": {N: 5, P99: 30}, "low": {N: 5, P99: 100}}
	rep := Report{Runs: []sim.Result{good, bad}, Decisions: []DecisionResult{
		{Kind: kindNoop, Clients: 1, P50us: 50},
		{Kind: kindQuotabar, Clients: 1, P50us: 90, VsNoopP50: 1.8, PerSec: 25000},
	}}
	ts := checkTargets(rep)
	var pass, fail int
	for _, tg := range ts {
		if tg.Pass {
			pass++
		} else {
			fail++
		}
	}
	// good: 5 passes (a quarter of 20 plus one is 0.30); bad: 5
	// failures; decisions: 2 passes.
	if pass != 7 || fail != 5 {
		t.Errorf("%d pass, %d fail, want 7 and 5: %+v", pass, fail, ts)
	}
}

// TestRunSmoke runs the whole benchmark at its smallest: one strategy, a
// short simulation, short latency loops and a few waiters, and checks the
// JSON holds every part.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes and a simulation")
	}
	o, err := parseFlags([]string{"--agents", "5", "--quotas", "20", "--strategies", "quotabar", "--window", "500ms", "--windows", "2",
		"--clients", "1,4", "--decision-time", "100ms", "--waiters", "50", "--cluster=false", "--json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Runs) != 1 || rep.Runs[0].Accepted == 0 {
		t.Fatalf("runs %+v, want one with accepted calls", rep.Runs)
	}
	if r := rep.Runs[0]; r.Quota != 20 || r.GrantIntervalMS != 25 || r.QuarterMax <= 0 || len(rep.Scenarios) != 1 {
		t.Errorf("run at 20 a window: quota %d, grant interval %v ms, quarter max %v, %d scenarios; want 20, 25 ms, a share and one scenario",
			r.Quota, r.GrantIntervalMS, r.QuarterMax, len(rep.Scenarios))
	}
	if len(rep.Decisions) != 6 {
		t.Errorf("%d decision rows, want 3 kinds x 2 concurrencies", len(rep.Decisions))
	}
	for _, d := range rep.Decisions {
		if d.Calls == 0 || d.P50us <= 0 {
			t.Errorf("decision row %+v measured nothing", d)
		}
	}
	if m := rep.Memory; m == nil || m.Waiters != 50 || m.PeakRSSKiB < m.IdleRSSKiB || m.Goroutines < 50 {
		t.Errorf("memory %+v, want 50 waiters measured", m)
	}
	if len(rep.Targets) == 0 || rep.Machine.CPUs == 0 {
		t.Errorf("no targets or machine: %+v %+v", rep.Targets, rep.Machine)
	}
}
