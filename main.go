// Command quotabar coordinates API rate limits between the AI agents on one
// computer. Bare `quotabar` runs the menu-bar app; `quotabar serve` runs the
// same daemon without it; the other commands talk to a running daemon over
// its Unix socket (see docs/API.md).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
)

// exitRefused is the exit status of a refused acquire: EX_TEMPFAIL, "try
// again later", which is what a refusal means.
const exitRefused = 75

// cli is the command line. Each command is a struct with a Run method;
// commands that live in their own file add one field here.
type cli struct {
	globals

	App     appCmd     `cmd:"" default:"1" hidden:"" help:"Run the menu-bar app (what a bare 'quotabar' does)."`
	Serve   serveCmd   `cmd:"" help:"Run the daemon without a menu-bar icon, for servers, CI and tests. Stops cleanly on SIGINT or SIGTERM."`
	Status  statusCmd  `cmd:"" help:"Show every service's limits, what is left, queues and cooldowns, and every agent."`
	Acquire acquireCmd `cmd:"" help:"Ask permission for one call, as an agent would. Prints the lease; exits 75 when refused."`
	Report  reportCmd  `cmd:"" help:"Tell the daemon what the provider answered to a call (ends the lease)."`
	Pause   pauseCmd   `cmd:"" help:"Pause a service or an agent: its requests are refused with reason \"paused\" until resumed. The pause survives a restart."`
	Resume  resumeCmd  `cmd:"" help:"Resume a paused service or agent."`
	Reset   resetCmd   `cmd:"" help:"Clear a service's cooldown and the limits learned from its provider's headers (the way out of an answer that froze it); configured limits stay."`
	Run     runCmd     `cmd:"" help:"Run a command with its SDKs pointed at quotabar's HTTP proxy (OPENAI_BASE_URL, ANTHROPIC_BASE_URL, ...): quotabar run --agent NAME -- COMMAND ARGS..."`
	Socket  socketCmd  `cmd:"" help:"Print the socket path clients use."`
	Line    lineCmd    `cmd:"" name:"statusline" help:"Print one short line for Claude Code's statusLine, tmux or a shell prompt (--format json for Waybar/i3blocks); never waits for the daemon more than --timeout."`
	MCP     mcpCmd     `cmd:"" name:"mcp" help:"Serve quotabar's tools to an AI agent over MCP on stdin/stdout: claude mcp add quotabar -- quotabar mcp"`
	Config  configCmd  `cmd:"" help:"Find, create or check the configuration file."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

// globals are the flags every command accepts.
type globals struct {
	ConfigFile string `name:"config" type:"path" placeholder:"FILE" env:"QUOTABAR_CONFIG" help:"Configuration file (default: the platform's config directory; 'quotabar config path' prints it)."`
	SocketFile string `name:"socket" type:"path" placeholder:"PATH" env:"QUOTABAR_SOCKET" help:"Socket of the daemon ('quotabar socket' prints the default)."`
	LogLevel   string `name:"log-level" enum:"debug,info,warn,error" default:"info" help:"Daemon log level: ${enum}."`
}

func (g *globals) options() daemon.Options {
	level := slog.LevelInfo
	level.UnmarshalText([]byte(g.LogLevel))
	return daemon.Options{
		ConfigPath: g.ConfigFile,
		SocketPath: g.SocketFile,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
}

func (g *globals) socketPath() (string, error) {
	if g.SocketFile != "" {
		return g.SocketFile, nil
	}
	return socket.Path()
}

func (g *globals) configPath() (string, error) {
	if g.ConfigFile != "" {
		return g.ConfigFile, nil
	}
	return config.DefaultConfigPath()
}

// client returns a client of the daemon, and the socket path for messages.
func (g *globals) client() (*ipc.Client, string, error) {
	path, err := g.socketPath()
	if err != nil {
		return nil, "", err
	}
	return &ipc.Client{SocketPath: path}, path, nil
}

// exitError ends the command with its own exit status and a message printed
// as is (no "quotabar:" prefix): a refusal (75), or config check's list of
// problems.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// clientError explains an error of a client call to a person: a daemon that
// is not running is the usual one.
func clientError(err error, socket string) error {
	var apiErr *wire.APIError
	switch {
	case errors.As(err, &apiErr):
		return errors.New(apiErr.Message)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("quotabar is not running (no socket at %s); start it with `quotabar` or `quotabar serve`", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("quotabar is not running (nothing listens on %s); start it with `quotabar` or `quotabar serve`", socket)
	}
	return err
}

func main() {
	var c cli
	k := kong.Parse(&c,
		kong.Name("quotabar"),
		kong.Description("quotabar coordinates API rate limits between the AI agents on this computer.\n\n"+
			"Run without a command it starts the menu-bar app. Agents ask it over a Unix socket before each call (docs/API.md); "+
			"the commands below run the daemon headless or talk to a running one."),
		kong.ShortUsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	err := k.Run(&c.globals)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, ee.msg)
		os.Exit(ee.code)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "quotabar") {
		msg = "quotabar: " + msg
	}
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(1)
}

// nonNegative checks counts given as flags; nil entries were not given.
func nonNegative(flags map[string]*int64) error {
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		if n := flags[name]; n != nil && *n < 0 {
			return fmt.Errorf("%s %d: a count cannot be negative", name, *n)
		}
	}
	return nil
}

// shortDuration prints d the way people write windows: 1m, 5h, 1h30m, 4.1s.
func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
