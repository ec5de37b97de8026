package limiter

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// This file reads what providers' response headers say about their rate
// limits, by dialect (OpenAI, Anthropic, GitHub here; the IETF fields in
// ietf.go). Headers come from outside and are often odd: every parser here
// ignores what it cannot read, never panics, and clamps what it returns
// (counts 0 to maxCount, times now to now+maxHorizon).

// Observation is what one response's headers say about the service's limits.
type Observation struct {
	Limits []ObservedLimit
	// RetryAfter is the provider's Retry-After (or retry-after-ms), at most
	// 31 days. HasRetryAfter tells a "retry now" (0) from no header.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// Windows are the subscription windows the answer reports (Claude's
	// unified windows, Codex's primary and secondary; window.go).
	Windows []ObservedWindow
	// Rejected is set when the answer says a window refused the call.
	Rejected *WindowRejection
	// Notes say what was ignored and why (an absurd reset, a garbled
	// utilization), for the log.
	Notes []string
}

// ObservedLimit is one limit read from headers.
type ObservedLimit struct {
	Unit         Unit
	Limit        int64 // quota; 0 when not given
	Remaining    int64 // never more than Limit when Limit is given
	HasRemaining bool
	Reset        time.Time     // zero when not given; else in [now, now+31d]
	Window       time.Duration // 0 when not given
	// Name is the provider's own name for the limit when it gives one: the
	// IETF policy name ("burst") or the GitHub resource ("core", "search").
	// Several limits of one unit (a per-minute and a per-day policy) differ
	// by Name and Window.
	Name string
	// Approximate is set when the provider rounds Remaining: Anthropic
	// rounds token counts to the nearest thousand, so the true figure may be
	// up to 500 either side of Remaining.
	Approximate bool
	// Dialect is the header family the limit came from.
	Dialect Dialect
}

// Dialect names a family of provider rate-limit headers. A service's
// dialect restricts which families its responses are read for; DialectAll
// reads every one.
type Dialect string

// The known dialects.
const (
	DialectAll       Dialect = "" // every known dialect
	DialectOpenAI    Dialect = "openai"
	DialectAnthropic Dialect = "anthropic"
	DialectGitHub    Dialect = "github"
	DialectIETF      Dialect = "ietf"
)

// headerParser reads one dialect's headers (names in lower case) and appends
// the limits they give to out. chosen says the service names this dialect,
// rather than reading every one: a parser may then trust the dialect's own
// conventions (GitHub's documented windows).
type headerParser func(h map[string]string, chosen bool, now time.Time, out []ObservedLimit) []ObservedLimit

// dialectParsers is every dialect ParseHeaders reads, in the order it reads
// them when a service reads all.
var dialectParsers = []struct {
	dialect Dialect
	parse   headerParser
}{
	{DialectOpenAI, parseOpenAI},
	{DialectAnthropic, parseAnthropic},
	{DialectGitHub, parseGitHub},
	{DialectIETF, parseIETF},
}

// Dialects lists the dialects a service may name, in display order;
// DialectAll (the empty name) is allowed too and is not listed.
var Dialects = func() []Dialect {
	out := make([]Dialect, len(dialectParsers))
	for i, p := range dialectParsers {
		out[i] = p.dialect
	}
	return out
}()

// Known reports whether d is DialectAll or one of Dialects.
func (d Dialect) Known() bool {
	return d == DialectAll || slices.Contains(Dialects, d)
}

// DialectNames lists the known dialect names for messages: "openai,
// anthropic, github, ietf".
func DialectNames() string {
	names := make([]string, len(Dialects))
	for i, d := range Dialects {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}

// ParseDialect reads a dialect name in any case, with surrounding space
// ignored; "" is DialectAll. An unknown name is an error that lists the
// known ones.
func ParseDialect(s string) (Dialect, error) {
	d := Dialect(strings.ToLower(strings.TrimSpace(s)))
	if !d.Known() {
		return "", fmt.Errorf("dialect %q is not one of %s (or \"\" for all of them)", s, DialectNames())
	}
	return d, nil
}

// MarshalText writes the dialect's name.
func (d Dialect) MarshalText() ([]byte, error) { return []byte(d), nil }

// UnmarshalText reads a dialect as ParseDialect does.
func (d *Dialect) UnmarshalText(text []byte) error {
	v, err := ParseDialect(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseHeaders reads the rate-limit headers of one provider response. Names
// are matched in any case. dialect restricts which header families are
// read; DialectAll, or a dialect that is not known (such as "gemini",
// whose answers carry only Retry-After), reads them all. Retry-After and
// retry-after-ms are read in every dialect. Relative resets are made
// absolute against now. Malformed values are ignored: the result holds only
// what could be read.
func ParseHeaders(dialect Dialect, h map[string]string, now time.Time) Observation {
	var o Observation
	if len(h) == 0 {
		return o
	}
	hs := lowerKeys(h)
	d := Dialect(strings.ToLower(strings.TrimSpace(string(dialect))))
	all := !slices.Contains(Dialects, d)
	for _, p := range dialectParsers {
		if all || p.dialect == d {
			o.Limits = p.parse(hs, !all, now, o.Limits)
		}
	}
	// Subscription windows ride on the API dialects' answers: Claude's
	// on Anthropic's, Codex's on OpenAI's.
	if all || d == DialectAnthropic {
		parseClaude(hs, now, &o)
	}
	if all || d == DialectOpenAI {
		parseCodex(hs, now, &o)
	}
	o.RetryAfter, o.HasRetryAfter = parseRetryAfter(hs["retry-after"], hs["retry-after-ms"], now)
	return o
}

// lowerKeys returns h with lower-case, trimmed names and trimmed values. A
// name given twice in different case becomes one field whose values are
// joined by ", ", as HTTP combines repeated fields; in sorted order of the
// original names, so that the result does not depend on map order.
func lowerKeys(h map[string]string) map[string]string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(h))
	for _, k := range keys {
		lk := strings.ToLower(strings.TrimSpace(k))
		v := strings.TrimSpace(h[k])
		if prev, ok := out[lk]; ok {
			v = prev + ", " + v
		}
		out[lk] = v
	}
	return out
}

// addLimit appends l when it says anything (a limit or a remaining count),
// keeping Remaining within Limit.
func addLimit(out []ObservedLimit, l ObservedLimit) []ObservedLimit {
	if l.Limit == 0 && !l.HasRemaining {
		return out
	}
	if l.Limit > 0 && l.Remaining > l.Limit {
		l.Remaining = l.Limit
	}
	return append(out, l)
}

// parseOpenAI reads x-ratelimit-{limit,remaining,reset}-{requests,tokens},
// the reset as a Go-style duration such as "6m0s", "1s" or "20ms".
func parseOpenAI(h map[string]string, _ bool, now time.Time, out []ObservedLimit) []ObservedLimit {
	for _, u := range []struct {
		suffix string
		unit   Unit
	}{{"requests", Requests}, {"tokens", Tokens}} {
		l := ObservedLimit{Unit: u.unit, Dialect: DialectOpenAI}
		l.Limit, _ = parseCount(h["x-ratelimit-limit-"+u.suffix])
		l.Remaining, l.HasRemaining = parseCount(h["x-ratelimit-remaining-"+u.suffix])
		if d, ok := parseDelta(h["x-ratelimit-reset-"+u.suffix]); ok {
			l.Reset = now.Add(d)
		}
		out = addLimit(out, l)
	}
	return out
}

// parseAnthropic reads anthropic-ratelimit-{unit}-{limit,remaining,reset}
// with RFC 3339 reset times. Token counts are rounded to the nearest
// thousand by Anthropic, so they are marked Approximate.
func parseAnthropic(h map[string]string, _ bool, now time.Time, out []ObservedLimit) []ObservedLimit {
	for _, u := range []struct {
		part string
		unit Unit
	}{{"requests", Requests}, {"tokens", Tokens}, {"input-tokens", InputTokens}, {"output-tokens", OutputTokens}} {
		p := "anthropic-ratelimit-" + u.part + "-"
		l := ObservedLimit{Unit: u.unit, Dialect: DialectAnthropic, Approximate: u.unit != Requests}
		l.Limit, _ = parseCount(h[p+"limit"])
		l.Remaining, l.HasRemaining = parseCount(h[p+"remaining"])
		if t, ok := parseReset(h[p+"reset"], now); ok {
			l.Reset = t
		}
		out = addLimit(out, l)
	}
	return out
}

// githubWindows are the windows GitHub documents for its rate-limit
// resources. Its headers give no window, but its limits are per hour except
// for search, which is per minute; knowing the window lets a learned limit
// be paced instead of being spent at once and then waited out.
var githubWindows = map[string]time.Duration{
	"search":      time.Minute,
	"code_search": time.Minute,
}

// parseGitHub reads x-ratelimit-{limit,remaining,used,reset,resource}, the
// reset in epoch seconds. The same three basic names are used by many other
// APIs, with the reset as seconds from now; a reset too small to be an epoch
// time is read that way. The window is GitHub's documented one only when
// the service is known to be GitHub (its dialect, or the GitHub-only
// resource header): other APIs using these names have their own windows.
func parseGitHub(h map[string]string, isGitHub bool, now time.Time, out []ObservedLimit) []ObservedLimit {
	l := ObservedLimit{Unit: Requests, Dialect: DialectGitHub}
	l.Limit, _ = parseCount(h["x-ratelimit-limit"])
	l.Remaining, l.HasRemaining = parseCount(h["x-ratelimit-remaining"])
	if used, ok := parseCount(h["x-ratelimit-used"]); ok && !l.HasRemaining && l.Limit > 0 {
		l.Remaining, l.HasRemaining = max(l.Limit-used, 0), true
	}
	if t, ok := parseReset(h["x-ratelimit-reset"], now); ok {
		l.Reset = t
	}
	if r := h["x-ratelimit-resource"]; r != "" && isToken(r) {
		l.Name = r
		isGitHub = true
	}
	if isGitHub {
		l.Window = time.Hour
		if w, ok := githubWindows[l.Name]; ok {
			l.Window = w
		}
	}
	return addLimit(out, l)
}
