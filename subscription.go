package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// topAgents is how many agents a window line names.
const topAgents = 3

// printWindows writes the services' subscription windows, one line each:
// what is used and when it resets, its state, and the agents that spent
// it most. Nothing when no service has one.
func printWindows(w io.Writer, st wire.StatusResponse, now time.Time, loc *time.Location) {
	has := false
	for _, s := range st.Services {
		has = has || len(s.Windows) > 0
	}
	if !has {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tWINDOW\tSTATE\tREQUESTS\tTOKENS\tTOP AGENTS")
	for _, s := range st.Services {
		for _, win := range s.Windows {
			state := "ok"
			switch {
			case win.Status == "rejected":
				state = "rejected"
			case win.Reserved:
				state = fmt.Sprintf("reserved (high only, %g%% kept)", s.ReserveHigh*100)
			case win.Warning:
				state = "warning"
			}
			var top []string
			for i, a := range win.Agents {
				if i == topAgents {
					top = append(top, fmt.Sprintf("+%d", len(win.Agents)-topAgents))
					break
				}
				top = append(top, fmt.Sprintf("%s %.0f%%", a.Agent, a.Share*100))
			}
			agents := "-"
			if len(top) > 0 {
				agents = strings.Join(top, ", ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.Name, win.Summary(now, loc), state, win.Requests, win.Tokens, agents)
		}
	}
	tw.Flush()
}
