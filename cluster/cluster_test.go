package cluster_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// These tests run three daemons' limiters and cluster members in one
// process against a real redis-server (the process-level test starts real
// quotabar daemons). The "provider" is a recorder of when each call was
// made on the real clock; the nodes' own clocks may be off.

func startThree(t *testing.T, url string, offs ...time.Duration) []*node {
	t.Helper()
	var ns []*node
	for i := range 3 {
		var off time.Duration
		if i < len(offs) {
			off = offs[i]
		}
		ns = append(ns, startNode(t, i, nodeOpts{url: url, clockOff: off}))
	}
	return ns
}

func TestShareIsSafeFairAndFull(t *testing.T) {
	testenv.RealTime(t)
	tests := []struct {
		name string
		offs []time.Duration
	}{
		{name: "same clocks"},
		// Clocks a second apart either way: shared times are Redis's.
		{name: "clocks differ by up to 1s", offs: []time.Duration{-time.Second, 0, 900 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.StartRedis(t, "")
			ns := startThree(t, r.URL(false), tc.offs...)
			rec := &recorder{}
			for _, n := range ns {
				n.run(5, rec)
			}
			time.Sleep(2500 * time.Millisecond) // joining and settling: shares move as windows drain
			from := time.Now()
			time.Sleep(4 * time.Second) // long enough that the edges of the span weigh little
			to := time.Now()
			got := rec.count(from, to, 3)
			if m := rec.maxInWindow(window); m > quota {
				t.Errorf("a window of %v held %d calls, quota %d", window, m, quota)
			}
			total := got[0] + got[1] + got[2]
			if want := 0.95 * quota * to.Sub(from).Seconds(); float64(total) < want {
				t.Errorf("goodput %d calls in %v, want at least %.0f (95%% of the quota): per node %v", total, to.Sub(from), want, got)
			}
			if j := jain(got); j < 0.95 {
				t.Errorf("Jain index %.3f among equal daemons, want >= 0.95: %v", j, got)
			}
			for _, n := range ns {
				if st := n.status(); st.State != cluster.Online || st.Members != 3 || !strings.Contains(st.Text, "online") {
					t.Errorf("node %d status %+v", n.i, st)
				}
			}
			t.Logf("per node %v, max in window %d", got, rec.maxInWindow(window))
		})
	}
}

// A daemon whose agents are idle leaves its share to the busy ones.
func TestWorkConserving(t *testing.T) {
	testenv.RealTime(t)
	r := testenv.StartRedis(t, "")
	ns := startThree(t, r.URL(false))
	ns[2].idle.Store(true)
	rec := &recorder{}
	for _, n := range ns {
		n.run(5, rec)
	}
	time.Sleep(2500 * time.Millisecond) // shares move as windows drain
	from := time.Now()
	time.Sleep(4 * time.Second) // long enough that the edges of the span weigh little
	to := time.Now()
	got := rec.count(from, to, 3)
	if m := rec.maxInWindow(window); m > quota {
		t.Errorf("a window held %d calls, quota %d", m, quota)
	}
	// 90%: the idle daemon keeps 2% to start with at once, and each busy
	// share rounds down to whole calls.
	if want := 0.90 * quota * to.Sub(from).Seconds(); float64(got[0]+got[1]) < want {
		t.Errorf("two busy daemons made %v calls in %v, want at least %.0f together", got, to.Sub(from), want)
	}
	if j := jain(got[:2]); j < 0.95 {
		t.Errorf("Jain %.3f between the busy two: %v", j, got)
	}
	d, _ := ns[2].lim.Demand(svcName)
	if d.Share > 0.1 {
		t.Errorf("idle daemon holds share %v", d.Share)
	}
	t.Logf("per node %v", got)
}

// A daemon with high-priority work gets most of the quota from one whose
// backlog is low priority; weights of waiting agents shape the split.
func TestPriorityAcrossDaemons(t *testing.T) {
	testenv.RealTime(t)
	r := testenv.StartRedis(t, "")
	ns := startThree(t, r.URL(false))
	ns[0].prio = limiter.High
	ns[1].prio = limiter.Low
	ns[2].idle.Store(true)
	rec := &recorder{}
	for _, n := range ns {
		n.run(5, rec)
	}
	time.Sleep(2500 * time.Millisecond) // shares move as windows drain
	from := time.Now()
	time.Sleep(2 * time.Second)
	got := rec.count(from, time.Now(), 3)
	if got[0] < 5*got[1] || got[1] == 0 {
		t.Errorf("high-priority daemon made %d calls, low-priority one %d: want high >= 5x low and low not starved", got[0], got[1])
	}
	if m := rec.maxInWindow(window); m > quota {
		t.Errorf("a window held %d calls, quota %d", m, quota)
	}
	t.Logf("per node %v", got)
}

// A 429 on one daemon is a cooldown on the others within 100 ms.
func TestCooldownReachesAll(t *testing.T) {
	r := testenv.StartRedis(t, "")
	ns := startThree(t, r.URL(false))
	for _, n := range ns {
		waitFor(t, 5*time.Second, "online", func() bool { return n.status().State == cluster.Online })
	}
	chs := make([]<-chan struct{}, 3)
	for i, n := range ns {
		ch, cancel := n.lim.Subscribe()
		t.Cleanup(cancel)
		chs[i] = ch
	}
	start := time.Now()
	if _, err := ns[0].lim.Report(limiter.Report{Agent: "a", Service: svcName, Status: 429, Header: map[string]string{"Retry-After": "3"}}); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		deadline := time.After(100 * time.Millisecond)
		for {
			d, _ := ns[i].lim.Demand(svcName)
			if !d.CooldownUntil.IsZero() {
				if left := time.Until(d.CooldownUntil); left < 2500*time.Millisecond {
					t.Errorf("node %d cools down for %v, want about 3s", i, left)
				}
				break
			}
			select {
			case <-chs[i]:
			case <-deadline:
				t.Fatalf("node %d has no cooldown %v after the 429 on node 0", i, time.Since(start))
			}
		}
		t.Logf("node %d cooling down after %v", i, time.Since(start))
	}
	if s := ns[1].mem.Stats(); s.Received != 1 {
		t.Errorf("node 1 received %d cooldowns, want 1 (no echo)", s.Received)
	}
	// Counted once PUBLISH has answered, which may be after the others heard it.
	waitFor(t, time.Second, "node 0 counts its publish", func() bool { return ns[0].mem.Stats().Published >= 1 })
	if s := ns[0].mem.Stats(); s.Published != 1 {
		t.Errorf("node 0 published %d cooldowns, want 1", s.Published)
	}
}

// Limits one daemon learned from headers reach the others.
func TestLearnedLimitsShared(t *testing.T) {
	r := testenv.StartRedis(t, "")
	a := startNode(t, 0, nodeOpts{url: r.URL(false), limits: []limiter.Policy{}})
	b := startNode(t, 1, nodeOpts{url: r.URL(false), limits: []limiter.Policy{}})
	h := map[string]string{"x-ratelimit-limit-tokens": "90000", "x-ratelimit-remaining-tokens": "89000", "x-ratelimit-reset-tokens": "60s"}
	if _, err := a.lim.Report(limiter.Report{Agent: "x", Service: svcName, Status: 200, Header: h}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "learned limit on the other daemon", func() bool {
		for _, s := range b.lim.Status().Services {
			for _, l := range s.Limits {
				if l.Unit == limiter.Tokens && l.Quota == 90000 && l.Source == "headers" {
					return true
				}
			}
		}
		return false
	})
}

// kill -9 of a daemon holding a share: the others get it back within its
// lease plus a window (its last grants are still in the provider's window).
func TestDeadMemberShareReturns(t *testing.T) {
	r := testenv.StartRedis(t, "")
	ns := startThree(t, r.URL(false))
	rec := &recorder{}
	for _, n := range ns {
		n.run(5, rec)
	}
	waitFor(t, 5*time.Second, "three equal shares", func() bool {
		return approx(sumShares(ns[0]), 1.0/3, 0.05) && approx(sumShares(ns[1]), 1.0/3, 0.05)
	})
	ns[2].kill()
	ns[2].idle.Store(true) // its limiter goes on without a member: its agents stop, as in a dead process
	took := waitFor(t, 3*time.Second, "the dead daemon's share returns", func() bool { return sumShares(ns[0], ns[1]) >= 0.95 })
	bound := lease + window + 10*time.Millisecond + 3*refresh
	if took > bound {
		t.Errorf("share returned after %v, want within lease+window+refresh %v", took, bound)
	}
	if m := rec.maxInWindow(window); m > quota {
		t.Errorf("a window held %d calls, quota %d", m, quota)
	}
	t.Logf("share returned after %v", took)
}

// Redis stopped (SIGSTOP) and then killed and restarted empty: the daemons
// say offline, keep their shares, never overshoot, and rejoin by themselves.
func TestRedisStopKillRestart(t *testing.T) {
	r := testenv.StartRedis(t, "")
	ns, rec := busyThree(t, r.URL(false))
	r.Stop()
	for _, n := range ns {
		waitFor(t, 2*time.Second, "offline", func() bool { return n.status().State == cluster.Offline })
		if st := n.status(); !strings.HasPrefix(st.Text, "cluster: offline, using ") || st.Share <= 0 {
			t.Errorf("node %d status %+v", n.i, st)
		}
	}
	t.Logf("offline: %q", ns[0].status().Text)
	offFrom := time.Now()
	time.Sleep(time.Second)
	off := rec.count(offFrom, time.Now(), 3)
	if off[0]+off[1]+off[2] < quota/2 {
		t.Errorf("only %v calls in a second offline: the last shares should keep serving", off)
	}
	r.Kill()
	r.Start()
	for _, n := range ns {
		waitFor(t, 3*time.Second, "online again", func() bool { return n.status().State == cluster.Online })
	}
	time.Sleep(2500 * time.Millisecond) // shares move as windows drain
	from := time.Now()
	time.Sleep(time.Second)
	got := rec.count(from, time.Now(), 3)
	if m := rec.maxInWindow(window); m > quota {
		t.Errorf("a window held %d calls, quota %d", m, quota)
	}
	if total := got[0] + got[1] + got[2]; float64(total) < 0.9*quota {
		t.Errorf("after the restart %v calls in a second, want about %d", got, quota)
	}
	if sumShares(ns...) > 1.000001 {
		t.Errorf("shares sum to %v", sumShares(ns...))
	}
}

// Redis SIGSTOPped and continued (no data lost, but a gap in time): the
// silence drops no one, so nobody is handed another's share.
func TestRedisPauseContinue(t *testing.T) {
	r := testenv.StartRedis(t, "")
	ns, rec := busyThree(t, r.URL(false))
	r.Stop()
	time.Sleep(lease + window + 300*time.Millisecond) // longer than anyone's lease and window
	r.Continue()
	for _, n := range ns {
		waitFor(t, 3*time.Second, "online again", func() bool { return n.status().State == cluster.Online })
	}
	// Frozen for a lease and a window after the gap, then free to move.
	time.Sleep(2*window + lease)
	if m := rec.maxInWindow(window); m > quota {
		t.Errorf("a window held %d calls, quota %d", m, quota)
	}
	if s := sumShares(ns...); s > 1.000001 || s < 0.9 {
		t.Errorf("shares sum to %v after the pause", s)
	}
}

// Redis unreachable at start: the shared service grants nothing until it
// is; then the daemons join.
func TestRedisUnreachableAtStart(t *testing.T) {
	r := testenv.StartRedis(t, "")
	r.Kill()
	n := startNode(t, 0, nodeOpts{url: r.URL(false)})
	time.Sleep(3 * refresh)
	if st := n.status(); st.State != cluster.Joining || !strings.Contains(st.Text, "joining") {
		t.Fatalf("status %+v before Redis is up", st)
	}
	_, err := n.lim.Acquire(t.Context(), limiter.Request{Agent: "a", Service: svcName})
	if err == nil {
		t.Fatal("granted with no share")
	}
	r.Start()
	waitFor(t, 3*time.Second, "online", func() bool { return n.status().State == cluster.Online })
	if _, err := n.lim.Acquire(t.Context(), limiter.Request{Agent: "a", Service: svcName, MaxWait: time.Second}); err != nil {
		t.Fatalf("not granted once online: %v", err)
	}
	if st := n.status(); st.Share != 1 || st.Members != 1 {
		t.Errorf("alone: status %+v, want the whole share", st)
	}
}

// Two clusters on one Redis do not share; a bad name is refused.
func TestNamespaces(t *testing.T) {
	r := testenv.StartRedis(t, "")
	a := startNode(t, 0, nodeOpts{url: r.URL(false), name: "team-a"})
	b := startNode(t, 1, nodeOpts{url: r.URL(false), name: "team-b"})
	for _, n := range []*node{a, b} {
		waitFor(t, 3*time.Second, "alone in its cluster", func() bool {
			st := n.status()
			return st.State == cluster.Online && st.Share == 1 && st.Members == 1
		})
	}
	for _, bad := range []string{"", "a:b", "a}b", "x{y", "a*", "a b", "-a", strings.Repeat("a", 65), "é"} {
		if err := (cluster.Config{Redis: r.URL(false), Name: bad}).Validate(); err == nil {
			t.Errorf("cluster name %q accepted", bad)
		}
	}
	lim, _ := limiter.New(limiter.Config{})
	if _, err := cluster.New(cluster.Config{Redis: r.URL(false), Name: "ok"}, lim, []string{"a:b"}, nil); err == nil {
		t.Error("service name a:b accepted")
	}
}

// A daemon that starts while Redis does not answer uses its last known
// share from the state file, says so, and rejoins when Redis answers.
func TestLastKnownShareAtStart(t *testing.T) {
	r := testenv.StartRedis(t, "")
	state := filepath.Join(t.TempDir(), "cluster.json")
	a := startNode(t, 0, nodeOpts{url: r.URL(false), stateFile: state})
	b := startNode(t, 1, nodeOpts{url: r.URL(false), stateFile: filepath.Join(t.TempDir(), "other.json")})
	waitFor(t, 3*time.Second, "two members", func() bool { return a.status().Members == 2 && approx(a.status().Share, 0.5, 0.01) })
	waitFor(t, 3*time.Second, "the share saved", func() bool {
		data, err := os.ReadFile(state)
		return err == nil && strings.Contains(string(data), `"share":0.5`)
	})
	a.kill()
	b.kill()
	r.Kill()
	c := startNode(t, 2, nodeOpts{url: r.URL(false), stateFile: state})
	waitFor(t, 3*time.Second, "offline with the last known share", func() bool { return c.status().State == cluster.Offline })
	if st := c.status(); st.Text != "cluster: offline, using 1/2 (last known)" || st.Share != 0.5 {
		t.Fatalf("status %+v", st)
	}
	if _, err := c.lim.Acquire(t.Context(), limiter.Request{Agent: "x", Service: svcName, MaxWait: time.Second}); err != nil {
		t.Fatalf("no grant with the last known share: %v", err)
	}
	r.Start()
	waitFor(t, 3*time.Second, "online", func() bool { return c.status().State == cluster.Online })
	if st := c.status(); !st.Recovering {
		t.Errorf("a Redis that lost its data should freeze the shares on rejoining: %+v", st)
	}
}

// offline = "stop": a daemon that Redis does not answer keeps its share
// for a lease only, then grants nothing, and says so; one with the default
// keeps its share. Both rejoin.
func TestOfflineStop(t *testing.T) {
	r := testenv.StartRedis(t, "")
	stop := startNode(t, 0, nodeOpts{url: r.URL(false), offline: cluster.OfflineStop})
	keep := startNode(t, 1, nodeOpts{url: r.URL(false)})
	for _, n := range []*node{stop, keep} {
		waitFor(t, 3*time.Second, "two members", func() bool { return n.status().Members == 2 && n.status().Share > 0 })
	}
	r.Stop()
	took := waitFor(t, 3*time.Second, "stopped", func() bool { return stop.status().Stopped })
	if took < lease-2*refresh {
		t.Errorf("stopped after %v, before its lease %v", took, lease)
	}
	if st := stop.status(); st.Text != `cluster: offline, granting nothing (offline = "stop")` || st.Share != 0 {
		t.Errorf("stop: %+v", st)
	}
	if d, _ := stop.lim.Demand(svcName); d.Share != 0 {
		t.Errorf("the limiter's share is %v, want 0", d.Share)
	}
	if st := keep.status(); st.State != cluster.Offline || st.Share == 0 || st.Stopped {
		t.Errorf("keep: %+v", st)
	}
	r.Continue()
	waitFor(t, 3*time.Second, "online again", func() bool { return stop.status().State == cluster.Online })
	if st := stop.status(); st.Stopped || strings.Contains(st.Text, "granting nothing") {
		t.Errorf("after rejoining: %+v", st)
	}
}

// busyThree starts three daemons on url with five busy agents each and
// waits until they hold a third of the quota each.
func busyThree(t *testing.T, url string) ([]*node, *recorder) {
	t.Helper()
	ns := startThree(t, url)
	rec := &recorder{}
	for _, n := range ns {
		n.run(5, rec)
	}
	waitFor(t, 5*time.Second, "three equal shares", func() bool {
		return approx(sumShares(ns[0]), 1.0/3, 0.03) && approx(sumShares(ns[1]), 1.0/3, 0.03) && approx(sumShares(ns[2]), 1.0/3, 0.03)
	})
	return ns, rec
}
