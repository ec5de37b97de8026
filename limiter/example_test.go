package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// An agent asks before each call and reports what the provider answered.
func Example() {
	l, err := limiter.New(limiter.Config{
		Services: []limiter.ServiceConfig{{
			Name: "openai",
			Limits: []limiter.Policy{
				{Quota: 500, Unit: limiter.Requests, Window: time.Minute},
				{Quota: 200000, Unit: limiter.Tokens, Window: time.Minute},
			},
		}},
	})
	if err != nil {
		panic(err)
	}
	defer l.Close()

	lease, err := l.Acquire(context.Background(), limiter.Request{
		Agent: "research-1", Service: "openai",
		Cost:    limiter.Cost{limiter.Tokens: 1200}, // prompt + max_tokens
		MaxWait: 30 * time.Second,
	})
	var refused *limiter.RefusedError
	if errors.As(err, &refused) {
		fmt.Println("refused:", refused.Reason, "retry in", refused.RetryAfter)
		return
	}
	if err != nil {
		panic(err)
	}
	// ... call the API, then tell the limiter what it answered and cost.
	if _, err := l.Report(limiter.Report{
		Lease:  lease.ID,
		Status: 200,
		Header: map[string]string{"x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms"},
		Usage:  limiter.Cost{limiter.Tokens: 950},
	}); err != nil {
		panic(err)
	}
	st := l.Status().Services[0]
	fmt.Println(st.Name, "granted", st.Granted, "in flight", st.InFlight)
	// Output: openai granted 1 in flight 0
}
