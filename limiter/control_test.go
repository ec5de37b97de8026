package limiter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Rule 8: paused services and agents are refused with "paused", and their
// waiting requests are refused at once.
func TestPause(t *testing.T) {
	paused := true
	tests := []struct {
		name      string
		pause     func(l *limiter.Limiter) error
		resume    func(l *limiter.Limiter) error
		refusedOf map[string]bool // agents whose waiters are refused
	}{
		{
			name:      "service",
			pause:     func(l *limiter.Limiter) error { _, err := l.SetServicePaused("s", true); return err },
			resume:    func(l *limiter.Limiter) error { _, err := l.SetServicePaused("s", false); return err },
			refusedOf: map[string]bool{"a": true, "b": true},
		},
		{
			name: "agent",
			pause: func(l *limiter.Limiter) error {
				_, err := l.UpdateAgent("a", limiter.AgentUpdate{Paused: &paused})
				return err
			},
			resume: func(l *limiter.Limiter) error {
				no := false
				_, err := l.UpdateAgent("a", limiter.AgentUpdate{Paused: &no})
				return err
			},
			refusedOf: map[string]bool{"a": true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Hour))}})
			submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			wa := submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour})
			wb := submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour})
			if err := tc.pause(l); err != nil {
				t.Fatal(err)
			}
			for agent, p := range map[string]*limiter.Pending{"a": wa, "b": wb} {
				_, err, done := p.Poll()
				if tc.refusedOf[agent] {
					if !done {
						t.Fatalf("agent %s's waiter still queued after the pause", agent)
					}
					refused(t, err, limiter.ReasonPaused)
				} else if done {
					t.Errorf("agent %s's waiter answered (%v) by another's pause", agent, err)
				}
			}
			_, err := l.Submit(limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour})
			refused(t, err, limiter.ReasonPaused)
			if tc.name == "service" && !serviceStatus(t, l, "s").Paused || tc.name == "agent" && !agentStatus(t, l, "a").Paused {
				t.Error("status does not show the pause")
			}
			if err := tc.resume(l); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Submit(limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour}); err != nil {
				t.Errorf("after resuming: %#v", err)
			}
		})
	}
}

// A request that waits past MaxWait is refused with "timeout" and an
// estimate of when a new one could be granted.
func TestTimeout(t *testing.T) {
	tests := []struct {
		name     string
		maxWait  time.Duration
		queued   int
		minRetry time.Duration
	}{
		{"answer at once", 0, 0, 59 * time.Second},
		{"waits 5s", 5 * time.Second, 0, 54 * time.Second},
		{"behind others", 5 * time.Second, 3, 54 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Minute))}})
			submit(t, l, limiter.Request{Agent: "a", Service: "s"})
			clk.Advance(time.Second)
			for range tc.queued {
				submit(t, l, limiter.Request{Agent: "q", Service: "s", MaxWait: time.Hour})
			}
			p, err := l.Submit(limiter.Request{Agent: "b", Service: "s", MaxWait: tc.maxWait})
			if tc.maxWait > 0 {
				if err != nil {
					t.Fatal(err)
				}
				clk.Advance(tc.maxWait - time.Nanosecond)
				if _, _, done := p.Poll(); done {
					t.Fatal("answered before max wait")
				}
				clk.Advance(time.Nanosecond)
				var done bool
				if _, err, done = p.Poll(); !done {
					t.Fatal("still waiting after max wait")
				}
			}
			re := refused(t, err, limiter.ReasonTimeout)
			if re.RetryAfter < tc.minRetry || re.RetryAfter > tc.minRetry+time.Duration(tc.queued+2)*time.Minute {
				t.Errorf("retry after %v, want about %v (+%d queued minutes)", re.RetryAfter, tc.minRetry, tc.queued)
			}
		})
	}
}

// Acquire blocks on the limiter's clock (fake here) and honours ctx.
func TestAcquireBlocks(t *testing.T) {
	l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Minute))}})
	if _, err := l.Acquire(context.Background(), limiter.Request{Agent: "a", Service: "s"}); err != nil {
		t.Fatal(err)
	}
	ch, stop := l.Subscribe()
	defer stop()
	type res struct {
		ls  limiter.Lease
		err error
	}
	got := make(chan res, 2)
	go func() {
		ls, err := l.Acquire(context.Background(), limiter.Request{Agent: "b", Service: "s", MaxWait: 2 * time.Minute})
		got <- res{ls, err}
	}()
	for serviceStatus(t, l, "s").Queued != 1 {
		<-ch
	}
	// A grant stays in the log for its window plus a margin of 1% (at
	// most 250 ms) for its call's way to the provider.
	clk.Advance(time.Minute + 250*time.Millisecond)
	r := recvWithin(t, got)
	if r.err != nil || r.ls.Waited != time.Minute+250*time.Millisecond {
		t.Fatalf("Acquire: %+v, %#v; want granted after 1m + the margin", r.ls, r.err)
	}
	go func() {
		ls, err := l.Acquire(context.Background(), limiter.Request{Agent: "b", Service: "s", MaxWait: 30 * time.Second})
		got <- res{ls, err}
	}()
	for serviceStatus(t, l, "s").Queued != 1 {
		<-ch
	}
	clk.Advance(30 * time.Second)
	r = recvWithin(t, got)
	refused(t, r.err, limiter.ReasonTimeout)
}

// recvWithin receives what another goroutine was released to send; the
// deadline only turns a bug (nothing released) into a failure, not a hang.
func recvWithin[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived: the limiter did not answer")
	}
	var zero T
	return zero
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name string
		req  limiter.Request
		code limiter.Code
		msg  string
	}{
		{"unknown service", limiter.Request{Agent: "a", Service: "opneai"}, limiter.CodeUnknownService, `service "opneai" is not configured; configured: anthropic, openai`},
		{"bad agent name", limiter.Request{Agent: "a b", Service: "openai"}, limiter.CodeBadRequest, "agent"},
		{"empty agent", limiter.Request{Service: "openai"}, limiter.CodeBadRequest, "agent"},
		{"bad service name", limiter.Request{Agent: "a", Service: "../x"}, limiter.CodeBadRequest, "service"},
		{"negative cost", limiter.Request{Agent: "a", Service: "openai", Cost: limiter.Cost{limiter.Tokens: -1}}, limiter.CodeBadRequest, "tokens"},
		{"unknown unit", limiter.Request{Agent: "a", Service: "openai", Cost: limiter.Cost{"bananas": 1}}, limiter.CodeBadRequest, `"bananas"`},
		{"bad priority", limiter.Request{Agent: "a", Service: "openai", Priority: 9}, limiter.CodeBadRequest, "priority"},
		{"negative max wait", limiter.Request{Agent: "a", Service: "openai", MaxWait: -1}, limiter.CodeBadRequest, "wait"},
	}
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("openai"), svcCfg("anthropic")}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.Acquire(context.Background(), tc.req)
			e := code(t, err, tc.code)
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tc.msg)
			}
		})
	}
	reports := []struct {
		name string
		r    limiter.Report
		code limiter.Code
	}{
		{"unknown lease", limiter.Report{Lease: "l_nope"}, limiter.CodeUnknownLease},
		{"no lease, no agent", limiter.Report{Service: "openai"}, limiter.CodeBadRequest},
		{"no lease, unknown service", limiter.Report{Agent: "a", Service: "x"}, limiter.CodeUnknownService},
		{"negative usage", limiter.Report{Agent: "a", Service: "openai", Usage: limiter.Cost{limiter.Tokens: -5}}, limiter.CodeBadRequest},
	}
	for _, tc := range reports {
		t.Run("report/"+tc.name, func(t *testing.T) {
			_, err := l.Report(tc.r)
			code(t, err, tc.code)
		})
	}
	t.Run("update bad agent name", func(t *testing.T) {
		_, err := l.UpdateAgent("no spaces", limiter.AgentUpdate{})
		code(t, err, limiter.CodeBadRequest)
	})
	t.Run("update unseen agent registers it", func(t *testing.T) {
		paused := true
		a, err := l.UpdateAgent("ghost", limiter.AgentUpdate{Paused: &paused})
		if err != nil || !a.Paused || !a.LastSeen.IsZero() {
			t.Fatalf("UpdateAgent(ghost) = %+v, %v; want it registered, paused, never seen", a, err)
		}
		_, err = l.Acquire(context.Background(), limiter.Request{Agent: "ghost", Service: "openai"})
		var r *limiter.RefusedError
		if !errors.As(err, &r) || r.Reason != limiter.ReasonPaused {
			t.Fatalf("acquire of the pre-paused agent: %v, want refused (paused)", err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  limiter.Config
		msg  string
	}{
		{"duplicate service", limiter.Config{Services: []limiter.ServiceConfig{svcCfg("a"), svcCfg("a")}}, "twice"},
		{"zero quota", limiter.Config{Services: []limiter.ServiceConfig{svcCfg("a", pol(0, limiter.Requests, time.Minute))}}, "quota"},
		{"bad unit", limiter.Config{Services: []limiter.ServiceConfig{svcCfg("a", pol(1, "calls", time.Minute))}}, "unit"},
		{"headroom 1", limiter.Config{Services: []limiter.ServiceConfig{{Name: "a", Headroom: 1}}}, "headroom"},
		{"bad agent weight", limiter.Config{Agents: []limiter.AgentConfig{{Name: "x", Weight: -1}}}, "weight"},
		{"bad dialect", limiter.Config{Services: []limiter.ServiceConfig{{Name: "a", Dialect: "aws"}}}, "dialect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := limiter.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("New: %v; want an error about %s", err, tc.msg)
			}
		})
	}
}

// Rule 9's limiter part: what a person changed and what the provider said
// survives a JSON round trip into a new limiter.
func TestSnapshotRestore(t *testing.T) {
	cfg := limiter.Config{
		Services: []limiter.ServiceConfig{
			svcCfg("conf", pol(100, limiter.Requests, 2*time.Hour)), // unpaced: 30 at once
			{Name: "learn", Dialect: "ietf"},
			svcCfg("cool", pol(100, limiter.Requests, time.Minute)),
		},
		Agents: []limiter.AgentConfig{{Name: "bot", Priority: limiter.Low}},
	}
	l, clk := newLim(t, cfg)
	for range 30 {
		submit(t, l, limiter.Request{Agent: "bot", Service: "conf"})
	}
	if _, err := l.SetServicePaused("conf", true); err != nil {
		t.Fatal(err)
	}
	high, yes := limiter.High, true
	if _, err := l.UpdateAgent("bot", limiter.AgentUpdate{Priority: &high, Paused: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Report(limiter.Report{Agent: "x", Service: "learn", Status: 200, Header: map[string]string{
		"RateLimit-Policy": `"burst";q=100;w=60`, "RateLimit": `"burst";r=40;t=30`,
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Report(limiter.Report{Agent: "x", Service: "cool", Status: 429, Header: map[string]string{"Retry-After": "120"}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	before := l.Status()
	// Every piece is there to be saved, so the round trip below can fail.
	if s := before.Services[0]; s.Name != "conf" || !s.Paused || s.Limits[0].Remaining != 70 {
		t.Fatalf("before: %+v, want conf paused with 70 left", s)
	}
	if s := before.Services[1]; s.Name != "cool" || !s.CooldownUntil.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("before: %+v, want cool cooling down for 120s", s)
	}
	if s := before.Services[2]; s.Name != "learn" || len(s.Limits) != 1 || s.Limits[0].Source != "headers" || s.Limits[0].Quota != 100 || s.MaxConcurrent != 0 {
		t.Fatalf("before: %+v, want learn with a learned limit of 100 and no learning cap", s)
	}
	data, err := json.Marshal(l.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var st limiter.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	l2, clk2 := newLim(t, cfg)
	clk2.Advance(10 * time.Second)
	if err := l2.Restore(st); err != nil {
		t.Fatal(err)
	}
	after := l2.Status()
	for i, s := range before.Services {
		a := after.Services[i]
		if s.Name != a.Name || s.Paused != a.Paused || !s.CooldownUntil.Equal(a.CooldownUntil) || s.MaxConcurrent != a.MaxConcurrent || len(s.Limits) != len(a.Limits) {
			t.Errorf("service %s: before %+v after %+v", s.Name, s, a)
			continue
		}
		for j := range s.Limits {
			x, y := s.Limits[j], a.Limits[j]
			if x.Unit != y.Unit || x.Quota != y.Quota || x.Window != y.Window || x.Remaining != y.Remaining || !x.ResetsAt.Equal(y.ResetsAt) || x.Source != y.Source {
				t.Errorf("service %s limit %d: before %+v after %+v", s.Name, j, x, y)
			}
		}
	}
	bot := agentStatus(t, l2, "bot")
	if bot.Priority != limiter.High || !bot.Paused {
		t.Errorf("agent after restore %+v: want high and paused", bot)
	}
	// The restored remaining is enforced: 70 more on "conf" this window.
	if _, err := l2.SetServicePaused("conf", false); err != nil {
		t.Fatal(err)
	}
	n := 0
	for range 100 {
		if _, err := l2.Submit(limiter.Request{Agent: "y", Service: "conf"}); err == nil {
			n++
		}
	}
	if n != 70 {
		t.Errorf("granted %d on conf after restore, want the 70 left", n)
	}
	// The restored cooldown is enforced too.
	_, err = l2.Submit(limiter.Request{Agent: "y", Service: "cool"})
	if re := refused(t, err, limiter.ReasonCooldown); re.RetryAfter < 110*time.Second {
		t.Errorf("retry after %v on cool after restore, want the 110s left of its cooldown", re.RetryAfter)
	}

	// Restored after the cooldown and the learned budget's reset: those
	// are dropped, the learned limit itself is kept.
	l3, clk3 := newLim(t, cfg)
	clk3.Advance(3 * time.Minute)
	if err := l3.Restore(st); err != nil {
		t.Fatal(err)
	}
	if s := serviceStatus(t, l3, "cool"); !s.CooldownUntil.IsZero() {
		t.Errorf("cool restored after its cooldown ended: cooldown until %v", s.CooldownUntil)
	}
	s := serviceStatus(t, l3, "learn")
	if len(s.Limits) != 1 || s.Limits[0].Source != "headers" || s.Limits[0].Quota != 100 || s.Limits[0].Window != time.Minute || s.Limits[0].Remaining != 100 {
		t.Errorf("learn restored later: %+v, want the learned 100/1m, all of it left", s.Limits)
	}
}

// Reconfigure keeps queued requests and applies new limits, weights and
// priorities; a removed service refuses its waiters.
func TestReconfigure(t *testing.T) {
	base := limiter.Config{Services: []limiter.ServiceConfig{
		svcCfg("keep", pol(1, limiter.Requests, time.Hour)),
		svcCfg("gone", pol(1, limiter.Requests, time.Hour)),
	}}
	l, _ := newLim(t, base)
	submit(t, l, limiter.Request{Agent: "a", Service: "keep"})
	submit(t, l, limiter.Request{Agent: "a", Service: "gone"})
	var keep []*limiter.Pending
	for range 3 {
		keep = append(keep, submit(t, l, limiter.Request{Agent: "a", Service: "keep", MaxWait: time.Hour}))
	}
	gone := submit(t, l, limiter.Request{Agent: "a", Service: "gone", MaxWait: time.Hour})
	low := submit(t, l, limiter.Request{Agent: "b", Service: "keep", MaxWait: time.Hour})

	next := limiter.Config{
		Services: []limiter.ServiceConfig{svcCfg("keep", pol(3, limiter.Requests, time.Hour))},
		Agents:   []limiter.AgentConfig{{Name: "b", Priority: limiter.High}},
	}
	if err := l.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	if _, err, done := gone.Poll(); !done {
		t.Fatal("waiter of a removed service still waiting")
	} else if e := code(t, err, limiter.CodeUnknownService); e.Message != `service "gone" is no longer configured; configured: keep` {
		t.Errorf("message %q", e.Message)
	}
	// Quota 3 with 1 used: two more, and b (now high) goes first.
	if _, ok := granted(t, low); !ok {
		t.Error("b's request, now high priority, was not granted first")
	}
	if _, ok := granted(t, keep[0]); !ok {
		t.Error("the first kept request was not granted under the raised limit")
	}
	if _, ok := granted(t, keep[1]); ok {
		t.Error("more granted than the new limit allows")
	}
	if st := serviceStatus(t, l, "keep"); st.Queued != 2 || st.Limits[0].Quota != 3 || st.Limits[0].Remaining != 0 {
		t.Errorf("status %+v: want 2 queued and the new quota used up", st)
	}
	_, err := l.Submit(limiter.Request{Agent: "a", Service: "gone"})
	code(t, err, limiter.CodeUnknownService)
}

func TestClose(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Hour))}})
	submit(t, l, limiter.Request{Agent: "a", Service: "s"})
	w := submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour})
	ch, _ := l.Subscribe()
	l.Close()
	_, err, done := w.Poll()
	if !done {
		t.Fatal("waiter not answered by Close")
	}
	code(t, err, limiter.CodeShuttingDown)
	_, err = l.Acquire(context.Background(), limiter.Request{Agent: "a", Service: "s"})
	code(t, err, limiter.CodeShuttingDown)
	select {
	case <-ch:
	default:
		t.Error("subscribers were not told of the close")
	}
	var e *limiter.Error
	if _, err := l.Report(limiter.Report{Agent: "a", Service: "s"}); !errors.As(err, &e) {
		t.Errorf("report after close: %v", err)
	}
}

// Many goroutines using every method at once (run with -race): the books
// balance at the end.
func TestConcurrentUse(t *testing.T) {
	cfg := limiter.Config{Services: []limiter.ServiceConfig{
		svcCfg("a", pol(1000000, limiter.Requests, time.Hour)),
		{Name: "b", MaxConcurrent: 3},
	}}
	l, err := limiter.New(cfg) // the real clock: MaxWait 0 never waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	var granted atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			agent := fmt.Sprintf("agent-%d", g%5)
			for i := range 200 {
				svc := []string{"a", "b"}[i%2]
				ls, err := l.Acquire(context.Background(), limiter.Request{Agent: agent, Service: svc, Cost: limiter.Cost{limiter.Requests: 1, limiter.Tokens: 10}})
				if err == nil {
					granted.Add(1)
					if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: 200, Usage: limiter.Cost{limiter.Tokens: 5}}); err != nil {
						t.Errorf("report: %v", err)
					}
				}
				if i%50 == 0 {
					l.Status()
					l.Snapshot()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			paused := i%2 == 0
			l.SetServicePaused("b", paused)
			if _, err := l.UpdateAgent("agent-1", limiter.AgentUpdate{Paused: &paused}); err != nil {
				var e *limiter.Error
				if !errors.As(err, &e) || e.Code != limiter.CodeNotFound {
					t.Errorf("update: %v", err)
				}
			}
			if err := l.Reconfigure(cfg); err != nil {
				t.Errorf("reconfigure: %v", err)
			}
		}
	}()
	wg.Wait()
	var total int64
	for _, s := range l.Status().Services {
		if s.InFlight != 0 || s.Queued != 0 {
			t.Errorf("service %s: %d in flight, %d queued after everything was reported", s.Name, s.InFlight, s.Queued)
		}
		total += s.Granted
	}
	if total != granted.Load() {
		t.Errorf("services counted %d grants, callers got %d", total, granted.Load())
	}
}

// A priority set at run time moves the agent's waiting requests that did
// not name a priority of their own; PriorityUnset returns to the config.
func TestUpdateAgentPriorityMovesWaiters(t *testing.T) {
	high, unset := limiter.High, limiter.PriorityUnset
	tests := []struct {
		name    string
		updates []*limiter.Priority
		want    string // agents in grant order: a's requests are a, its explicit low one L
	}{
		{"raised to high", []*limiter.Priority{&high}, "aaabbbL"},
		// Back in one class, a's requests keep the order it asked them in.
		{"raised, then back to the configured low", []*limiter.Priority{&high, &unset}, "bbbLaaa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{
				Services: []limiter.ServiceConfig{svcCfg("s", pol(1, limiter.Requests, time.Second))},
				Agents:   []limiter.AgentConfig{{Name: "a", Priority: limiter.Low}},
			})
			submit(t, l, limiter.Request{Agent: "x", Service: "s"}) // fills the window
			type ask struct {
				p   *limiter.Pending
				tag string
			}
			var asks []ask
			for range 3 {
				asks = append(asks, ask{submit(t, l, limiter.Request{Agent: "b", Service: "s", MaxWait: time.Hour}), "b"})
			}
			asks = append(asks, ask{submit(t, l, limiter.Request{Agent: "a", Service: "s", Priority: limiter.Low, MaxWait: time.Hour}), "L"})
			for range 3 {
				asks = append(asks, ask{submit(t, l, limiter.Request{Agent: "a", Service: "s", MaxWait: time.Hour}), "a"})
			}
			for _, p := range tc.updates {
				if _, err := l.UpdateAgent("a", limiter.AgentUpdate{Priority: p}); err != nil {
					t.Fatal(err)
				}
			}
			var got string
			for range len(asks) {
				clk.Advance(span(time.Second))
				for i, a := range asks {
					if a.p == nil {
						continue
					}
					if _, ok := granted(t, a.p); ok {
						got += a.tag
						asks[i].p = nil
					}
				}
			}
			if got != tc.want {
				t.Errorf("grant order %q, want %q", got, tc.want)
			}
		})
	}
}
