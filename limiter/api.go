package limiter

import "time"

// This file is the limiter's public contract. The daemon (ipc), the app, the
// proxy and the benchmark are written against it; change it only by adding.

// Unit is what a policy counts.
type Unit string

// The units an acquire may cost. A unit a service does not limit is accepted
// and ignored.
const (
	Requests     Unit = "requests"
	Tokens       Unit = "tokens"
	InputTokens  Unit = "input_tokens"
	OutputTokens Unit = "output_tokens"
)

// Units lists every known unit, in display order.
var Units = []Unit{Requests, Tokens, InputTokens, OutputTokens}

// Cost is the amount of each unit one call uses. In a Request, every call
// counts one request unless the Cost names Requests itself: nil or empty
// means one request, Cost{Tokens: 900} one request and 900 tokens, and
// Cost{Requests: 0, Tokens: 900} tokens alone.
type Cost map[Unit]int64

// Priority orders requests within a service. The zero value, PriorityUnset,
// means "use the agent's configured priority".
type Priority int8

// Priorities, lowest first.
const (
	PriorityUnset Priority = iota
	Low
	Normal
	High
)

// Policy is one quota: at most Quota of Unit in any window of length Window.
type Policy struct {
	Quota  int64
	Unit   Unit
	Window time.Duration
}

// ServiceConfig configures one rate-limited service.
type ServiceConfig struct {
	Name string
	// Limits are the configured policies; empty means "learn from headers".
	Limits []Policy
	// MaxConcurrent caps calls in flight; 0 means no cap (but see
	// Config.LearnConcurrency for services that have no limits at all).
	MaxConcurrent int
	// Headroom is the fraction of every quota kept in reserve, 0 <= h < 1.
	Headroom float64
	// Dialect names the provider header dialect; DialectAll ("") parses
	// every known dialect.
	Dialect Dialect
	// MaxHold is the longest one provider answer may hold the service: a
	// cooldown, the reset of a spent limit or a learned window beyond it
	// is cut to it (and the report says so). 0 means DefaultMaxHold of the
	// dialect: a day, for GitHub two hours.
	MaxHold time.Duration
	// ReserveHigh is the part of every utilization window (subscription
	// windows such as Claude's 5-hour and weekly ones) kept for high
	// priority, 0 <= r < 1: past 1 - ReserveHigh used, only high-priority
	// requests are granted and the others wait, with ReasonReserved, until
	// the window resets. 0 keeps no reserve.
	ReserveHigh float64
}

// AgentConfig configures one agent. Agents not configured are registered on
// first use with Normal priority and weight 1.
type AgentConfig struct {
	Name     string
	Priority Priority // PriorityUnset means Normal
	Weight   float64  // 0 means 1
	Limits   []Policy // optional cap of this agent alone, across services
}

// Config is the whole limiter configuration. Zero durations take defaults.
type Config struct {
	Services []ServiceConfig
	Agents   []AgentConfig
	// LeaseTTL is how long an unreported lease holds its concurrency slot.
	LeaseTTL time.Duration
	// MaxAging is how long a request of a lower priority waits before it
	// is served at its level's next owed grant, ahead of its level's
	// younger requests (see NormalShare).
	MaxAging time.Duration
	// NormalShare and LowShare are the floor shares of the service's
	// grants owed to normal and low priority while higher priorities keep
	// the service saturated: under such load a lower level still receives
	// that fraction of the grants, and none of its requests waits forever.
	// Zero means the default (0.10 and 0.05); each, and their sum, may be
	// at most 0.5.
	NormalShare float64
	LowShare    float64
	// QueueLimit is the most requests queued per service; more are shed.
	QueueLimit int
	// LearnConcurrency is the in-flight cap of a service that has no limits
	// configured and none learned yet, when it has no MaxConcurrent.
	LearnConcurrency int
	// ResumeSpacing is the gap between grants for a minute after a
	// utilization window's hold (reserve or rejection) ends, so that the
	// waiting agents do not all start again at its reset.
	ResumeSpacing time.Duration
	// AgentIdleTTL is how long an agent that is not configured and has no
	// run-time override (pause or priority) stays listed after it was
	// last seen (its last acquire or report), once nothing of it is queued
	// or in flight; then it is forgotten, counters and all. Zero means
	// DefaultAgentIdleTTL (an hour).
	AgentIdleTTL time.Duration
}

// Request asks permission for one call (or one batch).
type Request struct {
	Agent    string
	Service  string
	Cost     Cost
	Priority Priority
	// MaxWait is how long the request may queue; 0 means answer at once.
	MaxWait time.Duration
}

// Lease is a granted request: it holds the reserved cost and a concurrency
// slot until it is reported or expires.
type Lease struct {
	ID        string
	Agent     string
	Service   string
	Cost      Cost
	GrantedAt time.Time
	ExpiresAt time.Time
	Waited    time.Duration
}

// Reason says why an acquire was refused.
type Reason string

// Refusal reasons, as on the wire.
const (
	ReasonCooldown Reason = "cooldown"
	ReasonTimeout  Reason = "timeout"
	ReasonPaused   Reason = "paused"
	ReasonShed     Reason = "shed"
	// ReasonReserved: a utilization window is past 1 - ReserveHigh and the
	// request is not high priority; RetryAfter is the window's reset.
	ReasonReserved Reason = "reserved"
)

// RefusedError is returned by Acquire when the request was not granted.
type RefusedError struct {
	Reason     Reason
	RetryAfter time.Duration // jittered per refusal, so agents refused together come back apart
	Service    string
	Agent      string
}

// Code classifies an Error; the values are the wire error codes.
type Code string

// Error codes.
const (
	CodeBadRequest       Code = "bad_request"
	CodeCostExceedsQuota Code = "cost_exceeds_quota"
	CodeUnknownService   Code = "unknown_service"
	CodeUnknownLease     Code = "unknown_lease"
	CodeNotFound         Code = "not_found"
	CodeShuttingDown     Code = "shutting_down"
)

// Error is a request the limiter cannot serve at all. Message is written for
// a person: it names the bad field and what is allowed.
type Error struct {
	Code    Code
	Message string
}

// Report tells the limiter what happened to a call.
type Report struct {
	Lease   string // optional; without it Agent and Service are required
	Agent   string
	Service string
	Status  int               // provider HTTP status, 0 if unknown
	Header  map[string]string // provider response headers, names in any case
	Usage   Cost              // real cost, nil if unknown
	// Body is the start of a refusal's body (status 400 and up), when the
	// reporter has it: Codex and Gemini say there which window refused
	// and until when. At most 64 KiB is read.
	Body []byte
}

// ReportResult is the limiter's answer to a Report.
type ReportResult struct {
	CooldownUntil time.Time     // zero when the service is not cooling down
	RetryAfter    time.Duration // after a 429/503: this agent's jittered wait
	// Warnings say what of the report was cut to bounds (a retry time or
	// reset beyond MaxHold, a usage beyond any real count), for the
	// daemon's log; each names the service. Nil when nothing was.
	Warnings []string
}

// AgentUpdate changes an agent at run time; nil fields are left alone.
type AgentUpdate struct {
	Paused   *bool
	Priority *Priority
}

// Status is a snapshot of every service and agent.
type Status struct {
	Services []ServiceStatus
	Agents   []AgentStatus
}

// ServiceStatus is one service in a Status.
type ServiceStatus struct {
	Name          string
	Paused        bool
	Limits        []LimitStatus
	MaxConcurrent int
	InFlight      int
	Queued        int
	CooldownUntil time.Time // zero when not cooling down
	Granted       int64
	Refused       int64
	Provider429   int64
	// ReserveHigh is the service's configured reserve for high priority.
	ReserveHigh float64
	// Windows are the utilization windows learned from its answers,
	// shortest first.
	Windows []WindowStatus
}

// LimitStatus is one policy of a service with what is left of it now.
type LimitStatus struct {
	Unit      Unit
	Quota     int64
	Window    time.Duration
	Remaining int64
	ResetsAt  time.Time
	Source    string // "config" or "headers"
}

// AgentStatus is one agent in a Status.
type AgentStatus struct {
	Name     string
	Priority Priority
	Weight   float64
	Paused   bool
	LastSeen time.Time
	InFlight int
	Queued   int
	Granted  int64
	Refused  int64
}

// Clock is the limiter's source of time; tests inject a fake one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	Stop() bool
}
