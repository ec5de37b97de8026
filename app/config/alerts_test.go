package config

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/alerts"
)

func TestParseConfigAlerts(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(`
[alerts]
notify = false
thresholds = [50, 90]
hook_timeout = "3s"

[alerts.hooks]
quota_low = "notify-send low"
cooldown_start = "paplay bell.oga"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := alerts.Config{Notify: false, Thresholds: []int{50, 90}, HookTimeout: 3 * time.Second,
		Hooks: map[alerts.Kind]string{alerts.QuotaLow: "notify-send low", alerts.CooldownStart: "paplay bell.oga"}}
	got := cfg.Alerts
	if got.Notify != want.Notify || !slices.Equal(got.Thresholds, want.Thresholds) || got.HookTimeout != want.HookTimeout || !maps.Equal(got.Hooks, want.Hooks) {
		t.Errorf("alerts = %+v, want %+v", got, want)
	}
	if err := got.Check(); err != nil {
		t.Errorf("the parsed config does not pass alerts.Config.Check: %v", err)
	}
	cfg, err = Parse("c.toml", []byte("[services.a]\nlimits = [\"1 requests/1s\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Alerts.Notify || cfg.Alerts.Hooks != nil {
		t.Errorf("without [alerts]: %+v, want notifications on and no hooks", cfg.Alerts)
	}
}

func TestParseConfigAlertsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		key, msg string
	}{
		{"threshold 100", "[alerts]\nthresholds = [80, 100]\n", 2, "alerts.thresholds[1]", "100: give percentages used from 1 to 99"},
		{"threshold not a number", "[alerts]\nthresholds = [\"80%\"]\n", 2, "alerts.thresholds[0]", "want a whole percentage such as 80, not a string"},
		{"notify not a bool", "[alerts]\nnotify = \"yes\"\n", 2, "alerts.notify", "want true or false"},
		{"bad timeout", "[alerts]\nhook_timeout = \"soon\"\n", 2, "alerts.hook_timeout", "positive duration"},
		{"unknown event", "[alerts.hooks]\nquota_lo = \"x\"\n", 2, "alerts.hooks.quota_lo", "unknown key \"quota_lo\"; allowed here: quota_low, quota_exhausted, cooldown_start, cooldown_end, window_reset"},
		{"empty hook", "[alerts.hooks]\nwindow_reset = \" \"\n", 2, "alerts.hooks.window_reset", "the command is empty"},
		{"unknown key", "[alerts]\nnotfy = true\n", 2, "alerts.notfy", "allowed here: notify, thresholds, hook_timeout, hooks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tc.in))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *Error", err)
			}
			if ce.Line != tc.line || ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("error = line %d key %q %q, want line %d key %q containing %q", ce.Line, ce.Key, ce.Msg, tc.line, tc.key, tc.msg)
			}
		})
	}
}
