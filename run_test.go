package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// proxyEnv is a daemon process with its proxy on a free 127.0.0.1 port in
// front of a fake provider, and what GET /v1/proxy says about it.
func proxyEnv(t *testing.T, enabled bool) (*env, wire.ProxyInfo, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}`)
	}))
	t.Cleanup(up.Close)
	e := newEnv(t)
	config := fmt.Sprintf(`
[proxy]
enabled = %v
listen = "127.0.0.1:0"

[services.openai]
preset = "openai"
base_url = %q
max_concurrent = 4

[services.anthropic]
preset = "anthropic"
base_url = %q
max_concurrent = 4
`, enabled, up.URL, up.URL)
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	e.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := fetchProxyInfo(ctx, e.socket)
	if err != nil {
		t.Fatal(err)
	}
	return e, info, &calls
}

func TestRunPointsSDKsAtTheProxy(t *testing.T) {
	e, info, calls := proxyEnv(t, true)
	if !info.Enabled {
		t.Fatalf("the proxy is off: %+v", info)
	}

	t.Run("default agent", func(t *testing.T) {
		out := e.must(t, "run", "--", "sh", "-c", "echo $OPENAI_BASE_URL")
		want := regexp.MustCompile(`^` + regexp.QuoteMeta(info.URL+"/t/"+info.Token+"/") + `sh-[0-9a-f]{4}/openai/v1\n$`)
		if !want.MatchString(out) {
			t.Fatalf("OPENAI_BASE_URL = %q, want %s", out, want)
		}
		// The URL works: an SDK's call through it reaches the provider.
		res, err := http.Post(strings.TrimSpace(out)+"/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || calls.Load() != 1 {
			t.Errorf("call to the printed URL: %d, provider saw %d calls", res.StatusCode, calls.Load())
		}
	})

	t.Run("named agent", func(t *testing.T) {
		out := e.must(t, "run", "--agent", "research-1", "--", "sh", "-c",
			`echo "$OPENAI_BASE_URL"; echo "$ANTHROPIC_BASE_URL"; echo "$QUOTABAR_AGENT"; echo "$QUOTABAR_SOCKET"; echo "$QUOTABAR_PROXY"`)
		want := strings.Join([]string{
			info.AgentURL("research-1", "openai") + "/v1",
			info.AgentURL("research-1", "anthropic"),
			"research-1",
			e.socket,
			info.URL + "/t/" + info.Token + "/research-1",
		}, "\n") + "\n"
		if out != want {
			t.Errorf("environment:\n%s\nwant:\n%s", out, want)
		}
	})

	t.Run("priority", func(t *testing.T) {
		out := e.must(t, "run", "--agent", "urgent", "--priority", "high", "--", "sh", "-c", "echo $OPENAI_BASE_URL")
		if want := info.AgentURL("urgent~high", "openai") + "/v1\n"; out != want {
			t.Fatalf("OPENAI_BASE_URL = %q, want %q", out, want)
		}
		before := calls.Load()
		res, err := http.Post(strings.TrimSpace(out)+"/chat/completions", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || calls.Load() != before+1 {
			t.Errorf("call with the priority URL: %d", res.StatusCode)
		}
		if _, ok := findAgent(e.status(t), "urgent"); !ok {
			t.Error("the agent of a ~high URL is not the plain name in /v1/status")
		}
	})
	t.Run("bad priority", func(t *testing.T) {
		r := e.run(t, "run", "--priority", "urgent", "--", "true")
		if r.code == 0 || !strings.Contains(r.stderr, "priority") {
			t.Errorf("exit %d, stderr %q; want an error naming --priority", r.code, r.stderr)
		}
	})

	t.Run("bad agent name", func(t *testing.T) {
		r := e.run(t, "run", "--agent", "no spaces", "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, "--agent") {
			t.Errorf("exit %d, stderr %q; want 1 naming --agent", r.code, r.stderr)
		}
	})
}

func TestRunExitStatus(t *testing.T) {
	e, _, _ := proxyEnv(t, true)
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		signal syscall.Signal
		stderr string
	}{
		{"success", []string{"true"}, 0, 0, ""},
		{"exit code", []string{"sh", "-c", "exit 7"}, 7, 0, ""},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, -1, syscall.SIGTERM, ""},
		{"not found", []string{"no-such-command-qb"}, 127, 0, "no-such-command-qb"},
		{"not executable", []string{notExec}, 126, 0, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"run", "--"}, tt.args...)...)
			cmd.Env = e.environ()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if got := cmd.ProcessState.ExitCode(); got != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tt.code, stderr.String())
			}
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if tt.signal != 0 && (!ws.Signaled() || ws.Signal() != tt.signal) {
				t.Errorf("wait status %v, want killed by %v", ws, tt.signal)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to say %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// TestRunSignals sends each signal to the quotabar run process and checks
// that COMMAND got it.
func TestRunSignals(t *testing.T) {
	e, _, _ := proxyEnv(t, true)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			name := sigName[sig]
			script := fmt.Sprintf(`trap 'echo got %s; exit 42' %s; echo ready; while :; do sleep 0.05; done`, name, name)
			cmd := exec.Command(binary, "run", "--agent", "sig", "--", "sh", "-c", script)
			cmd.Env = e.environ()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			r := bufio.NewReader(stdout)
			if line, err := r.ReadString('\n'); line != "ready\n" {
				t.Fatalf("first line %q, %v; want ready", line, err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(r)
			cmd.Wait()
			if string(rest) != "got "+name+"\n" || cmd.ProcessState.ExitCode() != 42 {
				t.Errorf("after %v: output %q, exit %d; want %q and 42", sig, rest, cmd.ProcessState.ExitCode(), "got "+name+"\n")
			}
		})
	}
}

var sigName = map[syscall.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP"}

func TestRunWithoutProxy(t *testing.T) {
	t.Run("daemon not running", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "run", "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, "not running") {
			t.Errorf("exit %d, stderr %q; want 1 saying the daemon is not running", r.code, r.stderr)
		}
	})
	t.Run("proxy off", func(t *testing.T) {
		e, _, _ := proxyEnv(t, false)
		r := e.run(t, "run", "--", "true")
		if r.code != 1 || !strings.Contains(r.stderr, "[proxy]") {
			t.Errorf("exit %d, stderr %q; want 1 pointing at [proxy]", r.code, r.stderr)
		}
	})
}

func TestRunEnv(t *testing.T) {
	info := wire.ProxyInfo{Enabled: true, URL: "http://127.0.0.1:7878", Token: "tok", Services: []wire.ProxyServiceInfo{
		{Name: "work-openai", Preset: "openai"},
		{Name: "openai", Preset: "openai"},
		{Name: "claude", Preset: "anthropic"},
		{Name: "gh", Preset: "github"},
		{Name: "gemini", Preset: "gemini"},
		{Name: "custom"},
	}}
	got := runEnv([]string{"PATH=/bin", "OPENAI_BASE_URL=https://elsewhere", "QUOTABAR_AGENT=old", "KEEP=a=b"}, info, "ag", "", "/s.sock")
	slices.Sort(got)
	want := []string{
		"ANTHROPIC_BASE_URL=http://127.0.0.1:7878/t/tok/ag/claude",
		"GITHUB_API_URL=http://127.0.0.1:7878/t/tok/ag/gh",
		"GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:7878/t/tok/ag/gemini",
		"KEEP=a=b",
		"OPENAI_BASE_URL=http://127.0.0.1:7878/t/tok/ag/openai/v1",
		"PATH=/bin",
		"QUOTABAR_AGENT=ag",
		"QUOTABAR_PROXY=http://127.0.0.1:7878/t/tok/ag",
		"QUOTABAR_SOCKET=/s.sock",
	}
	if !slices.Equal(got, want) {
		t.Errorf("runEnv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	withPrio := runEnv(nil, info, "ag", "low", "/s.sock")
	for _, kv := range []string{"OPENAI_BASE_URL=http://127.0.0.1:7878/t/tok/ag~low/openai/v1", "QUOTABAR_AGENT=ag", "QUOTABAR_PROXY=http://127.0.0.1:7878/t/tok/ag~low"} {
		if !slices.Contains(withPrio, kv) {
			t.Errorf("with priority low: %q missing from %q", kv, withPrio)
		}
	}
}

func TestDefaultAgent(t *testing.T) {
	for _, tt := range []struct{ command, prefix string }{
		{"/usr/local/bin/claude", "claude-"},
		{"codex", "codex-"},
		{"./my tool", "my-tool-"},
		{"..", "agent-"},
		{strings.Repeat("x", 80), strings.Repeat("x", 59) + "-"},
	} {
		got := defaultAgent(tt.command)
		if !strings.HasPrefix(got, tt.prefix) || len(got) != len(tt.prefix)+4 {
			t.Errorf("defaultAgent(%q) = %q, want %q and 4 hex digits", tt.command, got, tt.prefix)
		}
	}
}
