package mcpserver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
)

func TestAgentName(t *testing.T) {
	for _, name := range []string{"", "has space", strings.Repeat("a", 65), "ünï"} {
		if _, err := New(Options{Agent: name}); err == nil || !strings.Contains(err.Error(), "1 to 64 characters of A-Z a-z 0-9 . _ -") {
			t.Errorf("New(agent %q) = %v, want an error naming what is allowed", name, err)
		}
	}
	if _, err := New(Options{Agent: "claude-code.1_x"}); err != nil {
		t.Errorf("New(agent claude-code.1_x) = %v", err)
	}
}

func TestStatusText(t *testing.T) {
	got := statusText(Status{Agent: "a", Share: 0.5, Services: []ServiceStatus{
		{Name: "openai", State: "cooldown", CooldownSeconds: 4.1, Limits: []LimitStatus{{Unit: "requests", Left: 0, Quota: 500, Window: "1m", ResetsSeconds: 38}}, Queued: 2, Fallback: "on"},
		{Name: "gh", State: "ok", Limits: []LimitStatus{}},
	}})
	want := "agent a (share 50%)\n" +
		"openai: cooldown 4.1s; 0/500 requests per 1m left (resets in 38s); 2 queued; web fallback on\n" +
		"gh: ok; limits not known yet (learned from the provider's headers)"
	if got != want {
		t.Errorf("statusText =\n%s\nwant\n%s", got, want)
	}
}

// TestDaemonDownInMemory runs the server over the SDK's in-memory
// transport against a socket nothing listens on: every tool answers with
// a tool error the model can read, never a protocol error.
func TestDaemonDownInMemory(t *testing.T) {
	srv, err := New(Options{Agent: "a", Client: &ipc.Client{SocketPath: filepath.Join(testenv.ShortTempDir(t), "none.sock")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"quota_status", nil},
		{"wait_for_quota", map[string]any{"service": "x"}},
		{"open_web_fallback", map[string]any{"service": "x"}},
		{"close_web_fallback", map[string]any{"service": "x", "target_id": "t"}},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if err != nil {
			t.Fatalf("%s: protocol error %v", tc.tool, err)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		if !res.IsError || !strings.Contains(text, "quotabar is not reachable") {
			t.Errorf("%s = %q (error %v), want a tool error saying quotabar is not reachable", tc.tool, text, res.IsError)
		}
	}
}

func TestUntrustedSocketIsNamed(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := toolError(func() error {
		_, err := (&ipc.Client{SocketPath: filepath.Join(dir, "q.sock")}).Status(context.Background())
		return err
	}())
	if !strings.Contains(err.Error(), "quotabar's socket is not trusted") || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("toolError = %v, want the untrusted socket named with its fix", err)
	}
}
