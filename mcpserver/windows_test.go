package mcpserver

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

// quota_status tells a model a subscription's windows: how much is used,
// when it resets, and that only high priority goes on past the reserve.
func TestStatusWindows(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	u := 0.93
	reset := now.Add(102 * time.Minute)
	v := quotaview.ViewService(wire.ServiceStatus{Name: "claude", Windows: []wire.WindowStatus{
		{Name: "5h", Label: "5-hour", Utilization: &u, ResetsAt: &reset, Warning: true, Reserved: true},
	}}, now)
	ss := serviceStatus(v)
	if len(ss.Windows) != 1 || ss.Windows[0] != (WindowStatus{Window: "5-hour", UsedPercent: 93, ResetsSeconds: 6120, HighOnly: true}) || ss.State != "low" {
		t.Fatalf("service status %+v", ss)
	}
	want := "agent a (share 100%)\nclaude: low; 5-hour window 93% used (resets in 6120s), high priority only"
	if got := statusText(Status{Agent: "a", Share: 1, Services: []ServiceStatus{ss}}); got != want {
		t.Errorf("statusText =\n%s\nwant\n%s", got, want)
	}
}
