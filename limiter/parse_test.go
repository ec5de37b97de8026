package limiter

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in   string
		want Policy
		str  string // String() of the result
	}{
		{"500 requests/1m", Policy{500, Requests, time.Minute}, "500 requests/1m"},
		{"200000 tokens/1m", Policy{200000, Tokens, time.Minute}, "200000 tokens/1m"},
		{"40 requests/5h", Policy{40, Requests, 5 * time.Hour}, "40 requests/5h"},
		{"6 requests / 1m", Policy{6, Requests, time.Minute}, "6 requests/1m"},
		{"1000 input_tokens/30s", Policy{1000, InputTokens, 30 * time.Second}, "1000 input_tokens/30s"},
		{"10 requests/1h30m", Policy{10, Requests, 90 * time.Minute}, "10 requests/1h30m"},
		{"100 requests/min", Policy{100, Requests, time.Minute}, "100 requests/1m"},
		{"100 requests/minute", Policy{100, Requests, time.Minute}, "100 requests/1m"},
		{"100 requests/2 hours", Policy{100, Requests, 2 * time.Hour}, "100 requests/2h"},
		{"1 request/1s", Policy{1, Requests, time.Second}, "1 requests/1s"},
		{"1 token/1s", Policy{1, Tokens, time.Second}, "1 tokens/1s"},
		{"8000 output-tokens/1m", Policy{8000, OutputTokens, time.Minute}, "8000 output_tokens/1m"},
		{"8000 Output_Tokens/1M", Policy{8000, OutputTokens, time.Minute}, "8000 output_tokens/1m"},
		{"  500requests/1m  ", Policy{500, Requests, time.Minute}, "500 requests/1m"},
		{"1_000_000 tokens/1d", Policy{1000000, Tokens, 24 * time.Hour}, "1000000 tokens/1d"},
		{"1,000 requests/1d", Policy{1000, Requests, 24 * time.Hour}, "1000 requests/1d"},
		{"5000 requests/1m0s", Policy{5000, Requests, time.Minute}, "5000 requests/1m"},
		{"5000 requests/24h", Policy{5000, Requests, 24 * time.Hour}, "5000 requests/1d"},
		{"5000 requests/36h", Policy{5000, Requests, 36 * time.Hour}, "5000 requests/1d12h"},
		{"3 requests/1.5s", Policy{3, Requests, 1500 * time.Millisecond}, "3 requests/1s500ms"},
		{"3 requests/500ms", Policy{3, Requests, 500 * time.Millisecond}, "3 requests/500ms"},
		{"7 requests/1w", Policy{7, Requests, 7 * 24 * time.Hour}, "7 requests/7d"},
		{"1000000000000000 tokens/1m", Policy{1e15, Tokens, time.Minute}, "1000000000000000 tokens/1m"},
		{"1 requests/366d", Policy{1, Requests, maxWindow}, "1 requests/366d"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if err != nil {
				t.Fatalf("ParsePolicy(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParsePolicy(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			back, err := ParsePolicy(got.String())
			if err != nil || back != got {
				t.Errorf("ParsePolicy(%q) = %+v, %v; want %+v", got.String(), back, err, got)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // the error, which must also name the input
	}{
		{"500 reqs/1m", `unknown unit "reqs"; allowed: requests, tokens, input_tokens, output_tokens`},
		{"500 requests", `no "/" before the window`},
		{"500/1m", `no unit after the quota; allowed: requests, tokens`},
		{"requests/1m", `quota "requests" is not a positive whole number`},
		{"/1m", `no quota before the "/"`},
		{"", `no "/" before the window`},
		{"0 requests/1m", `quota must be more than 0, not 0`},
		{"-5 requests/1m", `quota "-5" is not a positive whole number`},
		{"1.5 requests/1m", `quota "1.5" is not a whole number`},
		{"99999999999999999999 requests/1m", `quota 99999999999999999999 is too large; at most 1000000000000000`},
		{"1000000000000001 requests/1m", `is too large`},
		{"500 requests/", `no window after the "/"`},
		{"500 requests/60", `window "60" has no unit`},
		{"500 requests/1fortnight", `unknown unit "fortnight"`},
		{"500 requests/0s", `window "0s" must be longer than zero`},
		{"500 requests/-1m", `window "-1m" must be longer than zero`},
		{"500 requests/367d", `window "367d" is too long; at most 366d`},
		{"500 requests/99999999999999h", `is too long`},
		{"500 requests/1m/2", `window "1m/2"`},
		{"500 requests/1..5m", `is not a number`},
		{"500 requests/__", `unknown unit "__"`},
		{"_ requests/1m", `quota "_" has no digits`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePolicy(tt.in)
			if err == nil {
				t.Fatalf("ParsePolicy(%q) = %+v, want an error", tt.in, p)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "limit "+quote(tt.in)+": ") {
				t.Errorf("error %q does not start with the limit it is about", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
		})
	}
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func TestPolicyText(t *testing.T) {
	type config struct {
		Limits []Policy `json:"limits"`
	}
	in := `{"limits":["500 requests/1m","40 requests / 5h","10 requests/90m"]}`
	var c config
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := []Policy{{500, Requests, time.Minute}, {40, Requests, 5 * time.Hour}, {10, Requests, 90 * time.Minute}}
	if len(c.Limits) != len(want) {
		t.Fatalf("got %v, want %v", c.Limits, want)
	}
	for i := range want {
		if c.Limits[i] != want[i] {
			t.Errorf("limit %d = %+v, want %+v", i, c.Limits[i], want[i])
		}
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != `{"limits":["500 requests/1m","40 requests/5h","10 requests/1h30m"]}` {
		t.Errorf("Marshal = %s", got)
	}

	err = json.Unmarshal([]byte(`{"limits":["5 reqs/1m"]}`), &c)
	if err == nil || !strings.Contains(err.Error(), `unknown unit "reqs"`) {
		t.Errorf("Unmarshal of a bad unit: %v", err)
	}
	for _, bad := range []Policy{{}, {5, "reqs", time.Minute}, {5, Requests, 0}, {-1, Requests, time.Minute}, {5, Requests, maxWindow + 1}} {
		if _, err := json.Marshal(bad); err == nil {
			t.Errorf("Marshal(%+v) succeeded; an invalid policy must not be saved", bad)
		}
	}
}

func TestParsePriority(t *testing.T) {
	tests := []struct {
		in      string
		want    Priority
		wantErr bool
	}{
		{"high", High, false},
		{"HIGH", High, false},
		{" Normal ", Normal, false},
		{"low", Low, false},
		{"", PriorityUnset, false},
		{"urgent", PriorityUnset, true},
		{"unset", PriorityUnset, true},
		{"1", PriorityUnset, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePriority(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParsePriority(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "allowed: high, normal, low") {
				t.Errorf("error %q does not list the allowed values", err)
			}
		})
	}
}

func TestPriorityText(t *testing.T) {
	for _, p := range []Priority{PriorityUnset, Low, Normal, High} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", p, err)
		}
		var back Priority
		if err := json.Unmarshal(b, &back); err != nil || back != p {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, back, err, p)
		}
	}
	tests := []struct {
		p    Priority
		str  string
		json string
	}{
		{High, "high", `"high"`},
		{Normal, "normal", `"normal"`},
		{Low, "low", `"low"`},
		{PriorityUnset, "unset", `""`},
	}
	for _, tt := range tests {
		if s := tt.p.String(); s != tt.str {
			t.Errorf("Priority(%d).String() = %q, want %q", tt.p, s, tt.str)
		}
		if b, _ := json.Marshal(tt.p); string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, want %s", tt.p, b, tt.json)
		}
	}
	if s := Priority(9).String(); s != "Priority(9)" {
		t.Errorf("Priority(9).String() = %q", s)
	}
	if _, err := json.Marshal(Priority(9)); err == nil {
		t.Error("Marshal(Priority(9)) succeeded")
	}
	var p Priority
	if err := json.Unmarshal([]byte(`"urgent"`), &p); err == nil || !strings.Contains(err.Error(), `unknown priority "urgent"`) {
		t.Errorf("Unmarshal(urgent): %v", err)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" for valid; else a part of the error
	}{
		{"openai", ""},
		{"research-1", ""},
		{"A.b_C-9", ""},
		{strings.Repeat("x", 64), ""},
		{"", "name is empty; names are 1 to 64 characters of A-Z a-z 0-9 . _ -"},
		{strings.Repeat("x", 65), "is 65 bytes long; names are 1 to 64"},
		{"foo bar", `name "foo bar" has " " at byte 3; names are`},
		{"a/b", `has "/" at byte 1`},
		{"café", `has "é" at byte 3`},
		{"a\x00", `has "\x00" at byte 1`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := ValidName(tt.in)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidName(%q) = %v, want nil", tt.in, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ValidName(%q) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestErrorStrings(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&RefusedError{Reason: ReasonCooldown, RetryAfter: 4100 * time.Millisecond, Service: "openai"}, "openai: refused (cooldown), retry after 4.1s"},
		{&RefusedError{Reason: ReasonPaused, Service: "openai", Agent: "research-1"}, "openai: refused (paused) for agent research-1"},
		{&RefusedError{Reason: ReasonTimeout, RetryAfter: 1234567 * time.Microsecond, Service: "github", Agent: "ci"}, "github: refused (timeout) for agent ci, retry after 1.235s"},
		{&Error{Code: CodeUnknownService, Message: `no service "foo"; configured: openai, github`}, `unknown_service: no service "foo"; configured: openai, github`},
		{&Error{Code: CodeShuttingDown}, "shutting_down"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	var re *RefusedError
	if err := error(&RefusedError{Reason: ReasonShed}); !errors.As(err, &re) || re.Reason != ReasonShed {
		t.Errorf("errors.As failed on %v", err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{"500 requests/1m", "200000 tokens/1m", "40 requests/5h", "6 requests / 1m",
		"1000 input_tokens/30s", "10 requests/1h30m", "100 requests/min", "3 requests/1.5s", "1 request/366d",
		"1,000 tokens/1d12h", "5 reqs/1m", "0 requests/0s", "9 requests/.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "limit "+quote(s)+": ") {
				t.Fatalf("error %q does not name the limit", err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("ParsePolicy(%q) = %+v, which is invalid: %v", s, p, err)
		}
		back, err := ParsePolicy(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePolicy(%q) = %+v, %v; want %+v (from %q)", p.String(), back, err, p, s)
		}
		text, err := p.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%+v): %v", p, err)
		}
		var q Policy
		if err := q.UnmarshalText(text); err != nil || q != p {
			t.Fatalf("UnmarshalText(%q) = %+v, %v; want %+v", text, q, err, p)
		}
	})
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"openai", "research-1", "", "a b", "café", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidName(s)
		if want := nameRE.MatchString(s); (err == nil) != want {
			t.Fatalf("ValidName(%q) = %v, but the rule says valid=%v", s, err, want)
		}
	})
}
