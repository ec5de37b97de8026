package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// runCmd is `quotabar run`: it points a program's SDKs at the daemon's HTTP
// proxy through the environment, then becomes that program.
//
// It replaces itself with COMMAND (execve) rather than waiting for a child:
// signals then reach COMMAND exactly as they would without quotabar (a
// Ctrl-C from the terminal is delivered once, not once by the terminal and
// again by a forwarding parent, which interactive tools such as Claude Code
// read as "quit"), and COMMAND's exit status, or the signal that killed it,
// is what the caller sees.
type runCmd struct {
	Agent    string   `placeholder:"NAME" help:"Agent name for COMMAND's calls (default: the command's name and 4 random hex digits)."`
	Priority string   `placeholder:"high|normal|low" help:"Priority of COMMAND's calls: high, normal or low (default: the agent's configured priority)."`
	Command  []string `arg:"" passthrough:"partial" placeholder:"COMMAND" help:"The command to run, and its arguments (put them after --)."`
}

// Exit statuses of `quotabar run` when COMMAND could not be started, as
// env(1) and the shells use them.
const (
	exitCannotExec = 126
	exitNotFound   = 127
)

// presetEnv names the variables that set each preset's base URL in the
// SDKs and tools that read one, and what to add to the proxy URL: the
// OpenAI SDKs and Codex expect the /v1 in the base URL, the Anthropic SDKs
// and Claude Code append /v1/messages themselves.
var presetEnv = map[string]struct{ name, suffix string }{
	"openai":    {"OPENAI_BASE_URL", "/v1"},
	"anthropic": {"ANTHROPIC_BASE_URL", ""},
	"github":    {"GITHUB_API_URL", ""},
	"gemini":    {"GOOGLE_GEMINI_BASE_URL", ""},
}

func (c *runCmd) Run(g *globals) error {
	command := c.Command
	if len(command) > 0 && command[0] == "--" {
		command = command[1:] // kong keeps the -- that ends the flags
	}
	if len(command) == 0 {
		return errors.New("quotabar run: give the command to run after --, e.g. quotabar run -- claude")
	}
	socket, err := g.socketPath()
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(socket); err == nil {
		socket = abs // COMMAND may change directory
	}
	agent := c.Agent
	if agent == "" {
		agent = defaultAgent(command[0])
	} else if err := limiter.ValidName(agent); err != nil {
		return fmt.Errorf("--agent: %w", err)
	}

	priority := ""
	if c.Priority != "" {
		p, err := limiter.ParsePriority(c.Priority)
		if err != nil || p == limiter.PriorityUnset {
			return fmt.Errorf("--priority %q: use high, normal or low", c.Priority)
		}
		priority = p.String()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := fetchProxyInfo(ctx, socket)
	if err != nil {
		return clientError(err, socket)
	}
	if !info.Enabled {
		if info.Problem != "" {
			return fmt.Errorf("quotabar run: %s; fix it in the config and the daemon picks it up", info.Problem)
		}
		cfg, _ := g.configPath()
		return fmt.Errorf("quotabar run: the HTTP proxy is off; set enabled = true under [proxy] in %s", cfg)
	}

	path, err := exec.LookPath(command[0])
	if err != nil {
		code := exitNotFound
		if !errors.Is(err, exec.ErrNotFound) {
			code = exitCannotExec
		}
		return &exitError{code: code, msg: fmt.Sprintf("quotabar run: %v", err)}
	}
	env := runEnv(os.Environ(), info, agent, priority, socket)
	if isCodex(command[0]) {
		if command, err = codexCommand(command, env, info, agentSegment(agent, priority)); err != nil {
			return err
		}
	}
	err = syscall.Exec(path, command, claudeEnv(command[0], env, info, agent, priority))
	return &exitError{code: exitCannotExec, msg: fmt.Sprintf("quotabar run: cannot start %s: %v", path, err)}
}

// runEnv is environ with the proxy's base URLs for agent, QUOTABAR_AGENT,
// QUOTABAR_SOCKET and QUOTABAR_PROXY (the proxy URL of this agent, to which
// a program appends /<service>/<path> for services without a variable)
// set, replacing any earlier values.
//
// A priority travels in the URLs, as <agent>~<priority>: every call of
// COMMAND then has it, without a header the tool cannot send, and without
// changing the agent's saved priority, which outlives this run.
func runEnv(environ []string, info wire.ProxyInfo, agent, priority, socket string) []string {
	seg := agentSegment(agent, priority)
	set := map[string]string{
		"QUOTABAR_AGENT":  agent,
		"QUOTABAR_SOCKET": socket,
		"QUOTABAR_PROXY":  strings.TrimSuffix(info.AgentURL(seg, ""), "/"),
	}
	// One service per preset: the one named like the preset, else the
	// first configured.
	chosen := map[string]string{}
	for _, s := range info.Services {
		if _, ok := presetEnv[s.Preset]; !ok {
			continue
		}
		if _, taken := chosen[s.Preset]; !taken || s.Name == s.Preset {
			chosen[s.Preset] = s.Name
		}
	}
	for preset, service := range chosen {
		v := presetEnv[preset]
		set[v.name] = info.AgentURL(seg, service) + v.suffix
	}
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[k]; !replaced {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// agentSegment is the agent part of a proxy URL: NAME or NAME~PRIORITY.
func agentSegment(agent, priority string) string {
	if priority != "" {
		return agent + "~" + priority
	}
	return agent
}

// defaultAgent names an agent after its command, with a random suffix so
// that two runs of one tool are two agents with fair shares each.
func defaultAgent(command string) string {
	base := []byte(filepath.Base(command))
	for i, c := range base {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			base[i] = '-'
		}
	}
	name := strings.Trim(string(base), ".-")
	if name == "" {
		name = "agent"
	}
	if len(name) > 59 {
		name = name[:59]
	}
	var b [2]byte
	rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// fetchProxyInfo asks the daemon where its proxy is (GET /v1/proxy).
func fetchProxyInfo(ctx context.Context, socket string) (wire.ProxyInfo, error) {
	c := &ipc.Client{SocketPath: socket}
	defer c.CloseIdleConnections()
	info, err := c.Proxy(ctx)
	var ae *wire.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		ae.Message = "this quotabar daemon has no HTTP proxy (GET /v1/proxy: 404); update and restart it"
	}
	return info, err
}
