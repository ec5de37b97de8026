package limiter

// TEMPORARY: signatures of the contract so other packages compile while the
// scheduler is written. The limiter author deletes each function here as the
// real one lands, and this file before the issue is resolved.

import (
	"context"
	"time"
)

// Limiter schedules requests for every service. Safe for concurrent use.
type Limiter struct{}

// Option configures New.
type Option func(*options)

type options struct{ clock Clock }

// WithClock injects the clock (tests use a fake one).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// State is the limiter's saveable run-time state (JSON-marshalable).
type State struct{}

func New(cfg Config, opts ...Option) (*Limiter, error)                     { panic("unimplemented") }
func (l *Limiter) Reconfigure(cfg Config) error                            { panic("unimplemented") }
func (l *Limiter) Acquire(ctx context.Context, req Request) (Lease, error) { panic("unimplemented") }
func (l *Limiter) Report(r Report) (ReportResult, error)                   { panic("unimplemented") }
func (l *Limiter) SetServicePaused(service string, paused bool) (ServiceStatus, error) {
	panic("unimplemented")
}
func (l *Limiter) UpdateAgent(agent string, u AgentUpdate) (AgentStatus, error) {
	panic("unimplemented")
}
func (l *Limiter) Status() Status                       { panic("unimplemented") }
func (l *Limiter) Snapshot() State                      { panic("unimplemented") }
func (l *Limiter) Restore(s State) error                { panic("unimplemented") }
func (l *Limiter) Subscribe() (<-chan struct{}, func()) { panic("unimplemented") }
func (l *Limiter) Close()                               { panic("unimplemented") }
func (l *Limiter) Now() time.Time                       { panic("unimplemented") }
func ParsePolicy(s string) (Policy, error)              { panic("unimplemented") }
func (p Policy) String() string                         { panic("unimplemented") }
func ParsePriority(s string) (Priority, error)          { panic("unimplemented") }
func (p Priority) String() string                       { panic("unimplemented") }
func ValidName(s string) error                          { panic("unimplemented") }
func (e *RefusedError) Error() string                   { panic("unimplemented") }
func (e *Error) Error() string                          { panic("unimplemented") }

// Observation is what one response's headers say about the service's limits.
type Observation struct {
	Limits        []ObservedLimit
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// ObservedLimit is one limit read from headers.
type ObservedLimit struct {
	Unit         Unit
	Limit        int64 // quota; 0 when not given
	Remaining    int64
	HasRemaining bool
	Reset        time.Time     // zero when not given
	Window       time.Duration // 0 when not given
}

func ParseHeaders(dialect string, h map[string]string, now time.Time) Observation {
	panic("unimplemented")
}
