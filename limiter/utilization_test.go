package limiter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
	"github.com/quotabar/quotabar/limiter"
)

// Rule 10: subscription windows are utilization windows learned from the
// answers that pass.

func epoch(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// claudeHeaders are unified headers of a Claude subscription answer.
func claudeHeaders(status string, u5, u7 float64, r5, r7 time.Time) map[string]string {
	h := map[string]string{
		"anthropic-ratelimit-unified-status":               status,
		"anthropic-ratelimit-unified-reset":                epoch(r5),
		"anthropic-ratelimit-unified-representative-claim": "five_hour",
		"anthropic-ratelimit-unified-5h-utilization":       strconv.FormatFloat(u5, 'f', -1, 64),
		"anthropic-ratelimit-unified-5h-reset":             epoch(r5),
		"anthropic-ratelimit-unified-7d-utilization":       strconv.FormatFloat(u7, 'f', -1, 64),
		"anthropic-ratelimit-unified-7d-reset":             epoch(r7),
	}
	if status == "rejected" && u7 >= 1 {
		h["anthropic-ratelimit-unified-representative-claim"] = "seven_day"
		h["anthropic-ratelimit-unified-reset"] = epoch(r7)
	}
	return h
}

func subLim(t *testing.T, reserve float64) (*limiter.Limiter, *fakeclock.Clock) {
	t.Helper()
	return newLim(t, limiter.Config{
		Services: []limiter.ServiceConfig{{Name: "claude", Dialect: limiter.DialectAnthropic, ReserveHigh: reserve}},
		Agents:   []limiter.AgentConfig{{Name: "boss", Priority: limiter.High}},
	})
}

func window(t *testing.T, l *limiter.Limiter, name string) limiter.WindowStatus {
	t.Helper()
	for _, w := range serviceStatus(t, l, "claude").Windows {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no window %q in %+v", name, serviceStatus(t, l, "claude").Windows)
	return limiter.WindowStatus{}
}

// call acquires for agent and reports the answer with tokens used.
func call(t *testing.T, l *limiter.Limiter, agent string, status int, h map[string]string, tokens int64) {
	t.Helper()
	ls, ok := granted(t, submit(t, l, limiter.Request{Agent: agent, Service: "claude"}))
	if !ok {
		t.Fatalf("%s not granted at once", agent)
	}
	if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: status, Header: h, Usage: limiter.Cost{limiter.Tokens: tokens}}); err != nil {
		t.Fatalf("Report: %v", err)
	}
}

func TestWindowsClimbAndShares(t *testing.T) {
	l, _ := subLim(t, 0)
	r5, r7 := t0.Add(3*time.Hour), t0.Add(4*24*time.Hour)
	agents := []string{"a", "b", "c", "a", "a", "b"}
	tokens := []int64{1000, 500, 250, 1000, 1000, 500}
	for i, a := range agents {
		call(t, l, a, 200, claudeHeaders("allowed", 0.1*float64(i+1), 0.05*float64(i+1), r5, r7), tokens[i])
		if got, want := window(t, l, "5h").Utilization, 0.1*float64(i+1); math.Abs(got-want) > 1e-9 {
			t.Fatalf("after call %d: 5h utilization %v, want %v", i+1, got, want)
		}
	}
	w := window(t, l, "5h")
	if w.Label != "5-hour" || w.Length != 5*time.Hour || !w.ResetsAt.Equal(r5) || !w.Since.Equal(t0) {
		t.Fatalf("5h window %+v", w)
	}
	if w.Requests != 6 || w.Tokens != 4250 {
		t.Fatalf("totals %d requests %d tokens, want 6 and 4250", w.Requests, w.Tokens)
	}
	var share float64
	var req, tok int64
	for _, a := range w.Agents {
		share += a.Share
		req += a.Requests
		tok += a.Tokens
	}
	if math.Abs(share-1) > 1e-9 || req != w.Requests || tok != w.Tokens {
		t.Fatalf("agents add up to share %v, %d requests, %d tokens; want 1, %d, %d: %+v", share, req, tok, w.Requests, w.Tokens, w.Agents)
	}
	if w.Agents[0].Agent != "a" || math.Abs(w.Agents[0].Share-3000.0/4250) > 1e-9 {
		t.Fatalf("top agent %+v, want a with 3000/4250", w.Agents[0])
	}
	if wk := window(t, l, "7d"); wk.Label != "week" || math.Abs(wk.Utilization-0.3) > 1e-9 || wk.Warning {
		t.Fatalf("week window %+v", wk)
	}
}

func TestReserveHoldsAllButHigh(t *testing.T) {
	l, clk := subLim(t, 0.10)
	r5, r7 := t0.Add(time.Hour), t0.Add(4*24*time.Hour)
	call(t, l, "a", 200, claudeHeaders("allowed", 0.85, 0.3, r5, r7), 100)
	if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "claude"})); !ok {
		t.Fatal("below the reserve, a normal request waits")
	}
	call(t, l, "a", 200, claudeHeaders("allowed_warning", 0.91, 0.3, r5, r7), 100)
	w := window(t, l, "5h")
	if !w.Reserved || !w.Warning {
		t.Fatalf("past 1 - reserve: window %+v, want reserved and warning", w)
	}

	_, err := l.Submit(limiter.Request{Agent: "a", Service: "claude"})
	re := refused(t, err, limiter.ReasonReserved)
	if re.RetryAfter < time.Hour || re.RetryAfter > time.Hour+10*time.Minute {
		t.Fatalf("reserved refusal retry after %v, want about the reset in 1h", re.RetryAfter)
	}
	_, err = l.Submit(limiter.Request{Agent: "a", Service: "claude", Priority: limiter.Low})
	refused(t, err, limiter.ReasonReserved)

	held := submit(t, l, limiter.Request{Agent: "a", Service: "claude", MaxWait: 2 * time.Hour})
	if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "boss", Service: "claude"})); !ok {
		t.Fatal("a high agent is held by the reserve")
	}
	if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "claude", Priority: limiter.High})); !ok {
		t.Fatal("a request asking high priority is held by the reserve")
	}
	// Aging serves a passed-over normal request as if high; not past the
	// reserve.
	clk.Advance(limiter.DefaultMaxAging * 3)
	if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "boss", Service: "claude"})); !ok {
		t.Fatal("high held after aging")
	}
	if _, _, ok := held.Poll(); ok {
		t.Fatal("the normal request passed the reserve before the reset")
	}
	clk.AdvanceTo(r5)
	if _, ok := granted(t, held); !ok {
		t.Fatal("the held normal request did not resume at the window's reset")
	}
	if w := window(t, l, "5h"); w.Reserved || w.Utilization != 0 || !w.ResetsAt.Equal(r5.Add(5*time.Hour)) || w.Requests != 0 {
		t.Fatalf("after the reset: %+v, want a fresh window resetting 5 h later", w)
	}
}

// At rejected every agent is held until that window's reset, and resumes
// then, one grant per ResumeSpacing: no herd.
func TestRejectedHoldsEveryoneUntilThatWindow(t *testing.T) {
	r5, r7 := t0.Add(10*time.Minute), t0.Add(3*24*time.Hour)
	tests := []struct {
		name  string
		h     map[string]string
		until time.Time
	}{
		{"5-hour rejection ends at the 5-hour reset", claudeHeaders("rejected", 1.0, 0.4, r5, r7), r5},
		{"weekly rejection does not end after 5 hours", claudeHeaders("rejected", 0.2, 1.0, r5, r7), r7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, clk := subLim(t, 0.10)
			tt.h["retry-after"] = "100000" // overage-style: more than a day
			call(t, l, "a", 429, tt.h, 0)
			if st := serviceStatus(t, l, "claude"); !st.CooldownUntil.Equal(tt.until) {
				t.Fatalf("cooldown until %v, want %v", st.CooldownUntil, tt.until)
			}
			r := &runner{t: t, l: l, clk: clk}
			for _, a := range []string{"boss", "a", "b", "c", "d", "e"} {
				r.add(submit(t, l, limiter.Request{Agent: a, Service: "claude", MaxWait: 4 * 24 * time.Hour}))
			}
			clk.AdvanceTo(tt.until.Add(-time.Second))
			r.poll(false)
			if len(r.leases) != 0 {
				t.Fatalf("%d granted before the reset", len(r.leases))
			}
			r.run(time.Minute, 100*time.Millisecond, true)
			if len(r.leases) != 6 || len(r.errs) != 0 {
				t.Fatalf("%d granted, %v refused after the reset, want all 6", len(r.leases), r.errs)
			}
			// High goes first but for a floor share owed to the lower
			// priorities (issue 11), which a long hold makes due at once.
			if r.leases[0].Agent != "boss" && r.leases[1].Agent != "boss" {
				t.Errorf("first two after the reset: %s, %s; want the high agent among them", r.leases[0].Agent, r.leases[1].Agent)
			}
			for i, ls := range r.leases {
				if ls.GrantedAt.Before(tt.until) {
					t.Fatalf("grant %d at %v, before the reset %v", i, ls.GrantedAt, tt.until)
				}
				if i > 0 {
					if gap := ls.GrantedAt.Sub(r.leases[i-1].GrantedAt); gap < limiter.DefaultResumeSpacing {
						t.Fatalf("grants %d and %d %v apart: a herd (want at least %v)", i-1, i, gap, limiter.DefaultResumeSpacing)
					}
				}
			}
		})
	}
}

func TestAbsurdResetIsLogged(t *testing.T) {
	var buf bytes.Buffer
	clk := fakeclock.New(t0)
	l, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "claude"}}},
		limiter.WithClock(clk), limiter.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h := claudeHeaders("allowed", 0.5, 0.2, t0.Add(time.Hour), t0.Add(time.Hour))
	h["anthropic-ratelimit-unified-5h-reset"] = "99999999999" // year 5138
	h["anthropic-ratelimit-unified-7d-reset"] = epoch(t0.Add(-48 * time.Hour))
	if _, err := l.Report(limiter.Report{Agent: "a", Service: "claude", Status: 200, Header: h}); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	for _, want := range []string{"window 5h: reset", "ahead", "window 7d: reset", "in the past"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, w := range serviceStatus(t, l, "claude").Windows {
		if (w.Name == "5h" || w.Name == "7d") && !w.ResetsAt.IsZero() {
			t.Errorf("window %s kept the absurd reset %v", w.Name, w.ResetsAt)
		}
	}
}

func TestWindowsSavedAndRestored(t *testing.T) {
	l, clk := subLim(t, 0.1)
	r5, r7 := t0.Add(time.Hour), t0.Add(4*24*time.Hour)
	call(t, l, "a", 200, claudeHeaders("allowed", 0.85, 0.5, r5, r7), 700)
	call(t, l, "b", 200, claudeHeaders("allowed_warning", 0.96, 0.5, r5, r7), 300)
	st := l.Snapshot()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back limiter.State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Minute)
	l2, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "claude", ReserveHigh: 0.1}}}, limiter.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Restore(back); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	w := window(t, l2, "5h")
	if math.Abs(w.Utilization-0.96) > 1e-9 || !w.ResetsAt.Equal(r5) || !w.Reserved || w.Tokens != 1000 || len(w.Agents) != 2 {
		t.Fatalf("restored 5h window %+v", w)
	}
	_, err = l2.Submit(limiter.Request{Agent: "a", Service: "claude"})
	refused(t, err, limiter.ReasonReserved)

	// What cannot be used is reported; the rest applies.
	bad := limiter.State{Services: map[string]limiter.ServiceState{"claude": {Windows: []limiter.WindowState{
		{Name: "5h", LengthMS: (5 * time.Hour).Milliseconds(), ResetsAt: clk.Now().Add(100 * 24 * time.Hour)},
		{Name: "Bad Name", ResetsAt: clk.Now().Add(time.Hour)},
		{Name: "7d", Utilization: ptr(math.Inf(1)), ResetsAt: clk.Now().Add(time.Hour)},
		{Name: "old", ResetsAt: clk.Now().Add(-time.Hour)},
	}}}}
	l3, _ := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "claude"}}}, limiter.WithClock(clk))
	defer l3.Close()
	err = l3.Restore(bad)
	if err == nil || !strings.Contains(err.Error(), "more than 5h ahead") || !strings.Contains(err.Error(), `"Bad Name"`) || !strings.Contains(err.Error(), "utilization") {
		t.Fatalf("Restore of bad windows: %v", err)
	}
	if ws := serviceStatus(t, l3, "claude").Windows; len(ws) != 0 {
		t.Fatalf("bad or past windows restored: %+v", ws)
	}
}

func ptr[T any](v T) *T { return &v }

func TestReserveHighValidated(t *testing.T) {
	for _, r := range []float64{-0.1, 1, 1.5, math.NaN()} {
		_, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", ReserveHigh: r}}})
		if err == nil || !strings.Contains(err.Error(), "reserve_high") {
			t.Errorf("reserve_high %v: %v, want an error naming reserve_high", r, err)
		}
	}
}

// A service that names many windows keeps at most a bounded number.
func TestWindowsBounded(t *testing.T) {
	l, clk := subLim(t, 0)
	for i := range 40 {
		clk.Advance(time.Second)
		h := map[string]string{fmt.Sprintf("anthropic-ratelimit-unified-w%d-utilization", i): "0.5"}
		if _, err := l.Report(limiter.Report{Agent: "a", Service: "claude", Status: 200, Header: h}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(serviceStatus(t, l, "claude").Windows); n > 8 {
		t.Fatalf("%d windows kept", n)
	}
	// The real windows still get in: the ones heard of longest ago give way.
	clk.Advance(time.Second)
	call(t, l, "a", 200, claudeHeaders("allowed", 0.5, 0.2, t0.Add(time.Hour), t0.Add(48*time.Hour)), 1)
	window(t, l, "5h")
	window(t, l, "7d")
}

// Requests held by the reserve resume at the window's reset one by one.
func TestReserveResumesPaced(t *testing.T) {
	l, clk := subLim(t, 0.10)
	r5 := t0.Add(30 * time.Minute)
	call(t, l, "a", 200, claudeHeaders("allowed_warning", 0.95, 0.3, r5, t0.Add(72*time.Hour)), 100)
	r := &runner{t: t, l: l, clk: clk}
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		r.add(submit(t, l, limiter.Request{Agent: a, Service: "claude", MaxWait: time.Hour}))
	}
	clk.AdvanceTo(r5.Add(-time.Millisecond))
	r.poll(false)
	if len(r.leases) != 0 {
		t.Fatalf("%d normal requests granted past the reserve", len(r.leases))
	}
	r.run(10*time.Second, 50*time.Millisecond, true)
	if len(r.leases) != 5 {
		t.Fatalf("%d of 5 resumed after the reset (%v)", len(r.leases), r.errs)
	}
	for i := 1; i < len(r.leases); i++ {
		if gap := r.leases[i].GrantedAt.Sub(r.leases[i-1].GrantedAt); gap < limiter.DefaultResumeSpacing {
			t.Fatalf("grants %d and %d %v apart, want at least %v", i-1, i, gap, limiter.DefaultResumeSpacing)
		}
	}
	if !r.leases[0].GrantedAt.Equal(r5) {
		t.Fatalf("first grant at %v, want the reset %v", r.leases[0].GrantedAt, r5)
	}
}

// A call the provider refused does not count in a window's use, whether
// its 429 came in its report or was observed on arrival first.
func TestRefusedCallsNotCounted(t *testing.T) {
	l, clk := subLim(t, 0)
	h := claudeHeaders("allowed", 0.5, 0.2, t0.Add(time.Hour), t0.Add(48*time.Hour))
	call(t, l, "a", 200, h, 100)
	clk.Advance(time.Second)
	ls, _ := granted(t, submit(t, l, limiter.Request{Agent: "b", Service: "claude"}))
	if _, err := l.Observe(limiter.Report{Lease: ls.ID, Status: 429, Header: map[string]string{"retry-after": "1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Report(limiter.Report{Lease: ls.ID, Usage: limiter.Cost{limiter.Tokens: 0}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	call(t, l, "c", 429, map[string]string{"retry-after": "1"}, 0)
	if w := window(t, l, "5h"); w.Requests != 1 || len(w.Agents) != 1 || w.Agents[0].Agent != "a" {
		t.Fatalf("window use %+v, want only a's call", w)
	}
}

// A weekly rejection survives a restart whole: the week's reset is further
// than MaxHold, but it is the reset of the window that rejected.
func TestWeeklyRejectionRestored(t *testing.T) {
	l, clk := subLim(t, 0)
	r5, r7 := t0.Add(2*time.Hour), t0.Add(3*24*time.Hour)
	call(t, l, "a", 429, claudeHeaders("rejected", 0.3, 1.0, r5, r7), 0)
	if cu := serviceStatus(t, l, "claude").CooldownUntil; !cu.Equal(r7) {
		t.Fatalf("cooldown until %v, want the week's reset %v", cu, r7)
	}
	raw, _ := json.Marshal(l.Snapshot())
	var st limiter.State
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	l2, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "claude", Dialect: limiter.DialectAnthropic}}}, limiter.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Restore(st); err != nil {
		t.Fatal(err)
	}
	if cu := serviceStatus(t, l2, "claude").CooldownUntil; !cu.Equal(r7) {
		t.Fatalf("restored cooldown until %v, want the week's reset %v (not cut to MaxHold)", cu, r7)
	}
	// Without the rejected window, a saved cooldown that long is cut.
	ss := st.Services["claude"]
	ss.Windows = nil
	st.Services["claude"] = ss
	l3, _ := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "claude", Dialect: limiter.DialectAnthropic}}}, limiter.WithClock(clk))
	defer l3.Close()
	l3.Restore(st)
	if cu := serviceStatus(t, l3, "claude").CooldownUntil; !cu.Equal(clk.Now().Add(limiter.DefaultMaxHold(limiter.DialectAnthropic))) {
		t.Fatalf("a bare saved cooldown restored until %v, want it cut to MaxHold", cu)
	}
}

// A rejection naming no window of known length is held to MaxHold, and the
// report says so; a weekly one is not.
func TestRejectionBounded(t *testing.T) {
	l, _ := subLim(t, 0)
	ls, _ := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "claude"}))
	res, err := l.Report(limiter.Report{Lease: ls.ID, Status: 429, Header: map[string]string{
		"anthropic-ratelimit-unified-status": "rejected",
		"anthropic-ratelimit-unified-reset":  epoch(t0.Add(20 * 24 * time.Hour)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	hold := limiter.DefaultMaxHold(limiter.DialectAnthropic)
	if cu := serviceStatus(t, l, "claude").CooldownUntil; !cu.Equal(t0.Add(hold)) {
		t.Fatalf("cooldown until %v, want it held to MaxHold %v", cu, hold)
	}
	if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, "\n"), "unified window's rejection") {
		t.Fatalf("warnings %q, want one about the cut", res.Warnings)
	}
}
