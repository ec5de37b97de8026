package limiter

import "time"

// This file reads the IETF RateLimit and RateLimit-Policy fields (and
// their older drafts) into observed limits.

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
func parseIETF(h map[string]string, _ bool, now time.Time, out []ObservedLimit) []ObservedLimit {
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
		l := ObservedLimit{Unit: Requests, Dialect: DialectIETF, Remaining: remaining, HasRemaining: hasRemaining, Reset: reset}
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
			l := ObservedLimit{Unit: Requests, Dialect: DialectIETF, Name: name}
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
			out = addLimit(out, ObservedLimit{Unit: p.unit, Limit: p.quota, Window: p.window, Name: p.name, Dialect: DialectIETF})
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
