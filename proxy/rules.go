package proxy

import (
	"net/http"
	"slices"
	"strings"

	"github.com/quotabar/quotabar/limiter"
)

// Reservation is a provider's rule for what a call counts against its token
// limits before it has run, which is what the proxy reserves for it. A
// preset carries its provider's rule.
type Reservation string

// The reservation rules.
const (
	// ReserveMaxTokens, the default for a provider whose rule is unknown:
	// the prompt's estimate plus the most output the request allows, in
	// every token unit. The safe side: never less than what is charged.
	ReserveMaxTokens Reservation = ""
	// ReserveOpenAI is OpenAI's rule: a call counts against the token
	// limit as the larger of its max_tokens (times n) and the estimate of
	// its prompt.
	ReserveOpenAI Reservation = "openai"
	// ReserveAnthropic is Anthropic's rule: input tokens are counted when
	// the call starts, output tokens as they are produced; max_tokens is
	// not charged against the output-token limit. So the prompt's
	// estimate is reserved and the output is charged by the final usage.
	ReserveAnthropic Reservation = "anthropic"
)

var reservations = []Reservation{ReserveMaxTokens, ReserveOpenAI, ReserveAnthropic}

func (r Reservation) valid() bool { return slices.Contains(reservations, r) }

func reservationNames() string { return `"" (max tokens), "openai", "anthropic"` }

// Estimate is the cost to reserve for a call with this request body under
// rule r: one request, and tokens as the rule counts them (see
// EstimateBody for what is read from the body).
func (r Reservation) Estimate(body []byte) limiter.Cost {
	in, out, ok := EstimateBody(body)
	cost := limiter.Cost{limiter.Requests: 1}
	if !ok || in == 0 && out == 0 {
		return cost
	}
	switch r {
	case ReserveOpenAI:
		cost[limiter.Tokens] = max(in, out)
		cost[limiter.InputTokens] = in
		cost[limiter.OutputTokens] = out
	case ReserveAnthropic:
		cost[limiter.Tokens] = in
		cost[limiter.InputTokens] = in
		cost[limiter.OutputTokens] = 0
	default:
		cost[limiter.Tokens] = in + out
		cost[limiter.InputTokens] = in
		cost[limiter.OutputTokens] = out
	}
	return cost
}

// Free reports whether a call cannot cost quota and so passes the proxy
// without a permit (nothing acquired, nothing reported). The rule:
//
//   - HEAD and OPTIONS requests (connectivity checks such as Claude
//     Code's HEAD /, CORS preflights): no provider generates anything for
//     them;
//   - GET of a model list or of one model (a path ending in /models or
//     with /models/ before its last segment), which only reads a catalogue;
//   - POST .../messages/count_tokens (Anthropic's token counter), which
//     Anthropic limits on its own and never against the messages limits.
//
// Every other request, whatever its method, is metered.
func Free(method, path string) bool {
	switch method {
	case http.MethodHead, http.MethodOptions:
		return true
	case http.MethodGet:
		p := strings.TrimSuffix(path, "/")
		if strings.HasSuffix(p, "/models") {
			return true
		}
		if i := strings.LastIndex(p, "/"); i >= 0 && strings.HasSuffix(p[:i], "/models") {
			return true
		}
	case http.MethodPost:
		return strings.HasSuffix(strings.TrimSuffix(path, "/"), "/messages/count_tokens")
	}
	return false
}
