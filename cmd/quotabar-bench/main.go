// Command quotabar-bench measures what quotabar buys agents that share one
// API quota, and what a decision costs.
//
// It runs the same simulated workload (sim.Standard) under four strategies
// (sdk-retry, static-split, quotabar, quotabar-learn) for 5, 20 and 50
// agents against a fake provider on 127.0.0.1 allowing 100 requests a window
// and against a small one allowing 20 (a lower tier's per-minute quota),
// with time compressed so a per-minute quota becomes a per-second one. Then it times acquire
// decisions over the daemon's real Unix socket at 1, 8 and 64 concurrent
// clients beside two floors measured in the same run (x/time/rate's Allow in
// process, and a no-op HTTP handler on the same kind of socket), and reads
// the daemon's peak memory with 1,000 acquires waiting. It prints a table,
// or JSON with --json, and checks the project's targets.
//
//	go run ./cmd/quotabar-bench            # everything, about two minutes
//	go run ./cmd/quotabar-bench --json     # the same as JSON
//	go run ./cmd/quotabar-bench --help     # every flag
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/limiter"
)

// options are the command's flags.
type options struct {
	agents      []int
	quotas      []int
	strategies  []sim.Strategy
	window      time.Duration
	windows     int
	compression float64
	provider    sim.WindowKind
	dialect     string
	seed        uint64
	simulate    bool
	decisions   bool
	decisionFor time.Duration
	clients     []int
	memory      bool
	waiters     int
	json        bool
	cluster     bool          // cluster.go
	clusterFor  time.Duration // cluster.go
	// child modes (hidden): serve a daemon or a no-op handler on a socket
	serveDaemon string
	serveNoop   string
	childConfig string
}

const usageText = `quotabar-bench: measure quotabar against uncoordinated agents.

Usage: quotabar-bench [flags]

Runs every strategy on a simulated provider for each agent count, then
times decisions over the daemon's Unix socket and reads its peak memory.
Time is compressed: a window of --window stands for a minute, and delays
taken from the real world (SDK backoff, the daemon's aging bound) are
divided by the same factor.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("quotabar-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agents := fs.String("agents", "5,20,50", "agent counts to simulate, comma-separated (each at least 5)")
	quotas := fs.String("quotas", "100,20", "the provider's requests per window to simulate, comma-separated (each at least 1)")
	strategies := fs.String("strategies", "sdk-retry,static-split,quotabar,quotabar-learn", "strategies to compare, comma-separated")
	fs.DurationVar(&o.window, "window", time.Second, "the provider's compressed window: one minute of real time")
	fs.IntVar(&o.windows, "windows", 6, "how many windows each simulation runs")
	fs.Float64Var(&o.compression, "compression", 0, "real seconds per simulated second (0: one minute per --window)")
	provider := fs.String("provider", "bucket", "how the provider counts: bucket (OpenAI's and Anthropic's model), sliding or fixed")
	fs.StringVar(&o.dialect, "dialect", "openai", "the provider's rate-limit headers: openai, anthropic, github, ietf, or none")
	seed := fs.Uint64("seed", 1, "seed of the workload's random numbers")
	fs.BoolVar(&o.simulate, "simulate", true, "run the strategy simulations (--simulate=false to skip)")
	fs.BoolVar(&o.decisions, "decisions", true, "time decisions over the socket (--decisions=false to skip)")
	fs.DurationVar(&o.decisionFor, "decision-time", time.Second, "how long each decision-latency measurement runs")
	clients := fs.String("clients", "1,8,64", "concurrent clients for the decision-latency measurements")
	fs.BoolVar(&o.memory, "memory", true, "measure the daemon's peak memory with waiting acquires (--memory=false to skip)")
	fs.IntVar(&o.waiters, "waiters", 1000, "acquires waiting in the daemon for the memory measurement")
	fs.BoolVar(&o.cluster, "cluster", true, "run the cluster scenario: 3 daemons sharing through Redis, 1 alone, 3 not sharing (needs redis-server; --cluster=false to skip)")
	fs.DurationVar(&o.clusterFor, "cluster-time", 3*time.Second, "how long each cluster run is measured")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON instead of tables")
	// Hidden: the benchmark re-executes itself to run the daemon (or the
	// no-op floor) in a child process of its own.
	fs.StringVar(&o.serveDaemon, "serve-daemon", "", "")
	fs.StringVar(&o.serveNoop, "serve-noop", "", "")
	fs.StringVar(&o.childConfig, "child-config", "", "")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Usage == "" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(fs.Output(), "  --%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				fmt.Fprintf(fs.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q; quotabar-bench takes only flags (see --help)", fs.Arg(0))
	}
	var err error
	if o.agents, err = intList("agents", *agents, 5); err != nil {
		return o, err
	}
	if o.quotas, err = intList("quotas", *quotas, 1); err != nil {
		return o, err
	}
	if o.clients, err = intList("clients", *clients, 1); err != nil {
		return o, err
	}
	for _, s := range strings.Split(*strategies, ",") {
		st, err := sim.ParseStrategy(strings.TrimSpace(s))
		if err != nil {
			return o, fmt.Errorf("--strategies: %w", err)
		}
		o.strategies = append(o.strategies, st)
	}
	if o.provider, err = sim.ParseWindowKind(*provider); err != nil {
		return o, fmt.Errorf("--provider: %w", err)
	}
	if o.dialect == "none" {
		o.dialect = ""
	}
	switch {
	case o.window <= 0:
		return o, fmt.Errorf("--window %v must be positive", o.window)
	case o.windows < 2:
		return o, fmt.Errorf("--windows %d must be at least 2 (the first window is not counted in goodput)", o.windows)
	case o.compression < 0:
		return o, fmt.Errorf("--compression %v must not be negative", o.compression)
	case o.decisionFor <= 0:
		return o, fmt.Errorf("--decision-time %v must be positive", o.decisionFor)
	case o.waiters < 1:
		return o, fmt.Errorf("--waiters %d must be at least 1", o.waiters)
	}
	if o.compression == 0 {
		o.compression = float64(time.Minute) / float64(o.window)
	}
	o.seed = *seed
	return o, nil
}

// intList parses "5,20,50", each value at least lo.
func intList(flagName, s string, lo int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < lo {
			return nil, fmt.Errorf("--%s: %q is not a whole number of at least %d", flagName, f, lo)
		}
		out = append(out, n)
	}
	return out, nil
}

// Report is everything one run of the benchmark measured (the --json
// output).
type Report struct {
	Machine     Machine          `json:"machine"`
	Scenarios   []Scenario       `json:"scenarios"`
	Runs        []sim.Result     `json:"runs"`
	Decisions   []DecisionResult `json:"decisions,omitempty"`
	Memory      *MemoryResult    `json:"memory,omitempty"`
	Cluster     *ClusterReport   `json:"cluster,omitempty"`
	Targets     []Target         `json:"targets"`
	WallSeconds float64          `json:"wall_seconds"`
}

// Machine says where the numbers come from.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Date      string `json:"date"`
}

// Scenario is the simulation's setting.
type Scenario struct {
	Window      string  `json:"window"`
	Windows     int     `json:"windows"`
	Compression float64 `json:"compression"`
	Provider    string  `json:"provider"`
	Dialect     string  `json:"dialect"`
	Limits      string  `json:"limits"`
	Seed        uint64  `json:"seed"`
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quotabar-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch {
	case o.serveDaemon != "":
		err = serveDaemon(ctx, o.serveDaemon, o.childConfig)
	case o.serveNoop != "":
		err = serveNoop(ctx, o.serveNoop)
	default:
		err = run(ctx, o, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "quotabar-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	began := time.Now()
	rep := Report{Machine: machine()}
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	for _, q := range o.quotas {
		for _, n := range o.agents {
			if !o.simulate {
				break
			}
			w, err := sim.StandardQuota(n, int64(q), o.window, o.windows, o.compression)
			if err != nil {
				return err
			}
			w.Provider.Window, w.Provider.Dialect, w.Seed = o.provider, limiter.Dialect(o.dialect), o.seed
			rep.Scenarios = appendScenario(rep.Scenarios, scenarioOf(o, w))
			for _, s := range o.strategies {
				progress("simulating %d agents at %d requests a window, %s (%v)...", n, q, s, w.Duration)
				res, err := sim.Run(ctx, w, s)
				if err != nil {
					return fmt.Errorf("%d agents at %d a window, %s: %w", n, q, s, err)
				}
				rep.Runs = append(rep.Runs, res)
			}
		}
	}
	if o.decisions {
		progress("timing decisions at %v clients...", o.clients)
		ds, err := measureDecisions(ctx, o.clients, o.decisionFor)
		if err != nil {
			return fmt.Errorf("decision latency: %w", err)
		}
		rep.Decisions = ds
	}
	if o.memory {
		progress("measuring daemon memory with %d waiting acquires...", o.waiters)
		m, err := measureMemory(ctx, o.waiters)
		if err != nil {
			return fmt.Errorf("memory: %w", err)
		}
		rep.Memory = &m
	}
	if o.cluster {
		progress("cluster: 3 daemons sharing through redis, 1 alone, 3 not sharing (%v each)...", o.clusterFor)
		c, err := runCluster(ctx, o.clusterFor)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		rep.Cluster = c
	}
	rep.Targets = checkTargets(rep)
	rep.WallSeconds = time.Since(began).Seconds()
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReport(stdout, rep)
	printCluster(stdout, rep.Cluster)
	return nil
}

// appendScenario adds s unless it is there already (one per quota).
func appendScenario(ss []Scenario, s Scenario) []Scenario {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}

func scenarioOf(o options, w sim.Workload) Scenario {
	var limits []string
	for _, p := range w.Provider.Limits {
		limits = append(limits, fmt.Sprintf("%d %s/%v", p.Quota, p.Unit, p.Window))
	}
	dialect := string(w.Provider.Dialect)
	if dialect == "" {
		dialect = "none"
	}
	return Scenario{Window: o.window.String(), Windows: o.windows, Compression: o.compression,
		Provider: w.Provider.Window.String(), Dialect: dialect, Limits: strings.Join(limits, ", "), Seed: o.seed}
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
