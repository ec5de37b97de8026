package quotaview

import (
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// A subscription window counts like a limit: the service whose window is
// nearly used up is the one to look at, and a rejected window is exhausted.
func TestWindowsInView(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	u := func(f float64) *float64 { return &f }
	st := wire.StatusResponse{Services: []wire.ServiceStatus{
		{Name: "openai", Limits: []wire.LimitStatus{{Unit: "requests", Quota: 100, Remaining: 50, WindowMS: 60000}}},
		{Name: "claude", Windows: []wire.WindowStatus{
			{Name: "5h", Label: "5-hour", Utilization: u(0.3)},
			{Name: "7d", Label: "week", Utilization: u(0.9)},
			{Name: "overage", Status: "allowed"}, // no use known: not viewed
		}},
	}}
	vs := Services(st, now)
	c := vs[1]
	if len(c.Windows) != 2 || c.TightestWindow != 1 || c.State != Low || c.Left() < 0.099 || c.Left() > 0.101 {
		t.Fatalf("claude view %+v, left %v", c, c.Left())
	}
	if top, _ := Tightest(vs); top.Name != "claude" {
		t.Fatalf("tightest %s, want claude at 90%% of its week", top.Name)
	}
	st.Services[1].Windows[0].Status = "rejected"
	if v := ViewService(st.Services[1], now); v.State != Exhausted {
		t.Fatalf("a rejected window: state %v, want exhausted", v.State)
	}
	if v := ViewService(st.Services[0], now); v.TightestWindow != -1 || len(v.Windows) != 0 || v.State != OK {
		t.Fatalf("a service without windows: %+v", v)
	}
}
