package main

// `quotabar report`: tell the daemon what the provider answered.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

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
