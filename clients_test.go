package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeprovider"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc/wire"
)

// These tests run the real clients from npm, unmodified, through `quotabar
// run` against a fake provider on 127.0.0.1 (issue 12). `./build.sh test`
// installs the pinned versions (install_npm_clients) into
// $HOME/.cache/quotabar-npm and points QUOTABAR_NPM_DIR at them.

const fakeAnswer = "quotabar-fake-answer-7f3a"

// npmDir is the directory whose node_modules holds the pinned clients.
func npmDir(t *testing.T, bins ...string) string {
	t.Helper()
	testenv.LookPath(t, "node")
	dir := os.Getenv("QUOTABAR_NPM_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "quotabar-npm", "current")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", b)); err != nil {
			testenv.Missing(t, "the npm clients are not installed in %s (%v); ./build.sh test installs them", dir, err)
		}
	}
	return dir
}

// clientEnv is a quotabar daemon whose config is the default one with the
// providers' base URLs pointed at a fake provider, and whatever extra
// TOML replaces keys of it.
func clientEnv(t *testing.T, fp *fakeprovider.Provider, edit func(config string, upstream string) string) (*env, string) {
	t.Helper()
	up := httptest.NewServer(fp)
	t.Cleanup(up.Close)
	e := newEnv(t)
	e.must(t, "config", "init", "--force")
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(string(b), `listen = "127.0.0.1:7878"`, `listen = "127.0.0.1:0"`, 1)
	for _, p := range []string{"openai", "anthropic"} {
		config = strings.Replace(config, "preset = \""+p+"\"\n", fmt.Sprintf("preset = %q\nbase_url = %q\n", p, up.URL), 1)
	}
	if edit != nil {
		config = edit(config, up.URL)
	}
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	e.serve(t)
	return e, up.URL
}

// runClient runs `quotabar run ARGS` with the clients' directory on PATH
// and a private HOME, and returns its output; it fails the test when the
// command fails or takes over 90 s.
func runClient(t *testing.T, e *env, npm string, extraEnv []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, binary, append([]string{"run"}, args...)...)
	cmd.Dir = home
	cmd.Env = append(e.environ(),
		"HOME="+home,
		"PATH="+filepath.Join(npm, "node_modules", ".bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"NODE_PATH="+filepath.Join(npm, "node_modules"),
		// No traffic but the model calls: no update checks, no telemetry.
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1",
		"DISABLE_ERROR_REPORTING=1", "CODEX_HOME="+filepath.Join(home, ".codex"), "NO_COLOR=1",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	os.MkdirAll(filepath.Join(home, ".codex"), 0o700)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("quotabar run %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func serviceOf(t *testing.T, e *env, name string) wire.ServiceStatus {
	t.Helper()
	s, ok := findService(e.status(t), name)
	if !ok {
		t.Fatalf("service %s not in the status", name)
	}
	return s
}

// Claude Code -p with the default config prints the fake answer: its
// max_tokens of 64000 is not refused against the default 8000 output
// tokens a minute, and its HEAD / takes no permit.
func TestClaudeCodeThroughQuotabar(t *testing.T) {
	npm := npmDir(t, "claude")
	fp := &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 12, OutputTokens: 7}
	e, _ := clientEnv(t, fp, nil)
	out := runClient(t, e, npm, []string{"ANTHROPIC_API_KEY=sk-ant-fake-key"}, "--", "claude", "-p", "say the answer")
	if !strings.Contains(out, fakeAnswer) {
		t.Fatalf("claude -p printed %q; want the fake answer %q", out, fakeAnswer)
	}
	st := fp.Stats()
	calls := st.Paths["POST /v1/messages"]
	if calls == 0 {
		t.Fatalf("the fake provider saw no /v1/messages: %v", st.Paths)
	}
	testenv.WaitFor(t, 10*time.Second, "one permit per model call, none for HEAD /", func() bool {
		s := serviceOf(t, e, "anthropic")
		return s.InFlight == 0 && s.Counters.Granted == int64(calls)
	})
	t.Logf("Claude Code: %d model calls, paths %v", calls, st.Paths)
}
