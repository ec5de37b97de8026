package limiter

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file reads what providers' response headers say about their rate
// limits. Headers come from outside and are often odd: every parser here
// ignores what it cannot read, never panics, and clamps what it returns
// (counts 0 to maxCount, times now to now+maxHorizon).

// Observation is what one response's headers say about the service's limits.
type Observation struct {
	Limits []ObservedLimit
	// RetryAfter is the provider's Retry-After (or retry-after-ms), at most
	// 31 days. HasRetryAfter tells a "retry now" (0) from no header.
	RetryAfter    time.Duration
	HasRetryAfter bool
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
	// Dialect is the header family the limit came from ("openai",
	// "anthropic", "github" or "ietf").
	Dialect string
}

// Dialects lists the header dialects ParseHeaders knows, for validating a
// ServiceConfig.Dialect. "" (and "gemini", which sends no limit headers of
// its own, only Retry-After) parse all of them.
var Dialects = []string{"openai", "anthropic", "github", "ietf"}

const (
	// maxCount bounds every count read from headers or a policy; anything
	// larger is a broken header, not a quota.
	maxCount = 1e15
	// maxHorizon bounds every wait and reset time read from headers. No
	// provider resets a limit more than a month out; a larger figure is a
	// unit mistake and would freeze a service.
	maxHorizon = 31 * 24 * time.Hour
)

// ParseHeaders reads the rate-limit headers of one provider response. Names
// are matched in any case. dialect restricts which header families are
// read ("openai", "anthropic", "github", "ietf"); "", "gemini" or any other
// value reads them all. Retry-After and retry-after-ms are read in every
// dialect. Relative resets are made absolute against now. Malformed values
// are ignored: the result holds only what could be read.
func ParseHeaders(dialect string, h map[string]string, now time.Time) Observation {
	var o Observation
	if len(h) == 0 {
		return o
	}
	hs := lowerKeys(h)
	d := strings.ToLower(strings.TrimSpace(dialect))
	all := !slices.Contains(Dialects, d)
	if all || d == "openai" {
		o.Limits = parseOpenAI(hs, now, o.Limits)
	}
	if all || d == "anthropic" {
		o.Limits = parseAnthropic(hs, now, o.Limits)
	}
	if all || d == "github" {
		o.Limits = parseGitHub(hs, d == "github", now, o.Limits)
	}
	if all || d == "ietf" {
		o.Limits = parseIETF(hs, now, o.Limits)
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
func parseOpenAI(h map[string]string, now time.Time, out []ObservedLimit) []ObservedLimit {
	for _, u := range []struct {
		suffix string
		unit   Unit
	}{{"requests", Requests}, {"tokens", Tokens}} {
		l := ObservedLimit{Unit: u.unit, Dialect: "openai"}
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
func parseAnthropic(h map[string]string, now time.Time, out []ObservedLimit) []ObservedLimit {
	for _, u := range []struct {
		part string
		unit Unit
	}{{"requests", Requests}, {"tokens", Tokens}, {"input-tokens", InputTokens}, {"output-tokens", OutputTokens}} {
		p := "anthropic-ratelimit-" + u.part + "-"
		l := ObservedLimit{Unit: u.unit, Dialect: "anthropic", Approximate: u.unit != Requests}
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
	l := ObservedLimit{Unit: Requests, Dialect: "github"}
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

// ietfPolicy is one quota policy of the IETF RateLimit-Policy field (or a
// quota policy item of the older RateLimit-Limit field).
type ietfPolicy struct {
	name   string
	quota  int64
	window time.Duration
	unit   Unit // "" when its quota unit is one the limiter does not count
	used   bool
}

// parseIETF reads the IETF httpapi-ratelimit-headers fields in their
// current form (draft 08 on: RateLimit-Policy: "burst";q=100;w=60 and
// RateLimit: "burst";r=50;t=30, Structured Field lists matched by policy
// name), the draft-07 form (RateLimit-Policy: 100;w=60 and RateLimit:
// limit=100, remaining=50, reset=5) and the older separate
// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset fields.
func parseIETF(h map[string]string, now time.Time, out []ObservedLimit) []ObservedLimit {
	var policies []*ietfPolicy
	if list, ok := parseSFList(h["ratelimit-policy"]); ok {
		for _, m := range firstMembers(list) {
			if p, ok := ietfPolicyOf(m); ok {
				policies = append(policies, p)
			}
		}
	}
	// Draft 07 and earlier: an expiring limit, with its window found by
	// matching a policy of the same quota.
	legacy := func(limit int64, hasLimit bool, remaining int64, hasRemaining bool, reset time.Time) {
		l := ObservedLimit{Unit: Requests, Dialect: "ietf", Remaining: remaining, HasRemaining: hasRemaining, Reset: reset}
		if hasLimit {
			l.Limit = limit
			for _, p := range policies {
				if !p.used && p.name == "" && p.quota == limit && p.unit == Requests {
					p.used, l.Window = true, p.window
					break
				}
			}
		}
		out = addLimit(out, l)
	}
	field := h["ratelimit"]
	if list, ok := parseSFList(field); ok {
		for _, m := range firstMembers(list) {
			name, ok := m.name()
			if !ok {
				continue
			}
			l := ObservedLimit{Unit: Requests, Dialect: "ietf", Name: name}
			var policy *ietfPolicy
			for _, p := range policies {
				if p.name == name && !p.used {
					policy = p
					break
				}
			}
			if policy != nil {
				policy.used = true
				if policy.unit == "" {
					continue
				}
				l.Unit, l.Limit, l.Window = policy.unit, policy.quota, policy.window
			}
			l.Remaining, l.HasRemaining = m.count("r")
			if t, ok := m.count("t"); ok {
				l.Reset = now.Add(clampSeconds(float64(t), time.Second))
			}
			out = addLimit(out, l)
		}
	} else if dict, ok := parseSFDict(field); ok {
		limit, hasLimit := dict.count("limit")
		remaining, hasRemaining := dict.count("remaining")
		var reset time.Time
		if t, ok := dict.count("reset"); ok {
			reset = now.Add(clampSeconds(float64(t), time.Second))
		}
		legacy(limit, hasLimit, remaining, hasRemaining, reset)
	}
	if h["ratelimit-limit"] != "" || h["ratelimit-remaining"] != "" {
		// RateLimit-Limit: 100 or, in drafts 01-06, "100, 100;w=60": the
		// expiring limit followed by its quota policies.
		var limit int64
		hasLimit := false
		if list, ok := parseSFList(h["ratelimit-limit"]); ok && len(list) > 0 {
			limit, hasLimit = list[0].intValue()
			for _, m := range firstMembers(list[1:]) {
				if p, ok := ietfPolicyOf(m); ok {
					policies = append(policies, p)
				}
			}
		}
		remaining, hasRemaining := parseCount(h["ratelimit-remaining"])
		reset, _ := parseReset(h["ratelimit-reset"], now)
		legacy(limit, hasLimit, remaining, hasRemaining, reset)
	}
	for _, p := range policies {
		if !p.used && p.unit != "" {
			out = addLimit(out, ObservedLimit{Unit: p.unit, Limit: p.quota, Window: p.window, Name: p.name, Dialect: "ietf"})
		}
	}
	return out
}

// maxIETFMembers bounds the members read from one IETF field. Each limit
// is matched against the policies by name, so a field of thousands of
// members (from a broken or hostile upstream) would cost quadratic time
// while the limiter's lock is held; providers send a handful.
const maxIETFMembers = 64

func firstMembers(list []sfMember) []sfMember {
	return list[:min(len(list), maxIETFMembers)]
}

// ietfPolicyOf reads one quota policy item: "name";q=100;w=60;qu="requests"
// (draft 08 on), or 100;w=60 (draft 07 and earlier).
func ietfPolicyOf(m sfMember) (*ietfPolicy, bool) {
	p := &ietfPolicy{unit: Requests}
	if name, ok := m.name(); ok {
		p.name = name
		q, ok := m.count("q")
		if !ok {
			return nil, false
		}
		p.quota = q
	} else if q, ok := m.intValue(); ok {
		p.quota = q
	} else {
		return nil, false
	}
	if w, ok := m.count("w"); ok && w > 0 {
		p.window = clampSeconds(float64(w), time.Second)
	}
	if qu, ok := m.param("qu"); ok {
		if s, _ := qu.(string); s != "requests" {
			p.unit = "" // content-bytes, concurrent-requests: not ours to count
		}
	}
	return p, true
}

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

// Structured Field Values (RFC 8941), as much as the IETF rate-limit fields
// need: Lists and Dictionaries of Items with Parameters. Inner Lists are
// parsed but carry no values. A field that fails to parse is ignored as a
// whole, as RFC 8941 requires.

type sfToken string

type sfParam struct {
	key   string
	value any // int64, float64, string, sfToken, []byte, bool or sfDate
}

type sfDate int64

type sfMember struct {
	key    string // dictionary key; "" in a list
	value  any    // nil for an inner list
	params []sfParam
}

// name returns the member's value when it is a String or Token, as policy
// names are (a String from draft 09 on, a Token in draft 08).
func (m sfMember) name() (string, bool) {
	switch v := m.value.(type) {
	case string:
		return v, true
	case sfToken:
		return string(v), true
	}
	return "", false
}

func (m sfMember) intValue() (int64, bool) {
	n, ok := m.value.(int64)
	return n, ok && n >= 0 && n <= maxCount
}

func (m sfMember) param(key string) (any, bool) {
	for i := len(m.params) - 1; i >= 0; i-- { // the last of duplicates wins
		if m.params[i].key == key {
			return m.params[i].value, true
		}
	}
	return nil, false
}

// count returns parameter key when it is an Integer in [0, maxCount].
func (m sfMember) count(key string) (int64, bool) {
	v, ok := m.param(key)
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	return n, ok && n >= 0 && n <= maxCount
}

type sfDict []sfMember

// count returns the value of member key when it is an Integer in
// [0, maxCount].
func (d sfDict) count(key string) (int64, bool) {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].key == key {
			return d[i].intValue()
		}
	}
	return 0, false
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for !p.eof() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseSFList parses v as a List. An empty or absent field is no list.
func parseSFList(v string) ([]sfMember, bool) {
	p := &sfParser{s: strings.Trim(v, " \t")}
	if p.eof() {
		return nil, false
	}
	var list []sfMember
	for !p.eof() {
		m, ok := p.itemOrInnerList()
		if !ok {
			return nil, false
		}
		list = append(list, m)
		if !p.endOfMember() {
			return nil, false
		}
	}
	return list, true
}

// parseSFDict parses v as a Dictionary.
func parseSFDict(v string) (sfDict, bool) {
	p := &sfParser{s: strings.Trim(v, " \t")}
	if p.eof() {
		return nil, false
	}
	var dict sfDict
	for !p.eof() {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		var m sfMember
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if m, ok = p.itemOrInnerList(); !ok {
				return nil, false
			}
		} else {
			m.value = true
			if m.params, ok = p.params(); !ok {
				return nil, false
			}
		}
		m.key = key
		dict = append(dict, m)
		if !p.endOfMember() {
			return nil, false
		}
	}
	return dict, true
}

// endOfMember consumes the separator after a list or dictionary member and
// reports whether the field may go on (or has ended cleanly).
func (p *sfParser) endOfMember() bool {
	p.skipOWS()
	if p.eof() {
		return true
	}
	if p.s[p.i] != ',' {
		return false
	}
	p.i++
	p.skipOWS()
	return !p.eof() // a trailing comma is an error
}

func (p *sfParser) itemOrInnerList() (sfMember, bool) {
	if !p.eof() && p.s[p.i] == '(' {
		p.i++
		for {
			p.skipSP()
			if p.eof() {
				return sfMember{}, false
			}
			if p.s[p.i] == ')' {
				p.i++
				params, ok := p.params()
				return sfMember{params: params}, ok
			}
			if _, ok := p.item(); !ok {
				return sfMember{}, false
			}
			if !p.eof() && p.s[p.i] != ' ' && p.s[p.i] != ')' {
				return sfMember{}, false
			}
		}
	}
	return p.item()
}

func (p *sfParser) item() (sfMember, bool) {
	v, ok := p.bareItem()
	if !ok {
		return sfMember{}, false
	}
	params, ok := p.params()
	return sfMember{value: v, params: params}, ok
}

func (p *sfParser) params() ([]sfParam, bool) {
	var params []sfParam
	for !p.eof() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		var v any = true
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if v, ok = p.bareItem(); !ok {
				return nil, false
			}
		}
		params = append(params, sfParam{key, v})
	}
	return params, true
}

func (p *sfParser) key() (string, bool) {
	start := p.i
	if p.eof() || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", false
	}
	for !p.eof() {
		c := p.s[p.i]
		if !(isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

func (p *sfParser) bareItem() (any, bool) {
	if p.eof() {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '-' || isDigit(c):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || isAlpha(c):
		return p.token(), true
	case c == ':':
		return p.bytes()
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			return p.s[p.i-1] == '1', true
		}
		return nil, false
	case c == '@':
		p.i++
		n, ok := p.number()
		if i, isInt := n.(int64); ok && isInt {
			return sfDate(i), true
		}
		return nil, false
	}
	return nil, false
}

// number parses an Integer (at most 15 digits) or a Decimal (at most 12
// integer and 3 fraction digits).
func (p *sfParser) number() (any, bool) {
	start := p.i
	if !p.eof() && p.s[p.i] == '-' {
		p.i++
	}
	digitsStart, dot := p.i, -1
	for !p.eof() {
		c := p.s[p.i]
		if c == '.' && dot < 0 {
			dot = p.i
		} else if !isDigit(c) {
			break
		}
		p.i++
	}
	text := p.s[start:p.i]
	if dot < 0 {
		if p.i == digitsStart || p.i-digitsStart > 15 {
			return nil, false
		}
		n, err := strconv.ParseInt(text, 10, 64)
		return n, err == nil
	}
	intDigits, fracDigits := dot-digitsStart, p.i-dot-1
	if intDigits < 1 || intDigits > 12 || fracDigits < 1 || fracDigits > 3 {
		return nil, false
	}
	f, err := strconv.ParseFloat(text, 64)
	return f, err == nil
}

func (p *sfParser) str() (any, bool) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.eof() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return nil, false
			}
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '"':
			return b.String(), true
		case c < 0x20 || c > 0x7e:
			return nil, false
		default:
			b.WriteByte(c)
		}
	}
	return nil, false // no closing quote
}

func (p *sfParser) token() sfToken {
	start := p.i
	p.i++
	for !p.eof() && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
		p.i++
	}
	return sfToken(p.s[start:p.i])
}

func (p *sfParser) bytes() (any, bool) {
	p.i++ // opening colon
	start := p.i
	for !p.eof() && p.s[p.i] != ':' {
		c := p.s[p.i]
		if !(isAlpha(c) || isDigit(c) || c == '+' || c == '/' || c == '=') {
			return nil, false
		}
		p.i++
	}
	if p.eof() {
		return nil, false
	}
	p.i++ // closing colon
	return []byte(p.s[start : p.i-1]), true
}

func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool   { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

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
