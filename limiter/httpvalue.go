package limiter

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// This file reads single HTTP header values: counts, delays, reset
// times and Retry-After, each clamped to sane bounds.

const (
	// maxCount bounds every count read from headers or a policy; anything
	// larger is a broken header, not a quota.
	maxCount = 1e15
	// maxHorizon bounds every wait and reset time read from headers. No
	// provider resets a limit more than a month out; a larger figure is a
	// unit mistake and would freeze a service.
	maxHorizon = 31 * 24 * time.Hour
)

// parseCount reads a non-negative whole count, at most maxCount.
func parseCount(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxCount {
		return 0, false
	}
	return n, true
}

// isDecimal reports whether v is digits with at most one ".", as in "1.5";
// unlike strconv.ParseFloat it refuses "inf", "0x10", "1e3" and signs.
func isDecimal(v string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(v); i++ {
		switch {
		case isDigit(v[i]):
			digits++
		case v[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// clampSeconds converts n units to a duration in [0, maxHorizon].
func clampSeconds(n float64, unit time.Duration) time.Duration {
	d := n * float64(unit)
	if math.IsNaN(d) || d <= 0 {
		return 0
	}
	if d >= float64(maxHorizon) {
		return maxHorizon
	}
	return time.Duration(d)
}

// parseDelta reads a wait: a Go-style duration ("6m0s", "1m30.5s", "20ms")
// or a plain number of seconds ("2", "0.5"), clamped to maxHorizon.
func parseDelta(v string) (time.Duration, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || len(v) > 64 {
		return 0, false
	}
	if isDecimal(v) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		return clampSeconds(f, time.Second), true
	}
	if !isDigit(v[0]) && v[0] != '.' {
		return 0, false
	}
	d, err := parseDurationUnits(v, maxHorizon)
	if err == errTooLong {
		return maxHorizon, true
	}
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}

// httpDateLayouts are the forms of an HTTP-date (RFC 9110, section 5.6.7).
var httpDateLayouts = []string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC}

// parseReset reads when a limit resets, as providers write it: an RFC 3339
// time (Anthropic), epoch seconds (GitHub) or milliseconds, seconds from
// now (the IETF drafts and many others), or an HTTP-date. A whole number is
// epoch time when it is large enough to be one (after 2001), else a delay.
// The result lies in [now, now+maxHorizon].
func parseReset(v string, now time.Time) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return time.Time{}, false
	}
	if isDecimal(v) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return time.Time{}, false
		}
		switch {
		case f >= 1e12:
			return clampTime(time.UnixMilli(int64(min(f, 1e15))), now), true
		case f >= 1e9:
			return clampTime(time.Unix(int64(f), 0), now), true
		}
		return now.Add(clampSeconds(f, time.Second)), true
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return clampTime(t, now), true
	}
	if t, ok := parseHTTPDate(v); ok {
		return clampTime(t, now), true
	}
	if d, ok := parseDelta(v); ok {
		return now.Add(d), true
	}
	return time.Time{}, false
}

func parseHTTPDate(v string) (time.Time, bool) {
	for _, layout := range httpDateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// clampTime keeps t within [now, now+maxHorizon]: a reset in the past (clock
// skew) means "now".
func clampTime(t, now time.Time) time.Time {
	if t.Before(now) {
		return now
	}
	if limit := now.Add(maxHorizon); t.After(limit) {
		return limit
	}
	return t
}

// parseRetryAfter reads Retry-After (delay seconds or an HTTP-date) and
// OpenAI's retry-after-ms (milliseconds, possibly fractional). The
// millisecond form wins when both are valid, being more precise.
func parseRetryAfter(ra, ms string, now time.Time) (time.Duration, bool) {
	if ms = strings.TrimSpace(ms); isDecimal(ms) && len(ms) <= 64 {
		if f, err := strconv.ParseFloat(ms, 64); err == nil {
			return clampSeconds(f, time.Millisecond), true
		}
	}
	ra = strings.TrimSpace(ra)
	if ra == "" || len(ra) > 64 {
		return 0, false
	}
	if isDecimal(ra) {
		f, err := strconv.ParseFloat(ra, 64)
		if err != nil {
			return 0, false
		}
		return clampSeconds(f, time.Second), true
	}
	if t, ok := parseHTTPDate(ra); ok {
		return clampTime(t, now).Sub(now), true
	}
	return 0, false
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isTChar(c byte) bool {
	return isAlpha(c) || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken reports whether s is an HTTP token, as a GitHub resource name is.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTChar(s[i]) {
			return false
		}
	}
	return true
}
