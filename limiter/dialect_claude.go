package limiter

import (
	"slices"
	"strings"
	"time"
)

// Claude's subscription windows, as Claude Code's traffic on a Pro or Max
// plan carries them (observed, not documented):
//
//	anthropic-ratelimit-unified-status: allowed | allowed_warning | rejected
//	anthropic-ratelimit-unified-reset: 1767254400            (Unix seconds)
//	anthropic-ratelimit-unified-representative-claim: five_hour | seven_day | ...
//	anthropic-ratelimit-unified-5h-utilization: 0.62         (fraction, may exceed 1)
//	anthropic-ratelimit-unified-5h-reset: 1767254400
//	anthropic-ratelimit-unified-5h-status: allowed
//	anthropic-ratelimit-unified-7d-surpassed-threshold: 0.75
//	anthropic-ratelimit-unified-overage-status: rejected
//
// and other windows of the same shape ("7d_oi", "7d_opus"). Each name
// between the prefix and one of the suffixes below is a window.

const claudePrefix = "anthropic-ratelimit-unified-"

// claudeSuffixes are the per-window fields.
var claudeSuffixes = []string{"-utilization", "-reset", "-status", "-surpassed-threshold"}

// claudeClaims maps the representative claim to the window it names.
var claudeClaims = map[string]string{
	"five_hour":        "5h",
	"seven_day":        "7d",
	"seven_day_opus":   "7d_opus",
	"seven_day_sonnet": "7d_sonnet",
	"seven_day_oauth":  "7d_oauth",
	"overage":          "overage",
}

// claudeStatus reads a status word, or "" when it is none of the known.
func claudeStatus(v string) string {
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "allowed", "allowed_warning", "rejected":
		return v
	}
	return ""
}

// parseClaude reads the unified windows from lower-cased headers h into o.
func parseClaude(h map[string]string, now time.Time, o *Observation) {
	var names []string
	for k := range h {
		rest, ok := strings.CutPrefix(k, claudePrefix)
		if !ok {
			continue
		}
		for _, suf := range claudeSuffixes {
			if name, ok := strings.CutSuffix(rest, suf); ok && isWindowName(name) && !slices.Contains(names, name) {
				names = append(names, name)
				break
			}
		}
	}
	slices.Sort(names) // headers are a map: keep the result in one order
	if len(names) > maxWindows {
		o.Notes = notef(o.Notes, "claude: %d unified windows, reading the first %d", len(names), maxWindows)
		names = names[:maxWindows]
	}
	for _, name := range names {
		p := claudePrefix + name
		w := ObservedWindow{Name: name, Length: windowLength(name), Dialect: "claude"}
		if v := h[p+"-utilization"]; v != "" {
			if f, ok := parseFraction(v, 1); ok {
				w.Utilization, w.HasUtilization = f, true
			} else {
				o.Notes = notef(o.Notes, "claude window %s: utilization %s is not a fraction from 0 to %d", name, noteQuote(v), maxUtilization)
			}
		}
		if v := h[p+"-reset"]; v != "" {
			if t, why, ok := parseEpochReset(v, w.Length, now); ok {
				w.Reset = t
			} else {
				o.Notes = notef(o.Notes, "claude window %s: reset %s ignored: %s", name, noteQuote(v), why)
			}
		}
		if v := h[p+"-status"]; v != "" {
			if w.Status = claudeStatus(v); w.Status == "" {
				o.Notes = notef(o.Notes, "claude window %s: status %s is not allowed, allowed_warning or rejected", name, noteQuote(v))
			}
		}
		if v := h[p+"-surpassed-threshold"]; v != "" {
			if _, ok := parseFraction(v, 1); ok {
				w.Warning = true
			} else {
				o.Notes = notef(o.Notes, "claude window %s: surpassed threshold %s is not a fraction", name, noteQuote(v))
			}
		}
		w.Warning = w.Warning || w.Status == "allowed_warning"
		if w.HasUtilization || !w.Reset.IsZero() || w.Status != "" {
			o.Windows = append(o.Windows, w)
		}
	}

	// The overall status: rejected closes the service until the window it
	// is about resets, the representative claim's, else the rejected
	// window that resets last (every one must clear), else the overall reset.
	status := claudeStatus(h[claudePrefix+"status"])
	if v := h[claudePrefix+"status"]; v != "" && status == "" {
		o.Notes = notef(o.Notes, "claude: unified status %s is not allowed, allowed_warning or rejected", noteQuote(v))
	}
	var overall time.Time
	if v := h[claudePrefix+"reset"]; v != "" {
		if t, why, ok := parseEpochReset(v, 0, now); ok {
			overall = t
		} else {
			o.Notes = notef(o.Notes, "claude: unified reset %s ignored: %s", noteQuote(v), why)
		}
	}
	if status != "rejected" {
		return
	}
	rej := WindowRejection{}
	if claim := strings.ToLower(strings.TrimSpace(h[claudePrefix+"representative-claim"])); claim != "" {
		name := claudeClaims[claim]
		if name == "" && isWindowName(claim) {
			name = claim
		}
		for i := range o.Windows {
			if o.Windows[i].Name == name {
				rej = WindowRejection{Window: name, Until: o.Windows[i].Reset}
				o.Windows[i].Status = "rejected"
			}
		}
		if rej.Window == "" && name != "" {
			rej.Window = name
		}
	}
	if rej.Until.IsZero() {
		// The claim named no window with a reset: the rejected window that
		// resets last, since every rejected one must clear.
		for _, w := range o.Windows {
			if w.Status == "rejected" && w.Reset.After(rej.Until) {
				rej = WindowRejection{Window: w.Name, Until: w.Reset}
			}
		}
	}
	if rej.Until.IsZero() {
		rej.Until = overall
	}
	if rej.Until.IsZero() {
		o.Notes = notef(o.Notes, "claude: rejected without a usable reset; the service cools down as after any refusal")
		return
	}
	if rej.Window == "" {
		rej.Window = "unified"
	}
	o.Rejected = &rej
}
