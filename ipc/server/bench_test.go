package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// BenchmarkAcquireReport measures one acquire and its report over the
// socket, beside two baselines from the same run: the limiter alone (what
// the socket adds is the difference) and a health round trip (the cost of
// one HTTP exchange over the socket).
func BenchmarkAcquireReport(b *testing.B) {
	cfg := limiter.Config{Services: []limiter.ServiceConfig{{
		Name:   "svc",
		Limits: []limiter.Policy{{Quota: 1 << 40, Unit: limiter.Requests, Window: time.Second}},
	}}}
	ctx := context.Background()
	req := wire.AcquireRequest{Agent: "bench", Service: "svc", Cost: wire.Cost{"requests": 1}}

	b.Run("socket", func(b *testing.B) {
		d := ipctest.StartDaemon(b, cfg, nil)
		for b.Loop() {
			lease, err := d.Client.Acquire(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.Client.Report(ctx, wire.ReportRequest{Lease: lease.ID, Status: 200}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=health-round-trip", func(b *testing.B) {
		d := ipctest.StartDaemon(b, cfg, nil)
		for b.Loop() {
			if err := d.Client.Health(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=limiter-in-process", func(b *testing.B) {
		lim, err := limiter.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer lim.Close()
		lreq := limiter.Request{Agent: "bench", Service: "svc", Cost: limiter.Cost{limiter.Requests: 1}}
		for b.Loop() {
			lease, err := lim.Acquire(ctx, lreq)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := lim.Report(limiter.Report{Lease: lease.ID, Status: 200}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
