// Package limiter decides, for every agent's request, when it may call a
// rate-limited API. It is pure logic: an injectable Clock, no I/O, and one
// mutex, so a *Limiter is safe for concurrent use.
//
// Create a Limiter with New (the zero Limiter is not usable). Zero fields
// of a Config take the Default values, and the zero Config is valid: a
// limiter with no services, whose acquires fail with CodeUnknownService
// until Reconfigure adds some. Time comes from the real clock unless
// WithClock injects another, as the tests do with a fake one.
//
// # Limits and safety
//
// A service has policies, "Quota of a Unit per Window", and an optional
// cap on calls in flight; an agent may have policies of its own, across
// services. Each policy is enforced by a ledger: an exact log of the grants
// of its last window (amount and time). A request is granted only when,
// for every policy of its service and of its agent, the logged usage plus
// its cost fits the quota (less the service's headroom). Since every grant
// is checked against the window that ends at its own instant, and later
// windows only lose entries, no sliding window of a policy's length ever
// holds more than its quota: the strictest provider model, so fixed-window
// and token-bucket providers are never overrun either. (A token bucket with
// burst = quota would not do: it allows twice the quota in one window.)
// A grant stays logged a little longer than the window, by 1% of it (at
// most 250 ms), because a call reaches the provider a variable moment after
// its grant: a window packed to the last unit here must not be one over
// there; it costs at most 1% of the quota's use. Usage reported after the
// call corrects the logged entry in place, so a refund frees quota and an
// overrun is charged.
//
// Utilization stays at least 97% under a backlog: the log frees an entry
// exactly when it leaves the window and the queue is served at that
// instant, so a backlog keeps every window full but for the gap between
// what is free and the head's cost. A window therefore holds at least the
// quota less the largest single cost, less the 1% margin: 97% or more
// whenever no single request costs more than 2% of a quota (a 4000-token
// call against 200000 tokens/1m), and less for calls that take a large
// share of it.
//
// Under a backlog grants are evenly spaced at the policy's rate: a request
// policy's pacer holds one grant, so the backlog goes out 1/rate apart,
// exactly what the log can take, and no window starts with a herd (in any
// quarter of a window a backlog gets at most a quarter of the quota plus
// one grant, after its first window). A burst is kept only for a caller
// that finds the service idle: a tenth of the quota (up to 10 for small
// quotas, at most half) may go at once when the log is that empty, and the
// pacer leaves room for it for the rest of the window. The burst cannot
// recur under a backlog, whose log stays near the quota, and is off for a
// window after a cooldown or a spent budget, so the backlog that waited
// for that moment trickles out. Token policies bank a tenth of their quota
// (calls vary in size, and the request pacer spaces the grants). Windows
// up to a minute pace every grant beyond the idle burst; up to an hour only
// requests that wait behind others (a lone caller is not held back); longer
// ones ("40 requests/5h") are left to burst, except for a minute after a
// cooldown. TestSimulation and TestEvenSpacingUnderSaturation check these
// bounds.
// The bucket is x/time/rate's arithmetic (a rate.Limit; tokens grow with
// elapsed time up to the burst) written out here rather than a
// rate.Limiter, because a rate.Limiter cannot take tokens back once a
// reservation's time has passed, and usage reports refund estimates long
// after the grant.
//
// A request that costs more than a whole quota (of the service, or of the
// agent's own cap) could never pass and fails at once with
// CodeCostExceedsQuota.
//
// Every acquire counts one request unless its Cost names requests itself
// (Cost{Tokens: 900} is one request and 900 tokens; Cost{Requests: 0,
// Tokens: 900} only tokens): each call counts against a provider's request
// limit whatever else it costs.
//
// # Queueing
//
// Each service has one queue and reserves only at its head: a waiting
// request charges nothing. Between priorities the order is strict (high,
// normal, low) with a floor: while higher priorities keep the service
// busy, normal is still owed Config.NormalShare of the grants (default
// 10%) and low Config.LowShare (5%); a level served anyway is owed
// nothing, and two owed grants never follow each other while a higher
// request waits, so a high request waits at most about two grant
// intervals beyond the high requests served before it. A lower request
// that has waited Config.MaxAging (30 s) goes at its level's next owed
// grant, oldest first, using at most one grant of the level's future
// credit: aging moves a request forward, it never promotes a level, so the
// level still receives its floor share and no more. So no request
// starves: a lower request waits at most MaxAging plus about 1/share + 1
// grant intervals for itself and for each aged request of its level ahead
// of it.
// Within a priority, start-time fair queueing between agents: each
// request's size is its largest fraction of any of the service's quotas,
// divided by the agent's weight, so busy agents share in proportion to
// their weights, an agent alone may use everything, and an agent that was
// idle goes ahead of the backlogged ones instead of behind a heavy
// agent's backlog. Requests of one agent keep their order. An agent held back only
// by its own cap does not hold back anyone else.
//
// A grant is a lease that holds the reserved cost and a concurrency slot
// until it is reported or its TTL (Config.LeaseTTL) passes. A report with
// usage refunds or charges the difference; a report without usage, or an
// expiry, frees the slot and leaves the estimate charged, since the call
// was presumably made. A request whose context ends leaves the queue and
// consumes nothing; a grant that reaches a requester already gone is taken
// back whole.
//
// Agents need no configuration: one is registered on first use, and one
// that is not configured and has no run-time override is forgotten once it
// has been idle (nothing queued or in flight) for Config.AgentIdleTTL, so
// the agent table, and every Status, stays the size of the agents in use.
//
// # Providers' headers
//
// Report applies what the provider answered (ParseHeaders reads the
// dialects: what is malformed is ignored, nothing panics, and how many
// limits headers can make a service keep is bounded). Headers are ground truth: each reported remaining count, less
// the headroom, becomes a budget until its reset, charged with every grant
// made after the reporting call (the provider had not seen those). For
// OpenAI and Anthropic, whose reset means "full again at" (and IETF fields
// that give a window), the used part comes back steadily until then, so
// remaining 0 blocks the service until the first unit is back (a limit of
// 100 resetting in 10 s: 100 ms), then lets calls through at the rate the
// provider refills; a GitHub window, and any other limit whose headers
// give a reset but no window, gives nothing back before its reset, so
// remaining 0 blocks the service until it. This reads the rule
// "remaining = 0 blocks until reset" by what each provider's reset means:
// waiting for a refilling provider's "full again"
// time would idle a whole window of quota it would accept. A service with no
// configured limits learns them from the headers (quota, and the window
// given or, failing that, the longest time-to-full seen), and until it has
// learned anything lets only LearnConcurrency calls be in flight.
//
// A 429, a 503 with a retry time, or a 403 saying the budget is spent puts
// the whole service into one cooldown until the provider's retry time, or
// for a random time up to 1 s, 2 s, 4 s ... 60 s for successive refusals
// without one. Waiters stay queued; refused acquires get a retry time with
// jitter so that agents do not come back together.
//
// One answer cannot hold a service for long: a cooldown, the reset of a
// spent limit and a learned window are each held to the service's
// MaxHold (by default a day, for GitHub two hours), and the report's
// Warnings say what was cut, for the daemon to log; a usage beyond any real
// count is counted as the largest one, and said. A learned window is the
// longest of its recent estimates, so it shrinks again once a long one is
// no longer among them. Reset clears a service's cooldown, header budgets
// and learned limits: the way out of a wrong one.
//
// Snapshot and Restore carry the state worth keeping across a restart:
// pauses and priorities set at run time, cooldowns, learned limits and
// what is left of every limit until its reset (restored as a fixed amount
// until then, without the refill: a restart errs on the safe side).
//
// # Subscription windows
//
// A plan's windows (Claude's 5-hour and weekly ones, Codex's primary and
// secondary) have no quota, only a fraction used, a length and a reset:
// utilization windows, learned from the answers (Claude's
// anthropic-ratelimit-unified-* and Codex's x-codex-* headers, a Codex
// codex.rate_limits event turned into those headers by CodexEventHeaders,
// and the body of a Codex or Gemini refusal through Report.Body). A reset
// in the past or further ahead than the window lasts is ignored, and the
// reason logged. A rejection cools the whole service until the reset of
// the window it names, not any other. Past 1 - ServiceConfig.ReserveHigh
// used, only high priority is granted; the others wait, or are refused
// with ReasonReserved, until the reset. After either hold, grants are
// spaced by Config.ResumeSpacing for a minute, so the waiting agents do
// not all start again at once. Each window counts the requests and tokens
// of every agent's calls since it started, for Status; Snapshot saves the
// windows still ahead of their reset.
//
// # Where the rules live
//
// Each rule of behaviour has a file named for it: policies and their exact
// windows in ledger.go, even spacing in pacer.go, priorities and fair
// queueing in fairqueue.go, reserving only at the head in dispatch.go,
// header budgets and learned limits in budget.go and observe.go (the
// header dialects in dialect.go and ietf.go, single HTTP values in
// httpvalue.go), cooldowns in cooldown.go, leases in lease.go, cancellation
// in acquire.go, pauses in pause.go, saved state in state.go, subscription
// windows in utilization.go (their dialects in dialect_claude.go,
// dialect_codex.go and dialect_gemini.go, what they share in window.go). A service's
// own state is in service.go, an agent's in agent.go.
package limiter
