// Package sim measures how well a way of sharing one API quota between many
// agents works. It holds a fake provider that enforces rate limits exactly
// and answers like real ones (429 with Retry-After, rate-limit headers in the
// OpenAI, Anthropic, GitHub or IETF dialect, token usage in the body), and a
// crowd of agents with weights, priorities and load shapes that call it
// under one of several strategies: each SDK retrying on its own, a static
// split of the quota, or quotabar's daemon over its real Unix socket.
//
// Windows are compressed in time (a per-minute quota becomes, say, a
// per-two-seconds one) so a run takes seconds; every delay a strategy takes
// from the real world, such as an SDK's backoff, is divided by the same
// factor. The provider records every accepted call, so a run can be judged
// by what the provider saw: goodput, 429s, overshoot of any sliding window,
// waits per priority and fairness between agents.
package sim
