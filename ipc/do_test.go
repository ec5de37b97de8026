package ipc_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/internal/ipctest"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

func TestDo(t *testing.T) {
	cfg := limiter.Config{LeaseTTL: ipctest.LeaseTTL, Services: []limiter.ServiceConfig{
		{Name: "svc", Limits: []limiter.Policy{
			{Quota: 2, Unit: limiter.Requests, Window: 300 * time.Millisecond},
			{Quota: 1000, Unit: limiter.Tokens, Window: time.Hour},
		}},
		{Name: "hourly", Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests, Window: time.Hour}}},
	}}
	d := ipctest.StartDaemon(t, cfg, nil)
	c := d.Client
	// A bound, so that a retry loop that never gets its grant fails the test
	// instead of hanging it (it once hung CI's whole 15-minute budget).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := wire.AcquireRequest{Agent: "a", Service: "svc", Cost: wire.Cost{"tokens": 100}, MaxWaitMS: wire.Wait(0)}

	t.Run("reports status, headers and usage", func(t *testing.T) {
		calls := 0
		err := c.Do(ctx, req, func(ctx context.Context) (ipc.CallResult, error) {
			calls++
			if q := ipctest.ServiceOf(t, d.Srv.Status(), "svc"); q.InFlight != 1 {
				t.Errorf("in flight during the call: %d, want 1", q.InFlight)
			}
			return ipc.CallResult{Status: 200, Usage: wire.Cost{"tokens": 40},
				Header: http.Header{"X-Ratelimit-Remaining-Requests": {"1"}}}, nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("Do: %v after %d calls", err, calls)
		}
		s := ipctest.ServiceOf(t, d.Srv.Status(), "svc")
		if s.InFlight != 0 {
			t.Errorf("in flight after Do: %d, want 0 (the lease is reported)", s.InFlight)
		}
		if tok := s.Limits[1]; tok.Remaining != 960 {
			t.Errorf("tokens remaining %d, want 960: usage 40 replaced the estimate 100", tok.Remaining)
		}
	})

	t.Run("waits out refusals", func(t *testing.T) {
		// Three calls against 2 per 300 ms: at least one is refused and
		// retried after its retry time.
		for i := range 3 {
			err := c.Do(ctx, req, func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{Status: 200}, nil })
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if r := ipctest.ServiceOf(t, d.Srv.Status(), "svc").Counters.Refused; r == 0 {
			t.Error("no refusal happened: the test did not exercise the retry")
		}
	})

	t.Run("NoRetry returns the refusal", func(t *testing.T) {
		var refused *ipc.RefusedError
		for range 3 {
			err := c.Do(ctx, req, func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{Status: 200}, nil }, ipc.NoRetry())
			if errors.As(err, &refused) {
				break
			}
		}
		if refused == nil || refused.Reason != "timeout" || refused.RetryAfter <= 0 {
			t.Fatalf("got %+v, want a timeout refusal with a retry time", refused)
		}
	})

	t.Run("a deadline before the retry time returns the refusal", func(t *testing.T) {
		hourly := wire.AcquireRequest{Agent: "a", Service: "hourly", MaxWaitMS: wire.Wait(0)}
		ok := func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{Status: 200}, nil }
		if err := c.Do(ctx, hourly, ok); err != nil {
			t.Fatal(err)
		}
		// The next grant is an hour away; waiting for it cannot fit.
		dctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := c.Do(dctx, hourly, ok)
		var refused *ipc.RefusedError
		if !errors.As(err, &refused) || errors.Is(err, context.DeadlineExceeded) || refused.RetryAfter < 50*time.Minute {
			t.Fatalf("got %v, want the refusal at once", err)
		}
	})

	t.Run("a pause is waited out a second at a time", func(t *testing.T) {
		paused := wire.AcquireRequest{Agent: "waiter", Service: "hourly", MaxWaitMS: wire.Wait(0)}
		if _, err := c.SetServicePaused(ctx, "hourly", true); err != nil {
			t.Fatal(err)
		}
		refusedSoFar := func() int64 { a, _ := ipctest.AgentOf(d.Srv.Status(), "waiter"); return a.Counters.Refused }
		// A deadline shorter than the paused wait: one ask, then the refusal.
		dctx, cancel := context.WithTimeout(ctx, ipc.PausedRetryWait/2)
		defer cancel()
		err := c.Do(dctx, paused, func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{Status: 200}, nil })
		var refused *ipc.RefusedError
		if !errors.As(err, &refused) || refused.Reason != "paused" || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the paused refusal at once", err)
		}
		if n := refusedSoFar(); n != 1 {
			t.Errorf("asked %d times while paused within %v, want once", n, ipc.PausedRetryWait/2)
		}
		// Without a deadline Do keeps asking, and a resume lets the call through.
		onSvc := wire.AcquireRequest{Agent: "waiter", Service: "svc", MaxWaitMS: wire.Wait(5 * time.Second)}
		if _, err := c.SetServicePaused(ctx, "svc", true); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- c.Do(ctx, onSvc, func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{Status: 200}, nil })
		}()
		testenv.WaitFor(t, 15*time.Second, "Do to be refused while paused", func() bool { return refusedSoFar() >= 2 })
		if _, err := c.SetServicePaused(ctx, "svc", false); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Do after the resume: %v", err)
		}
	})

	t.Run("the call's error is returned and the lease still reported", func(t *testing.T) {
		boom := errors.New("boom")
		err := c.Do(ctx, wire.AcquireRequest{Agent: "a", Service: "svc", MaxWaitMS: wire.Wait(5 * time.Second)},
			func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{}, boom })
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want boom", err)
		}
		if s := ipctest.ServiceOf(t, d.Srv.Status(), "svc"); s.InFlight != 0 {
			t.Errorf("in flight %d after a failed call, want 0", s.InFlight)
		}
	})

	t.Run("a provider 429 starts a cooldown", func(t *testing.T) {
		err := c.Do(ctx, wire.AcquireRequest{Agent: "a", Service: "svc", MaxWaitMS: wire.Wait(5 * time.Second)},
			func(context.Context) (ipc.CallResult, error) {
				return ipc.CallResult{Status: 429, Header: http.Header{"Retry-After": {"30"}}}, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		s := ipctest.ServiceOf(t, d.Srv.Status(), "svc")
		if s.CooldownUntil == nil || time.Until(*s.CooldownUntil) < 20*time.Second {
			t.Errorf("cooldown_until %v, want about 30 s ahead", s.CooldownUntil)
		}
		err = c.Do(ctx, req, func(context.Context) (ipc.CallResult, error) { return ipc.CallResult{}, nil }, ipc.NoRetry())
		var refused *ipc.RefusedError
		if !errors.As(err, &refused) || refused.Reason != "cooldown" {
			t.Errorf("got %v, want a cooldown refusal", err)
		}
	})
}

func TestDoBatch(t *testing.T) {
	cfg := limiter.Config{LeaseTTL: ipctest.LeaseTTL, Services: []limiter.ServiceConfig{
		{Name: "embed", Limits: []limiter.Policy{
			{Quota: 100, Unit: limiter.Requests, Window: time.Hour},
			{Quota: 10000, Unit: limiter.Tokens, Window: time.Hour},
		}},
	}}
	d := ipctest.StartDaemon(t, cfg, nil)
	ctx := context.Background()
	req := wire.AcquireRequest{Agent: "a", Service: "embed", MaxWaitMS: wire.Wait(time.Second)}
	call := func(status int, usage wire.Cost) ipc.BatchCall {
		return ipc.BatchCall{Cost: wire.Cost{"tokens": 100}, Call: func(ctx context.Context) (ipc.CallResult, error) {
			// One lease covers the whole batch.
			if s := ipctest.ServiceOf(t, d.Srv.Status(), "embed"); s.InFlight != 1 {
				t.Errorf("in flight %d during the batch, want 1", s.InFlight)
			}
			return ipc.CallResult{Status: status, Usage: usage}, nil
		}}
	}

	var calls []ipc.BatchCall
	for range 10 {
		calls = append(calls, call(200, wire.Cost{"tokens": 50}))
	}
	if err := d.Client.DoBatch(ctx, req, calls); err != nil {
		t.Fatal(err)
	}
	s := ipctest.ServiceOf(t, d.Srv.Status(), "embed")
	if s.Counters.Granted != 1 || s.InFlight != 0 {
		t.Errorf("after a batch: granted %d in flight %d, want 1 and 0", s.Counters.Granted, s.InFlight)
	}
	if r, tok := s.Limits[0].Remaining, s.Limits[1].Remaining; r != 90 || tok != 9500 {
		t.Errorf("remaining %d requests and %d tokens, want 90 and 9500", r, tok)
	}

	// A 429 in the middle stops the batch; the calls not made are refunded.
	calls = []ipc.BatchCall{call(200, nil), call(429, nil), call(200, nil), call(200, nil)}
	if err := d.Client.DoBatch(ctx, req, calls); err != nil {
		t.Fatal(err)
	}
	s = ipctest.ServiceOf(t, d.Srv.Status(), "embed")
	if r, tok := s.Limits[0].Remaining, s.Limits[1].Remaining; r != 88 || tok != 9300 {
		t.Errorf("after a stopped batch: remaining %d requests and %d tokens, want 88 and 9300", r, tok)
	}
	if s.Counters.Provider429 != 1 {
		t.Errorf("provider_429 %d, want 1", s.Counters.Provider429)
	}
}
