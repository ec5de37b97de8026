package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/alerts"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/wire"
)

// TestDaemonRunsAlertHooks drives a real daemon across a threshold, into
// a cooldown and out of it, and reads what its hooks were given.
func TestDaemonRunsAlertHooks(t *testing.T) {
	dir := t.TempDir()
	rec := func(kind string) string { return filepath.Join(dir, kind) }
	td := newTestDaemon(t, fmt.Sprintf(`
[proxy]
enabled = false

[alerts]
notify = false
thresholds = [50]
hook_timeout = "5s"

[alerts.hooks]
quota_low = "cat > %s"
cooldown_start = "cat > %s"
cooldown_end = "cat > %s"

[services.a]
limits = ["10 requests/1h"]
`, rec("quota_low"), rec("cooldown_start"), rec("cooldown_end")))
	d := td.start(t)
	c := td.client()
	defer c.CloseIdleConnections()
	ctx := context.Background()
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "x", Service: "a", Cost: wire.Cost{"requests": 6}}); err != nil {
		t.Fatal(err)
	}
	read := func(kind string) (alerts.Event, bool) {
		data, err := os.ReadFile(rec(kind))
		var ev alerts.Event
		return ev, err == nil && json.Unmarshal(data, &ev) == nil
	}
	testenv.WaitFor(t, 10*time.Second, "the quota_low hook", func() bool { _, ok := read("quota_low"); return ok })
	if ev, _ := read("quota_low"); ev.Event != alerts.QuotaLow || ev.Service != "a" || ev.Threshold != 50 || ev.UsedPercent != 60 || ev.Remaining != 4 {
		t.Errorf("quota_low event = %+v", ev)
	}
	if _, err := c.Report(ctx, wire.ReportRequest{Agent: "x", Service: "a", Status: 429, Headers: map[string]string{"retry-after": "1"}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the cooldown_start hook", func() bool { _, ok := read("cooldown_start"); return ok })
	// Nothing pokes the daemon when the cooldown ends: the recheck sees it.
	testenv.WaitFor(t, 10*time.Second, "the cooldown_end hook", func() bool { _, ok := read("cooldown_end"); return ok })
	if d.NotificationsEnabled() {
		t.Error("notify = false in the file, but notifications are on")
	}
}

func TestNotificationsSwitchSurvivesRestart(t *testing.T) {
	td := newTestDaemon(t, "[proxy]\nenabled = false\n\n[services.a]\nlimits = [\"10 requests/1m\"]\n")
	d := td.start(t)
	if !d.NotificationsEnabled() {
		t.Fatal("notifications are off by default")
	}
	if err := d.SetNotificationsEnabled(false); err != nil {
		t.Fatal(err)
	}
	if d.NotificationsEnabled() || d.alerts.w.Config().Notify {
		t.Fatal("the switch did not reach the watcher")
	}
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(td.opts.StateDir, StateFile))
	if !strings.Contains(string(data), `"notify": false`) && !strings.Contains(string(data), `"notify":false`) {
		t.Errorf("state file does not hold the switch:\n%s", data)
	}
	d = td.start(t)
	if d.NotificationsEnabled() {
		t.Error("the notifications switch was lost across a restart")
	}
}

// TestDaemonNotifiesOnThePrivateBus runs a real daemon whose session bus is
// a private one with a recording notification server: one notification per
// crossing, none repeated when the status changes again.
func TestDaemonNotifiesOnThePrivateBus(t *testing.T) {
	addr := testenv.StartSessionBus(t)
	server := testenv.StartNotificationServer(t, addr)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	td := newTestDaemon(t, "[proxy]\nenabled = false\n\n[alerts]\nthresholds = [50]\n\n[services.a]\nlimits = [\"10 requests/1h\"]\n")
	d := td.start(t)
	c := td.client()
	defer c.CloseIdleConnections()
	ctx := context.Background()
	acquire := func(n int64) {
		t.Helper()
		if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "x", Service: "a", Cost: wire.Cost{"requests": n}}); err != nil {
			t.Fatal(err)
		}
	}
	acquire(6)
	testenv.WaitEvent(t, 10*time.Second, "the quota_low notification", server.Wake, func() bool { return len(server.Calls()) >= 1 })
	acquire(4)
	testenv.WaitEvent(t, 10*time.Second, "the quota_exhausted notification", server.Wake, func() bool { return len(server.Calls()) >= 2 })
	// More changes of the status, no new crossing.
	for _, paused := range []bool{true, false} {
		if err := d.SetServicePaused("a", paused); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Shutdown(ctx); err != nil { // drains what the watcher queued
		t.Fatal(err)
	}
	calls := server.Calls()
	if len(calls) != 2 || calls[0].Summary != "quotabar: a quota running low" || calls[1].Summary != "quotabar: a quota exhausted" {
		t.Fatalf("notifications = %+v, want quota running low then exhausted, once each", calls)
	}
	if !strings.Contains(calls[0].Body, "a has used 60% of its 10 requests per 1h (4 left") {
		t.Errorf("body = %q", calls[0].Body)
	}
}

func TestDaemonRefusesHooksOthersCouldWrite(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	td := newTestDaemon(t, fmt.Sprintf("[proxy]\nenabled = false\n\n[alerts]\nthresholds = [50]\n\n[alerts.hooks]\nquota_low = \"touch %s\"\n\n[services.a]\nlimits = [\"10 requests/1h\"]\n", marker))
	if err := os.Chmod(td.opts.ConfigPath, 0o666); err != nil {
		t.Fatal(err)
	}
	d := td.start(t)
	c := td.client()
	defer c.CloseIdleConnections()
	if _, err := c.Acquire(context.Background(), wire.AcquireRequest{Agent: "x", Service: "a", Cost: wire.Cost{"requests": 6}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the crossing to be seen", func() bool {
		return strings.Contains(td.logs.String(), "event=quota_low")
	})
	if err := d.Shutdown(context.Background()); err != nil { // waits for the hooks under way
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a hook from a world-writable config ran")
	}
	if !strings.Contains(td.logs.String(), "other users may write "+td.opts.ConfigPath) {
		t.Errorf("the log does not say why the hooks are not run:\n%s", td.logs)
	}
}
