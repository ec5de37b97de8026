package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// TestContention runs five agents, each with its own connections, against
// one service of 10 requests a second, and checks the grants against the
// quota with the daemon's own clock: no window of one second holds more
// than 10.
func TestContention(t *testing.T) {
	const (
		quota  = 10
		window = time.Second
		agents = 5
		run    = 2500 * time.Millisecond
	)
	cfg := limiter.Config{LeaseTTL: ipctest.LeaseTTL, Services: []limiter.ServiceConfig{
		{Name: "burst", Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Requests, Window: window}}},
	}}
	d := ipctest.StartDaemon(t, cfg, nil)

	var mu sync.Mutex
	var grants []time.Time // when the daemon granted, from lease expiry - TTL
	var wg sync.WaitGroup
	start := time.Now()
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &ipc.Client{SocketPath: d.Path}
			defer c.CloseIdleConnections()
			agent := "agent-" + string(rune('a'+i))
			for time.Since(start) < run {
				lease, err := c.Acquire(context.Background(), wire.AcquireRequest{Agent: agent, Service: "burst", MaxWaitMS: wire.Wait(5 * time.Second)})
				var refused *ipc.RefusedError
				if errors.As(err, &refused) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				grants = append(grants, lease.ExpiresAt.Add(-ipctest.LeaseTTL))
				mu.Unlock()
				if _, err := c.Report(context.Background(), wire.ReportRequest{Lease: lease.ID, Status: 200}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Every grant happened between start and now: at most quota per
	// started window.
	if maxGrants := quota * int((elapsed+window-1)/window); len(grants) > maxGrants {
		t.Errorf("%d grants in %v, the quota allows at most %d", len(grants), elapsed, maxGrants)
	}
	if len(grants) < 2*quota {
		t.Errorf("only %d grants in %v: the agents were starved", len(grants), elapsed)
	}
	// The sliding-window check, on the daemon's grant times. The 2ms
	// margin absorbs the wall clock's slewing (at most 0.5 ms a second).
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	for i, g := range grants {
		n := 0
		for _, h := range grants[i:] {
			if h.Sub(g) < window-2*time.Millisecond {
				n++
			}
		}
		if n > quota {
			t.Fatalf("%d grants in the window starting %v; quota %d", n, g.Sub(grants[0]), quota)
		}
	}
	st := d.Srv.Status()
	if got := ipctest.ServiceOf(t, st, "burst").Counters.Granted; got != int64(len(grants)) {
		t.Errorf("daemon counted %d grants, agents saw %d", got, len(grants))
	}
}

// TestCancelWithdraws checks that a client that gives up takes its request
// out of the daemon's queue.
func TestCancelWithdraws(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	if _, err := d.Client.Acquire(context.Background(), wire.AcquireRequest{Agent: "a", Service: "tiny"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: "tiny", MaxWaitMS: wire.Wait(10 * time.Minute)})
		done <- err
	}()
	testenv.WaitFor(t, 15*time.Second, "the acquire to queue", func() bool { return ipctest.ServiceOf(t, d.Srv.Status(), "tiny").Queued == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled acquire returned %v, want context.Canceled", err)
	}
	testenv.WaitFor(t, 15*time.Second, "the request to leave the queue", func() bool { return ipctest.ServiceOf(t, d.Srv.Status(), "tiny").Queued == 0 })
	if s := ipctest.ServiceOf(t, d.Srv.Status(), "tiny"); s.InFlight != 1 || s.Counters.Granted != 1 {
		t.Errorf("after withdrawal: %+v", s)
	}
}

// TestAbandonedAcquires sends 1,000 acquires that all end without a grant,
// half by timing out and half by cancellation, and checks that goroutines and
// the limiter's state return to where they were.
func TestAbandonedAcquires(t *testing.T) {
	const n = 1000
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	ctx := context.Background()
	if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: "tiny"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Status(ctx); err != nil {
		t.Fatal(err)
	}
	d.Client.CloseIdleConnections()
	before := d.Srv.Status()
	// Every goroutine running now may stay; any other one still running at
	// the end is a leak, and goleak prints its stack.
	baseGoroutines := goleak.IgnoreCurrent()

	cctx, cancel := context.WithCancel(ctx)
	var timedOut, cancelled sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg, actx, wait := &timedOut, ctx, 300*time.Millisecond
		if i%2 == 1 {
			wg, actx, wait = &cancelled, cctx, 10*time.Minute
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Client.Acquire(actx, wire.AcquireRequest{Agent: "a", Service: "tiny", MaxWaitMS: wire.Wait(wait)})
			errs <- err
		}()
	}
	timedOut.Wait()
	testenv.WaitFor(t, 15*time.Second, "the cancellable half to queue", func() bool { return ipctest.ServiceOf(t, d.Srv.Status(), "tiny").Queued == n/2 })
	cancel()
	cancelled.Wait()
	close(errs)
	var nTimeout, nCancel int
	for err := range errs {
		var refused *ipc.RefusedError
		switch {
		case errors.As(err, &refused) && refused.Reason == "timeout":
			nTimeout++
		case errors.Is(err, context.Canceled):
			nCancel++
		default:
			t.Errorf("unexpected result %v", err)
		}
	}
	if nTimeout != n/2 || nCancel != n/2 {
		t.Errorf("%d timed out and %d cancelled, want %d each", nTimeout, nCancel, n/2)
	}

	d.Client.CloseIdleConnections()
	if err := goleak.Find(baseGoroutines); err != nil {
		t.Errorf("goroutines leaked by abandoned acquires: %v", err)
	}
	testenv.WaitFor(t, 15*time.Second, "the queue to empty", func() bool { return ipctest.ServiceOf(t, d.Srv.Status(), "tiny").Queued == 0 })
	after := d.Srv.Status()
	b, a := ipctest.ServiceOf(t, before, "tiny"), ipctest.ServiceOf(t, after, "tiny")
	if a.InFlight != b.InFlight || a.Counters.Granted != b.Counters.Granted || a.Limits[0].Remaining != b.Limits[0].Remaining {
		t.Errorf("tiny changed: before %+v, after %+v", b, a)
	}
	if a.Counters.Refused != b.Counters.Refused+n/2 {
		t.Errorf("refused %d, want %d (the timeouts only)", a.Counters.Refused, b.Counters.Refused+n/2)
	}
	ag, _ := ipctest.AgentOf(after, "a")
	if ag.Queued != 0 || ag.InFlight != 1 {
		t.Errorf("agent after: %+v", ag)
	}
}

// TestEventsRate storms the daemon with changes for 1.5 s and checks that
// the stream sends at most 4 events a second, each different from the one
// before, and ends on the final state.
func TestEventsRate(t *testing.T) {
	d := ipctest.StartDaemon(t, ipctest.TestConfig(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	events, eventsErr := ipctest.Events(ctx, d.Client)
	var mu sync.Mutex
	var got []wire.StatusResponse
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range events {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
	}()
	storm := &ipc.Client{SocketPath: d.Path}
	defer storm.CloseIdleConnections()
	toggles := 0
	for paused := false; time.Since(start) < 1500*time.Millisecond; toggles++ {
		paused = !paused
		if _, err := storm.SetServicePaused(ctx, "openai", paused); err != nil {
			t.Fatal(err)
		}
	}
	// A last change no earlier state had: its event must come.
	if _, err := storm.SetServicePaused(ctx, "cool", true); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the event of the last change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && ipctest.ServiceOf(t, got[len(got)-1], "cool").Paused
	})
	cancel()
	<-collected
	if *eventsErr != nil {
		t.Errorf("the event stream broke: %v", *eventsErr)
	}
	elapsed := time.Since(start)
	t.Logf("%d events in %v for %d changes", len(got), elapsed, toggles)

	// The sends lie between connect and now, at least 250 ms apart (API.md:
	// at most 4 a second).
	if maxEvents := 1 + int(elapsed/(time.Second/4)); len(got) > maxEvents {
		t.Errorf("%d events in %v for %d changes; at most %d allowed at 4 a second", len(got), elapsed, toggles, maxEvents)
	}
	if len(got) < 3 {
		t.Errorf("%d events in %v for %d changes: changes went unreported", len(got), elapsed, toggles)
	}
	for i := 1; i < len(got); i++ {
		if sameStatus(got[i], got[i-1]) {
			t.Errorf("event %d repeats event %d", i, i-1)
		}
	}
}

func sameStatus(a, b wire.StatusResponse) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
