package ipc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
)

// CallResult is what the caller's function tells Do about one API call.
type CallResult struct {
	Status int         // the provider's HTTP status, 0 if there was no answer
	Header http.Header // the provider's response headers: they carry its limits
	Usage  wire.Cost   // what the call really cost; nil keeps the estimate
}

// DoOption changes how Do and DoBatch behave.
type DoOption func(*doOptions)

type doOptions struct {
	noRetry bool
}

// NoRetry makes Do return the *RefusedError of a refused acquire at once instead
// of waiting its retry time and asking again.
func NoRetry() DoOption { return func(o *doOptions) { o.noRetry = true } }

// minRetryWait keeps a refusal that says "retry now" from spinning.
const minRetryWait = 50 * time.Millisecond

// pausedRetryWait is how often Do asks again while a service or agent is
// paused. A pause is a person's decision that lasts seconds to hours and the
// daemon's retry time for it is only jitter; a second notices a resume soon
// enough without many requests a second from every waiting agent.
const pausedRetryWait = time.Second

// reportTimeout bounds the report that ends a lease; it is sent even when
// ctx has ended, so the slot is freed now rather than when the lease expires.
const reportTimeout = 10 * time.Second

// Do wraps one API call: it acquires a lease for req, runs call, and reports
// call's status, headers and usage. When the daemon refuses, Do waits the
// refusal's retry time (at least a second while paused) and asks again until
// ctx ends; a refusal whose retry time is past ctx's deadline is returned at
// once as a *RefusedError (with NoRetry, every refusal is). Do returns call's
// error; if call succeeded but the report failed, it returns an error
// wrapping ErrReport: the call ran.
func (c *Client) Do(ctx context.Context, req wire.AcquireRequest, call func(ctx context.Context) (CallResult, error), opts ...DoOption) error {
	lease, err := c.acquire(ctx, req, opts)
	if err != nil {
		return err
	}
	res, callErr := call(ctx)
	rerr := c.reportLease(ctx, lease, res.Status, res.Header, res.Usage)
	if callErr != nil {
		return callErr
	}
	return rerr
}

// ErrReport is wrapped by the error Do and DoBatch return when the calls ran
// but their report did not reach the daemon; the lease then expires by itself.
var ErrReport = errors.New("ipc: the call ran but reporting it failed")

func (c *Client) acquire(ctx context.Context, req wire.AcquireRequest, opts []DoOption) (Lease, error) {
	var o doOptions
	for _, opt := range opts {
		opt(&o)
	}
	for {
		lease, err := c.Acquire(ctx, req)
		var refused *RefusedError
		if !errors.As(err, &refused) || o.noRetry {
			return lease, err
		}
		wait := max(refused.RetryAfter, minRetryWait)
		if refused.Reason == wire.ReasonPaused {
			wait = max(wait, pausedRetryWait)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return Lease{}, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Lease{}, errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (c *Client) reportLease(ctx context.Context, lease Lease, status int, h http.Header, usage wire.Cost) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	_, err := c.Report(rctx, wire.ReportRequest{
		Lease:   lease.ID,
		Agent:   lease.Agent,
		Service: lease.Service,
		Status:  status,
		Headers: flatten(h),
		Usage:   usage,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrReport, err)
	}
	return nil
}

// flatten joins repeated headers as HTTP allows (RFC 9110, 5.3).
func flatten(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[k] = strings.Join(v, ", ")
	}
	return m
}

// RefusedError is the error of an acquire the daemon refused: why, and when
// to ask again.
type RefusedError struct {
	Reason     wire.Reason
	RetryAfter time.Duration
	// Fallback is set when the service has a web fallback configured.
	Fallback *wire.FallbackRef
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("quotabar refused the call: %s; retry after %v", e.Reason, e.RetryAfter)
}

// IsRefused reports whether err is (or wraps) a *RefusedError, and, when
// reasons are given, whether its reason is one of them.
func IsRefused(err error, reasons ...wire.Reason) bool {
	var r *RefusedError
	if !errors.As(err, &r) {
		return false
	}
	return len(reasons) == 0 || slices.Contains(reasons, r.Reason)
}
