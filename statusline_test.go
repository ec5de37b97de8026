package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/statusline"
)

// claudeCodeStdin is what Claude Code pipes to its statusLine command.
const claudeCodeStdin = `{"hook_event_name":"Status","session_id":"abc123","transcript_path":"/tmp/t.json","cwd":"/work",
"model":{"id":"claude-opus-4-1","display_name":"Opus"},"workspace":{"current_dir":"/work","project_dir":"/work"},
"version":"1.0.80","output_style":{"name":"default"},"cost":{"total_cost_usd":0.01,"total_duration_ms":45000}}`

const statuslineConfig = `
[proxy]
enabled = false

[services.anthropic]
limits = ["1000 requests/1m"]

[services.openai]
limits = ["100 requests/1m"]
`

// statusline runs `quotabar statusline` with stdin and returns its stdout
// and exit status.
func (e *env) statusline(t *testing.T, stdin string, args ...string) (string, int, time.Duration) {
	t.Helper()
	// Against a live daemon the tests allow 1s: under -race on a loaded
	// machine the default 30ms could pass before the answer; the default's
	// speed is BenchmarkStatusline's to show.
	if !slices.Contains(args, "--timeout") {
		args = append(args, "--timeout", "1s")
	}
	cmd := exec.Command(binary, append([]string{"statusline"}, args...)...)
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		out = append(out, stderr.String()...)
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(out), "\n"), code, took
}

func TestStatusline(t *testing.T) {
	e := newEnv(t)
	e.writeConfigFile(t, statuslineConfig)

	t.Run("daemon down", func(t *testing.T) {
		for _, stdin := range []string{claudeCodeStdin, ""} {
			out, code, _ := e.statusline(t, stdin)
			if code != 0 || out != statusline.NotRunning {
				t.Errorf("statusline without a daemon = %q (exit %d), want %q", out, code, statusline.NotRunning)
			}
		}
		out, _, _ := e.statusline(t, "", "--format", "json")
		var bar statusline.Bar
		if err := json.Unmarshal([]byte(out), &bar); err != nil || bar.Class != "down" || bar.Text != statusline.NotRunning {
			t.Errorf("statusline --format json without a daemon = %q (%v)", out, err)
		}
	})

	e.serve(t)
	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	ctx := context.Background()
	for svc, n := range map[string]int64{"anthropic": 10, "openai": 85} {
		if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "a", Service: svc, Cost: wire.Cost{"requests": n}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("daemon up", func(t *testing.T) {
		for _, tc := range []struct {
			name, stdin string
			args        []string
			want        string
		}{
			{"Claude Code shows anthropic", claudeCodeStdin, nil, `^anthropic 990/1000 req left · resets \d+[sm]$`},
			{"a prompt shows the tightest", "", nil, `^openai low 15/100 req left · resets \d+[sm]$`},
			{"not JSON on stdin is ignored", "hello", nil, `^openai low 15/100 req left`},
			{"--service", claudeCodeStdin, []string{"--service", "openai"}, `^openai low 15/100`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out, code, _ := e.statusline(t, tc.stdin, tc.args...)
				if code != 0 || !regexp.MustCompile(tc.want).MatchString(out) {
					t.Errorf("statusline = %q (exit %d), want %s", out, code, tc.want)
				}
			})
		}
		out, code, _ := e.statusline(t, "", "--service", "nope")
		if code == 0 || !strings.Contains(out, `"nope" is not configured; configured: anthropic, openai`) {
			t.Errorf("statusline --service nope = %q (exit %d)", out, code)
		}
		out, _, _ = e.statusline(t, "", "--format", "json")
		var bar statusline.Bar
		if err := json.Unmarshal([]byte(out), &bar); err != nil || bar.Class != "low" || bar.Percentage != 85 ||
			!strings.HasPrefix(bar.Text, "openai low") || !strings.Contains(bar.Tooltip, "anthropic 990/1000") {
			t.Errorf("statusline --format json = %q (%v), want class low, 85%%, both services in the tooltip", out, err)
		}
	})

	t.Run("cooldown", func(t *testing.T) {
		if _, err := c.Report(ctx, wire.ReportRequest{Agent: "a", Service: "anthropic", Status: 429, Headers: map[string]string{"retry-after": "30"}}); err != nil {
			t.Fatal(err)
		}
		out, code, _ := e.statusline(t, claudeCodeStdin)
		if code != 0 || !regexp.MustCompile(`^anthropic cooldown (2\d|30)s$`).MatchString(out) {
			t.Errorf("statusline in a cooldown = %q (exit %d), want anthropic cooldown ~30s", out, code)
		}
		out, _, _ = e.statusline(t, "")
		if !strings.HasPrefix(out, "anthropic cooldown") {
			t.Errorf("a prompt's statusline in a cooldown = %q, want the cooling service first", out)
		}
	})
}

// hungDaemon listens on a socket and accepts, but never answers.
func hungDaemon(t testing.TB) string {
	dir := testenv.ShortTempDir(t)
	path := filepath.Join(dir, "hung.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return path
}

func TestStatuslineUntrustedSocket(t *testing.T) {
	e := newEnv(t)
	dir := testenv.ShortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.socket = filepath.Join(dir, "q.sock")
	out, code, _ := e.statusline(t, "")
	if code != 0 || out != "quotabar: socket not trusted" {
		t.Fatalf("statusline with a socket directory open to others = %q (exit %d)", out, code)
	}
	out, _, _ = e.statusline(t, "", "--format", "json")
	var bar statusline.Bar
	if err := json.Unmarshal([]byte(out), &bar); err != nil || bar.Class != "down" || !strings.Contains(bar.Tooltip, "chmod 700") {
		t.Errorf("statusline --format json = %q (%v), want the reason and the fix in the tooltip", out, err)
	}
}

func TestStatuslineDoesNotWaitForAHungDaemon(t *testing.T) {
	e := newEnv(t)
	e.socket = hungDaemon(t)
	out, code, took := e.statusline(t, claudeCodeStdin, "--timeout", "30ms")
	if code != 0 || out != "quotabar: not answering" {
		t.Fatalf("statusline against a daemon that never answers = %q (exit %d) after %v", out, code, took)
	}
	t.Logf("answered in %v", took)
	out, _, _ = e.statusline(t, "", "--timeout", "2s")
	if !strings.Contains(out, "--timeout 2s: use 1ms to 1s") {
		t.Errorf("statusline --timeout 2s = %q", out)
	}
}

// BenchmarkStatusline times the whole `quotabar statusline` process, as a
// prompt or Claude Code runs it, against a real daemon, no daemon, and a
// daemon that never answers, beside `quotabar version` (the process's own
// cost) measured in the same run. The budget is 50 ms per line.
func BenchmarkStatusline(b *testing.B) {
	e := benchDaemon(b, statuslineConfig)
	run := func(b *testing.B, socket string, args ...string) {
		for b.Loop() {
			cmd := exec.Command(binary, args...)
			cmd.Env = append(e.environ(), "QUOTABAR_SOCKET="+socket)
			cmd.Stdin = strings.NewReader(claudeCodeStdin)
			if out, err := cmd.Output(); err != nil {
				b.Fatalf("%v: %v %s", args, err, out)
			}
		}
	}
	var baseline float64
	b.Run("version", func(b *testing.B) {
		run(b, e.socket, "version")
		baseline = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, tc := range []struct{ name, socket string }{
		{"up", e.socket},
		{"down", filepath.Join(b.TempDir(), "none.sock")},
		{"hung", hungDaemon(b)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			run(b, tc.socket, "statusline")
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perOp/1e6, "ms/line")
			if baseline > 0 {
				b.ReportMetric(perOp/baseline, "x_version")
			}
		})
	}
}

// benchDaemon starts `quotabar serve` for a benchmark (the test helpers
// take a *testing.T) and waits until it answers.
func benchDaemon(b *testing.B, config string) *env {
	b.Helper()
	dir := testenv.ShortTempDir(b)
	e := &env{socket: filepath.Join(dir, "q.sock"), config: filepath.Join(dir, "config.toml"), stateDir: filepath.Join(dir, "state")}
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(binary, "serve")
	cmd.Env = e.environ()
	logs := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	testenv.WaitFor(b, 30*time.Second, "the daemon answers", func() bool { return c.Health(context.Background()) == nil })
	return e
}
