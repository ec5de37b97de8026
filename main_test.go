package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// binary is the quotabar command, built once for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "quotabar-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "quotabar")
	args := []string{"build", "-o", binary}
	if raceEnabled() {
		// The daemon processes get the race detector too: a race makes
		// them exit 66, which the tests see.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building quotabar: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// testConfig has services for the tests and no proxy: its port is shared by
// every daemon on the machine.
const testConfig = `
[proxy]
enabled = false

[services.svc]
limits = ["1000 requests/1m"]
fallback = { browser = "system", url = "http://127.0.0.1:1/" }

[services.cool]
limits = ["1000 requests/1m"]

[services.one]
limits = ["1 requests/1h"]

# No limits: they are learned from the provider's headers.
[services.learn]
dialect = "ietf"

[agents.ag]
priority = "normal"
`

// env is one daemon's files: socket, config and state.
type env struct {
	socket, config, stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sockDir := testenv.ShortTempDir(t) // socket paths must stay short
	dir := t.TempDir()
	e := &env{
		socket:   filepath.Join(sockDir, "q.sock"),
		config:   filepath.Join(dir, "config.toml"),
		stateDir: filepath.Join(dir, "state"),
	}
	if err := os.WriteFile(e.config, []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) environ() []string {
	return append(os.Environ(),
		"QUOTABAR_SOCKET="+e.socket,
		"QUOTABAR_CONFIG="+e.config,
		"QUOTABAR_STATE_DIR="+e.stateDir,
	)
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the quotabar command to completion.
func (e *env) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = e.environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running quotabar %v: %v", args, err)
	}
	return r
}

// must runs the command and fails the test unless it exits 0.
func (e *env) must(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, args...)
	if r.code != 0 {
		t.Fatalf("quotabar %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// daemonProc is a `quotabar serve` process.
type daemonProc struct {
	cmd  *exec.Cmd
	logs *testenv.Buffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// serve starts a daemon and waits until it answers on its socket.
func (e *env) serve(t *testing.T) *daemonProc {
	t.Helper()
	return e.start(t, nil, "serve")
}

// start runs quotabar with args and extra environment, and waits until it
// answers on its socket.
func (e *env) start(t *testing.T, extraEnv []string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{cmd: exec.Command(binary, args...), logs: &testenv.Buffer{}, done: make(chan struct{})}
	d.cmd.Env = append(e.environ(), extraEnv...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon %d log:\n%s", d.cmd.Process.Pid, d.logs)
		}
	})
	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	// Another process coming up publishes no event: poll its socket.
	testenv.WaitFor(t, 30*time.Second, "the daemon to answer on "+e.socket, func() bool {
		select {
		case <-d.done:
			t.Fatalf("the daemon exited before serving: %v\n%s", d.err, d.logs)
		default:
		}
		return c.Health(context.Background()) == nil
	})
	return d
}

// wait waits for the daemon to exit and returns its exit status.
func (d *daemonProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not exit\n%s", d.logs)
	}
	var exit *exec.ExitError
	if errors.As(d.err, &exit) {
		return exit.ExitCode()
	}
	if d.err != nil {
		t.Fatal(d.err)
	}
	return 0
}

func (e *env) status(t *testing.T) wire.StatusResponse {
	t.Helper()
	var st wire.StatusResponse
	out := e.must(t, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func findService(st wire.StatusResponse, name string) (wire.ServiceStatus, bool) {
	for _, s := range st.Services {
		if s.Name == name {
			return s, true
		}
	}
	return wire.ServiceStatus{}, false
}

func findAgent(st wire.StatusResponse, name string) (wire.AgentStatus, bool) {
	for _, a := range st.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return wire.AgentStatus{}, false
}

func TestHelp(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{}, {"serve"}, {"status"}, {"acquire"}, {"report"}, {"pause"}, {"pause", "service"},
		{"pause", "agent"}, {"resume"}, {"resume", "service"}, {"resume", "agent"}, {"run"},
		{"socket"}, {"config"}, {"config", "path"}, {"config", "init"}, {"config", "check"}, {"version"},
	} {
		t.Run(strings.Join(append([]string{"quotabar"}, args...), " "), func(t *testing.T) {
			out := e.must(t, append(args, "--help")...)
			if !strings.Contains(out, "Usage: quotabar") {
				t.Errorf("no usage in --help:\n%s", out)
			}
		})
	}
}

func TestNotRunning(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{"status"},
		{"acquire", "--agent", "a", "--service", "svc"},
		{"report", "--lease", "l_1"},
		{"pause", "service", "svc"},
	} {
		t.Run(args[0], func(t *testing.T) {
			r := e.run(t, args...)
			want := fmt.Sprintf("quotabar is not running (no socket at %s); start it with `quotabar` or `quotabar serve`", e.socket)
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
		})
	}
}

func TestSocketAndVersion(t *testing.T) {
	e := newEnv(t)
	if got := strings.TrimSpace(e.must(t, "socket")); got != e.socket {
		t.Errorf("socket printed %q, want $QUOTABAR_SOCKET %q", got, e.socket)
	}
	if got := e.must(t, "version"); !strings.HasPrefix(got, "quotabar "+wire.Version+" ") {
		t.Errorf("version printed %q", got)
	}
}

func TestConfigCommands(t *testing.T) {
	e := newEnv(t)
	fresh := filepath.Join(t.TempDir(), "sub", "config.toml")
	if got := strings.TrimSpace(e.must(t, "--config", fresh, "config", "path")); got != fresh {
		t.Errorf("config path = %q, want %q", got, fresh)
	}
	if got := strings.TrimSpace(e.must(t, "config", "path")); got != e.config {
		t.Errorf("config path = %q, want $QUOTABAR_CONFIG %q", got, e.config)
	}
	e.must(t, "--config", fresh, "config", "init")
	if data, err := os.ReadFile(fresh); err != nil || !bytes.Equal(data, config.DefaultConfig()) {
		t.Fatalf("config init wrote %d bytes, %v; want the default config", len(data), err)
	}
	if r := e.run(t, "--config", fresh, "config", "init"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second config init: exit %d, %q; want 1 and 'already exists'", r.code, r.stderr)
	}
	if out := e.must(t, "--config", fresh, "config", "check"); !strings.HasPrefix(out, "OK: "+fresh) {
		t.Errorf("config check of the default config: %q", out)
	}

	missing := filepath.Join(t.TempDir(), "none.toml")
	if r := e.run(t, "--config", missing, "config", "check"); r.code != 1 || !strings.Contains(r.stderr, "no configuration file at "+missing) || !strings.Contains(r.stderr, "config init") {
		t.Errorf("config check of a missing file: exit %d, %q; want 1, naming the file and 'config init'", r.code, r.stderr)
	}

	bad := "[services.a]\nlimits = [\"1 requests/1m\", \"2 reqs/1m\"]\n[agents.b]\npriority = \"urgent\"\n"
	if err := os.WriteFile(fresh, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "--config", fresh, "config", "check")
	if r.code != 1 {
		t.Errorf("config check of a bad file: exit %d, want 1", r.code)
	}
	for _, want := range []string{fresh + ":2: services.a.limits[1]: ", fresh + ":4: agents.b.priority: "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config check output lacks %q:\n%s", want, r.stderr)
		}
	}

	// serve refuses the same file with the same message.
	r = e.run(t, "--config", fresh, "serve")
	if r.code != 1 || !strings.Contains(r.stderr, fresh+":2: services.a.limits[1]: ") {
		t.Errorf("serve with a bad config: exit %d\n%s", r.code, r.stderr)
	}
}

var leaseLine = regexp.MustCompile(`^(\S+) expires (\S+)\n$`)

func TestCommandsAgainstDaemon(t *testing.T) {
	e := newEnv(t)
	e.serve(t)

	out := e.must(t, "acquire", "--agent", "ag", "--service", "svc", "--tokens", "100")
	m := leaseLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("acquire printed %q, want '<lease> expires <time>'", out)
	}
	if _, err := time.Parse(time.RFC3339, m[2]); err != nil {
		t.Errorf("lease expiry %q: %v", m[2], err)
	}
	if s, _ := findService(e.status(t), "svc"); s.InFlight != 1 {
		t.Errorf("in flight after acquire = %d, want 1", s.InFlight)
	}
	if out := e.must(t, "report", "--lease", m[1], "--status", "200", "--usage-tokens", "80"); out != "ok\n" {
		t.Errorf("report printed %q", out)
	}
	if s, _ := findService(e.status(t), "svc"); s.InFlight != 0 || s.Counters.Granted != 1 {
		t.Errorf("after report: in flight %d, granted %d; want 0, 1", s.InFlight, s.Counters.Granted)
	}

	if out := e.must(t, "acquire", "--agent", "ag", "--service", "svc", "--priority", "High"); !leaseLine.MatchString(out) {
		t.Errorf("acquire --priority High printed %q, want a lease", out)
	}

	var granted wire.AcquireResponse
	if err := json.Unmarshal([]byte(e.must(t, "acquire", "--agent", "ag", "--service", "svc", "--json")), &granted); err != nil || !granted.Granted || granted.Lease == "" {
		t.Errorf("acquire --json: %+v, %v", granted, err)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"unknown service", []string{"acquire", "--agent", "ag", "--service", "nope"}, 1, `"nope"`},
		{"bad agent name", []string{"acquire", "--agent", "a b", "--service", "svc"}, 1, "agent"},
		{"unknown lease", []string{"report", "--lease", "l_nope"}, 1, "l_nope"},
		{"report needs a lease or names", []string{"report", "--status", "200"}, 80, "--lease"},
		{"bad priority", []string{"acquire", "--agent", "ag", "--service", "svc", "--priority", "urgent"}, 80, `--priority "urgent": use high, normal or low`},
		{"wait over 10m", []string{"acquire", "--agent", "ag", "--service", "svc", "--wait", "11m"}, 80, "--wait 11m0s: use 0 (answer at once) up to 10m"},
		{"negative wait", []string{"acquire", "--agent", "ag", "--service", "svc", "--wait=-1s"}, 80, "--wait -1s"},
		{"negative tokens", []string{"acquire", "--agent", "ag", "--service", "svc", "--tokens=-5"}, 80, "--tokens -5: a count cannot be negative"},
		{"negative usage", []string{"report", "--lease", "l_x", "--usage-tokens=-5"}, 80, "--usage-tokens -5"},
		{"report status out of range", []string{"report", "--lease", "l_x", "--status", "999"}, 80, "--status 999"},
		{"header without a value", []string{"report", "--lease", "l_x", "-H", "retry-after"}, 80, `--header "retry-after": want NAME=VALUE or 'NAME: VALUE'`},
		{"header without a name", []string{"report", "--lease", "l_x", "-H", "=20"}, 80, "--header"},
		{"bad agent name", []string{"pause", "agent", "a b"}, 1, "agent"},
		// Without service or agent, pause must not send a request.
		{"pause without a target", []string{"pause"}, 80, `expected one of "service", "agent"`},
		{"resume without a target", []string{"resume"}, 80, `expected one of "service", "agent"`},
		{"pause a service without a name", []string{"pause", "service"}, 80, "<name>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}

	// A paused service refuses with exit 75 and says why.
	if out := e.must(t, "pause", "service", "svc"); out != "service svc paused\n" {
		t.Errorf("pause printed %q", out)
	}
	r := e.run(t, "acquire", "--agent", "ag", "--service", "svc", "--wait", "0")
	if r.code != exitRefused || !strings.Contains(r.stderr, "refused: paused") || !strings.Contains(r.stderr, "quotabar resume") {
		t.Errorf("acquire on a paused service: exit %d, %q; want 75, 'refused: paused'", r.code, r.stderr)
	}
	e.must(t, "resume", "service", "svc")
	e.must(t, "pause", "agent", "ag")
	if a, _ := findAgent(e.status(t), "ag"); !a.Paused {
		t.Error("pause agent did not pause it")
	}
	e.must(t, "resume", "agent", "ag")
	// An agent can be paused before its first call.
	e.must(t, "pause", "agent", "not-started-yet")
	if a, ok := findAgent(e.status(t), "not-started-yet"); !ok || !a.Paused {
		t.Errorf("pause of an agent not seen yet: %+v, %v; want it listed and paused", a, ok)
	}

	// A 429 with Retry-After, reported without a lease, cools the service down.
	out = e.must(t, "report", "--agent", "ag", "--service", "cool", "--status", "429", "-H", "Retry-After: 120", "-H", "x-note=a;b=c, d")
	if !strings.Contains(out, "cool is cooling down until") {
		t.Errorf("report of a 429 printed %q", out)
	}
	r = e.run(t, "acquire", "--agent", "ag", "--service", "cool", "--wait", "0")
	if r.code != exitRefused || !strings.Contains(r.stderr, "refused: cooldown; retry in ") {
		t.Errorf("acquire during cooldown: exit %d, %q; want 75, 'refused: cooldown; retry in'", r.code, r.stderr)
	}

	human := e.must(t, "status")
	for _, want := range []string{`SERVICE +STATE +LIMIT +REMAINING`, `\ncool +cooldown (1m5\ds|2m) +1000 requests/1m +999 `, `\nsvc +ok `, `\nAGENT +STATE`, `\nag +ok +normal +1 `} {
		if !regexp.MustCompile(want).MatchString(human) {
			t.Errorf("status does not match %q:\n%s", want, human)
		}
	}
}

func TestCrashRestoresState(t *testing.T) {
	e := newEnv(t)
	d := e.serve(t)
	// Known to the daemon once it has asked.
	e.must(t, "acquire", "--agent", "worker", "--service", "svc")
	e.must(t, "pause", "agent", "worker")
	e.must(t, "pause", "service", "svc")
	e.must(t, "report", "--agent", "ag", "--service", "cool", "--status", "429", "-H", "retry-after=600")
	e.must(t, "report", "--agent", "ag", "--service", "learn", "--status", "200",
		"-H", `RateLimit-Policy="hourly";q=100;w=3600`, "-H", `RateLimit="hourly";r=40;t=3000`)
	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	if _, err := c.SetFallback(context.Background(), "svc", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateAgent(context.Background(), "worker", wire.AgentUpdate{Priority: "high"}); err != nil {
		t.Fatal(err)
	}

	// Wait for the state to reach the disk on its own: no shutdown will save it.
	path := filepath.Join(e.stateDir, daemon.StateFile)
	// The person's changes were saved before they were answered; the
	// learned limit and the cooldown follow after the save delay, and a
	// file on disk publishes no event.
	testenv.WaitFor(t, 10*time.Second, "the changes to be saved", func() bool {
		st, err := daemon.LoadState(path)
		return err == nil && st.Limiter.Services["svc"].Paused && st.Limiter.Agents["worker"].Paused &&
			st.Limiter.Agents["worker"].Priority == "high" && len(st.Limiter.Services["learn"].Limits) == 1 &&
			st.Limiter.Services["cool"].CooldownUntil.After(time.Now()) && st.Fallback["svc"]
	})

	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.wait(t)
	if _, err := os.Stat(e.socket); err != nil {
		t.Fatalf("kill -9 should leave the socket file behind for this test to mean anything: %v", err)
	}

	d2 := e.serve(t)
	st := e.status(t)
	if s, _ := findService(st, "svc"); !s.Paused || s.Fallback == nil || !s.Fallback.Enabled {
		t.Errorf("service pause or fallback switch not restored: paused %v, fallback %+v", s.Paused, s.Fallback)
	}
	if a, ok := findAgent(st, "worker"); !ok || !a.Paused || a.Priority != "high" {
		t.Errorf("agent pause or priority not restored: %+v", a)
	}
	if s, _ := findService(st, "learn"); len(s.Limits) != 1 || s.Limits[0].Source != "headers" || s.Limits[0].Quota != 100 || s.Limits[0].Remaining != 40 {
		t.Errorf("learned limit not restored: %+v", s.Limits)
	}
	if s, _ := findService(st, "cool"); s.CooldownUntil == nil || time.Until(*s.CooldownUntil) < 9*time.Minute {
		t.Errorf("cooldown not restored: %v", s.CooldownUntil)
	}

	// A second instance is refused and names the first one's pid.
	r := e.run(t, "serve")
	if r.code == 0 || !strings.Contains(r.stderr, "pid "+strconv.Itoa(d2.cmd.Process.Pid)) {
		t.Errorf("second instance: exit %d, %q; want non-zero naming pid %d", r.code, r.stderr, d2.cmd.Process.Pid)
	}

	// SIGTERM: a clean exit, the socket gone.
	if err := d2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d2.wait(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
}

// TestSigtermAnswersWaitersAndSaves stops a daemon that has a request
// waiting: the waiting agent is told 503 shutting_down, the last change is
// saved, the socket is removed and the daemon exits 0.
func TestSigtermAnswersWaitersAndSaves(t *testing.T) {
	e := newEnv(t)
	d := e.serve(t)
	e.must(t, "acquire", "--agent", "ag", "--service", "one") // the hour's one request
	waiter := exec.Command(binary, "acquire", "--agent", "ag", "--service", "one", "--wait", "10m")
	waiter.Env = e.environ()
	var stderr bytes.Buffer
	waiter.Stderr = &stderr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waiter.Process.Kill() }) // if the wait below fails
	// Another process's request queueing: poll the daemon's status.
	testenv.WaitFor(t, 15*time.Second, "the second acquire to queue", func() bool {
		s, _ := findService(e.status(t), "one")
		return s.Queued == 1
	})
	e.must(t, "pause", "agent", "last-change")

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := waiter.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("the waiting acquire ended with %v, %q; want exit 1 saying the daemon is shutting down", err, stderr.String())
	}
	if code := d.wait(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
	st, err := daemon.LoadState(filepath.Join(e.stateDir, daemon.StateFile))
	if err != nil || !st.Limiter.Agents["last-change"].Paused {
		t.Errorf("the pause made just before SIGTERM was not saved: %+v, %v", st.Limiter.Agents, err)
	}
}

func TestBareCommandRunsTheDaemon(t *testing.T) {
	e := newEnv(t)
	// No session bus: the app runs without its menu bar, as the daemon.
	d := e.start(t, []string{"DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus"})
	if _, ok := findService(e.status(t), "svc"); !ok {
		t.Error("the app does not serve the configured service")
	}
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := d.wait(t); code != 0 {
		t.Errorf("exit status after SIGINT = %d, want 0", code)
	}
	if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGINT: %v", err)
	}
}

func TestShortDuration(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{4100 * time.Millisecond, "4.1s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{5 * time.Hour, "5h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{24 * time.Hour, "24h"},
		{time.Hour + 30*time.Second, "1h0m30s"},
	} {
		if got := shortDuration(tt.in); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
