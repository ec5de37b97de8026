package alerts

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/wire"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// step is one status seen by the watcher: svc's one limit of 100 requests
// with used of it gone, maybe in a cooldown.
type step struct {
	used     int64
	cooldown bool
}

func status(s step, now time.Time) wire.StatusResponse {
	resets := now.Add(30 * time.Second)
	svc := wire.ServiceStatus{Name: "svc", Limits: []wire.LimitStatus{{Unit: "requests", Quota: 100, WindowMS: 60000, Remaining: 100 - s.used, ResetsAt: &resets}}}
	if s.cooldown {
		until := now.Add(20 * time.Second)
		svc.CooldownUntil = &until
	}
	return wire.StatusResponse{Services: []wire.ServiceStatus{svc}}
}

func kinds(evs []Event) []string {
	var out []string
	for _, e := range evs {
		k := string(e.Event)
		if e.Threshold != 0 {
			k += strconv.Itoa(e.Threshold)
		}
		out = append(out, k)
	}
	return out
}

// feed observes the steps one second apart and returns every event.
func feed(w *Watcher, steps []step) []string {
	var out []string
	for i, s := range steps {
		now := t0.Add(time.Duration(i) * time.Second)
		out = append(out, kinds(w.Observe(status(s, now), now))...)
	}
	return out
}

func TestCrossings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string
	}{
		{"below every threshold", []step{{used: 10}, {used: 79}, {used: 50}}, nil},
		{"each threshold once", []step{{used: 70}, {used: 80}, {used: 85}, {used: 95}, {used: 99}, {used: 96}}, []string{"quota_low80", "quota_low95"}},
		{"a jump fires the worst only", []step{{used: 10}, {used: 96}}, []string{"quota_low95"}},
		{"exhausted once, then reset", []step{{used: 50}, {used: 100}, {used: 100}, {used: 99}, {used: 100}, {used: 0}}, []string{"quota_exhausted", "window_reset"}},
		{"hovering at a threshold fires once", []step{{used: 80}, {used: 79}, {used: 80}, {used: 78}, {used: 81}}, []string{"quota_low80"}},
		{"falling well below re-arms", []step{{used: 80}, {used: 70}, {used: 80}}, []string{"quota_low80", "window_reset", "quota_low80"}},
		{"cooldown start and end", []step{{used: 1}, {used: 1, cooldown: true}, {used: 1, cooldown: true}, {used: 1}}, []string{"cooldown_start", "cooldown_end"}},
		{"the first status counts", []step{{used: 100, cooldown: true}}, []string{"cooldown_start", "quota_exhausted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(Config{}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if got := feed(w, tc.steps); !slices.Equal(got, tc.want) {
				t.Errorf("events = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConfiguredThresholds(t *testing.T) {
	w, err := New(Config{Thresholds: []int{50, 90, 50}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, want := feed(w, []step{{used: 60}, {used: 85}, {used: 91}}), []string{"quota_low50", "quota_low90"}; !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Thresholds: []int{100}}, "threshold 100%: use 1 to 99"},
		{Config{Thresholds: []int{0}}, "threshold 0%: use 1 to 99"},
		{Config{Hooks: map[Kind]string{"quota_lo": "true"}}, `hook "quota_lo": the events are`},
		{Config{Hooks: map[Kind]string{QuotaLow: ""}}, "hook quota_low: the command is empty"},
		{Config{HookTimeout: -time.Second}, "hook timeout -1s"},
	} {
		if _, err := New(tc.cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestDesktopNotificationsOnPrivateBus(t *testing.T) {
	addr := testenv.StartSessionBus(t)
	server := testenv.StartNotificationServer(t, addr)
	n := &DBusNotifier{Address: addr}
	defer n.Close()
	w, err := New(Config{Notify: true}, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []step{{used: 50}, {used: 85}, {used: 86}, {used: 96}, {used: 100}, {used: 100}, {used: 0},
		{used: 1, cooldown: true}, {used: 1, cooldown: true}, {used: 1}, {used: 2}}
	events := feed(w, steps)
	want := []string{"quota_low80", "quota_low95", "quota_exhausted", "window_reset", "cooldown_start", "cooldown_end"}
	if !slices.Equal(events, want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	testenv.WaitEvent(t, 10*time.Second, "six notifications", server.Wake, func() bool { return len(server.Calls()) >= len(want) })
	w.Close() // waits for the dispatcher: nothing more can arrive after this
	calls := server.Calls()
	if len(calls) != len(want) {
		t.Fatalf("%d notifications, want %d (one per crossing): %+v", len(calls), len(want), calls)
	}
	summaries := []string{"quotabar: svc quota running low", "quotabar: svc quota running low", "quotabar: svc quota exhausted",
		"quotabar: svc quota is back", "quotabar: svc cooling down", "quotabar: svc cooldown over"}
	for i, c := range calls {
		if c.App != "quotabar" || c.Summary != summaries[i] {
			t.Errorf("notification %d = %+v, want summary %q", i, c, summaries[i])
		}
	}
	if !strings.Contains(calls[0].Body, "used 85% of its 100 requests per 1m (15 left") || calls[0].Urgency != 1 {
		t.Errorf("first notification = %+v", calls[0])
	}
	if calls[2].Urgency != 2 || calls[4].Urgency != 2 {
		t.Errorf("exhausted and cooldown must be urgent: %+v, %+v", calls[2], calls[4])
	}

	// Switched off (the menu's switch): nothing is sent.
	w2, err := New(Config{Notify: false}, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	feed(w2, []step{{used: 90}, {used: 100}})
	w2.Close()
	if got := len(server.Calls()); got != len(want) {
		t.Errorf("with notifications off, %d more were sent", got-len(want))
	}
}

func TestNotifierWithoutAServerDoesNotStall(t *testing.T) {
	addr := testenv.StartSessionBus(t) // nobody owns org.freedesktop.Notifications
	logs := &testenv.Buffer{}
	n := &DBusNotifier{Address: addr}
	defer n.Close()
	w, err := New(Config{Notify: true}, n, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	feed(w, []step{{used: 90}})
	w.Close()
	if !strings.Contains(logs.String(), "desktop notification failed") {
		t.Errorf("log = %s, want the failed notification logged", logs)
	}
}

func TestHooks(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	pidFile := filepath.Join(dir, "pid")
	logs := &testenv.Buffer{}
	cfg := Config{
		HookTimeout: 500 * time.Millisecond,
		Hooks: map[Kind]string{
			// records its stdin and environment
			QuotaLow: `{ cat; echo "env=$QUOTABAR_EVENT/$QUOTABAR_SERVICE"; } >> ` + record + ".quota_low",
			// fails
			QuotaExhausted: `echo no slack today >&2; exit 3`,
			// hangs past its timeout, with a child that must die too
			CooldownStart: `sleep 600 & echo $! > ` + pidFile + `; wait`,
			CooldownEnd:   `{ cat; echo "env=$QUOTABAR_EVENT/$QUOTABAR_SERVICE"; } >> ` + record + ".cooldown_end",
		},
	}
	w, err := New(cfg, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	feed(w, []step{{used: 10}, {used: 85}, {used: 100}, {used: 0, cooldown: true}, {used: 0}})
	if took := time.Since(start); took > cfg.HookTimeout {
		t.Errorf("observing took %v: the hooks held it up", took)
	}
	// The hooks after the hanging one run without waiting for it (hooks
	// run side by side, so their order is not fixed).
	// Each hook appends to its own file: they may run at the same time.
	recorded := func() string {
		a, _ := os.ReadFile(record + ".quota_low")
		b, _ := os.ReadFile(record + ".cooldown_end")
		return string(a) + string(b)
	}
	testenv.WaitFor(t, 5*time.Second, "the quota_low and cooldown_end hooks", func() bool {
		data := recorded()
		return strings.Contains(data, "env=cooldown_end/svc") && strings.Contains(data, "env=quota_low/svc")
	})
	w.Close()

	data := recorded()
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	got := map[Kind]Event{}
	for i := 0; i+1 < len(lines); i += 2 {
		var ev Event
		if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil {
			t.Fatalf("stdin %q is not the event JSON: %v", lines[i], err)
		}
		if lines[i+1] != "env="+string(ev.Event)+"/svc" {
			t.Errorf("hook for %s saw environment %q", ev.Event, lines[i+1])
		}
		got[ev.Event] = ev
	}
	if len(lines) != 4 || len(got) != 2 {
		t.Fatalf("recorded:\n%s\nwant the quota_low and cooldown_end events once each", data)
	}
	if ev := got[QuotaLow]; ev.Service != "svc" || ev.Threshold != 80 || ev.UsedPercent != 85 || ev.Remaining != 15 || ev.Quota != 100 || ev.Unit != "requests" || ev.Message == "" {
		t.Errorf("quota_low event on stdin = %+v", ev)
	}
	log := logs.String()
	if !strings.Contains(log, "exited with status 3") || !strings.Contains(log, "no slack today") {
		t.Errorf("log does not show the failing hook with its output:\n%s", log)
	}
	if !strings.Contains(log, "killed after") || !strings.Contains(log, "event=cooldown_start") {
		t.Errorf("log does not show the hung hook killed:\n%s", log)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the hung hook's child to be gone", func() bool {
		_, err := os.Stat("/proc/" + strings.TrimSpace(string(pid)))
		return err != nil
	})
}

func TestRunWatchesChanges(t *testing.T) {
	var mu sync.Mutex
	cur := status(step{used: 10}, time.Now())
	get := func() wire.StatusResponse { mu.Lock(); defer mu.Unlock(); return cur }
	record := filepath.Join(t.TempDir(), "record")
	w, err := New(Config{Hooks: map[Kind]string{QuotaLow: "cat >> " + record}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, changed, time.Hour, get) }()
	mu.Lock()
	cur = status(step{used: 90}, time.Now())
	mu.Unlock()
	changed <- struct{}{}
	testenv.WaitFor(t, 5*time.Second, "the quota_low hook", func() bool {
		data, _ := os.ReadFile(record)
		return strings.Contains(string(data), `"quota_low"`)
	})
	cancel()
	<-done
	w.Close()
}

func TestCheckHookSource(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckHookSource(path); err != nil {
		t.Errorf("a 0600 file in a 0700 directory: %v", err)
	}
	for _, tc := range []struct {
		file, dir os.FileMode
		bad       string
	}{{0o666, 0o700, path}, {0o620, 0o700, path}, {0o600, 0o777, dir}} {
		os.Chmod(path, tc.file)
		os.Chmod(dir, tc.dir)
		if err := CheckHookSource(path); err == nil || !strings.Contains(err.Error(), "other users may write "+tc.bad) {
			t.Errorf("file %v dir %v: %v, want other users may write %s", tc.file, tc.dir, err, tc.bad)
		}
	}
	os.Chmod(dir, 0o700)
	if err := CheckHookSource(filepath.Join(dir, "missing.toml")); err == nil {
		t.Error("a missing file passed")
	}
}
