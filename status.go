package main

// `quotabar status`: the daemon's view of services and agents.

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

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
	for _, s := range st.Services {
		if c := s.Cluster; c != nil {
			fmt.Fprintf(w, "%s: %s\n", s.Name, c.Text) // shared through [cluster]
		}
	}
	printWindows(w, st, now, time.Local)
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
