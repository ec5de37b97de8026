package daemon

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

const subscriptionConfig = `[proxy]
enabled = false

[services.claude]
preset = "claude"
reserve_high = 0.10
`

// A subscription's windows, their use by agent and the reserve they hold
// survive a restart, like learned limits; and what the daemon ignored in
// an answer is in its log, with the reason.
func TestDaemonWindowsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, subscriptionConfig)
	d := td.start(t)
	c := td.client()
	reset5 := time.Now().Add(90 * time.Minute).Truncate(time.Second)
	h := map[string]string{
		"anthropic-ratelimit-unified-status":         "allowed_warning",
		"anthropic-ratelimit-unified-5h-utilization": "0.93",
		"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(reset5.Unix(), 10),
		"anthropic-ratelimit-unified-7d-utilization": "0.31",
		"anthropic-ratelimit-unified-7d-reset":       "99999999999", // year 5138: ignored
	}
	for _, a := range []string{"lead", "helper", "lead"} {
		if _, err := c.Report(ctx, wire.ReportRequest{Agent: a, Service: "claude", Status: 200, Headers: h, Usage: wire.Cost{"tokens": 500}}); err != nil {
			t.Fatal(err)
		}
	}
	td.waitLog(t, "the absurd reset's reason", "window 7d: reset")
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	td.start(t)
	c2 := td.client()
	s, _ := serviceStatus(t, c2, "claude")
	if len(s.Windows) != 1 {
		// The week had no usable reset: nothing to keep it until.
		t.Fatalf("windows after restart %+v, want the 5-hour one", s.Windows)
	}
	w := s.Windows[0]
	if w.Name != "5h" || w.Utilization == nil || math.Abs(*w.Utilization-0.93) > 1e-9 || w.ResetsAt == nil || !w.ResetsAt.Equal(reset5) ||
		!w.Reserved || w.Requests != 3 || w.Tokens != 1500 || len(w.Agents) != 2 || w.Agents[0].Agent != "lead" {
		t.Fatalf("5-hour window after restart %+v", w)
	}
	_, err := c2.Acquire(ctx, wire.AcquireRequest{Agent: "helper", Service: "claude"})
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("acquire past the restored reserve: %v, want refused with reason reserved", err)
	}
}
