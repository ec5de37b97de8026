package main

// `quotabar acquire`: ask for one call's permission, as an agent would.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

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
