package statusline

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) *time.Time { t := now.Add(d); return &t }

func service(name string, remaining, quota int64, mod func(*wire.ServiceStatus)) wire.ServiceStatus {
	s := wire.ServiceStatus{Name: name, Limits: []wire.LimitStatus{{Unit: "requests", Quota: quota, WindowMS: 60000, Remaining: remaining, ResetsAt: at(38 * time.Second)}}}
	if mod != nil {
		mod(&s)
	}
	return s
}

func TestText(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  wire.ServiceStatus
		want string
	}{
		{"ok", service("openai", 412, 500, nil), "openai 412/500 req left · resets 38s"},
		{"low", service("openai", 12, 500, nil), "openai low 12/500 req left · resets 38s"},
		{"exhausted", service("openai", 0, 500, func(s *wire.ServiceStatus) { s.Limits[0].ResetsAt = at(5 * time.Minute) }), "openai exhausted · resets 5m"},
		{"cooldown", service("openai", 400, 500, func(s *wire.ServiceStatus) { s.CooldownUntil = at(4100 * time.Millisecond) }), "openai cooldown 4.1s"},
		{"cooldown over", service("openai", 400, 500, func(s *wire.ServiceStatus) { s.CooldownUntil = at(-time.Second) }), "openai 400/500 req left · resets 38s"},
		{"paused", service("openai", 400, 500, func(s *wire.ServiceStatus) { s.Paused = true }), "openai paused"},
		{"learning", wire.ServiceStatus{Name: "gh"}, "gh ok (learning limits)"},
		{"tokens are the tightest", service("anthropic", 900, 1000, func(s *wire.ServiceStatus) {
			s.Limits = append(s.Limits, wire.LimitStatus{Unit: "tokens", Quota: 80000, WindowMS: 60000, Remaining: 8000})
		}), "anthropic low 8000/80000 tok left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Text(quotaview.ViewService(tc.svc, now)); got != tc.want {
				t.Errorf("Text = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	st := &wire.StatusResponse{Services: []wire.ServiceStatus{
		service("anthropic", 990, 1000, nil),
		service("openai", 10, 100, nil),
		service("anthropic.web", 0, 6, nil),
	}}
	claude := ReadSession([]byte(`{"model":{"id":"claude-sonnet-4-5","display_name":"Sonnet"},"cost":{"total_cost_usd":1}}`))
	for _, tc := range []struct {
		name, format, service string
		st                    *wire.StatusResponse
		sess                  Session
		want                  string
	}{
		{"down", "text", "", nil, claude, NotRunning + "\n"},
		{"Claude Code: its service, not the .web one", "text", "", st, claude, "anthropic 990/1000 req left · resets 38s\n"},
		{"prompt: the tightest", "text", "", st, Session{}, "anthropic.web exhausted · resets 38s\n"},
		{"named", "text", "openai", st, claude, "openai low 10/100 req left · resets 38s\n"},
		{"no services", "text", "", &wire.StatusResponse{}, Session{}, "quotabar: no services\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Write(&b, tc.format, tc.st, tc.service, tc.sess, now); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("Write = %q, want %q", b.String(), tc.want)
			}
		})
	}
	var b bytes.Buffer
	if err := Write(&b, "text", st, "nope", Session{}, now); err == nil || !strings.Contains(err.Error(), "configured: anthropic, openai, anthropic.web") {
		t.Errorf("Write(unknown service) = %v, want an error listing the services", err)
	}
	b.Reset()
	if err := Write(&b, "json", st, "openai", Session{}, now); err != nil {
		t.Fatal(err)
	}
	var bar Bar
	if err := json.Unmarshal(b.Bytes(), &bar); err != nil {
		t.Fatal(err)
	}
	if bar.Class != "low" || bar.Percentage != 90 || bar.FullText != bar.Text || strings.Count(bar.Tooltip, "\n") != 2 {
		t.Errorf("bar = %+v, want class low, 90%%, three tooltip lines", bar)
	}
}

func TestReadSessionIgnoresWhatItCannotUse(t *testing.T) {
	for _, in := range []string{"", "not json", "[1,2]", `{"model":"a string"}`} {
		if s := ReadSession([]byte(in)); s != (Session{}) {
			t.Errorf("ReadSession(%q) = %+v, want zero", in, s)
		}
	}
}
