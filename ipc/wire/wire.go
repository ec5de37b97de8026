package wire

import (
	"fmt"
	"time"
)

// Version is the daemon's version, answered by /v1/health and /v1/status.
const Version = "0.1.0"

// The JSON types below are the bodies of API.md, field for field. Times are
// RFC 3339; a time that may be absent is a pointer and null when absent.

// Cost is the amount of each unit one call uses: "requests", "tokens",
// "input_tokens", "output_tokens". Values are non-negative.
type Cost map[string]int64

// AcquireRequest is the body of POST /v1/acquire.
type AcquireRequest struct {
	Agent   string `json:"agent"`
	Service string `json:"service"`
	// Cost defaults to one request when nil.
	Cost Cost `json:"cost,omitempty"`
	// Priority is "high", "normal" or "low"; "" uses the agent's configured
	// priority.
	Priority string `json:"priority,omitempty"`
	// MaxWaitMS is how long the daemon may queue the request, at most
	// 600000; nil means the daemon's default (60000) and 0 means answer at
	// once. Wait builds one from a duration.
	MaxWaitMS *int64 `json:"max_wait_ms,omitempty"`
}

// Wait returns d in milliseconds, for AcquireRequest.MaxWaitMS.
func Wait(d time.Duration) *int64 {
	ms := d.Milliseconds()
	return &ms
}

// AcquireResponse is the 200 answer of POST /v1/acquire.
type AcquireResponse struct {
	Granted        bool      `json:"granted"`
	Lease          string    `json:"lease"`
	WaitedMS       int64     `json:"waited_ms"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
}

// RefusalResponse is the 429 answer of POST /v1/acquire.
type RefusalResponse struct {
	Granted      bool         `json:"granted"`
	Reason       Reason       `json:"reason"`
	RetryAfterMS int64        `json:"retry_after_ms"`
	Fallback     *FallbackRef `json:"fallback,omitempty"`
}

// FallbackRef tells a refused agent that the service has a web fallback,
// whether the user switched it on, and where to open it.
type FallbackRef struct {
	Enabled bool   `json:"enabled"`
	Open    string `json:"open"`
}

// ReportRequest is the body of POST /v1/report.
type ReportRequest struct {
	// Lease is optional; without it Agent and Service are required.
	Lease   string `json:"lease,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Service string `json:"service,omitempty"`
	// Status is the provider's HTTP status, 0 if unknown.
	Status int `json:"status,omitempty"`
	// Headers are the provider's response headers, names in any case.
	Headers map[string]string `json:"headers,omitempty"`
	// Usage is what the call really cost, nil if unknown.
	Usage Cost `json:"usage,omitempty"`
	// ErrorBody is the body of a refusal (status 400 and up), when the
	// caller has it: Codex and Gemini say there which subscription window
	// refused and until when.
	ErrorBody string `json:"error_body,omitempty"`
}

// ReportResponse is the 200 answer of POST /v1/report.
type ReportResponse struct {
	OK            bool       `json:"ok"`
	CooldownUntil *time.Time `json:"cooldown_until"`
	// RetryAfterMS is present after a 429 or 503: this agent's wait.
	RetryAfterMS *int64 `json:"retry_after_ms,omitempty"`
}

// RetryAfter is RetryAfterMS as a duration, 0 when absent.
func (r ReportResponse) RetryAfter() time.Duration {
	if r.RetryAfterMS == nil {
		return 0
	}
	return time.Duration(*r.RetryAfterMS) * time.Millisecond
}

// StatusResponse is the body of GET /v1/status and of every /v1/events event.
type StatusResponse struct {
	Version  string          `json:"version"`
	Services []ServiceStatus `json:"services"`
	Agents   []AgentStatus   `json:"agents"`
}

// ServiceStatus is one service in a StatusResponse, and the answer of
// PUT /v1/services/{name}.
type ServiceStatus struct {
	Name          string        `json:"name"`
	Paused        bool          `json:"paused"`
	Limits        []LimitStatus `json:"limits"`
	MaxConcurrent int           `json:"max_concurrent"`
	InFlight      int           `json:"in_flight"`
	Queued        int           `json:"queued"`
	CooldownUntil *time.Time    `json:"cooldown_until"`
	// Fallback is present when the service has a web fallback configured.
	Fallback *FallbackInfo `json:"fallback,omitempty"`
	Counters Counters      `json:"counters"`
	// ReserveHigh is the part of every utilization window kept for high
	// priority (reserve_high); absent when 0.
	ReserveHigh float64 `json:"reserve_high,omitempty"`
	// Windows are the service's utilization windows (subscriptions), when
	// its answers carry any; shortest first.
	Windows []WindowStatus `json:"windows,omitempty"`
	// Cluster is present when the service is shared with other daemons
	// through Redis (docs/CLUSTER.md).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is how a shared service stands with the cluster. It never
// holds the Redis URL or password.
type ClusterStatus struct {
	State      string  `json:"state"` // "joining", "online" or "offline"
	Share      float64 `json:"share"` // fraction of the quota this daemon may use now
	Members    int     `json:"members"`
	Recovering bool    `json:"recovering"`
	Text       string  `json:"text"`            // "cluster: offline, using 1/3"
	Error      string  `json:"error,omitempty"` // the last Redis error
}

// LimitStatus is one limit of a service with what is left of it.
type LimitStatus struct {
	Unit      string     `json:"unit"`
	Quota     int64      `json:"quota"`
	WindowMS  int64      `json:"window_ms"`
	Remaining int64      `json:"remaining"`
	ResetsAt  *time.Time `json:"resets_at"`
	Source    string     `json:"source"` // "config" or "headers"
}

// Counters count a service's answers since the daemon started.
type Counters struct {
	Granted     int64 `json:"granted"`
	Refused     int64 `json:"refused"`
	Provider429 int64 `json:"provider_429"`
}

// AgentStatus is one agent in a StatusResponse, and the answer of
// PUT /v1/agents/{name}.
type AgentStatus struct {
	Name     string        `json:"name"`
	Priority string        `json:"priority"`
	Weight   float64       `json:"weight"`
	Paused   bool          `json:"paused"`
	LastSeen *time.Time    `json:"last_seen"`
	InFlight int           `json:"in_flight"`
	Queued   int           `json:"queued"`
	Counters AgentCounters `json:"counters"`
}

// AgentCounters count an agent's answers since the daemon started.
type AgentCounters struct {
	Granted int64 `json:"granted"`
	Refused int64 `json:"refused"`
}

// ServiceUpdate is the body of PUT /v1/services/{name}; nil fields are left
// alone.
type ServiceUpdate struct {
	Paused *bool `json:"paused,omitempty"`
}

// AgentUpdate is the body of PUT /v1/agents/{name}; absent fields are left
// alone.
type AgentUpdate struct {
	Paused   *bool  `json:"paused,omitempty"`
	Priority string `json:"priority,omitempty"` // "high", "normal" or "low"
}

// FallbackUpdate is the body of PUT /v1/services/{name}/fallback.
type FallbackUpdate struct {
	Enabled *bool `json:"enabled"`
}

// FallbackInfo is a service's web fallback as shown in status, and the
// answer of PUT /v1/services/{name}/fallback.
type FallbackInfo struct {
	Browser      string `json:"browser"`
	Enabled      bool   `json:"enabled"`
	OpenSessions int    `json:"open_sessions"`
}

// OpenRequest is the body of POST /v1/services/{name}/fallback/open.
type OpenRequest struct {
	Agent string `json:"agent,omitempty"`
}

// OpenResult is the answer of POST /v1/services/{name}/fallback/open: how to
// drive the browser that was opened.
type OpenResult struct {
	Browser      string `json:"browser"`
	URL          string `json:"url"`
	CDPURL       string `json:"cdp_url,omitempty"`
	TargetID     string `json:"target_id,omitempty"`
	WebDriverURL string `json:"webdriver_url,omitempty"`
	SessionID    string `json:"session_id,omitempty"`
}

// CloseRequest is the body of POST /v1/services/{name}/fallback/close.
type CloseRequest struct {
	TargetID  string `json:"target_id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
}

// HealthResponse is the answer of GET /v1/health.
type HealthResponse struct {
	OK      bool   `json:"ok"`
	Version string `json:"version"`
}

// OKResponse is the answer of endpoints that have nothing else to say.
type OKResponse struct {
	OK bool `json:"ok"`
}

// ErrorResponse is the body of every non-2xx answer but an acquire refusal.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is the "error" object of an ErrorResponse.
type ErrorBody struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// APIError is an error answer of the daemon: the client returns it for
// every non-2xx answer but a refusal, and a server part (the web fallback)
// returns it to choose the status and code the agent sees.
type APIError struct {
	Status  int    // HTTP status
	Code    Code   // wire code, e.g. CodeUnknownService
	Message string // for a person: names the bad field and what is allowed
}

func (e *APIError) Error() string {
	return fmt.Sprintf("quotabar: %s (%d): %s", e.Code, e.Status, e.Message)
}

// Errorf returns an *APIError with code's HTTP status and a message
// formatted from format and args.
func Errorf(code Code, format string, args ...any) *APIError {
	return &APIError{Status: code.HTTPStatus(), Code: code, Message: fmt.Sprintf(format, args...)}
}
