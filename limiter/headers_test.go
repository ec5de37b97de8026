package limiter

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// utc normalizes the times in o so that reflect.DeepEqual compares instants.
func utc(o Observation) Observation {
	o.Limits = slices.Clone(o.Limits)
	for i := range o.Limits {
		o.Limits[i].Reset = o.Limits[i].Reset.UTC()
	}
	return o
}

func checkObservation(t *testing.T, dialect Dialect, h map[string]string, now time.Time, want Observation) {
	t.Helper()
	got := ParseHeaders(dialect, h, now)
	if !reflect.DeepEqual(utc(got), utc(want)) {
		t.Errorf("ParseHeaders(%q) =\n%s\nwant\n%s", dialect, dump(got), dump(want))
	}
}

func dump(o Observation) string {
	var b strings.Builder
	for _, l := range o.Limits {
		b.WriteString("  ")
		b.WriteString(fmtLimit(l))
		b.WriteString("\n")
	}
	b.WriteString("  retry after: ")
	if o.HasRetryAfter {
		b.WriteString(o.RetryAfter.String())
	} else {
		b.WriteString("none")
	}
	return b.String()
}

func fmtLimit(l ObservedLimit) string {
	s := string(l.Unit) + " limit=" + strconv.FormatInt(l.Limit, 10)
	if l.HasRemaining {
		s += " remaining=" + strconv.FormatInt(l.Remaining, 10)
	}
	if !l.Reset.IsZero() {
		s += " reset=" + l.Reset.UTC().Format(time.RFC3339Nano)
	}
	if l.Window != 0 {
		s += " window=" + l.Window.String()
	}
	if l.Name != "" {
		s += " name=" + l.Name
	}
	if l.Approximate {
		s += " approximate"
	}
	return s + " dialect=" + string(l.Dialect)
}

// Real header sets, as the providers document or send them.
func TestParseHeadersProviders(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	anthropicNow := time.Date(2025, 10, 25, 11, 59, 30, 0, time.UTC)
	githubNow := time.Unix(1691590000, 0)
	tests := []struct {
		name     string
		dialects []string // every one of them must give want
		now      time.Time
		h        map[string]string
		want     Observation
	}{{
		// The example of OpenAI's rate-limit guide.
		name:     "openai docs",
		dialects: []string{"openai", "", "gemini", "OpenAI"},
		now:      t0,
		h: map[string]string{
			"x-ratelimit-limit-requests":     "60",
			"x-ratelimit-limit-tokens":       "150000",
			"x-ratelimit-remaining-requests": "59",
			"x-ratelimit-remaining-tokens":   "149984",
			"x-ratelimit-reset-requests":     "1s",
			"x-ratelimit-reset-tokens":       "6m0s",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 60, Remaining: 59, HasRemaining: true, Reset: t0.Add(time.Second), Dialect: "openai"},
			{Unit: Tokens, Limit: 150000, Remaining: 149984, HasRemaining: true, Reset: t0.Add(6 * time.Minute), Dialect: "openai"},
		}},
	}, {
		// A chat completion's headers as posted on the OpenAI forum, in the
		// case an HTTP/1.1 client prints them, with the undocumented
		// *_usage_based variants that are not limits of their own.
		name:     "openai mixed case, ms resets",
		dialects: []string{"openai", ""},
		now:      t0,
		h: map[string]string{
			"Date":                                     "Mon, 26 May 2025 05:00:04 GMT",
			"X-Ratelimit-Limit-Requests":               "5000",
			"X-Ratelimit-Limit-Tokens":                 "160000",
			"X-Ratelimit-Limit-Tokens_usage_based":     "160000",
			"X-Ratelimit-Remaining-Requests":           "4999",
			"X-Ratelimit-Remaining-Tokens":             "159976",
			"X-Ratelimit-Remaining-Tokens_usage_based": "159976",
			"X-RateLimit-Reset-Requests":               "12ms",
			"X-RATELIMIT-RESET-TOKENS":                 "9ms",
			"X-Ratelimit-Reset-Tokens_usage_based":     "9ms",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 5000, Remaining: 4999, HasRemaining: true, Reset: t0.Add(12 * time.Millisecond), Dialect: "openai"},
			{Unit: Tokens, Limit: 160000, Remaining: 159976, HasRemaining: true, Reset: t0.Add(9 * time.Millisecond), Dialect: "openai"},
		}},
	}, {
		name:     "openai 429",
		dialects: []string{"openai", ""},
		now:      t0,
		h: map[string]string{
			"retry-after":                    "20",
			"retry-after-ms":                 "19500.5",
			"x-ratelimit-limit-requests":     "500",
			"x-ratelimit-remaining-requests": "0",
			"x-ratelimit-reset-requests":     "1m30.5s",
			"x-ratelimit-limit-tokens":       "200000",
			"x-ratelimit-remaining-tokens":   "0",
			"x-ratelimit-reset-tokens":       "2h3m",
		},
		want: Observation{
			Limits: []ObservedLimit{
				{Unit: Requests, Limit: 500, Remaining: 0, HasRemaining: true, Reset: t0.Add(90*time.Second + 500*time.Millisecond), Dialect: "openai"},
				{Unit: Tokens, Limit: 200000, Remaining: 0, HasRemaining: true, Reset: t0.Add(2*time.Hour + 3*time.Minute), Dialect: "openai"},
			},
			RetryAfter: 19500*time.Millisecond + 500*time.Microsecond, HasRetryAfter: true,
		},
	}, {
		// Azure OpenAI's Responses API, as reported on Microsoft Q&A: -1
		// for "unknown", which must not become a limit.
		name:     "azure -1",
		dialects: []string{"openai", ""},
		now:      t0,
		h: map[string]string{
			"x-ratelimit-limit-tokens":     "-1",
			"x-ratelimit-remaining-tokens": "-1",
			"x-ratelimit-reset-tokens":     "0",
		},
		want: Observation{},
	}, {
		// Azure OpenAI's usual form: the reset in whole seconds.
		name:     "azure seconds reset",
		dialects: []string{"openai", ""},
		now:      t0,
		h: map[string]string{
			"x-ratelimit-remaining-requests": "119",
			"x-ratelimit-reset-requests":     "0.5s",
			"x-ratelimit-remaining-tokens":   "119000",
			"x-ratelimit-reset-tokens":       "17",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Remaining: 119, HasRemaining: true, Reset: t0.Add(500 * time.Millisecond), Dialect: "openai"},
			{Unit: Tokens, Remaining: 119000, HasRemaining: true, Reset: t0.Add(17 * time.Second), Dialect: "openai"},
		}},
	}, {
		// Anthropic's documented headers: RFC 3339 resets, token counts
		// rounded to thousands.
		name:     "anthropic",
		dialects: []string{"anthropic", ""},
		now:      anthropicNow,
		h: map[string]string{
			"anthropic-ratelimit-requests-limit":          "50",
			"anthropic-ratelimit-requests-remaining":      "49",
			"anthropic-ratelimit-requests-reset":          "2025-10-25T12:00:00Z",
			"anthropic-ratelimit-tokens-limit":            "50000",
			"anthropic-ratelimit-tokens-remaining":        "49000",
			"anthropic-ratelimit-tokens-reset":            "2025-10-25T12:01:00Z",
			"anthropic-ratelimit-input-tokens-limit":      "40000",
			"anthropic-ratelimit-input-tokens-remaining":  "39000",
			"anthropic-ratelimit-input-tokens-reset":      "2025-10-25T11:59:31.5Z",
			"anthropic-ratelimit-output-tokens-limit":     "10000",
			"anthropic-ratelimit-output-tokens-remaining": "10000",
			"anthropic-ratelimit-output-tokens-reset":     "2025-10-25T13:59:30+02:00",
			"request-id": "req_018EeWyXxfu5pfWkrYcMdjWG",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 50, Remaining: 49, HasRemaining: true, Reset: anthropicNow.Add(30 * time.Second), Dialect: "anthropic"},
			{Unit: Tokens, Limit: 50000, Remaining: 49000, HasRemaining: true, Reset: anthropicNow.Add(90 * time.Second), Approximate: true, Dialect: "anthropic"},
			{Unit: InputTokens, Limit: 40000, Remaining: 39000, HasRemaining: true, Reset: anthropicNow.Add(1500 * time.Millisecond), Approximate: true, Dialect: "anthropic"},
			{Unit: OutputTokens, Limit: 10000, Remaining: 10000, HasRemaining: true, Reset: anthropicNow, Approximate: true, Dialect: "anthropic"},
		}},
	}, {
		// A 429 whose reset is a little in the past by our clock.
		name:     "anthropic 429, clock skew",
		dialects: []string{"anthropic", ""},
		now:      anthropicNow,
		h: map[string]string{
			"Retry-After":                            "60",
			"Anthropic-Ratelimit-Requests-Limit":     "50",
			"Anthropic-Ratelimit-Requests-Remaining": "0",
			"Anthropic-Ratelimit-Requests-Reset":     "2025-10-25T11:59:00Z",
		},
		want: Observation{
			Limits:     []ObservedLimit{{Unit: Requests, Limit: 50, Remaining: 0, HasRemaining: true, Reset: anthropicNow, Dialect: "anthropic"}},
			RetryAfter: time.Minute, HasRetryAfter: true,
		},
	}, {
		// GitHub's REST API docs: the core resource.
		name:     "github core",
		dialects: []string{"github", ""},
		now:      githubNow,
		h: map[string]string{
			"x-ratelimit-limit":     "5000",
			"x-ratelimit-remaining": "4999",
			"x-ratelimit-used":      "1",
			"x-ratelimit-reset":     "1691591363",
			"x-ratelimit-resource":  "core",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 5000, Remaining: 4999, HasRemaining: true, Reset: time.Unix(1691591363, 0), Window: time.Hour, Name: "core", Dialect: "github"},
		}},
	}, {
		name:     "github search",
		dialects: []string{"github", ""},
		now:      githubNow,
		h: map[string]string{
			"X-RateLimit-Limit":     "30",
			"X-RateLimit-Remaining": "18",
			"X-RateLimit-Used":      "12",
			"X-RateLimit-Reset":     "1691591091",
			"X-RateLimit-Resource":  "search",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 30, Remaining: 18, HasRemaining: true, Reset: time.Unix(1691591091, 0), Window: time.Minute, Name: "search", Dialect: "github"},
		}},
	}, {
		// GitHub's older 403 answer, without the resource header: the
		// window is GitHub's hour only when the service is known to be
		// GitHub.
		name:     "github 403 without resource",
		dialects: []string{"github"},
		now:      time.Unix(1377010000, 0),
		h: map[string]string{
			"X-RateLimit-Limit":     "60",
			"X-RateLimit-Remaining": "0",
			"X-RateLimit-Reset":     "1377013266",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 60, Remaining: 0, HasRemaining: true, Reset: time.Unix(1377013266, 0), Window: time.Hour, Dialect: "github"},
		}},
	}, {
		name:     "github 403 without resource, any dialect",
		dialects: []string{""},
		now:      time.Unix(1377010000, 0),
		h: map[string]string{
			"X-RateLimit-Limit":     "60",
			"X-RateLimit-Remaining": "0",
			"X-RateLimit-Reset":     "1377013266",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 60, Remaining: 0, HasRemaining: true, Reset: time.Unix(1377013266, 0), Dialect: "github"},
		}},
	}, {
		name:     "github used without remaining",
		dialects: []string{"github"},
		now:      githubNow,
		h: map[string]string{
			"x-ratelimit-limit":    "5000",
			"x-ratelimit-used":     "5001",
			"x-ratelimit-resource": "graphql",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 5000, Remaining: 0, HasRemaining: true, Window: time.Hour, Name: "graphql", Dialect: "github"},
		}},
	}, {
		// The same three names as many other APIs use them, with the reset
		// in seconds from now.
		name:     "x-ratelimit with delta reset",
		dialects: []string{""},
		now:      t0,
		h: map[string]string{
			"Retry-After":           "2",
			"X-RateLimit-Limit":     "20",
			"X-RateLimit-Remaining": "7",
			"X-RateLimit-Reset":     "2",
		},
		want: Observation{
			Limits:     []ObservedLimit{{Unit: Requests, Limit: 20, Remaining: 7, HasRemaining: true, Reset: t0.Add(2 * time.Second), Dialect: "github"}},
			RetryAfter: 2 * time.Second, HasRetryAfter: true,
		},
	}, {
		// draft-ietf-httpapi-ratelimit-headers-10, sections 3 and 4.
		name:     "ietf policies by name",
		dialects: []string{"ietf", ""},
		now:      t0,
		h: map[string]string{
			"RateLimit-Policy": `"burst";q=100;w=60,"daily";q=1000;w=86400`,
			"RateLimit":        `"burst";r=50;t=30`,
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 100, Remaining: 50, HasRemaining: true, Reset: t0.Add(30 * time.Second), Window: time.Minute, Name: "burst", Dialect: "ietf"},
			{Unit: Requests, Limit: 1000, Window: 24 * time.Hour, Name: "daily", Dialect: "ietf"},
		}},
	}, {
		name:     "ietf both live, qu requests, spaces",
		dialects: []string{"ietf", ""},
		now:      t0,
		h: map[string]string{
			"ratelimit-policy": `"permin";q=50;w=60;qu="requests", "perhr";q=1000;w=3600;comment="ours"`,
			"ratelimit":        `"perhr";r=999, "permin";r=0;t=12;pk=:dHJpYWwxMjEzMjM=:`,
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 1000, Remaining: 999, HasRemaining: true, Window: time.Hour, Name: "perhr", Dialect: "ietf"},
			{Unit: Requests, Limit: 50, Remaining: 0, HasRemaining: true, Reset: t0.Add(12 * time.Second), Window: time.Minute, Name: "permin", Dialect: "ietf"},
		}},
	}, {
		// The list split over two fields: a map holds one value per name,
		// so the second comes in another case.
		name:     "ietf split field",
		dialects: []string{"ietf"},
		now:      t0,
		h: map[string]string{
			"RateLimit-Policy": `"permin";q=50;w=60`,
			"ratelimit-policy": `"perhr";q=1000;w=3600`,
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 50, Window: time.Minute, Name: "permin", Dialect: "ietf"},
			{Unit: Requests, Limit: 1000, Window: time.Hour, Name: "perhr", Dialect: "ietf"},
		}},
	}, {
		name:     "ietf content-bytes is not ours",
		dialects: []string{"ietf", ""},
		now:      t0,
		h: map[string]string{
			"RateLimit-Policy": `"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`,
			"RateLimit":        `"peruser";r=300000000;t=60;pk=:QXBwLTk5OQ==:`,
		},
		want: Observation{},
	}, {
		name:     "ietf without policy",
		dialects: []string{"ietf", ""},
		now:      t0,
		h:        map[string]string{"RateLimit": `"default";r=999;pk=:dHJpYWwxMjEzMjM=:`},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Remaining: 999, HasRemaining: true, Name: "default", Dialect: "ietf"},
		}},
	}, {
		// Draft 08 named policies with Tokens rather than Strings.
		name:     "ietf token names",
		dialects: []string{"ietf"},
		now:      t0,
		h: map[string]string{
			"RateLimit-Policy": `burst;q=100;w=60`,
			"RateLimit":        `burst;r=5`,
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 100, Remaining: 5, HasRemaining: true, Window: time.Minute, Name: "burst", Dialect: "ietf"},
		}},
	}, {
		// draft-ietf-httpapi-ratelimit-headers-07, section 3.5.
		name:     "ietf draft 07",
		dialects: []string{"ietf", ""},
		now:      t0,
		h: map[string]string{
			"RateLimit-Policy": `10;w=1, 50;w=60, 1000;w=3600, 5000;w=86400`,
			"RateLimit":        `limit=10, remaining=1, reset=7`,
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 10, Remaining: 1, HasRemaining: true, Reset: t0.Add(7 * time.Second), Window: time.Second, Dialect: "ietf"},
			{Unit: Requests, Limit: 50, Window: time.Minute, Dialect: "ietf"},
			{Unit: Requests, Limit: 1000, Window: time.Hour, Dialect: "ietf"},
			{Unit: Requests, Limit: 5000, Window: 24 * time.Hour, Dialect: "ietf"},
		}},
	}, {
		name:     "ietf separate fields",
		dialects: []string{"ietf", ""},
		now:      t0,
		h: map[string]string{
			"RateLimit-Limit":     "100",
			"RateLimit-Remaining": "0",
			"RateLimit-Reset":     "58",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 100, Remaining: 0, HasRemaining: true, Reset: t0.Add(58 * time.Second), Dialect: "ietf"},
		}},
	}, {
		// Drafts 01-06: the expiring limit followed by its policies.
		name:     "ietf limit with policies",
		dialects: []string{"ietf"},
		now:      t0,
		h: map[string]string{
			"RateLimit-Limit":     "10, 10;w=1, 50;w=60",
			"RateLimit-Remaining": "9",
			"RateLimit-Reset":     "1",
		},
		want: Observation{Limits: []ObservedLimit{
			{Unit: Requests, Limit: 10, Remaining: 9, HasRemaining: true, Reset: t0.Add(time.Second), Window: time.Second, Dialect: "ietf"},
			{Unit: Requests, Limit: 50, Window: time.Minute, Dialect: "ietf"},
		}},
	}}
	for _, tt := range tests {
		for _, d := range tt.dialects {
			t.Run(tt.name+"/"+d, func(t *testing.T) {
				checkObservation(t, Dialect(d), tt.h, tt.now, tt.want)
			})
		}
	}
}

// One response carrying every dialect: a dialect reads only its own.
func TestParseHeadersDialectRestricts(t *testing.T) {
	now := time.Unix(1691590000, 0)
	h := map[string]string{
		"x-ratelimit-remaining-requests":         "1",
		"anthropic-ratelimit-requests-remaining": "2",
		"x-ratelimit-remaining":                  "3",
		"ratelimit":                              `"p";r=4`,
		"retry-after":                            "5",
	}
	tests := []struct {
		dialect Dialect
		want    []int64 // remaining counts, in order
	}{
		{"openai", []int64{1}},
		{"anthropic", []int64{2}},
		{"github", []int64{3}},
		{"ietf", []int64{4}},
		{"", []int64{1, 2, 3, 4}},
		{"gemini", []int64{1, 2, 3, 4}},
		{"somethingelse", []int64{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(string(tt.dialect), func(t *testing.T) {
			o := ParseHeaders(tt.dialect, h, now)
			var got []int64
			for _, l := range o.Limits {
				got = append(got, l.Remaining)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("remaining = %v, want %v", got, tt.want)
			}
			if !o.HasRetryAfter || o.RetryAfter != 5*time.Second {
				t.Errorf("retry after = %v, %v; want 5s", o.RetryAfter, o.HasRetryAfter)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 27, 0, 0, time.UTC)
	tests := []struct {
		name   string
		ra, ms string
		want   time.Duration
		ok     bool
	}{
		{"seconds", "120", "", 2 * time.Minute, true},
		{"zero", "0", "", 0, true},
		{"fractional seconds", "1.5", "", 1500 * time.Millisecond, true},
		{"http-date", "Wed, 21 Oct 2015 07:28:00 GMT", "", time.Minute, true},
		{"rfc 850 date", "Wednesday, 21-Oct-15 07:28:00 GMT", "", time.Minute, true},
		{"asctime date", "Wed Oct 21 07:28:00 2015", "", time.Minute, true},
		{"date in the past", "Wed, 21 Oct 2015 07:00:00 GMT", "", 0, true},
		{"date far out", "Fri, 01 Jan 2100 00:00:00 GMT", "", maxHorizon, true},
		{"ms", "", "250", 250 * time.Millisecond, true},
		{"fractional ms", "", "250.5", 250*time.Millisecond + 500*time.Microsecond, true},
		{"ms wins", "3", "2500", 2500 * time.Millisecond, true},
		{"bad ms falls back", "3", "soon", 3 * time.Second, true},
		{"huge", "99999999999", "", maxHorizon, true},
		{"huge ms", "", "1e400", 0, false},
		{"negative", "-1", "", 0, false},
		{"negative ms", "", "-5", 0, false},
		{"word", "soon", "", 0, false},
		{"padded", "  7 ", "", 7 * time.Second, true},
		{"not a date", "Wed, 32 Oct 2015 07:28:00 GMT", "", 0, false},
		{"none", "", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.ra != "" {
				h["Retry-After"] = tt.ra
			}
			if tt.ms != "" {
				h["retry-after-ms"] = tt.ms
			}
			o := ParseHeaders("", h, now)
			if o.RetryAfter != tt.want || o.HasRetryAfter != tt.ok {
				t.Errorf("retry after = %v, %v; want %v, %v", o.RetryAfter, o.HasRetryAfter, tt.want, tt.ok)
			}
		})
	}
}

// Malformed values are ignored one by one; what can be read still is.
func TestParseHeadersMalformed(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		dialect Dialect
		h       map[string]string
		want    []ObservedLimit
	}{
		{"nil map", "", nil, nil},
		{"empty values", "", map[string]string{"x-ratelimit-limit-requests": "", "ratelimit": "", "RateLimit-Policy": " "}, nil},
		{"words", "openai", map[string]string{
			"x-ratelimit-limit-requests":     "lots",
			"x-ratelimit-remaining-requests": "12",
			"x-ratelimit-reset-requests":     "forever",
		}, []ObservedLimit{{Unit: Requests, Remaining: 12, HasRemaining: true, Dialect: "openai"}}},
		{"exponent and overflow", "openai", map[string]string{
			"x-ratelimit-limit-requests":     "1e3",
			"x-ratelimit-remaining-requests": "99999999999999999999",
			"x-ratelimit-limit-tokens":       "1000000000000001",
			"x-ratelimit-remaining-tokens":   "+5",
		}, []ObservedLimit{{Unit: Tokens, Remaining: 5, HasRemaining: true, Dialect: "openai"}}},
		{"negative reset", "openai", map[string]string{
			"x-ratelimit-remaining-requests": "1",
			"x-ratelimit-reset-requests":     "-5s",
		}, []ObservedLimit{{Unit: Requests, Remaining: 1, HasRemaining: true, Dialect: "openai"}}},
		{"reset clamped", "openai", map[string]string{
			"x-ratelimit-remaining-requests": "1",
			"x-ratelimit-reset-requests":     "1000h",
			"x-ratelimit-remaining-tokens":   "2",
			"x-ratelimit-reset-tokens":       "999999999999999999999s",
		}, []ObservedLimit{
			{Unit: Requests, Remaining: 1, HasRemaining: true, Reset: now.Add(maxHorizon), Dialect: "openai"},
			{Unit: Tokens, Remaining: 2, HasRemaining: true, Reset: now.Add(maxHorizon), Dialect: "openai"},
		}},
		{"remaining above limit", "openai", map[string]string{
			"x-ratelimit-limit-requests":     "10",
			"x-ratelimit-remaining-requests": "50",
		}, []ObservedLimit{{Unit: Requests, Limit: 10, Remaining: 10, HasRemaining: true, Dialect: "openai"}}},
		{"anthropic bad and far dates", "anthropic", map[string]string{
			"anthropic-ratelimit-requests-remaining": "3",
			"anthropic-ratelimit-requests-reset":     "2025-13-45T00:00:00Z",
			"anthropic-ratelimit-tokens-remaining":   "4000",
			"anthropic-ratelimit-tokens-reset":       "2099-01-01T00:00:00Z",
		}, []ObservedLimit{
			{Unit: Requests, Remaining: 3, HasRemaining: true, Dialect: "anthropic"},
			{Unit: Tokens, Remaining: 4000, HasRemaining: true, Reset: now.Add(maxHorizon), Approximate: true, Dialect: "anthropic"},
		}},
		{"github odd resource", "", map[string]string{
			"x-ratelimit-limit":    "60",
			"x-ratelimit-resource": "co re",
			"x-ratelimit-reset":    "0",
		}, []ObservedLimit{{Unit: Requests, Limit: 60, Reset: now, Dialect: "github"}}},
		{"github epoch ms", "github", map[string]string{
			"x-ratelimit-remaining": "1",
			"x-ratelimit-reset":     "1704067260000",
		}, []ObservedLimit{{Unit: Requests, Remaining: 1, HasRemaining: true, Reset: now.Add(time.Minute), Window: time.Hour, Dialect: "github"}}},
		{"ietf trailing comma drops the field", "ietf", map[string]string{"RateLimit": `"burst";r=5,`}, nil},
		{"ietf unterminated string", "ietf", map[string]string{"RateLimit": `"burst;r=5`}, nil},
		{"ietf negative and decimal params", "ietf", map[string]string{"RateLimit": `"a";r=-5, "b";r=3;t=1.5`},
			[]ObservedLimit{{Unit: Requests, Remaining: 3, HasRemaining: true, Name: "b", Dialect: "ietf"}}},
		{"ietf 16-digit integer drops the field", "ietf", map[string]string{"RateLimit": `"a";r=1000000000000000`}, nil},
		{"ietf policy without q", "ietf", map[string]string{"RateLimit-Policy": `"a";w=60, "b";q=5;w=0`},
			[]ObservedLimit{{Unit: Requests, Limit: 5, Name: "b", Dialect: "ietf"}}},
		{"ietf huge window clamped", "ietf", map[string]string{"RateLimit-Policy": `"a";q=5;w=999999999999999`},
			[]ObservedLimit{{Unit: Requests, Limit: 5, Window: maxHorizon, Name: "a", Dialect: "ietf"}}},
		{"ietf inner list and other items skipped", "ietf", map[string]string{"RateLimit": `("a" "b");r=1, ?1;r=2, :AAA=:;r=3, @12;r=4, 5.5;r=5, "ok";r=6`},
			[]ObservedLimit{{Unit: Requests, Remaining: 6, HasRemaining: true, Name: "ok", Dialect: "ietf"}}},
		{"ietf bad escape", "ietf", map[string]string{"RateLimit": `"a\n";r=1`}, nil},
		{"ietf dictionary junk", "ietf", map[string]string{"RateLimit": `limit=abc, remaining=1`},
			[]ObservedLimit{{Unit: Requests, Remaining: 1, HasRemaining: true, Dialect: "ietf"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkObservation(t, tt.dialect, tt.h, now, Observation{Limits: tt.want})
		})
	}
}

// headerLines turns "Name: value" lines into a header map, the form the
// FuzzParseHeaders corpus is written in.
func headerLines(raw string) map[string]string {
	h := map[string]string{}
	for _, line := range strings.Split(raw, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h[k] = v
		}
	}
	return h
}

func checkInvariants(t *testing.T, o Observation, now time.Time) {
	t.Helper()
	for _, l := range o.Limits {
		switch {
		case !slices.Contains(Units, l.Unit):
			t.Fatalf("unknown unit in %+v", l)
		case l.Limit < 0 || l.Limit > maxCount || l.Remaining < 0 || l.Remaining > maxCount:
			t.Fatalf("count out of range in %+v", l)
		case l.Limit > 0 && l.Remaining > l.Limit:
			t.Fatalf("remaining above limit in %+v", l)
		case !l.HasRemaining && l.Remaining != 0:
			t.Fatalf("remaining without HasRemaining in %+v", l)
		case l.Limit == 0 && !l.HasRemaining:
			t.Fatalf("empty limit %+v", l)
		case !l.Reset.IsZero() && (l.Reset.Before(now) || l.Reset.After(now.Add(maxHorizon))):
			t.Fatalf("reset %v outside [now, now+%v] in %+v", l.Reset, maxHorizon, l)
		case l.Window < 0 || l.Window > maxHorizon:
			t.Fatalf("window out of range in %+v", l)
		case !slices.Contains(Dialects, l.Dialect):
			t.Fatalf("unknown dialect in %+v", l)
		}
	}
	if o.RetryAfter < 0 || o.RetryAfter > maxHorizon || (!o.HasRetryAfter && o.RetryAfter != 0) {
		t.Fatalf("retry after %v, %v out of range", o.RetryAfter, o.HasRetryAfter)
	}
}

func FuzzParseHeaders(f *testing.F) {
	f.Add("", "x-ratelimit-limit-requests: 60\nx-ratelimit-remaining-requests: 59\nx-ratelimit-reset-requests: 1s\nx-ratelimit-reset-tokens: 6m0s")
	f.Add("anthropic", "anthropic-ratelimit-tokens-remaining: 49000\nanthropic-ratelimit-tokens-reset: 2025-10-25T12:01:00Z\nretry-after: 60")
	f.Add("github", "x-ratelimit-limit: 5000\nx-ratelimit-used: 1\nx-ratelimit-reset: 1691591363\nx-ratelimit-resource: core")
	f.Add("ietf", "RateLimit-Policy: \"burst\";q=100;w=60,\"daily\";q=1000;w=86400\nRateLimit: \"burst\";r=50;t=30")
	f.Add("", "RateLimit-Policy: 10;w=1, 50;w=60\nRateLimit: limit=10, remaining=1, reset=7\nretry-after-ms: 20.5")
	now := time.Date(2025, 10, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, dialect, raw string) {
		h := headerLines(raw)
		o := ParseHeaders(Dialect(dialect), h, now)
		checkInvariants(t, o, now)
		if again := ParseHeaders(Dialect(dialect), h, now); !reflect.DeepEqual(o, again) {
			t.Fatalf("two parses of the same headers differ:\n%s\n%s", dump(o), dump(again))
		}
	})
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range [][2]string{{"120", ""}, {"Wed, 21 Oct 2015 07:28:00 GMT", ""}, {"", "250.5"}, {"3", "soon"}, {"-1", "1e9"}} {
		f.Add(s[0], s[1])
	}
	now := time.Date(2015, 10, 21, 7, 27, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ra, ms string) {
		d, ok := parseRetryAfter(ra, ms, now)
		if d < 0 || d > maxHorizon || (!ok && d != 0) {
			t.Fatalf("parseRetryAfter(%q, %q) = %v, %v", ra, ms, d, ok)
		}
	})
}

func FuzzParseReset(f *testing.F) {
	for _, s := range []string{"1691591363", "1704067260000", "2025-10-25T12:00:00Z", "58", "6m0s", "Wed, 21 Oct 2015 07:28:00 GMT", "0.5"} {
		f.Add(s)
	}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		r, ok := parseReset(v, now)
		if ok && (r.Before(now) || r.After(now.Add(maxHorizon))) {
			t.Fatalf("parseReset(%q) = %v, outside [now, now+%v]", v, r, maxHorizon)
		}
		if !ok && !r.IsZero() {
			t.Fatalf("parseReset(%q) failed but returned %v", v, r)
		}
		d, ok := parseDelta(v)
		if d < 0 || d > maxHorizon || (!ok && d != 0) {
			t.Fatalf("parseDelta(%q) = %v, %v", v, d, ok)
		}
	})
}

func FuzzStructuredField(f *testing.F) {
	for _, s := range []string{`"burst";q=100;w=60,"daily";q=1000;w=86400`, `limit=10, remaining=1, reset=7`,
		`"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:`, `("a" "b");r=1, ?1, @12, 5.5, -3`, `a, b;c=?0, d=(1 2)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		list, ok := parseSFList(v)
		if ok && len(list) == 0 {
			t.Fatalf("parseSFList(%q) succeeded with no members", v)
		}
		dict, ok := parseSFDict(v)
		if ok && dict.len() == 0 {
			t.Fatalf("parseSFDict(%q) succeeded with no members", v)
		}
		if ok {
			for _, k := range dict.d.Names() {
				if k == "" {
					t.Fatalf("parseSFDict(%q) gave a member without a key", v)
				}
			}
		}
		if len(v) > maxSFField && (list != nil || dict.d != nil) {
			t.Fatalf("a field of %d bytes, over maxSFField, was parsed", len(v))
		}
	})
}

// An IETF field is read up to maxIETFMembers members: limits are matched to
// policies by name, and thousands of members would cost quadratic time
// under the limiter's lock. The members read are the first ones.
func TestParseIETFReadsFirstMembers(t *testing.T) {
	now := time.Date(2025, 10, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		members int
		want    int
	}{
		{"a few", 3, 3},
		{"exactly the bound", maxIETFMembers, maxIETFMembers},
		{"far more", 5000, maxIETFMembers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pol, lim []string
			for i := range tt.members {
				pol = append(pol, fmt.Sprintf(`"p%d";q=10;w=60`, i))
				lim = append(lim, fmt.Sprintf(`"p%d";r=5;t=30`, i))
			}
			o := ParseHeaders("ietf", map[string]string{
				"RateLimit-Policy": strings.Join(pol, ", "), "RateLimit": strings.Join(lim, ", "),
			}, now)
			if len(o.Limits) != tt.want {
				t.Fatalf("%d limits, want %d", len(o.Limits), tt.want)
			}
			for i, l := range o.Limits {
				want := ObservedLimit{Unit: Requests, Limit: 10, Remaining: 5, HasRemaining: true, Reset: now.Add(30 * time.Second),
					Window: time.Minute, Name: fmt.Sprintf("p%d", i), Dialect: "ietf"}
				if l != want {
					t.Fatalf("limit %d: %s, want %s", i, fmtLimit(l), fmtLimit(want))
				}
			}
		})
	}
}
