package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/mcpserver"
)

// mcpSession starts `quotabar mcp` as an MCP client starts it, a
// subprocess speaking over its stdin and stdout, and connects the go-sdk
// client to it.
func (e *env) mcpSession(t *testing.T, agent string) *mcp.ClientSession {
	t.Helper()
	cs, _ := e.mcpSessionLog(t, agent)
	return cs
}

// mcpSessionLog is mcpSession that also returns the server's stderr (its log).
func (e *env) mcpSessionLog(t *testing.T, agent string) (*mcp.ClientSession, *testenv.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, "mcp", "--agent", agent)
	cmd.Env = e.environ()
	stderr := &testenv.Buffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "quotabar-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connecting to quotabar mcp: %v\n%s", err, stderr)
	}
	t.Cleanup(func() {
		cs.Close()
		if t.Failed() {
			t.Logf("quotabar mcp stderr:\n%s", stderr)
		}
	})
	return cs, stderr
}

// callTool calls a tool and decodes its structured answer into out. It
// returns the result's text and whether it is an error.
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any, out any) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	var text []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			text = append(text, tc.Text)
		}
	}
	if out != nil && !res.IsError {
		data, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: structured content %s: %v", name, data, err)
		}
	}
	return strings.Join(text, "\n"), res.IsError
}

func TestMCPToolsOverStdio(t *testing.T) {
	e := newEnv(t)
	e.serve(t)
	cs := e.mcpSession(t, "mcp-agent")
	ctx := context.Background()

	t.Run("tools/list", func(t *testing.T) {
		var names []string
		for tool, err := range cs.Tools(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, tool.Name)
			if len(tool.Description) < 80 || !strings.Contains(strings.ToLower(tool.Description), "call") {
				t.Errorf("tool %s: description %q does not say when to call it", tool.Name, tool.Description)
			}
		}
		slices.Sort(names)
		want := []string{"close_web_fallback", "open_web_fallback", "quota_status", "wait_for_quota"}
		if !slices.Equal(names, want) {
			t.Fatalf("tools = %v, want %v", names, want)
		}
	})

	t.Run("quota_status", func(t *testing.T) {
		// Use some of svc's quota first, so that what is left shows.
		e.must(t, "acquire", "--agent", "other", "--service", "svc", "--requests", "10")
		var st mcpserver.Status
		text, isErr := callTool(t, cs, "quota_status", nil, &st)
		if isErr {
			t.Fatalf("quota_status failed: %s", text)
		}
		i := slices.IndexFunc(st.Services, func(s mcpserver.ServiceStatus) bool { return s.Name == "svc" })
		if i < 0 || st.Agent != "mcp-agent" {
			t.Fatalf("quota_status = %+v, want agent mcp-agent and service svc", st)
		}
		svc := st.Services[i]
		if svc.State != "ok" || len(svc.Limits) != 1 || svc.Limits[0].Left != 990 || svc.Limits[0].Quota != 1000 || svc.Limits[0].Window != "1m" || svc.Fallback != "off" {
			t.Errorf("svc = %+v, want ok, 990/1000 requests per 1m left, fallback off", svc)
		}
		if st.Share <= 0 || st.Share > 1 {
			t.Errorf("share = %v, want in (0, 1]", st.Share)
		}
		if !strings.Contains(text, "svc: ok; 990/1000 requests per 1m left") {
			t.Errorf("text = %q, want the compact line for svc", text)
		}
		// One service only, and an unknown one named.
		text, _ = callTool(t, cs, "quota_status", map[string]any{"service": "one"}, &st)
		if len(st.Services) != 1 || st.Services[0].Name != "one" {
			t.Errorf("quota_status(one) = %+v, text %q", st, text)
		}
		text, isErr = callTool(t, cs, "quota_status", map[string]any{"service": "nope"}, nil)
		if !isErr || !strings.Contains(text, `"nope" is not configured`) || !strings.Contains(text, "svc") {
			t.Errorf("quota_status(nope) = %q (error %v), want an error listing the configured services", text, isErr)
		}
	})

	t.Run("wait returns when the cooldown ends", func(t *testing.T) {
		// The daemon is asked directly (not through the CLI) so that the
		// wait starts well inside the cooldown.
		c := &ipc.Client{SocketPath: e.socket}
		defer c.CloseIdleConnections()
		rep, err := c.Report(ctx, wire.ReportRequest{Agent: "other", Service: "cool", Status: 429, Headers: map[string]string{"retry-after": "3"}})
		if err != nil || rep.CooldownUntil == nil {
			t.Fatalf("report 429 = %+v, %v; want a cooldown", rep, err)
		}
		var st mcpserver.Status
		callTool(t, cs, "quota_status", map[string]any{"service": "cool"}, &st)
		if len(st.Services) != 1 || st.Services[0].State != "cooldown" || st.Services[0].CooldownSeconds <= 0 {
			t.Fatalf("status after a 429 = %+v, want cool in a cooldown", st)
		}
		before, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var w mcpserver.Wait
		text, isErr := callTool(t, cs, "wait_for_quota", map[string]any{"service": "cool", "max_wait_seconds": 30}, &w)
		if isErr || !w.Granted {
			t.Fatalf("wait_for_quota = %+v (%q), want granted", w, text)
		}
		if early := time.Until(*rep.CooldownUntil); early > 0 || w.WaitedSeconds <= 0 {
			t.Errorf("the wait returned %v before the cooldown ended (waited %vs)", early, w.WaitedSeconds)
		}
		// No lease is left behind, and without reserve nothing is used.
		after, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := findService(before, "cool")
		a, _ := findService(after, "cool")
		if a.InFlight != 0 || a.Limits[0].Remaining != b.Limits[0].Remaining {
			t.Errorf("after the wait: in flight %d, remaining %d (before %d): want 0 in flight and nothing used", a.InFlight, a.Limits[0].Remaining, b.Limits[0].Remaining)
		}
		// reserve=true counts the call.
		callTool(t, cs, "wait_for_quota", map[string]any{"service": "cool", "reserve": true}, &w)
		after, err = c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a, _ = findService(after, "cool")
		if !w.Granted || a.InFlight != 0 || a.Limits[0].Remaining != b.Limits[0].Remaining-1 {
			t.Errorf("reserve: granted %v, in flight %d, remaining %d, want granted, 0, %d", w.Granted, a.InFlight, a.Limits[0].Remaining, b.Limits[0].Remaining-1)
		}
	})

	t.Run("wait says why not and when", func(t *testing.T) {
		e.must(t, "acquire", "--agent", "other", "--service", "one")
		var w mcpserver.Wait
		text, isErr := callTool(t, cs, "wait_for_quota", map[string]any{"service": "one", "max_wait_seconds": 0.2}, &w)
		if isErr || w.Granted || w.Reason != "timeout" || w.RetryAfterSeconds <= 0 || w.RetryAt == "" {
			t.Fatalf("wait_for_quota(one) = %+v (%q), want refused with reason timeout and a retry time", w, text)
		}
		if !strings.Contains(text, "not yet: timeout") {
			t.Errorf("text = %q", text)
		}
		// 0 answers at once.
		start := time.Now()
		callTool(t, cs, "wait_for_quota", map[string]any{"service": "one", "max_wait_seconds": 0}, &w)
		if w.Granted || w.Reason != "timeout" || time.Since(start) > 5*time.Second {
			t.Errorf("wait_for_quota(one, 0) = %+v after %v, want refused at once", w, time.Since(start))
		}
	})

	t.Run("a cancelled wait leaves the queue", func(t *testing.T) {
		// "one" is used up by the subtest before: this wait queues.
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "wait_for_quota", Arguments: map[string]any{"service": "one", "max_wait_seconds": 300}})
			done <- err
		}()
		c := &ipc.Client{SocketPath: e.socket}
		defer c.CloseIdleConnections()
		queued := func() int {
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := findService(st, "one")
			return s.Queued
		}
		testenv.WaitFor(t, 10*time.Second, "the wait to queue", func() bool { return queued() == 1 })
		cancel() // the go-sdk client sends notifications/cancelled
		if err := <-done; err == nil {
			t.Error("the cancelled call returned no error")
		}
		testenv.WaitFor(t, 10*time.Second, "the cancelled wait to leave the queue", func() bool { return queued() == 0 })
	})

	t.Run("bad arguments", func(t *testing.T) {
		for _, tc := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"wait_for_quota", map[string]any{"service": "svc", "max_wait_seconds": 601}, "max_wait_seconds 601: use 0 (answer at once) to 600"},
			{"wait_for_quota", map[string]any{"service": "svc", "priority": "urgent"}, `priority "urgent": use high, normal or low`},
			{"wait_for_quota", map[string]any{"service": "opneai"}, `unknown_service`},
			{"close_web_fallback", map[string]any{"service": "svc"}, "exactly one of target_id or session_id"},
		} {
			text, isErr := callTool(t, cs, tc.tool, tc.args, nil)
			if !isErr || !strings.Contains(text, tc.want) {
				t.Errorf("%s(%v) = %q (error %v), want an error containing %q", tc.tool, tc.args, text, isErr, tc.want)
			}
		}
	})

	t.Run("fallback off is refused clearly", func(t *testing.T) {
		text, isErr := callTool(t, cs, "open_web_fallback", map[string]any{"service": "svc"}, nil)
		if !isErr || !strings.Contains(text, "switched off") || !strings.Contains(text, "only the person can switch it on") {
			t.Fatalf("open_web_fallback(svc, off) = %q (error %v), want a clear refusal", text, isErr)
		}
		text, isErr = callTool(t, cs, "open_web_fallback", map[string]any{"service": "cool"}, nil)
		if !isErr || !strings.Contains(text, "not_found") {
			t.Errorf("open_web_fallback(cool, none configured) = %q (error %v), want not_found", text, isErr)
		}
	})
}

func TestMCPDaemonDown(t *testing.T) {
	e := newEnv(t)
	cs := e.mcpSession(t, "a")
	text, isErr := callTool(t, cs, "quota_status", nil, nil)
	if !isErr || !strings.Contains(text, "quotabar is not reachable") {
		t.Fatalf("quota_status without a daemon = %q (error %v), want a clear error", text, isErr)
	}
}

func TestMCPBadAgent(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "mcp", "--agent", "no spaces")
	if r.code == 0 || !strings.Contains(r.stderr, "1 to 64 characters") {
		t.Fatalf("mcp --agent 'no spaces': exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestMCPWebFallbackInChromium opens a service's web fallback through the
// MCP tool in a headless Chromium and attaches to the tab through the
// endpoint the tool returned, as Playwright MCP or chromedp would.
func TestMCPWebFallbackInChromium(t *testing.T) {
	chrome := testenv.LookPath(t, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>web-chat</title><body>chat</body>")
	}))
	defer site.Close()
	e := newEnv(t)
	e.writeConfigFile(t, fmt.Sprintf(`chrome_path = %q

[proxy]
enabled = false

[services.web]
limits = ["1 requests/1h"]
fallback = { browser = "chrome", url = %q, enabled = true, headless = true }
`, chrome, site.URL+"/chat"))
	d := e.serve(t)
	// Stop the daemon the way a person does, so that it stops its Chromium
	// before the test's directory (the browser profile) is removed.
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.wait(t)
	})

	t.Run("go-sdk client", func(t *testing.T) {
		cs, serverLog := e.mcpSessionLog(t, "browser-agent")
		var fb mcpserver.Fallback
		text, isErr := callTool(t, cs, "open_web_fallback", map[string]any{"service": "web"}, &fb)
		if isErr || fb.Browser != "chrome" || fb.CDPURL == "" || fb.TargetID == "" {
			t.Fatalf("open_web_fallback = %+v (%q), want a Chrome endpoint", fb, text)
		}
		if !strings.Contains(text, "--cdp-endpoint "+fb.CDPURL) {
			t.Errorf("text %q does not say how to attach", text)
		}
		if title := attachTitle(t, fb); title != "web-chat" {
			t.Errorf("title = %q, want web-chat", title)
		}
		var closed mcpserver.Closed
		text, isErr = callTool(t, cs, "close_web_fallback", map[string]any{"service": "web", "target_id": fb.TargetID}, &closed)
		if isErr || !closed.Closed {
			t.Fatalf("close_web_fallback = %q (error %v)", text, isErr)
		}
		if s, _ := findService(e.status(t), "web"); s.Fallback == nil || s.Fallback.OpenSessions != 0 {
			t.Errorf("after close the fallback is %+v, want no open session", s.Fallback)
		}
		// The endpoint carries the relay's secret: it goes to the agent
		// that asked, never into the server's log.
		cs.Close()
		if u, _ := url.Parse(fb.CDPURL); u == nil || len(u.Path) < 2 || strings.Contains(serverLog.String(), strings.Split(u.Path[1:], "/")[0]) {
			t.Errorf("the server's log holds the endpoint's secret (%s):\n%s", fb.CDPURL, serverLog)
		}
	})

	t.Run("MCP Inspector", func(t *testing.T) {
		inspector := inspectorBin(t)
		var open struct {
			IsError           bool               `json:"isError"`
			StructuredContent mcpserver.Fallback `json:"structuredContent"`
		}
		e.inspector(t, inspector, &open, "--method", "tools/call", "--tool-name", "open_web_fallback", "--tool-arg", "service=web")
		fb := open.StructuredContent
		if open.IsError || fb.CDPURL == "" || fb.TargetID == "" {
			t.Fatalf("open_web_fallback through the inspector = %+v", open)
		}
		if title := attachTitle(t, fb); title != "web-chat" {
			t.Errorf("title = %q, want web-chat", title)
		}
		var closed struct {
			IsError bool `json:"isError"`
		}
		e.inspector(t, inspector, &closed, "--method", "tools/call", "--tool-name", "close_web_fallback", "--tool-arg", "service=web", "--tool-arg", "target_id="+fb.TargetID)
		if closed.IsError {
			t.Fatal("close_web_fallback through the inspector failed")
		}
	})
}

// attachTitle attaches to the opened tab through the endpoint the tool
// returned, as chromedp (or Playwright's connectOverCDP) would, and reads
// its title.
func attachTitle(t *testing.T, fb mcpserver.Fallback) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := remote.NewAllocator(ctx, fb.CDPURL)
	defer cancelAlloc()
	tctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithTargetID(target.ID(fb.TargetID)), chromedp.WithDetachOnCancel())
	defer cancelTab()
	if err := chromedp.Do(tctx, chromedp.WaitReady("body")); err != nil {
		t.Fatalf("attaching to %s: %v", fb.CDPURL, err)
	}
	title, err := chromedp.Run(tctx, chromedp.Title())
	if err != nil {
		t.Fatalf("reading the title through %s: %v", fb.CDPURL, err)
	}
	return title
}

// writeConfigFile replaces the env's configuration file.
func (e *env) writeConfigFile(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(e.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// inspectorBin is the MCP Inspector's CLI that ./build.sh test installs
// (install_npm_packages).
func inspectorBin(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.NPMDir(t, "@modelcontextprotocol/inspector"), "node_modules", ".bin", "mcp-inspector")
}

// inspector runs the MCP Inspector's CLI (an MCP client nobody here wrote)
// against `quotabar mcp` and decodes its JSON answer into out.
func (e *env) inspector(t *testing.T, inspector string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, inspector, append([]string{"--cli", binary, "mcp", "--agent", "inspector"}, args...)...)
	cmd.Env = e.environ()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcp-inspector %v: %v\nstdout: %s\nstderr: %s", args, err, stdout, stderr.String())
	}
	// The inspector may print a notice before the JSON.
	i := strings.IndexByte(string(stdout), '{')
	if i < 0 {
		t.Fatalf("mcp-inspector %v printed no JSON: %s", args, stdout)
	}
	if err := json.Unmarshal(stdout[i:], out); err != nil {
		t.Fatalf("mcp-inspector %v: %v\n%s", args, err, stdout)
	}
}

// TestMCPInspectorCLI drives `quotabar mcp` with the MCP Inspector's CLI
// (./build.sh test installs it; see install_npm_packages there).
func TestMCPInspectorCLI(t *testing.T) {
	inspector := inspectorBin(t)
	e := newEnv(t)
	e.serve(t)

	var list struct {
		Tools []struct {
			Name        string         `json:"name"`
			Description string         `json:"description"`
			InputSchema map[string]any `json:"inputSchema"`
		} `json:"tools"`
	}
	e.inspector(t, inspector, &list, "--method", "tools/list")
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema["type"] != "object" {
			t.Errorf("tool %s: input schema %v, want an object schema", tool.Name, tool.InputSchema)
		}
	}
	slices.Sort(names)
	if want := []string{"close_web_fallback", "open_web_fallback", "quota_status", "wait_for_quota"}; !slices.Equal(names, want) {
		t.Fatalf("the inspector lists %v, want %v", names, want)
	}

	type result[T any] struct {
		IsError           bool `json:"isError"`
		StructuredContent T    `json:"structuredContent"`
	}
	var st result[mcpserver.Status]
	e.inspector(t, inspector, &st, "--method", "tools/call", "--tool-name", "quota_status")
	if s, ok := func() (mcpserver.ServiceStatus, bool) {
		for _, s := range st.StructuredContent.Services {
			if s.Name == "svc" {
				return s, true
			}
		}
		return mcpserver.ServiceStatus{}, false
	}(); st.IsError || !ok || s.State != "ok" || len(s.Limits) != 1 || s.Limits[0].Quota != 1000 || st.StructuredContent.Agent != "inspector" {
		t.Fatalf("quota_status through the inspector = %+v", st)
	}

	c := &ipc.Client{SocketPath: e.socket}
	defer c.CloseIdleConnections()
	rep, err := c.Report(context.Background(), wire.ReportRequest{Agent: "other", Service: "cool", Status: 429, Headers: map[string]string{"retry-after": "5"}})
	if err != nil || rep.CooldownUntil == nil {
		t.Fatalf("report 429 = %+v, %v; want a cooldown", rep, err)
	}
	var w result[mcpserver.Wait]
	e.inspector(t, inspector, &w, "--method", "tools/call", "--tool-name", "wait_for_quota", "--tool-arg", "service=cool", "--tool-arg", "max_wait_seconds=30")
	if w.IsError || !w.StructuredContent.Granted || time.Now().Before(*rep.CooldownUntil) {
		t.Fatalf("wait_for_quota through the inspector = %+v at %v, want granted after the cooldown (until %v)", w, time.Now(), rep.CooldownUntil)
	}
}

// TestMCPWebFallbackInWebKit: for a WebKit fallback the tool returns the
// WebDriver session, which the agent drives with plain WebDriver HTTP.
func TestMCPWebFallbackInWebKit(t *testing.T) {
	testenv.LookPath(t, "WebKitWebDriver")
	testenv.StartXvfb(t)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<!doctype html><title>web-chat</title><body>chat</body>")
	}))
	defer site.Close()
	e := newEnv(t)
	e.writeConfigFile(t, fmt.Sprintf("[proxy]\nenabled = false\n\n[services.web]\nlimits = [\"1 requests/1h\"]\nfallback = { browser = \"webkit\", url = %q, enabled = true }\n", site.URL+"/chat"))
	d := e.serve(t)
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.wait(t)
	})
	cs := e.mcpSession(t, "webkit-agent")
	var fb mcpserver.Fallback
	text, isErr := callTool(t, cs, "open_web_fallback", map[string]any{"service": "web"}, &fb)
	if isErr || fb.Browser != "webkit" || fb.WebDriverURL == "" || fb.SessionID == "" {
		t.Fatalf("open_web_fallback = %+v (%q), want a WebDriver session", fb, text)
	}
	if !strings.Contains(text, fb.SessionID) {
		t.Errorf("text %q does not name the session", text)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fb.WebDriverURL+"/session/"+fb.SessionID+"/title", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("WebDriver %s: %v", fb.WebDriverURL, err)
	}
	var title struct{ Value string }
	err = json.NewDecoder(resp.Body).Decode(&title)
	resp.Body.Close()
	if err != nil || title.Value != "web-chat" {
		t.Errorf("the session's title = %q (%v), want web-chat", title.Value, err)
	}
	var closed mcpserver.Closed
	if text, isErr := callTool(t, cs, "close_web_fallback", map[string]any{"service": "web", "session_id": fb.SessionID}, &closed); isErr || !closed.Closed {
		t.Fatalf("close_web_fallback = %q (error %v)", text, isErr)
	}
}
