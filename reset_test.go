package main

import (
	"strings"
	"testing"
)

// TestResetCommand: a 429 that asks for a day freezes "cool"; `quotabar
// reset cool` lets it grant again, and an unknown service is a clear error.
func TestResetCommand(t *testing.T) {
	e := newEnv(t)
	e.serve(t)
	e.must(t, "report", "--agent", "ag", "--service", "cool", "--status", "429", "--header", "retry-after=86400")
	if r := e.run(t, "acquire", "--agent", "ag", "--service", "cool", "--wait", "0s"); r.code != 75 {
		t.Fatalf("acquire during the cooldown: exit %d, want 75 (refused)\n%s", r.code, r.stderr)
	}
	out := e.must(t, "reset", "cool")
	if !strings.Contains(out, "cool: cooldown and learned limits cleared") {
		t.Errorf("reset printed %q", out)
	}
	if s, _ := findService(e.status(t), "cool"); s.CooldownUntil != nil {
		t.Errorf("cooldown_until %v after reset", s.CooldownUntil)
	}
	e.must(t, "acquire", "--agent", "ag", "--service", "cool", "--wait", "0s")
	r := e.run(t, "reset", "opneai")
	if r.code == 0 || !strings.Contains(r.stderr, `service "opneai" is not configured`) {
		t.Errorf("reset of an unknown service: exit %d, stderr %q", r.code, r.stderr)
	}
}
