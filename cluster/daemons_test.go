package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// The acceptance test of issue 15 with real parts: three `quotabar serve`
// processes (built here; own sockets, state dirs and configs), five agents
// each over the daemons' sockets, one fake provider on 127.0.0.1 counting a
// sliding window exactly (a call over the quota is a 429), one
// redis-server. The service keeps a headroom of 10% (12 calls of 120) for the
// way from a grant to the provider: on this shared 2-core machine (and under
// -race) a call can reach the provider tens of milliseconds after its grant,
// far more than the 1% of a window the limiter allows for it, and a 1-second
// window magnifies that. The exact no-overshoot check is the in-process
// tests', which record grant times. Goodput is measured against what the
// headroom leaves (108 a second).

const (
	procQuota = 120
	procCap   = 108 // procQuota less the 10% headroom
)

type daemon struct {
	i      int
	cmd    *exec.Cmd
	socket string
	log    *testenv.Buffer
	cl     *ipc.Client
	idle   atomic.Bool
	dead   atomic.Bool
	ok     atomic.Int64 // calls the provider accepted
}

func buildQuotabar(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quotabar")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/quotabar/quotabar")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startDaemon(t *testing.T, bin string, i int, redisURL string, env ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "qbd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := fmt.Sprintf(`lease_ttl = "10s"
[proxy]
enabled = false
[cluster]
redis = %q
password_env = "QB_ACCEPT_PW"
name = "accept"
refresh = "100ms"
lease = "500ms"
[services.api]
limits = ["%d requests/1s"]
headroom = 0.1
shared = true
[services.local]
limits = ["5 requests/1s"]
`, redisURL, procQuota)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{i: i, socket: filepath.Join(dir, "q.sock"), log: &testenv.Buffer{}}
	d.cmd = exec.Command(bin, "serve", "--config", cfgPath, "--socket", d.socket, "--log-level", "debug")
	d.cmd.Env = append(append(os.Environ(), "QUOTABAR_STATE_DIR="+filepath.Join(dir, "state")), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !d.dead.Load() {
			d.cmd.Process.Signal(syscall.SIGTERM)
			d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon %d log:\n%s", i, d.log.String())
		}
	})
	d.cl = &ipc.Client{SocketPath: d.socket}
	waitFor(t, 10*time.Second, fmt.Sprintf("daemon %d answers", i), func() bool { return d.cl.Health(context.Background()) == nil })
	return d
}

func (d *daemon) cluster(t *testing.T) wire.ClusterStatus {
	t.Helper()
	st, err := d.cl.Status(context.Background())
	if err != nil {
		t.Fatalf("daemon %d status: %v", d.i, err)
	}
	for _, s := range st.Services {
		if s.Name == "api" {
			if s.Cluster == nil {
				t.Fatalf("daemon %d: service api has no cluster object", d.i)
			}
			return *s.Cluster
		}
		if s.Name == "local" && s.Cluster != nil {
			t.Fatalf("daemon %d: service local is not shared but has %+v", d.i, s.Cluster)
		}
	}
	t.Fatalf("daemon %d: no service api", d.i)
	return wire.ClusterStatus{}
}

func (d *daemon) cooling(t *testing.T) bool {
	st, err := d.cl.Status(context.Background())
	if err != nil {
		t.Fatalf("daemon %d status: %v", d.i, err)
	}
	for _, s := range st.Services {
		if s.Name == "api" {
			return s.CooldownUntil != nil
		}
	}
	return false
}

// agents runs five agents on d: acquire over the socket, call the provider,
// report what it answered.
func (d *daemon) agents(ctx context.Context, wg *sync.WaitGroup, base string) {
	hc := &http.Client{}
	for a := range 5 {
		wg.Go(func() {
			agent := fmt.Sprintf("d%d-agent%d", d.i, a)
			for ctx.Err() == nil && !d.dead.Load() {
				if d.idle.Load() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ls, err := d.cl.Acquire(ctx, wire.AcquireRequest{Agent: agent, Service: "api", MaxWaitMS: wire.Wait(500 * time.Millisecond)})
				if err != nil {
					if !ipc.IsRefused(err) && ctx.Err() == nil && !d.dead.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				body, _ := json.Marshal(sim.CallRequest{Agent: agent, PromptTokens: 1, MaxTokens: 1})
				resp, err := hc.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				status := 0
				h := map[string]string{}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
					for k, v := range resp.Header {
						h[k] = v[0]
					}
				}
				if status == http.StatusOK {
					d.ok.Add(1)
				}
				d.cl.Report(context.Background(), wire.ReportRequest{Lease: ls.ID, Status: status, Headers: h})
			}
		})
	}
}

func okCounts(ds []*daemon) []int {
	out := make([]int, len(ds))
	for i, d := range ds {
		out[i] = int(d.ok.Load())
	}
	return out
}

func diff(a, b []int) []int {
	out := make([]int, len(a))
	for i := range a {
		out[i] = b[i] - a[i]
	}
	return out
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

func TestDaemonsShareThroughRedis(t *testing.T) {
	testenv.RealTime(t)
	if testing.Short() {
		t.Skip("builds quotabar and runs three daemons")
	}
	bin := buildQuotabar(t)
	r := testenv.StartRedis(t, secret)
	prov, err := sim.NewProvider(sim.ProviderConfig{
		Limits: []limiter.Policy{{Quota: procQuota, Unit: limiter.Requests, Window: time.Second}},
		Window: sim.Sliding, Latency: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	base, err := prov.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close() })
	var ds []*daemon
	for i := range 3 {
		ds = append(ds, startDaemon(t, bin, i, r.URL(false), "QB_ACCEPT_PW="+secret))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, d := range ds {
		waitFor(t, 5*time.Second, "online", func() bool { return d.cluster(t).State == "online" })
		d.agents(ctx, &wg, base)
	}
	measure := func(name string, d time.Duration) []int {
		c0, t0 := okCounts(ds), time.Now()
		time.Sleep(d)
		got := diff(c0, okCounts(ds))
		t.Logf("%s: %v calls accepted in %v", name, got, time.Since(t0).Round(time.Millisecond))
		return got
	}
	want := func(d time.Duration) float64 { return 0.95 * procCap * d.Seconds() }

	t.Run("all busy: no 429, >= 95% goodput, fair", func(t *testing.T) {
		time.Sleep(3 * time.Second) // the first daemon's whole share drains to a third
		got := measure("all busy", 3*time.Second)
		if float64(sum(got)) < want(3*time.Second) {
			t.Errorf("goodput %d, want at least %.0f", sum(got), want(3*time.Second))
		}
		if j := jain(got); j < 0.95 {
			t.Errorf("Jain %.3f among equal daemons: %v", j, got)
		}
	})
	t.Run("one idle: the other two use its share", func(t *testing.T) {
		ds[2].idle.Store(true)
		time.Sleep(2500 * time.Millisecond)
		got := measure("daemon 2 idle", 3*time.Second)
		// The idle daemon keeps 2% to start with at once (rather than after
		// a window's drain), and each busy share of 108 rounds down to whole
		// calls: 90%, not 95%.
		if min := 0.90 * procCap * 3; float64(got[0]+got[1]) < min {
			t.Errorf("two busy daemons %v, want at least %.0f together", got, min)
		}
		if got[2] > 5 {
			t.Errorf("the idle daemon made %d calls", got[2])
		}
		ds[2].idle.Store(false)
	})
	t.Run("a 429 on one cools the others within 100ms", func(t *testing.T) {
		start := time.Now()
		if _, err := ds[0].cl.Report(context.Background(), wire.ReportRequest{Agent: "x", Service: "api", Status: 429, Headers: map[string]string{"Retry-After": "1"}}); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds[1:] {
			took := waitFor(t, time.Second, "cooldown", func() bool { return d.cooling(t) })
			if took > 100*time.Millisecond {
				t.Errorf("daemon %d cooling after %v, want within 100ms", d.i, took)
			}
		}
		t.Logf("both cooling %v after the report", time.Since(start))
		time.Sleep(1200 * time.Millisecond) // the cooldown passes
	})
	t.Run("kill -9 returns the share", func(t *testing.T) {
		ds[2].dead.Store(true)
		if err := ds[2].cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		ds[2].cmd.Wait()
		took := waitFor(t, 3*time.Second, "share back", func() bool {
			return ds[0].cluster(t).Share+ds[1].cluster(t).Share >= 0.95
		})
		if bound := lease + window + 2*refresh; took > bound {
			t.Errorf("share back after %v, want within lease+window+refresh %v", took, bound)
		}
		t.Logf("share back after %v", took)
	})
	t.Run("redis stopped, killed, restarted: offline then back", func(t *testing.T) {
		r.Stop()
		for _, d := range ds[:2] {
			waitFor(t, 2*time.Second, "offline", func() bool {
				c := d.cluster(t)
				return c.State == "offline" && strings.HasPrefix(c.Text, "cluster: offline, using ")
			})
		}
		t.Logf("offline: %q", ds[0].cluster(t).Text)
		got := measure("redis stopped", time.Second)
		if sum(got) < procQuota/2 {
			t.Errorf("only %v calls with redis stopped: the last shares should serve", got)
		}
		r.Kill()
		r.Start()
		for _, d := range ds[:2] {
			waitFor(t, 3*time.Second, "online again", func() bool { return d.cluster(t).State == "online" })
		}
		time.Sleep(1500 * time.Millisecond)
		got = measure("after the restart", 2*time.Second)
		if float64(sum(got)) < want(2*time.Second)*0.9 {
			t.Errorf("after the restart %v calls, want about %.0f", got, want(2*time.Second))
		}
	})
	cancel()
	wg.Wait()
	st := prov.Stats()
	if st.Refused != 0 {
		t.Errorf("the provider refused %d calls (a window over the quota), want 0", st.Refused)
	}
	for _, d := range ds {
		if strings.Contains(d.log.String(), secret) {
			t.Errorf("daemon %d logged the redis password", d.i)
		}
	}
	t.Logf("provider: %d accepted, %d refused", st.Accepted, st.Refused)
}
