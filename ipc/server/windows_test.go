package server_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// /v1/status shows a subscription's windows as reports pass, and an
// acquire past the reserve is refused with reason reserved.
func TestStatusWindows(t *testing.T) {
	cfg := ipctest.TestConfig()
	cfg.Services = append(cfg.Services, limiter.ServiceConfig{Name: "claude", Dialect: limiter.DialectAnthropic, ReserveHigh: 0.1})
	d := ipctest.StartDaemon(t, cfg, nil)
	ctx := context.Background()
	reset5 := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	reset7 := time.Now().Add(80 * time.Hour).Truncate(time.Second)
	for i, agent := range []string{"a", "b", "a"} {
		util := 0.3 * float64(i+1)
		if _, err := d.Client.Report(ctx, wire.ReportRequest{Agent: agent, Service: "claude", Status: 200, Usage: wire.Cost{"tokens": 1000},
			Headers: map[string]string{
				"anthropic-ratelimit-unified-status":         "allowed",
				"anthropic-ratelimit-unified-5h-utilization": strconv.FormatFloat(util, 'f', 2, 64),
				"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(reset5.Unix(), 10),
				"anthropic-ratelimit-unified-7d-utilization": "0.2",
				"anthropic-ratelimit-unified-7d-reset":       strconv.FormatInt(reset7.Unix(), 10),
			}}); err != nil {
			t.Fatal(err)
		}
		st, err := d.Client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		svc := ipctest.ServiceOf(t, st, "claude")
		if len(svc.Windows) != 2 || svc.Windows[0].Name != "5h" || svc.Windows[1].Label != "week" || svc.ReserveHigh != 0.1 {
			t.Fatalf("windows %+v, reserve %v", svc.Windows, svc.ReserveHigh)
		}
		w := svc.Windows[0]
		if w.Utilization == nil || math.Abs(*w.Utilization-util) > 1e-9 || w.ResetsAt == nil || !w.ResetsAt.Equal(reset5) || w.LengthMS != (5*time.Hour).Milliseconds() {
			t.Fatalf("after report %d: 5h window %+v", i+1, w)
		}
		if w.Requests != int64(i+1) || w.Tokens != int64(i+1)*1000 {
			t.Fatalf("after report %d: %d requests, %d tokens", i+1, w.Requests, w.Tokens)
		}
	}
	st, _ := d.Client.Status(ctx)
	w := ipctest.ServiceOf(t, st, "claude").Windows[0]
	if !w.Reserved || !w.Warning || len(w.Agents) != 2 || w.Agents[0].Agent != "a" || math.Abs(w.Agents[0].Share+w.Agents[1].Share-1) > 1e-9 {
		t.Fatalf("at 90%%: %+v", w)
	}
	_, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "b", Service: "claude"})
	if !ipc.IsRefused(err, wire.ReasonReserved) {
		t.Fatalf("acquire past the reserve: %v, want refused with reason reserved", err)
	}
	if _, err := d.Client.Acquire(ctx, wire.AcquireRequest{Agent: "b", Service: "claude", Priority: "high"}); err != nil {
		t.Fatalf("a high acquire past the reserve: %v", err)
	}
}

// A Codex refusal's body, reported over the socket, closes the service
// until the window's reset it names.
func TestReportErrorBody(t *testing.T) {
	cfg := ipctest.TestConfig()
	cfg.Services = append(cfg.Services, limiter.ServiceConfig{Name: "codex", Dialect: limiter.DialectOpenAI})
	d := ipctest.StartDaemon(t, cfg, nil)
	ctx := context.Background()
	reset := time.Now().Add(3 * time.Hour).Truncate(time.Second)
	rep, err := d.Client.Report(ctx, wire.ReportRequest{Agent: "a", Service: "codex", Status: 429,
		Headers: map[string]string{
			"x-codex-primary-used-percent":   "100",
			"x-codex-primary-window-minutes": "300",
			"x-codex-primary-reset-at":       strconv.FormatInt(reset.Unix(), 10),
		},
		ErrorBody: `{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":` + strconv.FormatInt(reset.Unix(), 10) + `}}`})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CooldownUntil == nil || !rep.CooldownUntil.Equal(reset) {
		t.Fatalf("cooldown until %v, want the 5-hour window's reset %v", rep.CooldownUntil, reset)
	}
	st, _ := d.Client.Status(ctx)
	if w := ipctest.ServiceOf(t, st, "codex").Windows; len(w) != 1 || w[0].Status != "rejected" || w[0].Name != "5h" {
		t.Fatalf("windows %+v, want the 5h window rejected", w)
	}
}
