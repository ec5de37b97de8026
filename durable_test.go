package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/quotabar/quotabar/app/daemon"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// TestAnsweredChangeSurvivesKill9 is issue 14.6's crash test: a person's
// change answered 200 (a service's pause, an agent's priority, a fallback
// switch) is on disk before the answer, so a kill -9 right after it loses
// nothing. Before the fix the state was saved 250 ms later and 26 of 80
// kills lost the last pause. Each cycle makes one change (the three kinds
// in turn, so that no other change's save covers it), kills the real daemon
// process with SIGKILL the moment the answer arrives, checks the state
// file, and starts the daemon again, which must show the change.
func TestAnsweredChangeSurvivesKill9(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := filepath.Join(e.stateDir, daemon.StateFile)
	// want is what the state must hold after every change so far.
	want := struct {
		paused, fallback bool
		priority         string
	}{priority: "normal"}
	check := func(cycle int, paused, fallback bool, priority string, where string) {
		t.Helper()
		if paused != want.paused || fallback != want.fallback || priority != want.priority {
			t.Fatalf("cycle %d: %s has paused=%v fallback=%v priority=%q; want paused=%v fallback=%v priority=%q (answered 200 before the kill)",
				cycle, where, paused, fallback, priority, want.paused, want.fallback, want.priority)
		}
	}
	const cycles = 21 // seven of each kind
	for i := range cycles + 1 {
		d := e.serve(t)
		c := &ipc.Client{SocketPath: e.socket}
		if i > 0 {
			var paused, fallback bool
			priority := ""
			st := e.status(t)
			for _, s := range st.Services {
				if s.Name == "svc" && s.Fallback != nil {
					paused, fallback = s.Paused, s.Fallback.Enabled
				}
			}
			for _, a := range st.Agents {
				if a.Name == "ag" {
					priority = a.Priority
				}
			}
			check(i-1, paused, fallback, priority, "the restarted daemon")
		}
		if i == cycles {
			break
		}
		var err error
		switch i % 3 {
		case 0:
			want.paused = !want.paused
			_, err = c.SetServicePaused(ctx, "svc", want.paused)
		case 1:
			want.priority = []string{"high", "low"}[i/3%2]
			_, err = c.UpdateAgent(ctx, "ag", wire.AgentUpdate{Priority: want.priority})
		case 2:
			want.fallback = !want.fallback
			_, err = c.SetFallback(ctx, "svc", want.fallback)
		}
		if err != nil {
			t.Fatal(fmt.Errorf("cycle %d: %w", i, err))
		}
		// kill -9 at once: no shutdown, no last save.
		if err := d.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-d.done
		c.CloseIdleConnections()
		st, err := daemon.LoadState(path)
		if err != nil {
			t.Fatalf("cycle %d: state after kill -9: %v", i, err)
		}
		priority := st.Limiter.Agents["ag"].Priority
		if priority == "" {
			priority = "normal" // the configured one: no override saved
		}
		check(i, st.Limiter.Services["svc"].Paused, st.Fallback["svc"], priority, "the state file")
	}
}
