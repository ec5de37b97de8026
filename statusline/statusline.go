// Package statusline writes quotabar's state as one short line for Claude
// Code's statusLine, tmux and shell prompts, and as the JSON that Waybar,
// i3blocks and similar bars read. It only formats: the command fetches the
// status under a short deadline and hands it here.
package statusline

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc/wire"
)

// NotRunning is the line when the daemon does not answer.
const NotRunning = "quotabar: not running"

// Bar is the JSON for status bars: Waybar's custom module (text, alt,
// tooltip, class, percentage) and i3blocks (full_text, short_text) read
// the fields they know and ignore the rest.
type Bar struct {
	Text       string `json:"text"`
	Alt        string `json:"alt"`
	Tooltip    string `json:"tooltip"`
	Class      string `json:"class"`
	Percentage int    `json:"percentage"`
	FullText   string `json:"full_text"`
	ShortText  string `json:"short_text"`
}

// Session is what statusline reads of the JSON that Claude Code pipes to
// its statusLine command; everything else in it is ignored.
type Session struct {
	Model struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	} `json:"model"`
}

// ReadSession decodes Claude Code's JSON; anything else (nothing, a
// terminal's empty input, text) gives the zero Session.
func ReadSession(data []byte) Session {
	var s Session
	_ = json.Unmarshal(data, &s) // not JSON: not Claude Code, nothing to use
	return s
}

// Pick chooses the service to show: the one named, else under Claude Code
// the service whose name says Anthropic or Claude (the one this session
// spends), else the tightest. ok is false when there is none to show.
func Pick(services []quotaview.Service, name string, sess Session) (quotaview.Service, bool, error) {
	if name != "" {
		var names []string
		for _, s := range services {
			if s.Name == name {
				return s, true, nil
			}
			names = append(names, s.Name)
		}
		return quotaview.Service{}, false, fmt.Errorf("service %q is not configured; configured: %s", name, strings.Join(names, ", "))
	}
	if model := strings.ToLower(sess.Model.ID + sess.Model.DisplayName); strings.Contains(model, "claude") || strings.Contains(model, "opus") || strings.Contains(model, "sonnet") {
		var claude []quotaview.Service
		for _, s := range services {
			if n := strings.ToLower(s.Name); (strings.Contains(n, "anthropic") || strings.Contains(n, "claude")) && !strings.HasSuffix(n, ".web") {
				claude = append(claude, s)
			}
		}
		if s, ok := quotaview.Tightest(claude); ok {
			return s, true, nil
		}
	}
	s, ok := quotaview.Tightest(services)
	return s, ok, nil
}

var unitShort = map[string]string{"requests": "req", "tokens": "tok", "input_tokens": "in tok", "output_tokens": "out tok"}

// Text is one service as a short line:
//
//	openai 412/500 req left · resets 38s
//	openai low 12/500 req left · resets 38s
//	openai exhausted · resets 5m
//	openai cooldown 4.1s
//	openai paused
//	claude 5-hour 62% used · resets 1h42m
//	claude low week 93% used · resets 2d3h
func Text(s quotaview.Service) string {
	switch s.State {
	case quotaview.Cooldown:
		return fmt.Sprintf("%s cooldown %s", s.Name, quotaview.Duration(s.CooldownLeft))
	case quotaview.Paused:
		return s.Name + " paused"
	}
	if w, ok := s.ShownWindow(); ok {
		return windowText(s, w)
	}
	if s.Tightest < 0 {
		return s.Name + " ok (learning limits)"
	}
	l := s.Limits[s.Tightest]
	var b strings.Builder
	b.WriteString(s.Name)
	switch s.State {
	case quotaview.Exhausted:
		b.WriteString(" exhausted")
	case quotaview.Low:
		fmt.Fprintf(&b, " low %d/%d %s left", max(l.Remaining, 0), l.Quota, short(l.Unit))
	default:
		fmt.Fprintf(&b, " %d/%d %s left", max(l.Remaining, 0), l.Quota, short(l.Unit))
	}
	if l.ResetsIn > 0 {
		fmt.Fprintf(&b, " · resets %s", quotaview.Duration(l.ResetsIn))
	}
	return b.String()
}

func short(unit string) string {
	if s, ok := unitShort[unit]; ok {
		return s
	}
	return unit
}

// BarFor is the bar JSON for the shown service, with every service in
// the tooltip.
func BarFor(shown quotaview.Service, all []quotaview.Service) Bar {
	var tip []string
	for _, s := range all {
		tip = append(tip, Text(s))
	}
	text := Text(shown)
	pct := 0
	if w, ok := shown.ShownWindow(); ok {
		pct = min(w.UsedPercent(), 100)
	} else if shown.Tightest >= 0 {
		pct = shown.Limits[shown.Tightest].UsedPercent()
	}
	if shown.State == quotaview.Cooldown || shown.State == quotaview.Exhausted {
		pct = 100
	}
	return Bar{Text: text, Alt: shown.State.String(), Tooltip: strings.Join(tip, "\n"), Class: shown.State.String(),
		Percentage: pct, FullText: text, ShortText: shown.Name + " " + shown.State.String()}
}

// Write writes the line (format "text") or the bar JSON (format "json")
// for st, or for a daemon that does not answer when st is nil.
func Write(w io.Writer, format string, st *wire.StatusResponse, service string, sess Session, now time.Time) error {
	var bar Bar
	switch {
	case st == nil:
		bar = Bar{Text: NotRunning, Alt: "down", Tooltip: "start it with `quotabar` or `quotabar serve`", Class: "down", FullText: NotRunning, ShortText: NotRunning}
	default:
		all := quotaview.Services(*st, now)
		shown, ok, err := Pick(all, service, sess)
		switch {
		case err != nil:
			return err
		case !ok:
			bar = Bar{Text: "quotabar: no services", Alt: "ok", Class: "ok", FullText: "quotabar: no services", ShortText: "quotabar"}
		default:
			bar = BarFor(shown, all)
		}
	}
	if format == "json" {
		return json.NewEncoder(w).Encode(bar)
	}
	_, err := fmt.Fprintln(w, bar.Text)
	return err
}
