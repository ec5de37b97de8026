package main

// The cluster scenario: several daemons spending one quota, with and
// without sharing it through Redis (package cluster), beside one daemon
// alone, against one fake provider on 127.0.0.1. The daemons are limiters
// in this process, each with its own cluster member and Redis connection,
// so that the runs measure the sharing, not process start-up.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/limiter"
)

// ClusterReport is the cluster scenario's result.
type ClusterReport struct {
	Quota   string          `json:"quota"`
	Seconds float64         `json:"seconds_per_run"`
	Runs    []ClusterRun    `json:"runs"`
	Decide  []ClusterDecide `json:"decisions"`
	Skipped string          `json:"skipped,omitempty"`
}

// ClusterRun is one setup's run against the provider.
type ClusterRun struct {
	Setup       string  `json:"setup"`
	Daemons     int     `json:"daemons"`
	Agents      int     `json:"agents"`
	Accepted    int64   `json:"accepted"`
	Provider429 int64   `json:"provider_429"`
	Goodput     float64 `json:"goodput_pct"`    // accepted / quota over the measured time
	MaxWindow   float64 `json:"max_window_pct"` // most calls sent in any window / quota
	Jain        float64 `json:"jain"`           // among daemons
	// RoundTrips are the daemons' calls to Redis (refresh scripts,
	// publishes); ServerCmds what Redis counted, the commands inside the
	// scripts included.
	RoundTrips     int64   `json:"redis_round_trips"`
	TripsPerGrant  float64 `json:"redis_round_trips_per_grant"`
	ServerCmds     int64   `json:"redis_server_commands"`
	ServerPerGrant float64 `json:"redis_server_commands_per_grant"`
}

// ClusterDecide is the in-process decision cost with and without a
// cluster member attached, measured in the same run.
type ClusterDecide struct {
	Kind   string  `json:"kind"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	PerSec float64 `json:"per_second"`
}

const (
	clusterQuota  = 100
	clusterWindow = time.Second
	clusterAgents = 5 // per daemon
)

// benchRedis is a redis-server on a Unix socket in a temp dir.
type benchRedis struct {
	cmd *exec.Cmd
	dir string
	url string
}

func startBenchRedis() (*benchRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "qbbench-redis")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &benchRedis{cmd: cmd, dir: dir, url: "unix://" + sock}
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			return r, nil
		}
		if i > 500 {
			r.stop()
			return nil, errors.New("redis-server did not answer PING within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *benchRedis) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
	os.RemoveAll(r.dir)
}

// commands is Redis's total_commands_processed.
func (r *benchRedis) commands(ctx context.Context) (int64, error) {
	opts, err := redis.ParseURL(r.url)
	if err != nil {
		return 0, err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO stats has no total_commands_processed")
}

// runCluster runs the three setups and the decision comparison.
func runCluster(ctx context.Context, d time.Duration) (*ClusterReport, error) {
	rep := &ClusterReport{Quota: fmt.Sprintf("%d requests/%v (sliding window at the provider)", clusterQuota, clusterWindow), Seconds: d.Seconds()}
	rd, err := startBenchRedis()
	if err != nil {
		rep.Skipped = "redis-server: " + err.Error()
		return rep, nil
	}
	defer rd.stop()
	setups := []struct {
		name    string
		daemons int
		shared  bool
	}{
		{"1 daemon alone", 1, false},
		{"3 daemons sharing via redis", 3, true},
		{"3 daemons not sharing", 3, false},
	}
	for i, s := range setups {
		agents := 3 * clusterAgents / s.daemons
		run, err := clusterRun(ctx, rd, fmt.Sprintf("bench%d", i), s.daemons, agents, s.shared, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		run.Setup = s.name
		rep.Runs = append(rep.Runs, run)
	}
	rep.Decide, err = clusterDecisions(ctx, rd, d/2)
	if err != nil {
		return nil, err
	}
	return rep, nil
}

type benchDaemon struct {
	lim    *limiter.Limiter
	mem    *cluster.Member
	cancel context.CancelFunc
	done   chan struct{}
}

func startBenchDaemon(rd *benchRedis, name string, svc limiter.ServiceConfig, shared bool) (*benchDaemon, error) {
	lim, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{svc}})
	if err != nil {
		return nil, err
	}
	b := &benchDaemon{lim: lim, done: make(chan struct{})}
	if !shared {
		close(b.done)
		b.cancel = func() {}
		return b, nil
	}
	b.mem, err = cluster.New(cluster.Config{Redis: rd.url, Name: name, Refresh: 100 * time.Millisecond, Lease: 400 * time.Millisecond},
		lim, []string{svc.Name}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { defer close(b.done); b.mem.Run(ctx) }()
	return b, nil
}

func (b *benchDaemon) close() {
	b.cancel()
	<-b.done
	b.lim.Close()
}

func clusterRun(ctx context.Context, rd *benchRedis, name string, daemons, agents int, shared bool, d time.Duration) (ClusterRun, error) {
	run := ClusterRun{Daemons: daemons, Agents: agents}
	prov, err := sim.NewProvider(sim.ProviderConfig{
		Limits: []limiter.Policy{{Quota: clusterQuota, Unit: limiter.Requests, Window: clusterWindow}},
		Window: sim.Sliding, Latency: 5 * time.Millisecond,
	})
	if err != nil {
		return run, err
	}
	base, err := prov.Start()
	if err != nil {
		return run, err
	}
	defer prov.Close()
	svc := limiter.ServiceConfig{Name: "api", Limits: []limiter.Policy{{Quota: clusterQuota, Unit: limiter.Requests, Window: clusterWindow}}}
	var ds []*benchDaemon
	defer func() {
		for _, b := range ds {
			b.close()
		}
	}()
	for range daemons {
		b, err := startBenchDaemon(rd, name, svc, shared)
		if err != nil {
			return run, err
		}
		ds = append(ds, b)
	}
	cmd0, err := rd.commands(ctx)
	if err != nil {
		return run, err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// Shares settle as the first daemon's window drains: measure after that.
	warm := time.Now().Add(2*clusterWindow + 500*time.Millisecond)
	stop := warm.Add(d)
	var mu sync.Mutex
	var sent []time.Time
	accepted := make([]int64, daemons)
	var wg sync.WaitGroup
	for di, b := range ds {
		for a := range agents {
			wg.Go(func() {
				agent := fmt.Sprintf("agent%d", a)
				for ctx.Err() == nil && time.Now().Before(stop) {
					ls, err := b.lim.Acquire(ctx, limiter.Request{Agent: agent, Service: "api", MaxWait: 500 * time.Millisecond})
					if err != nil {
						continue
					}
					at := time.Now()
					status, hdr := benchCall(ctx, hc, base, agent)
					b.lim.Report(limiter.Report{Lease: ls.ID, Status: status, Header: hdr})
					if at.After(warm) && at.Before(stop) {
						mu.Lock()
						sent = append(sent, at)
						if status == http.StatusOK {
							accepted[di]++
						}
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	cmd1, err := rd.commands(ctx)
	if err != nil {
		return run, err
	}
	st := prov.Stats()
	var acc []float64
	for _, n := range accepted {
		run.Accepted += n
		acc = append(acc, float64(n))
	}
	run.Provider429 = st.Refused
	run.Goodput = 100 * float64(run.Accepted) / (clusterQuota * d.Seconds() / clusterWindow.Seconds())
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	run.MaxWindow = 100 * float64(sim.MaxIn(sent, clusterWindow)) / clusterQuota
	run.Jain = sim.Jain(acc)
	if shared {
		run.ServerCmds = cmd1 - cmd0 - 1 // less the INFO that read cmd0
		for _, b := range ds {
			s := b.mem.Stats()
			run.RoundTrips += s.Refreshes + s.Published + 1 // + the subscription
		}
		if st.Accepted > 0 {
			run.TripsPerGrant = float64(run.RoundTrips) / float64(st.Accepted)
			run.ServerPerGrant = float64(run.ServerCmds) / float64(st.Accepted)
		}
	}
	return run, nil
}

func benchCall(ctx context.Context, hc *http.Client, base, agent string) (int, map[string]string) {
	body, _ := json.Marshal(sim.CallRequest{Agent: agent, PromptTokens: 10, MaxTokens: 10})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := map[string]string{}
	for k, v := range resp.Header {
		if len(v) > 0 {
			h[k] = v[0]
		}
	}
	return resp.StatusCode, h
}

// clusterDecisions times in-process acquire+report pairs (best of two
// rounds each) on a quota too
// large to bind, with the service alone and with it shared (a member
// attached, reading demand after every change): what sharing adds to a
// decision.
func clusterDecisions(ctx context.Context, rd *benchRedis, d time.Duration) ([]ClusterDecide, error) {
	svc := limiter.ServiceConfig{Name: "api", Limits: []limiter.Policy{{Quota: 100_000_000, Unit: limiter.Requests, Window: time.Second}}}
	// Alone and shared alternate, twice, and each keeps its better round:
	// on a shared machine the load moves between rounds.
	best := map[bool]ClusterDecide{}
	for round, shared := range []bool{false, true, false, true} {
		// A cluster of its own per round: the last round's member is still
		// counted for its lease and a window.
		b, err := startBenchDaemon(rd, fmt.Sprintf("decide%d", round), svc, shared)
		if err != nil {
			return nil, err
		}
		if shared {
			for i := 0; ; i++ {
				if st, _ := b.mem.Status("api"); st.State == cluster.Online {
					break
				}
				if i > 300 {
					b.close()
					return nil, errors.New("the decision daemon did not join")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		h, rate, err := timeLoop(ctx, 4, d, func(w int) error {
			ls, err := b.lim.Acquire(ctx, limiter.Request{Agent: "a" + strconv.Itoa(w), Service: "api", MaxWait: time.Second})
			if err != nil {
				return err
			}
			_, err = b.lim.Report(limiter.Report{Lease: ls.ID, Status: 200})
			return err
		})
		b.close()
		if err != nil {
			return nil, err
		}
		kind := "in-process acquire+report, alone"
		if shared {
			kind = "in-process acquire+report, shared"
		}
		if d := (ClusterDecide{Kind: kind, P50us: us(h.quantile(0.5)), P99us: us(h.quantile(0.99)), PerSec: rate}); d.PerSec > best[shared].PerSec {
			best[shared] = d
		}
	}
	return []ClusterDecide{best[false], best[true]}, nil
}

func printCluster(w io.Writer, c *ClusterReport) {
	if c == nil {
		return
	}
	if c.Skipped != "" {
		fmt.Fprintf(w, "\ncluster: skipped (%s)\n", c.Skipped)
		return
	}
	fmt.Fprintf(w, "\ncluster: %d agents in all, %s, %.0f s measured per run:\n", 3*clusterAgents, c.Quota, c.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\tdaemons\tagents each\tgoodput\t429s\tmax window\tJain\tredis round trips\tper grant\tserver cmds\tper grant\t")
	for _, r := range c.Runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\t%.3f\t%d\t%.3f\t%d\t%.2f\t\n", r.Setup, r.Daemons, r.Agents, pct(r.Goodput), r.Provider429,
			pct(r.MaxWindow), r.Jain, r.RoundTrips, r.TripsPerGrant, r.ServerCmds, r.ServerPerGrant)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "decision\tp50 µs\tp99 µs\tper second\t")
	for _, d := range c.Decide {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t\n", d.Kind, micro(d.P50us), micro(d.P99us), d.PerSec)
	}
	tw.Flush()
}
