package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/quotabar/quotabar/ipc/wire"
)

// Codex (0.171 and later) reads no base-URL variable: its model calls go to
// the `openai_base_url` config key, in both of its sign-in modes (an API
// key from CODEX_API_KEY, or a ChatGPT sign-in, whose calls go to the
// ChatGPT backend instead of api.openai.com). So `quotabar run -- codex ...`
// passes that key on the command line, `-c openai_base_url="..."` before
// Codex's own arguments (a -c of the caller's, later, still wins), pointing
// at the proxy's service for the sign-in mode Codex will use.

// isCodex reports whether command runs Codex.
func isCodex(command string) bool {
	b := filepath.Base(command)
	return b == "codex" || b == "codex.js"
}

// codexMode is how Codex will authenticate: "apikey" when CODEX_API_KEY is
// set, "chatgpt" when its auth.json holds a ChatGPT sign-in, else "apikey"
// (Codex then asks for a key or a sign-in itself).
func codexMode(environ []string) string {
	get := func(k string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	if get("CODEX_API_KEY") != "" {
		return "apikey"
	}
	home := get("CODEX_HOME")
	if home == "" {
		h := get("HOME")
		if h == "" {
			return "apikey"
		}
		home = filepath.Join(h, ".codex")
	}
	b, err := os.ReadFile(filepath.Join(home, "auth.json"))
	if err != nil {
		return "apikey"
	}
	var auth struct {
		AuthMode string          `json:"auth_mode"`
		APIKey   string          `json:"OPENAI_API_KEY"`
		Tokens   json.RawMessage `json:"tokens"`
	}
	if json.Unmarshal(b, &auth) != nil {
		return "apikey"
	}
	switch strings.ToLower(auth.AuthMode) {
	case "chatgpt", "chatgptauthtokens":
		return "chatgpt"
	case "":
		if auth.APIKey == "" && len(auth.Tokens) > 0 && string(auth.Tokens) != "null" {
			return "chatgpt"
		}
	}
	return "apikey"
}

// codexCommand is command with Codex pointed at the proxy: the service of
// preset "openai" (base URL with /v1) for an API key, of preset "chatgpt"
// for a ChatGPT sign-in. seg is the agent segment of the URL.
func codexCommand(command []string, environ []string, info wire.ProxyInfo, seg string) ([]string, error) {
	mode := codexMode(environ)
	preset, suffix := "openai", "/v1"
	if mode == "chatgpt" {
		preset, suffix = "chatgpt", ""
	}
	service := ""
	for _, s := range info.Services {
		// "codex" is the same preset as "chatgpt", by the tool's name.
		match := s.Preset == preset || (preset == "chatgpt" && s.Preset == "codex")
		if match && (service == "" || s.Name == s.Preset) {
			service = s.Name
		}
	}
	if service == "" {
		if mode == "chatgpt" {
			return nil, fmt.Errorf("quotabar run: Codex is signed in with ChatGPT, and no service with preset = \"codex\" or preset = \"chatgpt\" is configured; add [services.codex] with preset = \"codex\" to the config (or set CODEX_API_KEY to use an API key through the \"openai\" preset)")
		}
		return nil, fmt.Errorf("quotabar run: Codex with an API key needs a service with preset = \"openai\" and a base_url; add [services.openai] with preset = \"openai\" to the config")
	}
	url := info.AgentURL(seg, service) + suffix
	out := make([]string, 0, len(command)+2)
	out = append(out, command[0], "-c", "openai_base_url="+strconv.Quote(url))
	return append(out, command[1:]...), nil
}
