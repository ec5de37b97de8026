package quotaview

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {0, "0s"}, {4100 * time.Millisecond, "4.1s"}, {45 * time.Second, "45s"},
		{2*time.Minute + 30*time.Second, "2m30s"}, {2 * time.Minute, "2m"}, {59*time.Second + 600*time.Millisecond, "1m"},
		{5 * time.Hour, "5h"}, {90 * time.Minute, "1h30m"}, {5*time.Hour + 20*time.Second, "5h"},
	} {
		if got := Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestViewAndTightest(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	later := now.Add(time.Minute)
	past := now.Add(-time.Second)
	lim := func(unit string, remaining, quota int64) wire.LimitStatus {
		return wire.LimitStatus{Unit: unit, Quota: quota, Remaining: remaining, WindowMS: 60000, ResetsAt: &later}
	}
	st := wire.StatusResponse{Services: []wire.ServiceStatus{
		{Name: "a", Limits: []wire.LimitStatus{lim("requests", 90, 100), lim("tokens", 500, 1000)}},
		{Name: "b", Limits: []wire.LimitStatus{lim("requests", 10, 100)}},
		{Name: "c", Limits: []wire.LimitStatus{lim("requests", 100, 100)}, CooldownUntil: &past},
		{Name: "d"},
	}}
	vs := Services(st, now)
	for i, want := range []struct {
		state    State
		tightest int
		left     float64
	}{{OK, 1, 0.5}, {Low, 0, 0.1}, {OK, 0, 1}, {OK, -1, 1}} {
		if v := vs[i]; v.State != want.state || v.Tightest != want.tightest || v.Left() != want.left {
			t.Errorf("%s: state %v tightest %d left %v, want %v %d %v", v.Name, v.State, v.Tightest, v.Left(), want.state, want.tightest, want.left)
		}
	}
	if s, _ := Tightest(vs); s.Name != "b" {
		t.Errorf("Tightest = %s, want b (least left)", s.Name)
	}
	until := now.Add(3 * time.Second)
	st.Services[2].CooldownUntil = &until
	if s, _ := Tightest(Services(st, now)); s.Name != "c" || s.State != Cooldown || s.CooldownLeft != 3*time.Second {
		t.Errorf("Tightest = %+v, want c cooling down for 3s (a cooldown is worse than low)", s)
	}
	if _, ok := Tightest(nil); ok {
		t.Error("Tightest(nil) found a service")
	}
}

func TestShare(t *testing.T) {
	st := wire.StatusResponse{Agents: []wire.AgentStatus{{Name: "me", Weight: 2}, {Name: "you", Weight: 1}, {Name: "off", Weight: 5, Paused: true}}}
	for _, tc := range []struct {
		agent string
		want  float64
	}{{"me", 2.0 / 3}, {"new", 1.0 / 4}} {
		if got := Share(st, tc.agent); got != tc.want {
			t.Errorf("Share(%s) = %v, want %v", tc.agent, got, tc.want)
		}
	}
}
