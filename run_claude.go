package main

import (
	"path/filepath"
	"strings"

	"github.com/quotabar/quotabar/ipc/wire"
)

// claudeEnv points Claude Code at the service of preset "claude" (its
// subscription traffic, with the plan's windows) when one is configured:
// ANTHROPIC_BASE_URL otherwise names the "anthropic" service, the API-key
// traffic of the SDKs. Other commands, and configs without a claude
// service, keep env as it is.
func claudeEnv(command string, env []string, info wire.ProxyInfo, agent, priority string) []string {
	if filepath.Base(command) != "claude" {
		return env
	}
	service := ""
	for _, s := range info.Services {
		if s.Preset == "claude" && (service == "" || s.Name == "claude") {
			service = s.Name
		}
	}
	if service == "" {
		return env
	}
	seg := agent
	if priority != "" {
		seg += "~" + priority
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "ANTHROPIC_BASE_URL=") {
			out = append(out, kv)
		}
	}
	return append(out, "ANTHROPIC_BASE_URL="+info.AgentURL(seg, service))
}
