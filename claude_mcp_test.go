package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// toolScript is a fake Anthropic Messages API that plays a model using
// quotabar's MCP tools: its first answer calls quota_status, its second
// wait_for_quota on "cool", its third repeats what the tools returned.
// Requests without quotabar's tools (Claude Code's side calls) get a short
// text.
type toolScript struct {
	mu      sync.Mutex
	results []string // the tool_result blocks Claude Code sent back
}

func (f *toolScript) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/messages") {
		return // HEAD /, and anything else: 200
	}
	var req struct {
		Tools    []struct{ Name string } `json:"tools"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	json.Unmarshal(body, &req)
	ours := false
	for _, t := range req.Tools {
		ours = ours || t.Name == "mcp__quotabar__quota_status"
	}
	var results []string
	for _, m := range req.Messages {
		var blocks []struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		json.Unmarshal(m.Content, &blocks)
		for _, b := range blocks {
			if b.Type == "tool_result" {
				results = append(results, string(b.Content))
			}
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(event string, v any) {
		data, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	}
	send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
		"model": "claude-fake", "content": []any{}, "stop_reason": nil, "usage": map[string]any{"input_tokens": 10, "output_tokens": 1}}})
	toolUse := func(name, input string) {
		send("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_%d", len(results)), "name": name, "input": map[string]any{}}})
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "input_json_delta", "partial_json": input}})
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "tool_use"}, "usage": map[string]any{"output_tokens": 5}})
	}
	text := "ok"
	switch {
	case ours && len(results) == 0:
		toolUse("mcp__quotabar__quota_status", `{}`)
	case ours && len(results) == 1:
		toolUse("mcp__quotabar__wait_for_quota", `{"service": "cool", "max_wait_seconds": 30}`)
	default:
		if ours {
			f.mu.Lock()
			f.results = results
			f.mu.Unlock()
			text = "the tools said: " + strings.Join(results, " | ")
		}
		send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": text}})
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn"}, "usage": map[string]any{"output_tokens": 5}})
	}
	send("message_stop", map[string]any{"type": "message_stop"})
}

// TestClaudeCodeCallsTheMCPTools runs Claude Code (npm, unmodified) in -p
// mode with `quotabar mcp` as its MCP server, as `claude mcp add quotabar
// -- quotabar mcp` sets it up, against a fake model that calls the tools:
// the status reaches the model, and a wait on a service in a cooldown
// answers that the agent may go on.
func TestClaudeCodeCallsTheMCPTools(t *testing.T) {
	claude := filepath.Join(npmDir(t, "claude"), "node_modules", ".bin", "claude")
	model := &toolScript{}
	fake := httptest.NewServer(model)
	defer fake.Close()
	e := newEnv(t)
	e.serve(t)
	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	rep, err := c.Report(context.Background(), wire.ReportRequest{Agent: "other", Service: "cool", Status: 429, Headers: map[string]string{"retry-after": "3"}})
	if err != nil || rep.CooldownUntil == nil {
		t.Fatalf("report 429 = %+v, %v; want a cooldown", rep, err)
	}

	mcpConfig := fmt.Sprintf(`{"mcpServers": {"quotabar": {"command": %q, "args": ["mcp", "--agent", "claude-code"]}}}`, binary)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, claude, "-p", "how much quota is left?", "--strict-mcp-config", "--mcp-config", mcpConfig,
		"--allowedTools", "mcp__quotabar__quota_status mcp__quotabar__wait_for_quota")
	cmd.Dir = home
	cmd.Env = append(e.environ(), "HOME="+home, "ANTHROPIC_BASE_URL="+fake.URL, "ANTHROPIC_API_KEY=sk-ant-fake-key",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "DISABLE_ERROR_REPORTING=1", "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("claude -p: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	model.mu.Lock()
	results := model.results
	model.mu.Unlock()
	if len(results) != 2 {
		t.Fatalf("the model got %d tool results, want 2 (quota_status, wait_for_quota); claude printed:\n%s", len(results), stdout.String())
	}
	// Claude Code hands the model the structured content when there is
	// one (else the text): either way it names the agent, the services, the
	// cooldown and what is left.
	if r := results[0]; !strings.Contains(r, "claude-code") || !strings.Contains(r, "svc") || !strings.Contains(r, "cooldown") || !strings.Contains(r, "1000") {
		t.Errorf("quota_status as the model saw it: %s", results[0])
	}
	if r := results[1]; !strings.Contains(r, "go ahead: cool has quota for you") || !strings.Contains(r, `granted\":true`) && !strings.Contains(r, `"granted":true`) {
		t.Errorf("wait_for_quota as the model saw it: %s", results[1])
	}
	if !strings.Contains(stdout.String(), "the tools said:") {
		t.Errorf("claude printed %q, want the model's last answer", stdout.String())
	}
	if a, ok := findAgent(e.status(t), "claude-code"); !ok || a.InFlight != 0 {
		t.Errorf("agent claude-code = %+v (found %v), want it registered with nothing in flight", a, ok)
	}
}
