package main

// `quotabar reset SERVICE`: the way out of a cooldown or a learned limit
// that a provider's answer left and no honest answer can correct (no call
// reaches the provider while it holds).

import (
	"context"
	"fmt"
)

type resetCmd struct {
	Service string `arg:"" help:"Service name, as configured."`
}

func (c *resetCmd) Run(g *globals) error {
	cl, socket, err := g.client()
	if err != nil {
		return err
	}
	st, err := cl.ResetService(context.Background(), c.Service)
	if err != nil {
		return clientError(err, socket)
	}
	n := 0
	for _, l := range st.Limits {
		if l.Source == "config" {
			n++
		}
	}
	fmt.Printf("%s: cooldown and learned limits cleared; %d configured limits in force\n", st.Name, n)
	return nil
}
