package limiter

// TEMPORARY: signatures of the contract so other packages compile while the
// scheduler is written. The limiter author deletes each function here as the
// real one lands, and this file before the issue is resolved.

import (
	"time"
)

func ParsePolicy(s string) (Policy, error)     { panic("unimplemented") }
func (p Policy) String() string                { panic("unimplemented") }
func ParsePriority(s string) (Priority, error) { panic("unimplemented") }
func (p Priority) String() string              { panic("unimplemented") }
func ValidName(s string) error                 { panic("unimplemented") }
func (e *RefusedError) Error() string          { panic("unimplemented") }
func (e *Error) Error() string                 { panic("unimplemented") }

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
