package statusline

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

func TestWindowText(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	u := func(f float64) *float64 { return &f }
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name string
		svc  wire.ServiceStatus
		want string
		pct  int
		alt  string
	}{
		{"plenty left", wire.ServiceStatus{Name: "claude", Windows: []wire.WindowStatus{
			{Name: "5h", Label: "5-hour", Utilization: u(0.62), ResetsAt: at(102 * time.Minute)},
			{Name: "7d", Label: "week", Utilization: u(0.31), ResetsAt: at(50 * time.Hour)},
		}}, "claude 5-hour 62% used · resets 1h42m", 62, "ok"},
		{"the week is tighter, past the reserve", wire.ServiceStatus{Name: "claude", Windows: []wire.WindowStatus{
			{Name: "5h", Label: "5-hour", Utilization: u(0.2), ResetsAt: at(time.Hour)},
			{Name: "7d", Label: "week", Utilization: u(0.93), ResetsAt: at(50 * time.Hour), Warning: true, Reserved: true},
		}}, "claude low week 93% used, high priority only · resets 50h", 93, "low"},
		{"rejected over 100%", wire.ServiceStatus{Name: "claude", Windows: []wire.WindowStatus{
			{Name: "5h", Label: "5-hour", Utilization: u(1.04), Status: "rejected", ResetsAt: at(10 * time.Minute)},
		}}, "claude exhausted 5-hour 104% used · resets 10m", 100, "exhausted"},
		{"a limit tighter than the window", wire.ServiceStatus{Name: "claude",
			Limits:  []wire.LimitStatus{{Unit: "requests", Quota: 50, Remaining: 2, WindowMS: 60000}},
			Windows: []wire.WindowStatus{{Name: "5h", Label: "5-hour", Utilization: u(0.5)}},
		}, "claude low 2/50 req left", 96, "low"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := quotaview.ViewService(tt.svc, now)
			if got := Text(v); got != tt.want {
				t.Errorf("Text = %q, want %q", got, tt.want)
			}
			bar := BarFor(v, []quotaview.Service{v})
			if bar.Percentage != tt.pct || bar.Alt != tt.alt {
				t.Errorf("bar percentage %d, alt %q; want %d, %q", bar.Percentage, bar.Alt, tt.pct, tt.alt)
			}
		})
	}
}
