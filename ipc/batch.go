package ipc

import (
	"context"
	"errors"
	"net/http"

	"github.com/quotabar/quotabar/ipc/wire"
)

// BatchCall is one call of a batch.
type BatchCall struct {
	// Cost is the call's estimate; nil means one request.
	Cost wire.Cost
	Call func(ctx context.Context) (CallResult, error)
}

// DoBatch runs many small calls under one lease, so the daemon is asked once
// instead of once per call: it acquires the sum of the calls' costs (nil
// costs count one request each), runs the calls one after the other, and
// reports the batch. req.Cost is ignored.
//
// When a call's provider answers 429 or 503, the calls after it are not
// made. The report carries the real usage of the calls that were made (each
// call's estimate where its CallResult has no Usage), so the rest is
// refunded; its status and headers are those of the 429 or 503, else of the
// last call. Refusals are handled as in Do. DoBatch returns the calls' errors
// joined, and an error wrapping ErrReport if the report failed.
func (c *Client) DoBatch(ctx context.Context, req wire.AcquireRequest, calls []BatchCall, opts ...DoOption) error {
	if len(calls) == 0 {
		return nil
	}
	req.Cost = wire.Cost{}
	for _, bc := range calls {
		addCost(req.Cost, estimate(bc.Cost))
	}
	lease, err := c.acquire(ctx, req, opts)
	if err != nil {
		return err
	}
	var errs []error
	var last CallResult
	usage := wire.Cost{}
	for _, bc := range calls {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		res, err := bc.Call(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		used := estimate(bc.Cost)
		for u, n := range res.Usage {
			used[u] = n
		}
		addCost(usage, used)
		last = res
		if res.Status == http.StatusTooManyRequests || res.Status == http.StatusServiceUnavailable {
			break
		}
	}
	errs = append(errs, c.reportLease(ctx, lease, last.Status, last.Header, usage))
	return errors.Join(errs...)
}

// estimate returns a copy of cost with one request when it names none.
func estimate(cost wire.Cost) wire.Cost {
	out := wire.Cost{"requests": 1}
	for u, n := range cost {
		out[u] = n
	}
	return out
}

func addCost(sum, c wire.Cost) {
	for u, n := range c {
		sum[u] += n
	}
}
