package wire

import (
	"testing"
	"time"
)

func TestWindowSummary(t *testing.T) {
	now := time.Date(2026, 12, 1, 7, 18, 0, 0, time.UTC) // a Tuesday
	u := func(f float64) *float64 { return &f }
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		w    WindowStatus
		want string
	}{
		{WindowStatus{Name: "5h", Label: "5-hour", Utilization: u(0.62), ResetsAt: at(102 * time.Minute)}, "5-hour: 62% used, resets in 1 h 42 m"},
		{WindowStatus{Name: "7d", Label: "week", Utilization: u(0.31), ResetsAt: at(49*time.Hour + 42*time.Minute)}, "week: 31% used, resets Thu 09:00"},
		{WindowStatus{Name: "5h", Label: "5-hour", Utilization: u(1.04), Status: "rejected", ResetsAt: at(90 * time.Second)}, "5-hour: 104% used, limit reached, resets in 2 m"},
		{WindowStatus{Name: "overage", Status: "allowed"}, "overage: use not known"},
		{WindowStatus{Name: "5h", Label: "5-hour", Utilization: u(0.5), ResetsAt: at(-time.Minute)}, "5-hour: 50% used"},
		{WindowStatus{Name: "5h", Label: "5-hour", Utilization: u(0.5), ResetsAt: at(1500 * time.Millisecond)}, "5-hour: 50% used, resets in 2 s"},
	}
	for _, tt := range tests {
		if got := tt.w.Summary(now, time.UTC); got != tt.want {
			t.Errorf("Summary(%+v) = %q, want %q", tt.w, got, tt.want)
		}
	}
}
