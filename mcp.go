package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/mcpserver"
)

// mcpCmd is `quotabar mcp`: an MCP server on stdin/stdout for agents that
// take tools (claude mcp add quotabar -- quotabar mcp).
type mcpCmd struct {
	Agent string `env:"QUOTABAR_AGENT" placeholder:"NAME" help:"Agent name the tools ask under (default: QUOTABAR_AGENT, set by 'quotabar run', else mcp)."`
}

func (c *mcpCmd) Run(g *globals) error {
	agent := c.Agent
	if agent == "" {
		agent = "mcp"
	}
	path, err := g.socketPath()
	if err != nil {
		return err
	}
	// stdout is the protocol: the log goes to stderr, which MCP clients
	// show or keep as the server's log.
	level := slog.LevelInfo
	level.UnmarshalText([]byte(g.LogLevel))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := mcpserver.New(mcpserver.Options{Client: &ipc.Client{SocketPath: path}, Agent: agent, Logger: log})
	if err != nil {
		return fmt.Errorf("--agent: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}
