package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// Test timing: windows of a second, refresh every 100 ms, leases of 500 ms.
const (
	window  = time.Second
	refresh = 100 * time.Millisecond
	lease   = 500 * time.Millisecond
	quota   = 60
	svcName = "api"
)

// offsetClock is the real clock read off by a fixed offset, as on a machine
// whose clock is wrong.
type offsetClock struct{ off time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.off) }
func (c offsetClock) AfterFunc(d time.Duration, f func()) limiter.Timer {
	return time.AfterFunc(d, f)
}

// recorder is the provider's view: when each call arrived, on the real
// clock, and from which node.
type recorder struct {
	mu  sync.Mutex
	at  []time.Time
	who []int
}

// add records a grant of node at the instant its limiter granted it (on the
// real clock): the limiter's own decision, not when the agent's goroutine
// got to run again, which on a busy machine can be tens of milliseconds
// later and would blur the windows being checked.
func (r *recorder) add(node int, at time.Time) {
	r.mu.Lock()
	r.at = append(r.at, at)
	r.who = append(r.who, node)
	r.mu.Unlock()
}

// maxInWindow is the most calls any window of length w held.
func (r *recorder) maxInWindow(w time.Duration) int {
	r.mu.Lock()
	at := append([]time.Time(nil), r.at...)
	r.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	best, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// count is how many calls each node made in [from, to).
func (r *recorder) count(from, to time.Time, nodes int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, nodes)
	for i, t := range r.at {
		if !t.Before(from) && t.Before(to) {
			out[r.who[i]]++
		}
	}
	return out
}

func jain(xs []int) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(xs)) * s2)
}

// node is one daemon: a limiter and its cluster member, plus agents.
type node struct {
	t      *testing.T
	i      int
	lim    *limiter.Limiter
	mem    *cluster.Member
	cancel context.CancelFunc
	done   chan struct{}
	idle   atomic.Bool
	prio   limiter.Priority
	agents sync.WaitGroup
	stop   chan struct{}
	logs   *testenv.Buffer
	off    time.Duration // the node's clock is the real one plus off
}

type nodeOpts struct {
	url       string
	name      string
	clockOff  time.Duration
	limits    []limiter.Policy
	pwEnv     string
	stateFile string
	offline   string
	caFile    string
	certFile  string
	keyFile   string
}

func startNode(t *testing.T, i int, o nodeOpts) *node {
	t.Helper()
	limits := o.limits
	if limits == nil {
		limits = []limiter.Policy{{Quota: quota, Unit: limiter.Requests, Window: window}}
	}
	lim, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: svcName, Limits: limits}}},
		limiter.WithClock(offsetClock{o.clockOff}))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, i: i, lim: lim, done: make(chan struct{}), stop: make(chan struct{}), logs: &testenv.Buffer{}, off: o.clockOff}
	name := o.name
	if name == "" {
		name = "test"
	}
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var opts []cluster.Option
	if o.stateFile != "" {
		opts = append(opts, cluster.WithStateFile(o.stateFile))
	}
	n.mem, err = cluster.New(cluster.Config{Redis: o.url, Name: name, Refresh: refresh, Lease: lease, PasswordEnv: o.pwEnv, Offline: o.offline, CAFile: o.caFile, CertFile: o.certFile, KeyFile: o.keyFile}, lim, []string{svcName}, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() {
		defer close(n.done)
		n.mem.Run(ctx)
	}()
	t.Cleanup(n.close)
	allNodes = append(allNodes, n)
	t.Cleanup(func() { allNodes = nil })
	return n
}

// kill stops the member without a word to Redis, as kill -9 would.
func (n *node) kill() {
	n.cancel()
	<-n.done
}

func (n *node) close() {
	n.kill()
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	n.lim.Close()
	n.agents.Wait()
}

// run starts k agents that call as fast as they are granted, recording
// every call, until the node closes; agents of an idle node wait.
func (n *node) run(k int, rec *recorder) {
	for a := range k {
		n.agents.Go(func() {
			agent := "agent" + string(rune('a'+a))
			for {
				select {
				case <-n.stop:
					return
				default:
				}
				if n.idle.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ls, err := n.lim.Acquire(context.Background(), limiter.Request{Agent: agent, Service: svcName, Priority: n.prio, MaxWait: 200 * time.Millisecond})
				if err != nil {
					var re *limiter.RefusedError
					var le *limiter.Error
					if errors.As(err, &le) && le.Code == limiter.CodeShuttingDown {
						return
					}
					if !errors.As(err, &re) {
						n.t.Errorf("acquire: %v", err)
						return
					}
					continue
				}
				rec.add(n.i, ls.GrantedAt.Add(-n.off))
				n.lim.Report(limiter.Report{Lease: ls.ID, Status: 200})
			}
		})
	}
}

func (n *node) status() cluster.ServiceStatus {
	st, _ := n.mem.Status(svcName)
	return st
}

// waitFor polls cond (the state lives in another process, Redis) every
// 5 ms until it holds or d passes; it returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v%s", what, d, dumpOnFail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func sumShares(ns ...*node) float64 {
	var s float64
	for _, n := range ns {
		d, _ := n.lim.Demand(svcName)
		s += d.Share
	}
	return s
}

func approx(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func limiterReport429() limiter.Report {
	return limiter.Report{Agent: "a", Service: svcName, Status: 429, Header: map[string]string{"Retry-After": "1"}}
}

// nodes is every node of the running test, for dumpOnFail.
var allNodes []*node

func dumpOnFail() string {
	out := ""
	for _, n := range allNodes {
		d, _ := n.lim.Demand(svcName)
		out += fmt.Sprintf("\n  node %d: %+v share %.3f used %.3f queued %d", n.i, n.status(), d.Share, d.Used, d.Queued)
	}
	return out
}
