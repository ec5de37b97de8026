// Package mcpserver is quotabar's Model Context Protocol server: the tools an
// MCP-capable agent (Claude Code, Codex, Cursor, ...) calls to see its quota,
// wait for it, and borrow the web fallback's browser. It holds no state of
// its own: every tool is one or two calls to the running daemon over its
// socket, through the Go client.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
)

// Options configure a server.
type Options struct {
	// Client reaches the daemon; nil means a client that finds the socket
	// itself.
	Client *ipc.Client
	// Agent is the name the tools ask under (API.md "Names").
	Agent string
	// Version is announced to the MCP client.
	Version string
	// Logger gets the server's log; nil discards it. Over stdio the log
	// must go to stderr: stdout carries the protocol.
	Logger *slog.Logger
}

// DefaultMaxWait is wait_for_quota's wait when the agent names none: short
// enough for the tool-call timeouts of common MCP clients (Claude Code's is
// a minute or more), long enough to ride out a typical cooldown.
const DefaultMaxWait = 30 * time.Second

// MaxWait is the longest wait_for_quota accepts, the daemon's own bound
// (API.md: max_wait_ms at most 600000).
const MaxWait = 10 * time.Minute

var agentName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckAgent returns an error naming what is allowed when name is not a
// valid agent name.
func CheckAgent(name string) error {
	if !agentName.MatchString(name) {
		return fmt.Errorf("agent name %q: use 1 to 64 characters of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

// server carries what every tool handler needs.
type server struct {
	c     *ipc.Client
	agent string
	log   *slog.Logger
	now   func() time.Time
}

// New returns the MCP server with quotabar's four tools. Run it with
// Run(ctx, &mcp.StdioTransport{}).
func New(o Options) (*mcp.Server, error) {
	if err := CheckAgent(o.Agent); err != nil {
		return nil, err
	}
	s := &server{c: o.Client, agent: o.Agent, log: o.Logger, now: time.Now}
	if s.c == nil {
		s.c = &ipc.Client{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	version := o.Version
	if version == "" {
		version = wire.Version
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "quotabar", Title: "quotabar rate-limit coordinator", Version: version}, &mcp.ServerOptions{
		Instructions: "quotabar shares the API rate limits of this computer between the AI agents running on it. " +
			"Call quota_status before a burst of API calls or when a provider answered 429; " +
			"call wait_for_quota instead of sleeping when a service is cooling down; " +
			"when the API is exhausted and the person allowed it, open_web_fallback gives you a browser on the service's web interface.",
		Logger: s.log,
	})
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)}
	mcp.AddTool(srv, &mcp.Tool{
		Name:  "quota_status",
		Title: "Quota status",
		Description: "What is left of each API service's rate limits on this computer: per service the limits (left/quota per window, reset countdown), " +
			"a cooldown after a provider's 429, pauses, queues, whether a web fallback is on, and this agent's share. " +
			"Call it before starting a batch of API calls, when a call was rate limited, or to decide which service to use. " +
			"It only reads; it uses no quota.",
		Annotations: readOnly,
	}, s.quotaStatus)
	mcp.AddTool(srv, &mcp.Tool{
		Name:  "wait_for_quota",
		Title: "Wait for quota",
		Description: "Wait until quotabar lets this agent make a call to a service (it queues the agent fairly with the others), " +
			"up to max_wait_seconds. Returns granted=true when you may go on, or granted=false with the reason " +
			"(cooldown, timeout, paused, shed) and retry_after_seconds. Call it instead of sleeping after a 429 or when quota_status " +
			"shows a service cooling down or exhausted. By default it only waits and uses no quota; set reserve=true to count " +
			"the call you make next against the quota (when that call does not go through quotabar's proxy or `quotabar run`).",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: false, DestructiveHint: new(false), OpenWorldHint: new(false)},
	}, s.waitForQuota)
	mcp.AddTool(srv, &mcp.Tool{
		Name:  "open_web_fallback",
		Title: "Open the web fallback",
		Description: "When a service's API quota is exhausted and the person switched its web fallback on, open the service's web interface " +
			"(e.g. chatgpt.com) in the browser quotabar keeps signed in, and return how to drive it: for Chrome a cdp_url that " +
			"Playwright MCP's --cdp-endpoint, Puppeteer's browserWSEndpoint and chromedp's remote allocator accept (plus the tab's target_id), " +
			"for WebKit a webdriver_url and session_id. Call it only after wait_for_quota or quota_status says the API is out; " +
			"it fails with a clear message when the fallback is off. Call close_web_fallback when done.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: new(false), OpenWorldHint: new(true)},
	}, s.openFallback)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "close_web_fallback",
		Title:       "Close the web fallback",
		Description: "Close the tab or WebDriver session that open_web_fallback opened, with the target_id or session_id it returned. Call it as soon as you are done with the web interface.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: new(false), IdempotentHint: true, OpenWorldHint: new(false)},
	}, s.closeFallback)
	return srv, nil
}

// toolError turns a client error into the message the model reads: the
// daemon's own message (it names what was wrong), or how to start it.
func toolError(err error) error {
	var apiErr *wire.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %s", apiErr.Code, apiErr.Message)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cancelled: %w", err)
	}
	var untrusted *socket.UntrustedError
	if errors.As(err, &untrusted) {
		return fmt.Errorf("quotabar's socket is not trusted, so nothing was asked (tell the person): %w", err)
	}
	return fmt.Errorf("quotabar is not reachable (is it running? start it with `quotabar` or `quotabar serve`): %w", err)
}
