package tray

import (
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/app/icons"
	"github.com/quotabar/quotabar/ipc/wire"
)

func claudeSvc(u5, u7 float64, mut ...func(*wire.ServiceStatus)) wire.ServiceStatus {
	s := wire.ServiceStatus{Name: "claude", ReserveHigh: 0.1, Windows: []wire.WindowStatus{
		{Name: "5h", Label: "5-hour", LengthMS: (5 * time.Hour).Milliseconds(), Utilization: &u5, ResetsAt: at(102 * time.Minute), Status: "allowed",
			Requests: 6, Tokens: 600, Agents: []wire.WindowAgent{
				{Agent: "alpha", Share: 0.5}, {Agent: "beta", Share: 0.3333}, {Agent: "gamma", Share: 0.1667}}},
		{Name: "7d", Label: "week", LengthMS: (7 * 24 * time.Hour).Milliseconds(), Utilization: &u7, ResetsAt: at(71 * time.Hour), Status: "allowed"},
	}}
	for _, m := range mut {
		m(&s)
	}
	return s
}

func TestMenuWindows(t *testing.T) {
	week := wire.ResetText(t0.Add(71*time.Hour), t0, time.Local) // a weekday and time
	tests := []struct {
		name    string
		svc     wire.ServiceStatus
		icon    icons.State
		title   string
		label   string
		rows    []string // the window rows, hidden ones as ""
		top     string
		tooltip string
	}{{
		name: "plenty left", svc: claudeSvc(0.62, 0.31), icon: icons.Flowing, title: "38%",
		label: "claude: 38% left",
		rows:  []string{"5-hour: 62% used, resets in 1 h 42 m", "week: 31% used, resets " + week, ""},
		top:   "Top of 5-hour: alpha 50%, beta 33%, gamma 17%", tooltip: "claude 38% left",
	}, {
		name: "the week is the tightest", svc: claudeSvc(0.2, 0.95), icon: icons.NearLimit, title: "5%",
		label: "claude: 5% left",
		rows:  []string{"5-hour: 20% used, resets in 1 h 42 m", "week: 95% used, resets " + week, ""},
		top:   "",
	}, {
		name: "the provider warns before the threshold", icon: icons.NearLimit, title: "25%",
		svc: claudeSvc(0.75, 0.3, func(s *wire.ServiceStatus) {
			s.Windows[0].Status, s.Windows[0].Warning = "allowed_warning", true
		}),
		label: "claude: 25% left",
		rows:  []string{"⚠ 5-hour: 75% used, resets in 1 h 42 m", "week: 30% used, resets " + week, ""},
	}, {
		name: "past the reserve", icon: icons.NearLimit, title: "7%",
		svc: claudeSvc(0.93, 0.4, func(s *wire.ServiceStatus) {
			s.Windows[0].Warning, s.Windows[0].Reserved = true, true
		}),
		label: "claude: 7% left, high priority only",
		rows:  []string{"⚠ 5-hour: 93% used, resets in 1 h 42 m · high priority only", "week: 40% used, resets " + week, ""},
	}, {
		name: "rejected: cooling down until the reset", icon: icons.Cooldown, title: "1 h 42 min",
		svc: claudeSvc(1.02, 0.4, func(s *wire.ServiceStatus) {
			s.Windows[0].Warning, s.Windows[0].Status = true, "rejected"
			s.CooldownUntil = at(102 * time.Minute)
		}),
		label: "claude: cooling down, 1 h 42 min",
		rows:  []string{"⚠ 5-hour: 102% used, limit reached, resets in 1 h 42 m", "week: 40% used, resets " + week, ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := buildMenu(menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{tt.svc}}, Now: t0, ShowTitle: true})
			if m.Icon != tt.icon || m.Title != tt.title {
				t.Errorf("icon %v, title %q; want %v, %q", m.Icon, m.Title, tt.icon, tt.title)
			}
			if it := findItem(m.Items, "svc/claude"); it == nil || it.Label != tt.label {
				t.Errorf("service row %+v, want %q", it, tt.label)
			}
			for i, want := range tt.rows {
				it := findItem(m.Items, "svc/claude/window/"+string(rune('0'+i)))
				if it == nil {
					t.Fatalf("no window row %d", i)
				}
				if (want == "") != it.Hidden || (want != "" && it.Label != want) {
					t.Errorf("window row %d: %q hidden=%v, want %q", i, it.Label, it.Hidden, want)
				}
			}
			if tt.top != "" {
				if it := findItem(m.Items, "svc/claude/window/top"); it == nil || it.Hidden || it.Label != tt.top {
					t.Errorf("top row %+v, want %q", it, tt.top)
				}
			}
			if !strings.Contains(m.Tooltip, tt.tooltip) {
				t.Errorf("tooltip %q lacks %q", m.Tooltip, tt.tooltip)
			}
			if findItem(m.Items, "svc/claude/limit/none") != nil {
				t.Error("a service with windows says no limits are known")
			}
			if !m.Ticking {
				t.Error("a countdown is shown but the model is not ticking")
			}
		})
	}
	// A service without windows has its window rows hidden, in place.
	m := buildMenu(menuInput{Status: wire.StatusResponse{Services: []wire.ServiceStatus{openai()}}, Now: t0})
	for _, k := range []string{"svc/openai/window/0", "svc/openai/window/2", "svc/openai/window/top"} {
		if it := findItem(m.Items, k); it == nil || !it.Hidden {
			t.Errorf("%s: %+v, want a hidden row", k, it)
		}
	}
}
