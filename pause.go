package main

// `quotabar pause` and `quotabar resume`, for services and agents.

import (
	"context"
	"fmt"

	"github.com/quotabar/quotabar/ipc/wire"
)

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
