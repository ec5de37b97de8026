package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/statusline"
)

// lineCmd is `quotabar statusline`: one short line for Claude Code's
// statusLine, tmux and shell prompts, or JSON for status bars. It never
// waits for the daemon longer than --timeout.
type lineCmd struct {
	Format  string        `enum:"text,json" default:"text" help:"text: one line; json: Waybar/i3blocks JSON (text, tooltip, class, percentage, full_text)."`
	Service string        `placeholder:"NAME" help:"Show this service (default: under Claude Code the Anthropic one, else the one with the least left)."`
	Timeout time.Duration `default:"30ms" help:"How long to wait for the daemon, 1ms to 1s; past it the line says the daemon is not answering."`
}

func (c *lineCmd) Validate() error {
	if c.Timeout < time.Millisecond || c.Timeout > time.Second {
		return fmt.Errorf("--timeout %v: use 1ms to 1s (a status line must not hold up the prompt)", c.Timeout)
	}
	return nil
}

// maxSessionJSON bounds what is read of Claude Code's stdin JSON.
const maxSessionJSON = 1 << 20

func (c *lineCmd) Run(g *globals) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	// Claude Code pipes its session JSON; a terminal or nothing gives none.
	// It is read beside the status call and never waited for past the
	// deadline.
	session := make(chan []byte, 1)
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
		go func() {
			data, _ := io.ReadAll(io.LimitReader(os.Stdin, maxSessionJSON))
			session <- data
		}()
	} else {
		session <- nil
	}
	var st *wire.StatusResponse
	path, err := g.socketPath()
	if err == nil {
		cl := &ipc.Client{SocketPath: path}
		var resp wire.StatusResponse
		if resp, err = cl.Status(ctx); err == nil {
			st = &resp
		}
	}
	var sess statusline.Session
	if st != nil {
		select {
		case data := <-session:
			sess = statusline.ReadSession(data)
		case <-ctx.Done():
		}
	}
	var untrusted *socket.UntrustedError
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		// Something holds the socket but does not answer in time.
		return c.down("quotabar: not answering", "the daemon did not answer within "+c.Timeout.String())
	case errors.As(err, &untrusted):
		// Not "not running": something is there, and it is not this
		// user's; `quotabar status` says what and what to do.
		return c.down("quotabar: socket not trusted", untrusted.Error())
	}
	return statusline.Write(os.Stdout, c.Format, st, c.Service, sess, time.Now())
}

// down prints a line for a daemon that cannot be asked.
func (c *lineCmd) down(line, why string) error {
	if c.Format == "json" {
		return json.NewEncoder(os.Stdout).Encode(statusline.Bar{Text: line, Alt: "down", Class: "down", Tooltip: why, FullText: line, ShortText: line})
	}
	_, err := fmt.Println(line)
	return err
}
