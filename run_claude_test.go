package main

import (
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
