// Command quotabar coordinates API rate limits between the AI agents on one
// computer. Bare `quotabar` runs the menu-bar app; `quotabar serve` runs the
// same daemon without it; the other commands talk to a running daemon over
// its Unix socket (see docs/API.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/alecthomas/kong"

	"github.com/quotabar/quotabar/app"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
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

func (g *globals) options() app.Options {
	level := slog.LevelInfo
	level.UnmarshalText([]byte(g.LogLevel))
	return app.Options{
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
	return app.DefaultConfigPath()
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

type appCmd struct{}

func (c *appCmd) Run(g *globals) error { return app.RunApp(context.Background(), g.options()) }

type serveCmd struct{}

func (c *serveCmd) Run(g *globals) error { return app.RunDaemon(context.Background(), g.options()) }

type statusCmd struct {
	JSON bool `name:"json" help:"Print the /v1/status body as JSON."`
}

func (c *statusCmd) Run(g *globals) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	st, err := cl.Status(context.Background())
	if err != nil {
		return clientError(err, socket)
	}
	if c.JSON {
		return printJSON(os.Stdout, st)
	}
	printStatus(os.Stdout, st, time.Now())
	return nil
}

// printStatus writes the human status: a table of services, one line per
// limit, then a table of agents.
func printStatus(w io.Writer, st wire.StatusResponse, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tLIMIT\tREMAINING\tRESETS IN\tIN FLIGHT\tQUEUED\tFALLBACK")
	for _, s := range st.Services {
		state := "ok"
		switch {
		case s.Paused:
			state = "paused"
		case s.CooldownUntil != nil && s.CooldownUntil.After(now):
			state = "cooldown " + shortDuration(s.CooldownUntil.Sub(now))
		}
		inFlight := fmt.Sprint(s.InFlight)
		if s.MaxConcurrent > 0 {
			inFlight += fmt.Sprintf("/%d", s.MaxConcurrent)
		}
		fallback := "-"
		if f := s.Fallback; f != nil {
			fallback = f.Browser + " off"
			if f.Enabled {
				fallback = f.Browser + " on"
			}
			if f.OpenSessions > 0 {
				fallback += fmt.Sprintf(" (%d open)", f.OpenSessions)
			}
		}
		if len(s.Limits) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Name, state, "learning", "-", "-", inFlight, s.Queued, fallback)
			continue
		}
		for i, l := range s.Limits {
			limit := fmt.Sprintf("%d %s/%s", l.Quota, l.Unit, shortDuration(time.Duration(l.WindowMS)*time.Millisecond))
			if l.Source == "headers" {
				limit += " (learned)"
			}
			resets := "-"
			if l.ResetsAt != nil && l.ResetsAt.After(now) {
				resets = shortDuration(l.ResetsAt.Sub(now))
			}
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", s.Name, state, limit, l.Remaining, resets, inFlight, s.Queued, fallback)
			} else {
				fmt.Fprintf(tw, "\t\t%s\t%d\t%s\t\t\t\n", limit, l.Remaining, resets)
			}
		}
	}
	tw.Flush()
	if len(st.Agents) == 0 {
		fmt.Fprintln(w, "\nNo agents yet.")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "AGENT\tSTATE\tPRIORITY\tWEIGHT\tIN FLIGHT\tQUEUED\tGRANTED\tREFUSED\tLAST SEEN")
	for _, a := range st.Agents {
		state := "ok"
		if a.Paused {
			state = "paused"
		}
		seen := "never"
		if a.LastSeen != nil {
			seen = shortDuration(now.Sub(*a.LastSeen)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%g\t%d\t%d\t%d\t%d\t%s\n", a.Name, state, a.Priority, a.Weight, a.InFlight, a.Queued, a.Counters.Granted, a.Counters.Refused, seen)
	}
	tw.Flush()
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

type acquireCmd struct {
	Agent        string        `required:"" help:"Agent name (1-64 of A-Z a-z 0-9 . _ -)."`
	Service      string        `required:"" help:"Service name, as configured."`
	Requests     int64         `default:"1" placeholder:"N" help:"Requests this call counts as."`
	Tokens       int64         `placeholder:"N" help:"Estimated tokens (prompt plus max_tokens); 'report --usage-tokens' corrects it."`
	InputTokens  int64         `name:"input-tokens" placeholder:"N" help:"Estimated input tokens."`
	OutputTokens int64         `name:"output-tokens" placeholder:"N" help:"Estimated output tokens."`
	Priority     string        `placeholder:"high|normal|low" help:"Priority of this call (default: the agent's configured priority, else normal)."`
	Wait         time.Duration `default:"60s" help:"How long the daemon may queue the request, at most 10m; 0 answers at once."`
	JSON         bool          `name:"json" help:"Print the granted answer as JSON."`
}

// maxWait is the longest --wait the daemon accepts (API.md: max_wait_ms at
// most 600000).
const maxWait = 10 * time.Minute

// Validate checks the flags before the daemon is asked, so that a mistake is
// named as the flag the person typed, not as a wire field.
func (c *acquireCmd) Validate() error {
	if c.Priority != "" {
		// Any case, as in `quotabar run` and the config file; the wire
		// takes lower case.
		p, err := limiter.ParsePriority(c.Priority)
		if err != nil || p == limiter.PriorityUnset {
			return fmt.Errorf("--priority %q: use high, normal or low", c.Priority)
		}
		c.Priority = p.String()
	}
	if c.Wait < 0 || c.Wait > maxWait {
		return fmt.Errorf("--wait %v: use 0 (answer at once) up to %v", c.Wait, shortDuration(maxWait))
	}
	return nonNegative(map[string]*int64{"--requests": &c.Requests, "--tokens": &c.Tokens,
		"--input-tokens": &c.InputTokens, "--output-tokens": &c.OutputTokens})
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

func (c *acquireCmd) Run(g *globals) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	cost := wire.Cost{"requests": c.Requests}
	for unit, n := range map[string]int64{"tokens": c.Tokens, "input_tokens": c.InputTokens, "output_tokens": c.OutputTokens} {
		if n != 0 {
			cost[unit] = n
		}
	}
	lease, err := cl.Acquire(context.Background(), wire.AcquireRequest{
		Agent:     c.Agent,
		Service:   c.Service,
		Cost:      cost,
		Priority:  c.Priority,
		MaxWaitMS: wire.Wait(c.Wait),
	})
	var refused *ipc.RefusedError
	if errors.As(err, &refused) {
		msg := fmt.Sprintf("refused: %s; retry in %s", refused.Reason, shortDuration(refused.RetryAfter))
		if why := refusalHints[refused.Reason]; why != "" {
			msg += "\n" + why
		}
		if f := refused.Fallback; f != nil {
			if f.Enabled {
				msg += fmt.Sprintf("\nthe web fallback is on: POST %s", f.Open)
			} else {
				msg += "\nthe web fallback is switched off"
			}
		}
		return &exitError{code: exitRefused, msg: msg}
	}
	if err != nil {
		return clientError(err, socket)
	}
	if c.JSON {
		return printJSON(os.Stdout, wire.AcquireResponse{
			Granted:        true,
			Lease:          lease.ID,
			WaitedMS:       lease.Waited.Milliseconds(),
			LeaseExpiresAt: lease.ExpiresAt,
		})
	}
	fmt.Printf("%s expires %s\n", lease.ID, lease.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

// refusalHints say what a refusal's reason means for the person at the
// terminal, and where to look.
var refusalHints = map[wire.Reason]string{
	wire.ReasonCooldown: "the provider said the service's limit is spent; every agent waits until the cooldown ends",
	wire.ReasonTimeout:  "no grant within --wait: the service's quota is taken ('quotabar status' shows what is left)",
	wire.ReasonPaused:   "the service or this agent is paused ('quotabar status' shows which; 'quotabar resume' lifts it)",
	wire.ReasonShed:     "the service's queue is full (queue_limit in the configuration)",
}

type reportCmd struct {
	Lease             string   `help:"The lease to end (from acquire)."`
	Agent             string   `help:"Agent name (needed without --lease)."`
	Service           string   `help:"Service name (needed without --lease)."`
	Status            int      `help:"The provider's HTTP status, e.g. 200 or 429."`
	Header            []string `short:"H" sep:"none" placeholder:"NAME=VALUE" help:"A provider response header, as NAME=VALUE or 'NAME: VALUE' (as curl -i shows it); repeat for more."`
	UsageTokens       *int64   `name:"usage-tokens" placeholder:"N" help:"Tokens the call really used."`
	UsageInputTokens  *int64   `name:"usage-input-tokens" placeholder:"N" help:"Input tokens the call really used."`
	UsageOutputTokens *int64   `name:"usage-output-tokens" placeholder:"N" help:"Output tokens the call really used."`
	UsageRequests     *int64   `name:"usage-requests" placeholder:"N" help:"Requests the call really counted as."`
	JSON              bool     `name:"json" help:"Print the answer as JSON."`
}

func (c *reportCmd) Validate() error {
	if c.Lease == "" && (c.Agent == "" || c.Service == "") {
		return errors.New("give --lease, or --agent and --service to report a call made without a lease")
	}
	if _, err := c.headers(); err != nil {
		return err
	}
	if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
		return fmt.Errorf("--status %d: give the provider's HTTP status, 100 to 599", c.Status)
	}
	return nonNegative(map[string]*int64{"--usage-tokens": c.UsageTokens, "--usage-input-tokens": c.UsageInputTokens,
		"--usage-output-tokens": c.UsageOutputTokens, "--usage-requests": c.UsageRequests})
}

func (c *reportCmd) Run(g *globals) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	headers, err := c.headers()
	if err != nil {
		return err
	}
	req := wire.ReportRequest{Lease: c.Lease, Agent: c.Agent, Service: c.Service, Status: c.Status, Headers: headers}
	for unit, n := range map[string]*int64{"tokens": c.UsageTokens, "input_tokens": c.UsageInputTokens, "output_tokens": c.UsageOutputTokens, "requests": c.UsageRequests} {
		if n != nil {
			if req.Usage == nil {
				req.Usage = wire.Cost{}
			}
			req.Usage[unit] = *n
		}
	}
	resp, err := cl.Report(context.Background(), req)
	if err != nil {
		return clientError(err, socket)
	}
	if c.JSON {
		return printJSON(os.Stdout, resp)
	}
	switch {
	case resp.CooldownUntil != nil:
		fmt.Printf("ok; %s is cooling down until %s (retry in %s)\n", c.serviceName(), resp.CooldownUntil.UTC().Format(time.RFC3339), shortDuration(resp.RetryAfter()))
	default:
		fmt.Println("ok")
	}
	return nil
}

// headers reads the --header flags. A header name holds neither '=' nor
// ':', so the first of them ends it; the value may hold both (RateLimit
// parameters, HTTP dates).
func (c *reportCmd) headers() (map[string]string, error) {
	if len(c.Header) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(c.Header))
	for _, h := range c.Header {
		i := strings.IndexAny(h, "=:")
		name := strings.TrimSpace(h[:max(i, 0)])
		if i < 0 || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("--header %q: want NAME=VALUE or 'NAME: VALUE', e.g. --header retry-after=20", h)
		}
		out[name] = strings.TrimSpace(h[i+1:])
	}
	return out, nil
}

func (c *reportCmd) serviceName() string {
	if c.Service != "" {
		return c.Service
	}
	return "the service"
}

// pauseCmd and resumeCmd have one subcommand per kind of target, each with
// its own Run: kong then insists on one of them, so a bare `quotabar pause`
// is a usage error rather than a request with an empty name.
type pauseCmd struct {
	Service pauseServiceCmd `cmd:"" help:"Pause a service: every agent's requests to it are refused with reason \"paused\"."`
	Agent   pauseAgentCmd   `cmd:"" help:"Pause an agent: its requests to every service are refused with reason \"paused\"."`
}

type resumeCmd struct {
	Service resumeServiceCmd `cmd:"" help:"Resume a paused service."`
	Agent   resumeAgentCmd   `cmd:"" help:"Resume a paused agent."`
}

type pauseServiceCmd struct {
	Name string `arg:"" help:"Service name, as configured."`
}

type resumeServiceCmd struct {
	Name string `arg:"" help:"Service name, as configured."`
}

type pauseAgentCmd struct {
	Name string `arg:"" help:"Agent name; one not seen yet is registered, so an agent can be paused before it starts."`
}

type resumeAgentCmd struct {
	Name string `arg:"" help:"Agent name."`
}

func (c *pauseServiceCmd) Run(g *globals) error  { return setServicePaused(g, c.Name, true) }
func (c *resumeServiceCmd) Run(g *globals) error { return setServicePaused(g, c.Name, false) }
func (c *pauseAgentCmd) Run(g *globals) error    { return setAgentPaused(g, c.Name, true) }
func (c *resumeAgentCmd) Run(g *globals) error   { return setAgentPaused(g, c.Name, false) }

func pausedWord(paused bool) string {
	if paused {
		return "paused"
	}
	return "resumed"
}

func setServicePaused(g *globals, name string, paused bool) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	if _, err := cl.SetServicePaused(context.Background(), name, paused); err != nil {
		return clientError(err, socket)
	}
	fmt.Printf("service %s %s\n", name, pausedWord(paused))
	return nil
}

func setAgentPaused(g *globals, name string, paused bool) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	if _, err := cl.UpdateAgent(context.Background(), name, wire.AgentUpdate{Paused: &paused}); err != nil {
		return clientError(err, socket)
	}
	fmt.Printf("agent %s %s\n", name, pausedWord(paused))
	return nil
}

type socketCmd struct{}

func (c *socketCmd) Run(g *globals) error {
	path, err := g.socketPath()
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type configCmd struct {
	Path  configPathCmd  `cmd:"" help:"Print the configuration file's path."`
	Init  configInitCmd  `cmd:"" help:"Write the commented default configuration."`
	Check configCheckCmd `cmd:"" help:"Check the configuration file; print OK or each problem as file:line: key: message."`
}

type configPathCmd struct{}

func (c *configPathCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type configInitCmd struct {
	Force bool `help:"Overwrite an existing file."`
}

func (c *configInitCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	if err := app.WriteDefaultConfig(path, c.Force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; use --force to overwrite it with the default", path)
		}
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

type configCheckCmd struct{}

func (c *configCheckCmd) Run(g *globals) error {
	path, err := g.configPath()
	if err != nil {
		return err
	}
	cfg, err := app.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("there is no configuration file at %s; 'quotabar config init' writes the default one (the app also does on first start)", path)
	}
	var errs app.ConfigErrors
	if errors.As(err, &errs) {
		return &exitError{code: 1, msg: errs.Error()}
	}
	if err != nil {
		return err
	}
	// The daemon hands the file to the limiter, which checks it once more:
	// check means "the daemon would accept this".
	l, err := limiter.New(cfg.Limiter())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	l.Close()
	fmt.Printf("OK: %s (%s, %s)\n", path, count(len(cfg.Services), "service"), count(len(cfg.Agents), "agent"))
	return nil
}

// count writes n and the noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

type versionCmd struct{}

func (c *versionCmd) Run() error {
	fmt.Printf("quotabar %s (API v1, %s %s/%s)\n", wire.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
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
