package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/ipc/wire"
)

// Codex reads its base URL only from the openai_base_url config key, in
// both sign-in modes (issue 12 item 2).
func TestCodexCommand(t *testing.T) {
	info := wire.ProxyInfo{Enabled: true, URL: "http://127.0.0.1:7878", Token: "tok",
		Services: []wire.ProxyServiceInfo{{Name: "openai", Preset: "openai"}, {Name: "chatgpt", Preset: "chatgpt"}}}
	chatgptHome := t.TempDir()
	if err := os.WriteFile(filepath.Join(chatgptHome, "auth.json"), []byte(`{"auth_mode":"chatgpt","OPENAI_API_KEY":null,"tokens":{"access_token":"x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	legacyHome := t.TempDir() // no auth_mode: tokens and no key mean ChatGPT
	if err := os.WriteFile(filepath.Join(legacyHome, "auth.json"), []byte(`{"tokens":{"id_token":"x"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"API key", []string{"CODEX_API_KEY=sk-x", "CODEX_HOME=" + chatgptHome}, `openai_base_url="http://127.0.0.1:7878/t/tok/a~high/openai/v1"`},
		{"ChatGPT sign-in", []string{"CODEX_HOME=" + chatgptHome}, `openai_base_url="http://127.0.0.1:7878/t/tok/a~high/chatgpt"`},
		{"ChatGPT sign-in, older auth.json", []string{"HOME=" + filepath.Dir(legacyHome), "CODEX_HOME=" + legacyHome}, `openai_base_url="http://127.0.0.1:7878/t/tok/a~high/chatgpt"`},
		{"not signed in", []string{"HOME=" + t.TempDir()}, `openai_base_url="http://127.0.0.1:7878/t/tok/a~high/openai/v1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codexCommand([]string{"/usr/bin/codex", "exec", "hi"}, tt.environ, info, "a~high")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"/usr/bin/codex", "-c", tt.want, "exec", "hi"}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	noChatGPT := info
	noChatGPT.Services = info.Services[:1]
	_, err := codexCommand([]string{"codex"}, []string{"CODEX_HOME=" + chatgptHome}, noChatGPT, "a")
	if err == nil || !strings.Contains(err.Error(), `preset = "chatgpt"`) {
		t.Errorf("ChatGPT sign-in without a chatgpt service: %v; want an error naming the preset to add", err)
	}
	if !isCodex("/home/u/.npm/bin/codex") || isCodex("codexx") || isCodex("claude") {
		t.Error("isCodex")
	}
}
