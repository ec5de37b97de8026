package limiter_test

import (
	"log/slog"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Issue 14.4: one hostile or broken answer may not freeze a service for a
// month. A cooldown, the reset of a spent limit and a learned window are
// held to MaxHold (the dialect's default, or the service's own), the report
// says what was cut, and Reset clears it all.
func TestOneAnswerIsBounded(t *testing.T) {
	tests := []struct {
		name    string
		dialect limiter.Dialect
		maxHold time.Duration
		status  int
		header  map[string]string
		want    time.Duration // the most the service may be held
		warn    string        // in the warnings
	}{
		{"429 retry-after 99999999 s", limiter.DialectOpenAI, 0, 429,
			map[string]string{"retry-after": "99999999"}, 24 * time.Hour, "retry after"},
		{"503 retry-after 99999999 s, all dialects", limiter.DialectAll, 0, 503,
			map[string]string{"retry-after": "99999999"}, 24 * time.Hour, "retry after"},
		{"github remaining 0, reset in 2100", limiter.DialectGitHub, 0, 200,
			map[string]string{"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "x-ratelimit-reset": strconv.FormatInt(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), 10)},
			2 * time.Hour, "resets in"},
		{"openai limit 10, remaining 0, reset 876000h", limiter.DialectOpenAI, 0, 200,
			map[string]string{"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "876000h"},
			24 * time.Hour, "resets in"},
		{"a service's own max_hold", limiter.DialectOpenAI, time.Hour, 429,
			map[string]string{"retry-after": "86400"}, time.Hour, "held to 1h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "api", Dialect: tc.dialect, MaxHold: tc.maxHold}}})
			res, err := l.Report(limiter.Report{Agent: "a", Service: "api", Status: tc.status, Header: tc.header})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) || !strings.Contains(res.Warnings[0], `service "api"`) {
				t.Errorf("warnings %q, want one naming the service and saying %q", res.Warnings, tc.warn)
			}
			st := serviceStatus(t, l, "api")
			if st.CooldownUntil.After(t0.Add(tc.want)) {
				t.Errorf("cooling down until %v, more than %v ahead", st.CooldownUntil.Sub(t0), tc.want)
			}
			for _, ls := range st.Limits {
				if ls.Window > tc.want || ls.ResetsAt.After(t0.Add(tc.want)) {
					t.Errorf("limit %+v holds the service longer than %v", ls, tc.want)
				}
			}
			// Held no longer than the bound: a request is granted then.
			p := submit(t, l, limiter.Request{Agent: "a", Service: "api", MaxWait: 48 * time.Hour})
			clk.Advance(tc.want + time.Second)
			if _, ok := granted(t, p); !ok {
				t.Errorf("not granted %v after the answer", tc.want+time.Second)
			}
		})
	}
}

// Reset clears the cooldown, the header budgets and the learned limits of a
// service at once; a waiting request is granted; the configured limits
// stay. An unknown service is an error naming the configured ones.
func TestReset(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{
		{Name: "api", Dialect: limiter.DialectOpenAI, Limits: []limiter.Policy{pol(100, limiter.Tokens, time.Minute)}},
	}})
	if _, err := l.Report(limiter.Report{Agent: "a", Service: "api", Status: 429, Header: map[string]string{
		"retry-after": "3600", "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20h",
	}}); err != nil {
		t.Fatal(err)
	}
	st := serviceStatus(t, l, "api")
	if st.CooldownUntil.IsZero() || len(st.Limits) != 2 {
		t.Fatalf("before the reset: cooldown %v, limits %+v; want a cooldown and a learned limit beside the configured one", st.CooldownUntil, st.Limits)
	}
	p := submit(t, l, limiter.Request{Agent: "b", Service: "api", MaxWait: 48 * time.Hour})
	if err := l.Reset("api"); err != nil {
		t.Fatal(err)
	}
	st = serviceStatus(t, l, "api")
	if !st.CooldownUntil.IsZero() || len(st.Limits) != 1 || st.Limits[0].Source != "config" {
		t.Errorf("after the reset: cooldown %v, limits %+v; want none and the configured limit alone", st.CooldownUntil, st.Limits)
	}
	if _, ok := granted(t, p); !ok {
		t.Error("the waiting request was not granted after the reset")
	}
	err := l.Reset("nope")
	if e := code(t, err, limiter.CodeUnknownService); !strings.Contains(e.Message, "configured: api") {
		t.Errorf("message %q does not name the configured services", e.Message)
	}
}

// A learned window follows the longest of the recent estimates: one reset
// far out lengthens it at once, and honest answers shorten it again.
func TestLearnedWindowShrinks(t *testing.T) {
	// GitHub-style fields from a provider that is not GitHub: no window
	// given, so it is estimated from the resets.
	l, clk := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "api"}}})
	report := func(reset time.Duration) {
		t.Helper()
		if _, err := l.Report(limiter.Report{Agent: "a", Service: "api", Status: 200, Header: map[string]string{
			"x-ratelimit-limit": "100", "x-ratelimit-remaining": "99",
			"x-ratelimit-reset": strconv.FormatInt(clk.Now().Add(reset).Unix(), 10),
		}}); err != nil {
			t.Fatal(err)
		}
	}
	window := func() time.Duration {
		st := serviceStatus(t, l, "api")
		if len(st.Limits) != 1 {
			t.Fatalf("limits %+v, want one learned", st.Limits)
		}
		return st.Limits[0].Window
	}
	report(time.Minute)
	if w := window(); w != time.Minute {
		t.Fatalf("learned %v, want 1m", w)
	}
	report(90 * time.Minute) // broken: within max_hold, but far too long
	if w := window(); w != 90*time.Minute {
		t.Fatalf("after a long reset the window is %v, want it lengthened to 1h30m at once", w)
	}
	shrunk := -1
	for i := range 40 {
		clk.Advance(time.Second)
		report(time.Minute)
		if window() == time.Minute {
			shrunk = i + 1
			break
		}
	}
	if shrunk < 0 {
		t.Fatalf("the window is still %v after 40 honest answers", window())
	}
	if shrunk < 20 {
		t.Errorf("the window shrank after %d honest answers; a single short estimate must not shorten it", shrunk)
	}
}

// A usage past any real count (up to int64's limit) does not fail the
// report or hold the lease: it is counted as the largest count, and said.
func TestUsageOverflowIsClamped(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("api", pol(1000, limiter.Tokens, time.Minute))}})
	for _, n := range []int64{math.MaxInt64, math.MaxInt64 - 1, 1e16} {
		ls, ok := granted(t, submit(t, l, limiter.Request{Agent: "a", Service: "api", Cost: limiter.Cost{limiter.Tokens: 10}}))
		if !ok {
			t.Fatal("not granted")
		}
		res, err := l.Report(limiter.Report{Lease: ls.ID, Status: 200, Usage: limiter.Cost{limiter.Tokens: n, limiter.Requests: n}})
		if err != nil {
			t.Fatalf("report of usage %d: %v", n, err)
		}
		if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "beyond") {
			t.Errorf("warnings %q, want one per unit saying the usage is beyond any count", res.Warnings)
		}
		if st := serviceStatus(t, l, "api"); st.InFlight != 0 || st.Limits[0].Remaining != 0 {
			t.Errorf("after the report: %d in flight, %d remaining; want the lease ended and the window spent", st.InFlight, st.Limits[0].Remaining)
		}
		if err := l.Reset("api"); err != nil { // the log stays: the usage counts
			t.Fatal(err)
		}
		l.Close()
		l, _ = newLim(t, limiter.Config{Services: []limiter.ServiceConfig{svcCfg("api", pol(1000, limiter.Tokens, time.Minute))}})
	}
}

// A state saved before the bound (a cooldown of 743 hours, a learned window
// of 744) is held to MaxHold when restored.
func TestRestoreIsBounded(t *testing.T) {
	l, _ := newLim(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "api", Dialect: limiter.DialectOpenAI}}})
	err := l.Restore(limiter.State{Services: map[string]limiter.ServiceState{"api": {
		CooldownUntil: t0.Add(743 * time.Hour),
		Limits: []limiter.LimitState{{Unit: limiter.Requests, Quota: 10, WindowMS: (744 * time.Hour).Milliseconds(),
			Remaining: 0, ResetsAt: t0.Add(744 * time.Hour), Source: "headers"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	st := serviceStatus(t, l, "api")
	hold := limiter.DefaultMaxHold(limiter.DialectOpenAI)
	if st.CooldownUntil.After(t0.Add(hold)) {
		t.Errorf("restored cooldown until %v ahead, want at most %v", st.CooldownUntil.Sub(t0), hold)
	}
	for _, ls := range st.Limits {
		if ls.Window > hold || ls.ResetsAt.After(t0.Add(hold)) {
			t.Errorf("restored limit %+v beyond %v", ls, hold)
		}
	}
}

// What a report had cut is also logged, so a person sees it without the
// caller passing it on (the proxy and the socket API both report).
func TestCutAnswerIsLogged(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "api", Dialect: limiter.DialectOpenAI}}}, limiter.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Report(limiter.Report{Agent: "a", Service: "api", Status: 429, Header: map[string]string{"retry-after": "99999999"}}); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "cut to bounds") || !strings.Contains(out, `service \"api\"`) {
		t.Errorf("log %q does not say what was cut, naming the service", out)
	}
}
