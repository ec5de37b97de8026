package limiter_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// The agent table shrinks: 10,000 one-shot agents (as "quotabar run" names
// each run apart) are listed while recent, and after AgentIdleTTL the
// Status's agents, and their JSON, are back to their size before them.
// Configured agents and agents with a run-time override stay; an agent with
// a lease in flight stays however long ago it was seen.
func TestIdleAgentsAreForgotten(t *testing.T) {
	const ttl = 10 * time.Minute
	l, clk := newLim(t, limiter.Config{
		Services:     []limiter.ServiceConfig{svcCfg("api", pol(1<<40, limiter.Requests, time.Minute))},
		Agents:       []limiter.AgentConfig{{Name: "configured", Weight: 2}},
		AgentIdleTTL: ttl,
		LeaseTTL:     24 * time.Hour,
	})
	prio := limiter.Low
	if _, err := l.UpdateAgent("overridden", limiter.AgentUpdate{Priority: &prio}); err != nil {
		t.Fatal(err)
	}
	holder, ok := granted(t, submit(t, l, limiter.Request{Agent: "holder", Service: "api"}))
	if !ok {
		t.Fatal("holder not granted")
	}
	size := func() (int, int) {
		st := l.Status()
		b, err := json.Marshal(st.Agents) // the services' counters grow
		if err != nil {
			t.Fatal(err)
		}
		return len(st.Agents), len(b)
	}
	agents0, body0 := size()
	if agents0 != 3 {
		t.Fatalf("%d agents before the one-shot ones, want 3 (configured, overridden, holder)", agents0)
	}

	for i := range 10000 {
		ls, ok := granted(t, submit(t, l, limiter.Request{Agent: fmt.Sprintf("run-%05d", i), Service: "api"}))
		if !ok {
			t.Fatalf("run %d not granted", i)
		}
		if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: 200}); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			clk.Advance(time.Second)
		}
	}
	if n, body := size(); n != 10003 || body < 100*body0 {
		t.Fatalf("%d agents, body %d bytes while all are recent; want 10003 and far more than %d", n, body, body0)
	}
	clk.Advance(ttl / 2)
	if n, _ := size(); n != 10003 {
		t.Fatalf("%d agents half a TTL later, want all 10003 still", n)
	}
	clk.Advance(ttl)
	if n, body := size(); n != agents0 || body != body0 {
		t.Fatalf("after the TTL: %d agents, body %d bytes; want %d and %d as before the one-shot agents", n, body, agents0, body0)
	}
	for _, name := range []string{"configured", "overridden", "holder"} {
		agentStatus(t, l, name)
	}
	if _, err := l.Report(limiter.Report{Lease: holder.ID, Status: 200}); err != nil {
		t.Fatalf("the holder's lease outlived the sweep: %v", err)
	}
	// A forgotten agent that comes back starts afresh.
	if _, ok := granted(t, submit(t, l, limiter.Request{Agent: "run-00000", Service: "api"})); !ok {
		t.Fatal("a returning agent was not granted")
	}
	if a := agentStatus(t, l, "run-00000"); a.Granted != 1 {
		t.Fatalf("returning agent counted %d grants, want 1 (a fresh start)", a.Granted)
	}
}
