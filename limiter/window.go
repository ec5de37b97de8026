package limiter

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file holds what the subscription dialects (Claude's unified
// windows, Codex's primary and secondary windows, Gemini's quota failures)
// share: the observed window, its rejection, and the defensive readers of
// their values. These answers are observed, not documented: every reader
// here ignores what it cannot read and says why in Observation.Notes.

// ObservedWindow is one subscription window read from an answer: known only
// as a fraction used, a length and a reset, with no absolute quota.
type ObservedWindow struct {
	// Name is the provider's name for the window: Claude's "5h", "7d",
	// "7d_oi", "overage"; for Codex the window's length ("5h", "7d"), or
	// "primary"/"secondary" when no length is given, prefixed with the limit
	// family when it is not "codex" ("codex_other:5h"); "day" for a Gemini
	// per-day quota.
	Name string
	// Length is the window's length; 0 when not known.
	Length time.Duration
	// Utilization is the fraction used, 0 to maxUtilization; it may exceed
	// 1. HasUtilization tells "0% used" from not given.
	Utilization    float64
	HasUtilization bool
	// Reset is when the window starts afresh; zero when not given or
	// absurd (in the past, or further ahead than the window can last).
	Reset time.Time
	// Status is the provider's word for the window: "allowed",
	// "allowed_warning", "rejected", or "" when not given.
	Status string
	// Warning is set when the provider says a warning threshold was passed.
	Warning bool
	// Title is the provider's display name for the limit, when it gives one.
	Title string
	// Dialect is "claude", "codex" or "gemini".
	Dialect string
}

// WindowRejection is a provider's refusal that names the window it is
// about: the service is closed until that window resets.
type WindowRejection struct {
	Window string
	Until  time.Time
}

const (
	// maxUtilization bounds a utilization read from headers: above 1 is
	// seen (a window overrun while calls were in flight), ten times over is
	// a broken header.
	maxUtilization = 10
	// maxWindows bounds the windows one answer or one service keeps: a
	// provider has a handful, an upstream inventing a new name in every
	// answer must not grow the books.
	maxWindows = 8
	// resetSkew is how far in the past a reset may be and still be read
	// as "now": clocks differ a little.
	resetSkew = time.Minute
	// maxWindowHorizon bounds a reset of a window whose length is unknown.
	maxWindowHorizon = 31 * 24 * time.Hour
)

// Window lengths with a name of their own.
const (
	fiveHours = 5 * time.Hour
	week      = 7 * 24 * time.Hour
	day       = 24 * time.Hour
)

// notef records why part of an answer was ignored.
func notef(notes []string, format string, args ...any) []string {
	if len(notes) >= 16 {
		return notes
	}
	return append(notes, fmt.Sprintf(format, args...))
}

// noteQuote shows an untrusted value in a note: quoted, when it is short
// and plainly not a secret; else only its length. A broken upstream may echo
// anything into a header, a caller's key included, and notes are logged.
func noteQuote(v string) string {
	lv := strings.ToLower(v)
	if len(v) > 24 || strings.Contains(lv, "sk-") || strings.Contains(lv, "bearer") || strings.Contains(lv, "key") || strings.Contains(lv, "token") {
		return fmt.Sprintf("(a value of %d bytes, not shown)", len(v))
	}
	return strconv.Quote(v)
}

// parseFraction reads a decimal fraction ("0.62", "1.04") within
// [0, maxUtilization]; scale divides it first (100 for a percentage).
func parseFraction(v string, scale float64) (float64, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 32 || !isDecimal(v) {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	f /= scale
	if f < 0 || f > maxUtilization {
		return 0, false
	}
	return f, true
}

// parseEpochReset reads a reset given as Unix seconds and checks that it
// makes sense: not in the past (beyond resetSkew), and not further ahead
// than the window can last (its length, or maxWindowHorizon when the length
// is unknown, plus a minute). reason says what was wrong when ok is false
// and v was not empty.
func parseEpochReset(v string, length time.Duration, now time.Time) (t time.Time, reason string, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, "", false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || len(v) > 20 {
		return time.Time{}, "not a whole number of Unix seconds", false
	}
	return checkReset(time.Unix(n, 0), length, now)
}

// checkReset is parseEpochReset's sense check on a time already read.
func checkReset(t time.Time, length time.Duration, now time.Time) (time.Time, string, bool) {
	if t.Before(now.Add(-resetSkew)) {
		return time.Time{}, fmt.Sprintf("%s is in the past", t.UTC().Format(time.RFC3339)), false
	}
	horizon := maxWindowHorizon
	if length > 0 {
		horizon = length
	}
	if t.After(now.Add(horizon + time.Minute)) {
		return time.Time{}, fmt.Sprintf("%s is more than %s ahead", t.UTC().Format(time.RFC3339), fmtLength(horizon)), false
	}
	if t.Before(now) {
		t = now
	}
	return t, "", true
}

// windowLength reads the length a window's name gives: "5h", "7d",
// "7d_oi" (a number and a unit at its start, before any "_suffix").
func windowLength(name string) time.Duration {
	head, _, _ := strings.Cut(name, "_")
	if len(head) < 2 || len(head) > 6 {
		return 0
	}
	n, err := strconv.Atoi(head[:len(head)-1])
	if err != nil || n <= 0 {
		return 0
	}
	switch head[len(head)-1] {
	case 'm':
		return time.Duration(n) * time.Minute
	case 'h':
		return time.Duration(n) * time.Hour
	case 'd':
		return time.Duration(n) * day
	case 'w':
		return time.Duration(n) * week
	}
	return 0
}

// lengthName names a window by its length, as Claude does: "5h", "7d",
// "90m". A length that is no whole number of minutes has no name.
func lengthName(d time.Duration) string {
	switch {
	case d <= 0 || d%time.Minute != 0:
		return ""
	case d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
}

// fmtLength is lengthName for notes, with a fallback for odd lengths.
func fmtLength(d time.Duration) string {
	if n := lengthName(d); n != "" {
		return n
	}
	return d.String()
}

// isWindowName reports whether s can name a window: 1 to 32 of a-z, 0-9
// and "_". Header names are case-insensitive, so names are lower case.
func isWindowName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// WindowLabel is how a person reads a window's name: "5-hour", "week",
// "day", or the name itself.
func WindowLabel(name string, length time.Duration) string {
	_, base, found := strings.Cut(name, ":")
	if !found {
		base = name
	}
	prefix := ""
	if found {
		prefix = name[:strings.IndexByte(name, ':')] + " "
	}
	suffix := ""
	if _, s, ok := strings.Cut(base, "_"); ok {
		suffix = " (" + s + ")"
	}
	switch length {
	case fiveHours:
		return prefix + "5-hour" + suffix
	case week:
		return prefix + "week" + suffix
	case day:
		return prefix + "day" + suffix
	}
	return name
}

// ParseErrorBody adds to o what the body of a refusal says: a Codex
// usage_limit_reached (its resets_at, and the window used up) or a Gemini
// RESOURCE_EXHAUSTED (its retry delay, and for a per-day quota the daily
// reset). Which bodies are read follows dialect as in ParseHeaders; call it
// after ParseHeaders, whose windows it matches. A body over 64 KiB, or one
// that is none of these, adds nothing.
func ParseErrorBody(dialect Dialect, body []byte, now time.Time, o *Observation) {
	if len(body) == 0 || len(body) > maxErrorBody {
		return
	}
	d := Dialect(strings.ToLower(strings.TrimSpace(string(dialect))))
	all := !slices.Contains(Dialects, d)
	if all || d == DialectOpenAI {
		parseCodexBody(body, now, o)
	}
	if all && o.Rejected == nil {
		parseGeminiBody(body, now, o)
	}
}

// maxErrorBody bounds the refusal body read: refusals are short.
const maxErrorBody = 64 << 10
