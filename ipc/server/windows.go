package server

import (
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// windowStatus converts a service's utilization windows for /v1/status.
func windowStatus(ws []limiter.WindowStatus) []wire.WindowStatus {
	if len(ws) == 0 {
		return nil
	}
	out := make([]wire.WindowStatus, 0, len(ws))
	for _, w := range ws {
		o := wire.WindowStatus{
			Name: w.Name, Label: w.Label, Title: w.Title, LengthMS: w.Length.Milliseconds(),
			ResetsAt: timePtr(w.ResetsAt), Status: w.Status, Warning: w.Warning, Reserved: w.Reserved,
			ObservedAt: timePtr(w.ObservedAt), Since: timePtr(w.Since),
			Requests: w.Requests, Tokens: w.Tokens, Agents: make([]wire.WindowAgent, 0, len(w.Agents)),
		}
		if w.HasUtilization {
			u := w.Utilization
			o.Utilization = &u
		}
		for _, a := range w.Agents {
			o.Agents = append(o.Agents, wire.WindowAgent{Agent: a.Agent, Requests: a.Requests, Tokens: a.Tokens, Share: a.Share})
		}
		out = append(out, o)
	}
	return out
}
