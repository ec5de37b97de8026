package main

import (
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeprovider"
	"github.com/quotabar/quotabar/internal/testenv"
)

// claudeOAuthToken is shaped like a Claude Pro/Max OAuth token.
const claudeOAuthToken = "sk-ant-oat01-Zq3xW9vK2mN7pL4tR8yB1cD6fG0hJ5kS-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP-QRSTUVWXAA"

// The real Claude Code, signed in with an OAuth token, through `quotabar
// run` to a fake provider whose answers carry unified window headers: the
// claude service's 5-hour window climbs with its calls, the token reaches
// the provider, and no log has it.
func TestClaudeCodeSubscriptionWindows(t *testing.T) {
	npm := npmDir(t, "claude")
	var calls atomic.Int32
	reset5 := time.Now().Add(2 * time.Hour).Unix()
	reset7 := time.Now().Add(80 * time.Hour).Unix()
	fp := &fakeprovider.Provider{Answer: fakeAnswer, InputTokens: 12, OutputTokens: 7, Headers: func(path string) map[string]string {
		if !strings.HasSuffix(path, "/v1/messages") {
			return nil
		}
		n := calls.Add(1)
		return map[string]string{
			"anthropic-ratelimit-unified-status":         "allowed",
			"anthropic-ratelimit-unified-5h-utilization": strconv.FormatFloat(0.1*float64(n), 'f', 2, 64),
			"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(reset5, 10),
			"anthropic-ratelimit-unified-7d-utilization": "0.31",
			"anthropic-ratelimit-unified-7d-reset":       strconv.FormatInt(reset7, 10),
		}
	}}
	up := httptest.NewServer(fp)
	defer up.Close()
	e := newEnv(t)
	config := fmt.Sprintf("[proxy]\nlisten = \"127.0.0.1:0\"\n\n[services.anthropic]\npreset = \"anthropic\"\nbase_url = %q\n\n[services.claude]\npreset = \"claude\"\nbase_url = %q\nreserve_high = 0.10\n", up.URL, up.URL)
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d := e.start(t, nil, "serve", "--log-level", "debug")
	out := runClient(t, e, npm, []string{"CLAUDE_CODE_OAUTH_TOKEN=" + claudeOAuthToken}, "--agent", "lead", "--", "claude", "-p", "say the answer")
	if !strings.Contains(out, fakeAnswer) {
		t.Fatalf("claude -p printed %q; want the fake answer %q", out, fakeAnswer)
	}
	n := calls.Load()
	if n == 0 {
		t.Fatalf("no /v1/messages reached the provider: %v", fp.Stats().Paths)
	}
	if auth := fp.Stats().Authorization; auth != "Bearer "+claudeOAuthToken {
		t.Errorf("the provider saw Authorization %q, want the OAuth bearer as Claude Code sent it", auth)
	}
	testenv.WaitFor(t, 10*time.Second, "the claude service's 5-hour window", func() bool {
		s := serviceOf(t, e, "claude")
		for _, w := range s.Windows {
			if w.Name == "5h" && w.Utilization != nil && math.Abs(*w.Utilization-0.1*float64(n)) < 1e-9 && w.Requests == int64(n) {
				return len(w.Agents) == 1 && w.Agents[0].Agent == "lead"
			}
		}
		return false
	})
	if s := serviceOf(t, e, "anthropic"); s.Counters.Granted != 0 {
		t.Errorf("the anthropic service took %d calls; Claude Code's should go to claude", s.Counters.Granted)
	}
	for _, secret := range []string{"sk-ant-oat01", claudeOAuthToken[30:60]} {
		if strings.Contains(d.logs.String(), secret) {
			t.Fatalf("the daemon's log has the OAuth token:\n%s", d.logs)
		}
	}
	t.Logf("Claude Code: %d model calls, paths %v", n, fp.Stats().Paths)
}
