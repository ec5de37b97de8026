package daemon

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/internal/atomicfile"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
)

// testConfig has one service that admits one call at a time, so tests can
// hold a request in its queue, and no proxy (its port is shared).
const testConfig = `
lease_ttl = "1m"

[proxy]
enabled = false

[services.svc]
limits = ["1000 requests/1m"]
max_concurrent = 1
fallback = { browser = "system", url = "http://127.0.0.1:1/" }

[agents.a1]
priority = "low"
`

type testDaemon struct {
	opts Options
	logs *testenv.Buffer
}

// newTestDaemon prepares the files of a daemon in temporary directories and
// writes config (when not empty) as its configuration.
func newTestDaemon(t *testing.T, config string) *testDaemon {
	t.Helper()
	// Socket paths must stay short; t.TempDir's can be too long.
	sockDir := testenv.ShortTempDir(t)
	dir := t.TempDir()
	td := &testDaemon{logs: &testenv.Buffer{}}
	td.opts = Options{
		ConfigPath: filepath.Join(dir, "conf", "config.toml"),
		StateDir:   filepath.Join(dir, "state"),
		SocketPath: filepath.Join(sockDir, "q.sock"),
		Logger:     slog.New(slog.NewTextHandler(td.logs, nil)),
	}
	if config != "" {
		if err := os.MkdirAll(filepath.Dir(td.opts.ConfigPath), 0o700); err != nil {
			t.Fatal(err)
		}
		td.writeConfig(t, config)
	}
	return td
}

// writeConfig replaces the configuration the way editors do: a new file
// renamed over the old one.
func (td *testDaemon) writeConfig(t *testing.T, config string) {
	t.Helper()
	if err := atomicfile.WriteFile(td.opts.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (td *testDaemon) start(t *testing.T) *Daemon {
	t.Helper()
	d, err := StartDaemon(context.Background(), td.opts)
	if err != nil {
		t.Fatalf("StartDaemon: %v\nlogs:\n%s", err, td.logs)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()) })
	return d
}

func (td *testDaemon) client() *ipc.Client { return &ipc.Client{SocketPath: td.opts.SocketPath} }

// waitStatus waits until cond holds, checking it at every change the
// daemon announces (the limiter's and the server's), for a change made
// through the daemon.
func waitStatus(t *testing.T, d *Daemon, what string, cond func() bool) {
	t.Helper()
	changed, stop := d.Server.Changed()
	defer stop()
	testenv.WaitEvent(t, 10*time.Second, what, changed, cond)
}

// waitConfig waits until cond holds, checking it after every configuration
// edit the daemon applies.
func waitConfig(t *testing.T, d *Daemon, what string, cond func() bool) {
	t.Helper()
	changed, stop := d.ConfigChanged()
	defer stop()
	testenv.WaitEvent(t, 10*time.Second, what, changed, cond)
}

// waitLog waits until the daemon's log holds text: a log line publishes no
// event.
func (td *testDaemon) waitLog(t *testing.T, what, text string) {
	t.Helper()
	td.waitUntil(t, what, func() bool { return strings.Contains(td.logs.String(), text) })
}

// waitUntil waits for a condition that publishes no event (a log line, a
// file on disk).
func (td *testDaemon) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, cond)
}

func serviceStatus(t *testing.T, c *ipc.Client, name string) (wire.ServiceStatus, bool) {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		if s.Name == name {
			return s, true
		}
	}
	return wire.ServiceStatus{}, false
}

func TestDaemonStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	c := td.client()

	if _, err := c.SetServicePaused(ctx, "svc", true); err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := c.UpdateAgent(ctx, "a1", wire.AgentUpdate{Paused: &yes, Priority: "high"}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetFallbackEnabled("svc", true); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(td.opts.SocketPath); !os.IsNotExist(err) {
		t.Errorf("socket still there after shutdown: %v", err)
	}
	fi, err := os.Stat(filepath.Join(td.opts.StateDir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	d2 := td.start(t)
	c2 := td.client()
	if s, _ := serviceStatus(t, c2, "svc"); !s.Paused {
		t.Error("service pause not restored")
	}
	st, err := c2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range st.Agents {
		if a.Name == "a1" {
			found = true
			if !a.Paused || a.Priority != "high" {
				t.Errorf("agent a1 restored as %+v, want paused, high (config says low)", a)
			}
		}
	}
	if !found {
		t.Error("agent a1 missing after restart")
	}
	if !d2.FallbackEnabled("svc") {
		t.Error("fallback switch not restored")
	}
}

func TestDaemonSavesChangesWhileRunning(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	td.start(t)
	if _, err := td.client().SetServicePaused(context.Background(), "svc", true); err != nil {
		t.Fatal(err)
	}
	// No shutdown: a person's change is on disk by the time it is answered
	// (a crash keeps it; TestAnsweredChangeSurvivesKill9 kills a daemon).
	st, err := LoadState(filepath.Join(td.opts.StateDir, StateFile))
	if err != nil || !st.Limiter.Services["svc"].Paused {
		t.Errorf("state right after the answer: %+v, %v; want svc paused", st.Limiter.Services, err)
	}
}

// TestDaemonAnswersUnsavedChange: a change that cannot be saved is answered
// 500 saying a restart would undo it, not 200.
func TestDaemonAnswersUnsavedChange(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	// A non-empty directory where the state file goes: the rename fails.
	if err := os.MkdirAll(filepath.Join(td.opts.StateDir, StateFile, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := td.client().SetServicePaused(ctx, "svc", true)
	apiErr, ok := errors.AsType[*wire.APIError](err)
	if !ok || apiErr.Status != 500 || !strings.Contains(apiErr.Message, "not saved") {
		t.Errorf("pause with an unwritable state = %v; want 500 saying the change is not saved", err)
	}
	yes := true
	if _, err := td.client().UpdateAgent(ctx, "a1", wire.AgentUpdate{Paused: &yes}); err == nil {
		t.Error("agent pause with an unwritable state answered 200")
	}
	if err := d.SetFallbackEnabled("svc", true); err == nil || !strings.Contains(err.Error(), "not saved") {
		t.Errorf("fallback switch with an unwritable state = %v; want an error saying it is not saved", err)
	}
	os.RemoveAll(filepath.Join(td.opts.StateDir, StateFile))
}

func TestDaemonAlreadyRunning(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	td.start(t)
	_, err := StartDaemon(context.Background(), td.opts)
	var ar *socket.AlreadyRunningError
	if !errors.As(err, &ar) {
		t.Fatalf("second StartDaemon: %v, want *socket.AlreadyRunningError", err)
	}
	if ar.PID != os.Getpid() {
		t.Errorf("already running names pid %d, want %d", ar.PID, os.Getpid())
	}
	// The first one is unharmed.
	if err := td.client().Health(context.Background()); err != nil {
		t.Errorf("first daemon after the second's attempt: %v", err)
	}
}

func TestDaemonFirstStartWritesConfig(t *testing.T) {
	td := newTestDaemon(t, "")
	created, err := config.EnsureConfig(td.opts.ConfigPath)
	if err != nil || !created {
		t.Fatalf("ensureConfig = %v, %v; want a new file", created, err)
	}
	data, err := os.ReadFile(td.opts.ConfigPath)
	if err != nil || string(data) != string(config.DefaultConfig()) {
		t.Fatalf("first start wrote %d bytes (%v), want the default config", len(data), err)
	}
	if created, err := config.EnsureConfig(td.opts.ConfigPath); err != nil || created {
		t.Errorf("second ensureConfig = %v, %v; want the file left alone", created, err)
	}
}

func TestDaemonBadConfigRefusesToStart(t *testing.T) {
	td := newTestDaemon(t, "[services.x]\nlimits = [\"5 reqs/1m\"]\n")
	_, err := StartDaemon(context.Background(), td.opts)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Key != "services.x.limits[0]" {
		t.Fatalf("StartDaemon with a bad config: %v; want a ConfigError at line 2, services.x.limits[0]", err)
	}
	if _, err := os.Stat(td.opts.SocketPath); !os.IsNotExist(err) {
		t.Error("a daemon that did not start left its socket")
	}
}

func TestDaemonCorruptStateMovedAside(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	if err := os.MkdirAll(td.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(td.opts.StateDir, StateFile)
	if err := os.WriteFile(path, []byte(`{"limiter": [1,2`), 0o600); err != nil {
		t.Fatal(err)
	}
	td.start(t)
	if err := td.client().Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	if bad, _ := filepath.Glob(path + ".bad-*"); len(bad) != 1 {
		t.Errorf("corrupt state not moved aside: %v", bad)
	}
	if !strings.Contains(td.logs.String(), "saved state not restored") {
		t.Errorf("no warning about the corrupt state in the log:\n%s", td.logs)
	}
}

// TestDaemonRestoresWhatItCan starts on a state file with one entry the
// limiter cannot use: the rest, fallback switches included, is restored.
func TestDaemonRestoresWhatItCan(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	if err := os.MkdirAll(td.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := `{"limiter": {"services": {"svc": {"paused": true}},
	            "agents": {"bad name!": {"paused": true}, "a1": {"priority": "high"}}},
	 "fallback": {"svc": true}}`
	if err := os.WriteFile(filepath.Join(td.opts.StateDir, StateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	d := td.start(t)
	if s, _ := serviceStatus(t, td.client(), "svc"); !s.Paused {
		t.Error("service pause not restored")
	}
	if !d.FallbackEnabled("svc") {
		t.Error("fallback switch not restored")
	}
	st, err := td.client().Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Agents {
		if a.Name == "a1" && a.Priority != "high" {
			t.Errorf("agent a1 restored as %+v, want priority high", a)
		}
	}
	if logs := td.logs.String(); !strings.Contains(logs, "saved state partly restored") || !strings.Contains(logs, "bad name!") {
		t.Errorf("the log does not name the entry that was dropped:\n%s", logs)
	}
}

func TestDaemonReloadsConfig(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	c := td.client()

	// Hold the one slot and queue a second request behind it.
	lease, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		lease ipc.Lease
		err   error
	}
	queued := make(chan result, 1)
	go func() {
		l, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a2", Service: "svc", MaxWaitMS: wire.Wait(time.Minute)})
		queued <- result{l, err}
	}()
	waitStatus(t, d, "the second request to queue", func() bool {
		s, _ := serviceStatus(t, c, "svc")
		return s.Queued == 1
	})

	// A good edit: a new service and a new limit on the old one.
	td.writeConfig(t, strings.Replace(testConfig, `"1000 requests/1m"`, `"900 requests/1m"`, 1)+"\n[services.added]\n")
	waitConfig(t, d, "the edit to apply", func() bool {
		_, ok := d.Config().Service("added")
		return ok
	})
	if _, ok := serviceStatus(t, c, "added"); !ok {
		t.Error("the limiter does not know the added service")
	}
	if s, _ := serviceStatus(t, c, "svc"); s.Queued != 1 || len(s.Limits) != 1 || s.Limits[0].Quota != 900 {
		t.Errorf("svc after the edit: queued %d, limits %+v; want the request still queued and quota 900", s.Queued, s.Limits)
	}

	// A broken edit keeps everything and says where the problem is.
	td.writeConfig(t, testConfig+"\n[services.broken]\nlimits = [\"1 reqs/1m\"]\n")
	td.waitLog(t, "the broken edit to be reported", "configuration edit not applied")
	logs := td.logs.String()
	if !strings.Contains(logs, "config.toml:") || !strings.Contains(logs, "services.broken.limits[0]") {
		t.Errorf("the log does not name the file, line and key:\n%s", logs)
	}
	if _, ok := d.Config().Service("added"); !ok {
		t.Error("a broken edit replaced the configuration")
	}
	if _, ok := serviceStatus(t, c, "broken"); ok {
		t.Error("a broken edit reached the limiter")
	}
	// Undoing the broken edit is acknowledged: the file is good again.
	td.writeConfig(t, strings.Replace(testConfig, `"1000 requests/1m"`, `"900 requests/1m"`, 1)+"\n[services.added]\n")
	td.waitLog(t, "the undone edit to be acknowledged", "back to the configuration in force")

	// The queued request survived both edits and is granted when the slot frees.
	if _, err := c.Report(ctx, wire.ReportRequest{Lease: lease.ID, Status: 200}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-queued:
		if r.err != nil {
			t.Errorf("queued request after the edits: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued request was never answered")
	}
}

func TestDaemonShutdownAnswersWaiters(t *testing.T) {
	ctx := context.Background()
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	c := td.client()
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc"}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc", MaxWaitMS: wire.Wait(time.Minute)})
		errc <- err
	}()
	waitStatus(t, d, "the request to queue", func() bool {
		s, _ := serviceStatus(t, c, "svc")
		return s.Queued == 1
	})
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var apiErr *wire.APIError
	if err := <-errc; !errors.As(err, &apiErr) || apiErr.Status != 503 || apiErr.Code != "shutting_down" {
		t.Errorf("waiter at shutdown got %v, want 503 shutting_down", err)
	}
	select {
	case <-d.Done():
	default:
		t.Error("Done not closed after Shutdown")
	}
}

func TestSetFallbackEnabledErrors(t *testing.T) {
	td := newTestDaemon(t, testConfig+"\n[services.plain]\n")
	d := td.start(t)
	for _, svc := range []string{"nope", "plain"} {
		if err := d.SetFallbackEnabled(svc, true); err == nil {
			t.Errorf("SetFallbackEnabled(%q) succeeded", svc)
		}
	}
	if d.FallbackEnabled("svc") {
		t.Error("fallback on before anyone switched it on (config says off)")
	}
}

func TestDaemonSavesUnderSteadyTraffic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := newTestDaemon(t, testConfig)
	td.start(t)
	c := td.client()
	traffic := make(chan error, 1)
	go func() {
		// Changes far more often than saveDelay: the save must not wait for
		// a quiet moment.
		for ctx.Err() == nil {
			l, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a1", Service: "svc"})
			if err == nil {
				_, err = c.Report(ctx, wire.ReportRequest{Lease: l.ID, Status: 200})
			}
			if err != nil && ctx.Err() == nil {
				traffic <- err
				return
			}
		}
		traffic <- nil
	}()
	path := filepath.Join(td.opts.StateDir, StateFile)
	testenv.WaitFor(t, 10*time.Second, "a save while calls keep coming", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	cancel()
	if err := <-traffic; err != nil {
		t.Fatal(err)
	}
}

func TestDaemonKeepsConfigWhenFileIsRemoved(t *testing.T) {
	td := newTestDaemon(t, testConfig)
	d := td.start(t)
	if err := os.Remove(td.opts.ConfigPath); err != nil {
		t.Fatal(err)
	}
	td.waitLog(t, "the daemon to notice", "the configuration file is gone")
	if _, ok := d.Config().Service("svc"); !ok {
		t.Error("the configuration was dropped with its file")
	}
	// Putting it back (with a change) is picked up again.
	td.writeConfig(t, testConfig+"\n[services.back]\n")
	waitConfig(t, d, "the restored file to apply", func() bool {
		_, ok := d.Config().Service("back")
		return ok
	})
}
