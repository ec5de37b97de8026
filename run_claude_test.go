package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/quotabar/quotabar/ipc/wire"
)

func TestClaudeEnv(t *testing.T) {
	info := wire.ProxyInfo{URL: "http://127.0.0.1:7878", Token: "tok", Services: []wire.ProxyServiceInfo{
		{Name: "anthropic", Preset: "anthropic"}, {Name: "max", Preset: "claude"},
	}}
	base := []string{"HOME=/h", "ANTHROPIC_BASE_URL=" + info.AgentURL("a", "anthropic")}
	got := claudeEnv("/usr/local/bin/claude", base, info, "a", "high")
	if want := "ANTHROPIC_BASE_URL=" + info.AgentURL("a~high", "max"); !slices.Contains(got, want) || len(got) != 2 {
		t.Errorf("Claude Code's env %q, want %q in place of the anthropic one", got, want)
	}
	if got := claudeEnv("python3", base, info, "a", ""); !slices.Equal(got, base) {
		t.Errorf("another command's env changed: %q", got)
	}
	info.Services = info.Services[:1]
	if got := claudeEnv("claude", base, info, "a", ""); !slices.Equal(got, base) {
		t.Errorf("without a claude service the env changed: %q", got)
	}
}

// Codex signed in with ChatGPT uses a service of preset codex as it does
// one of preset chatgpt (the same preset by the tool's name).
func TestCodexPresetAlias(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "auth.json"), []byte(`{"auth_mode":"chatgpt","tokens":{"access_token":"x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	info := wire.ProxyInfo{URL: "http://127.0.0.1:7878", Token: "tok", Services: []wire.ProxyServiceInfo{
		{Name: "openai", Preset: "openai"}, {Name: "plan", Preset: "codex"},
	}}
	got, err := codexCommand([]string{"codex", "exec"}, []string{"CODEX_HOME=" + home}, info, "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := `openai_base_url="http://127.0.0.1:7878/t/tok/a/plan"`; !slices.Contains(got, want) {
		t.Fatalf("codex command %q, want %s", got, want)
	}
}
