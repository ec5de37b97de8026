package main

import (
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

func TestPrintWindows(t *testing.T) {
	now := time.Date(2026, 12, 1, 7, 18, 0, 0, time.UTC)
	u := func(f float64) *float64 { return &f }
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	st := wire.StatusResponse{Services: []wire.ServiceStatus{
		{Name: "openai"},
		{Name: "claude", ReserveHigh: 0.1, Windows: []wire.WindowStatus{
			{Name: "5h", Label: "5-hour", Utilization: u(0.93), ResetsAt: at(102 * time.Minute), Warning: true, Reserved: true,
				Requests: 10, Tokens: 5000, Agents: []wire.WindowAgent{
					{Agent: "a", Share: 0.4}, {Agent: "b", Share: 0.3}, {Agent: "c", Share: 0.2}, {Agent: "d", Share: 0.1}}},
			{Name: "7d", Label: "week", Utilization: u(0.31), ResetsAt: at(49*time.Hour + 42*time.Minute)},
		}},
	}}
	var b strings.Builder
	printWindows(&b, st, now, time.UTC)
	out := b.String()
	for _, want := range []string{
		"5-hour: 93% used, resets in 1 h 42 m", "reserved (high only, 10% kept)", "a 40%, b 30%, c 20%, +1",
		"week: 31% used, resets Thu 09:00",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "openai") {
		t.Errorf("a service without windows is listed:\n%s", out)
	}
	b.Reset()
	printWindows(&b, wire.StatusResponse{Services: []wire.ServiceStatus{{Name: "openai"}}}, now, time.UTC)
	if b.Len() != 0 {
		t.Errorf("windows table without windows: %q", b.String())
	}
}
