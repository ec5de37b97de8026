package wire

import "net/http"

// Code is the "code" of an error answer (docs/API.md, Errors). New codes may
// be added; clients treat an unknown one by its HTTP status.
type Code string

// The codes of docs/API.md.
const (
	CodeBadRequest         Code = "bad_request"
	CodeCostExceedsQuota   Code = "cost_exceeds_quota"
	CodeForbidden          Code = "forbidden"
	CodeUnknownService     Code = "unknown_service"
	CodeUnknownLease       Code = "unknown_lease"
	CodeNotFound           Code = "not_found"
	CodeMethodNotAllowed   Code = "method_not_allowed"
	CodeFallbackDisabled   Code = "fallback_disabled"
	CodeFallbackBusy       Code = "fallback_busy"
	CodeTooLarge           Code = "too_large"
	CodeShuttingDown       Code = "shutting_down"
	CodeBrowserUnavailable Code = "browser_unavailable"
	CodeInternal           Code = "internal"
)

// HTTPStatus is the status an answer with code c carries: the one table of
// docs/API.md, used by the server to answer and by tests to check. An
// unknown code is a 500.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest, CodeCostExceedsQuota:
		return http.StatusBadRequest
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnknownService, CodeUnknownLease, CodeNotFound:
		return http.StatusNotFound
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeFallbackDisabled, CodeFallbackBusy:
		return http.StatusConflict
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeShuttingDown, CodeBrowserUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Reason says why an acquire was refused (the "reason" of a 429 answer).
// New reasons may be added; a client that does not know one waits the
// refusal's retry time.
type Reason string

// The refusal reasons of docs/API.md.
const (
	// ReasonCooldown: the provider said the service's limit is spent; every
	// agent waits until the cooldown ends.
	ReasonCooldown Reason = "cooldown"
	// ReasonTimeout: no grant within max_wait_ms.
	ReasonTimeout Reason = "timeout"
	// ReasonPaused: the person paused the service or the agent.
	ReasonPaused Reason = "paused"
	// ReasonShed: the service's queue is full.
	ReasonShed Reason = "shed"
	// ReasonReserved: a subscription window is past 1 - reserve_high and
	// the request is not high priority; it may go on at the window's reset.
	ReasonReserved Reason = "reserved"
)
