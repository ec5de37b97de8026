package limiter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file parses and prints the limiter's configuration values: policies
// ("500 requests/1m"), priorities and names, and formats its errors.

// maxWindow bounds a policy window. Longer windows are almost certainly a
// typo, and the bound keeps every window's arithmetic far from overflow.
const maxWindow = 366 * 24 * time.Hour

// ParsePolicy parses a limit written "QUOTA UNIT/WINDOW", such as
// "500 requests/1m", "200000 tokens/1m", "40 requests/5h" or
// "10 requests/1h30m". Spaces are optional around each part. QUOTA is a
// positive integer (digits may be grouped with "_" or ","); UNIT is one of
// Units, also in the singular or with "-" for "_"; WINDOW is a duration in
// Go syntax extended with days ("d"), weeks ("w") and spelled-out units
// ("1 minute", "min", "2 hours"), more than zero and at most 366 days.
func ParsePolicy(s string) (Policy, error) {
	p, err := parsePolicy(s)
	if err != nil {
		return Policy{}, fmt.Errorf("limit %q: %w", s, err)
	}
	return p, nil
}

func parsePolicy(s string) (Policy, error) {
	const form = `write it as "QUOTA UNIT/WINDOW", e.g. "500 requests/1m"`
	amount, window, ok := strings.Cut(s, "/")
	if !ok {
		return Policy{}, errors.New("no \"/\" before the window; " + form)
	}
	amount = strings.TrimSpace(amount)
	digits := 0
	for digits < len(amount) && (isDigit(amount[digits]) || amount[digits] == '_' || amount[digits] == ',') {
		digits++
	}
	num, unit := amount[:digits], strings.TrimSpace(amount[digits:])
	if strings.HasPrefix(unit, ".") {
		return Policy{}, fmt.Errorf("quota %q is not a whole number; %s", strings.Fields(amount)[0], form)
	}
	if num == "" {
		if amount == "" {
			return Policy{}, errors.New("no quota before the \"/\"; " + form)
		}
		return Policy{}, fmt.Errorf("quota %q is not a positive whole number; %s", strings.Fields(amount)[0], form)
	}
	q, err := parseQuota(num)
	if err != nil {
		return Policy{}, err
	}
	u, err := parseUnit(unit)
	if err != nil {
		return Policy{}, err
	}
	w, err := parseWindow(window)
	if err != nil {
		return Policy{}, err
	}
	return Policy{Quota: q, Unit: u, Window: w}, nil
}

func parseQuota(s string) (int64, error) {
	clean := strings.NewReplacer("_", "", ",", "").Replace(s)
	if clean == "" {
		return 0, fmt.Errorf("quota %q has no digits", s)
	}
	q, err := strconv.ParseInt(clean, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("quota %s is too large; at most %d", s, int64(maxCount))
	}
	if q <= 0 {
		return 0, fmt.Errorf("quota must be more than 0, not %s", s)
	}
	if q > maxCount {
		return 0, fmt.Errorf("quota %s is too large; at most %d", s, int64(maxCount))
	}
	return q, nil
}

func unitList() string {
	names := make([]string, len(Units))
	for i, u := range Units {
		names[i] = string(u)
	}
	return strings.Join(names, ", ")
}

func parseUnit(s string) (Unit, error) {
	if s == "" {
		return "", errors.New("no unit after the quota; allowed: " + unitList())
	}
	norm := strings.ReplaceAll(strings.ToLower(s), "-", "_")
	for _, u := range Units {
		if norm == string(u) || norm+"s" == string(u) {
			return u, nil
		}
	}
	return "", fmt.Errorf("unknown unit %q; allowed: %s", s, unitList())
}

// windowUnits maps every unit spelling a window may use to its length.
var windowUnits = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond, "µs": time.Microsecond, "μs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

func parseWindow(s string) (time.Duration, error) {
	const allowed = `write a duration such as "30s", "1m", "5h", "1h30m" or "1d"`
	orig := strings.TrimSpace(s)
	if orig == "" {
		return 0, errors.New("no window after the \"/\"; " + allowed)
	}
	w := strings.ToLower(strings.Join(strings.Fields(orig), ""))
	if w[0] == '-' {
		return 0, fmt.Errorf("window %q must be longer than zero", orig)
	}
	if !isDigit(w[0]) && w[0] != '.' {
		w = "1" + w // "per min" style: "100 requests/min"
	}
	d, err := parseDurationUnits(w, maxWindow)
	switch {
	case errors.Is(err, errNoUnit):
		return 0, fmt.Errorf("window %q has no unit; %s", orig, allowed)
	case errors.Is(err, errTooLong):
		return 0, fmt.Errorf("window %q is too long; at most %s", orig, formatWindow(maxWindow))
	case err != nil:
		return 0, fmt.Errorf("window %q: %w; %s", orig, err, allowed)
	case d <= 0:
		return 0, fmt.Errorf("window %q must be longer than zero", orig)
	}
	return d, nil
}

var (
	errNoUnit  = errors.New("number without a unit")
	errTooLong = errors.New("duration too long")
)

// parseDurationUnits parses a sequence of decimal numbers each followed by a
// unit of windowUnits ("1h30m", "1.5d", "2m0.5s"), without sign or spaces.
// It rejects sums above max instead of overflowing.
func parseDurationUnits(s string, max time.Duration) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
			i++
		}
		num := s[:i]
		if num == "" || num == "." || strings.Count(num, ".") > 1 {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		s = s[i:]
		j := 0
		for j < len(s) && !isDigit(s[j]) && s[j] != '.' {
			j++
		}
		unitName := s[:j]
		s = s[j:]
		if unitName == "" {
			return 0, errNoUnit
		}
		unit, ok := windowUnits[unitName]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", unitName)
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", num)
		}
		part := math.Round(f * float64(unit))
		if part > float64(max) || float64(total)+part > float64(max) {
			return 0, errTooLong
		}
		total += time.Duration(part)
	}
	return total, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// String prints the policy as ParsePolicy reads it, with the window in its
// shortest unit form: "500 requests/1m", "40 requests/5h",
// "10 requests/1h30m".
func (p Policy) String() string {
	return strconv.FormatInt(p.Quota, 10) + " " + string(p.Unit) + "/" + formatWindow(p.Window)
}

// formatWindow prints d as days, hours, minutes, seconds and sub-second
// parts, leaving out zero parts ("1m", not "1m0s").
func formatWindow(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		if d == -1<<63 { // cannot be negated; print it as Go does
			return d.String()
		}
		d = -d
	}
	for _, part := range []struct {
		unit time.Duration
		name string
	}{
		{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"},
		{time.Millisecond, "ms"}, {time.Microsecond, "us"}, {time.Nanosecond, "ns"},
	} {
		if n := d / part.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10))
			b.WriteString(part.name)
			d -= n * part.unit
		}
	}
	return b.String()
}

// validate reports why p cannot be a limit, or nil.
func (p Policy) validate() error {
	switch {
	case p.Quota <= 0 || p.Quota > maxCount:
		return fmt.Errorf("quota %d is out of range; allowed: 1 to %d", p.Quota, int64(maxCount))
	case !knownUnit(p.Unit):
		return fmt.Errorf("unknown unit %q; allowed: %s", p.Unit, unitList())
	case p.Window <= 0 || p.Window > maxWindow:
		return fmt.Errorf("window %s is out of range; allowed: more than 0s, at most %s", formatWindow(p.Window), formatWindow(maxWindow))
	}
	return nil
}

// MarshalText encodes p as its String form, so that a policy is a string in
// JSON and TOML. A policy ParsePolicy would refuse is an error, so that an
// invalid limit is caught when it is saved, not when it is read back.
func (p Policy) MarshalText() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("limit %q: %w", p.String(), err)
	}
	return []byte(p.String()), nil
}

// UnmarshalText parses a policy written as ParsePolicy reads it.
func (p *Policy) UnmarshalText(text []byte) error {
	v, err := ParsePolicy(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
