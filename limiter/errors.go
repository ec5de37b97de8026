package limiter

import (
	"fmt"
	"strings"
	"time"
)

// This file holds the limiter's error types' messages.

func badRequest(format string, args ...any) *Error {
	return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// Error reads like "openai: refused (cooldown), retry after 4.1s".
func (e *RefusedError) Error() string {
	var b strings.Builder
	if e.Service != "" {
		b.WriteString(e.Service)
		b.WriteString(": ")
	}
	b.WriteString("refused (")
	b.WriteString(string(e.Reason))
	b.WriteString(")")
	if e.Agent != "" {
		b.WriteString(" for agent ")
		b.WriteString(e.Agent)
	}
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.Round(time.Millisecond).String())
	}
	return b.String()
}

// Error reads like "unknown_service: no service "foo"; configured: openai".
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}
