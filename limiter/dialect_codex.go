package limiter

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Codex's plan windows, as its traffic on a ChatGPT sign-in carries them
// (observed, not documented):
//
//	x-codex-primary-used-percent: 62.5             (0 to 100)
//	x-codex-primary-window-minutes: 300
//	x-codex-primary-reset-at: 1767254400           (Unix seconds)
//	x-codex-primary-reset-after-seconds: 6120
//	x-codex-secondary-used-percent: 31
//	x-codex-secondary-window-minutes: 10080
//	x-<family>-primary-used-percent: 80            (another limit family)
//	x-<family>-limit-name: gpt-5.2-codex-sonic
//
// "Primary" is not always the 5-hour window (a 10080-minute primary has
// been seen), so a window is named by its length. The same data may come
// as a stream event {"type": "codex.rate_limits", "rate_limits": {"primary":
// {"used_percent": 62.5, "window_minutes": 300, "reset_at": 1767254400}}},
// which CodexEventHeaders turns into these headers; and a 429 whose body
// says {"error": {"type": "usage_limit_reached", "resets_at": ...}}.

var codexSlots = []string{"primary", "secondary"}

// parseCodex reads every limit family's windows from lower-cased headers h
// into o.
func parseCodex(h map[string]string, now time.Time, o *Observation) {
	var families []string
	for k := range h {
		rest, ok := strings.CutPrefix(k, "x-")
		if !ok {
			continue
		}
		for _, slot := range codexSlots {
			if fam, ok := strings.CutSuffix(rest, "-"+slot+"-used-percent"); ok {
				fam = strings.ReplaceAll(fam, "-", "_")
				if isWindowName(fam) && !slices.Contains(families, fam) {
					families = append(families, fam)
				}
			}
		}
	}
	slices.Sort(families)
	for _, fam := range families {
		if len(o.Windows) >= maxWindows {
			o.Notes = notef(o.Notes, "codex: more than %d windows, the rest ignored", maxWindows)
			return
		}
		p := "x-" + strings.ReplaceAll(fam, "_", "-") + "-"
		title := strings.TrimSpace(h[p+"limit-name"])
		if len(title) > 64 || !isPrintable(title) {
			title = ""
		}
		for _, slot := range codexSlots {
			q := p + slot + "-"
			v := h[q+"used-percent"]
			if v == "" {
				continue
			}
			w := ObservedWindow{Dialect: "codex", Title: title}
			f, ok := parseFraction(v, 100)
			if !ok {
				o.Notes = notef(o.Notes, "codex %s %s: used percent %s is not a number from 0 to %d", fam, slot, noteQuote(v), maxUtilization*100)
				continue
			}
			w.Utilization, w.HasUtilization = f, true
			if m := h[q+"window-minutes"]; m != "" {
				if n, err := strconv.ParseInt(m, 10, 64); err == nil && n > 0 && n <= int64(maxWindowHorizon/time.Minute) {
					w.Length = time.Duration(n) * time.Minute
				} else {
					o.Notes = notef(o.Notes, "codex %s %s: window minutes %s is not a whole number from 1 to %d", fam, slot, noteQuote(m), int64(maxWindowHorizon/time.Minute))
				}
			}
			if r := h[q+"reset-at"]; r != "" {
				if t, why, ok := parseEpochReset(r, w.Length, now); ok {
					w.Reset = t
				} else {
					o.Notes = notef(o.Notes, "codex %s %s: reset %s ignored: %s", fam, slot, noteQuote(r), why)
				}
			}
			if r := h[q+"reset-after-seconds"]; r != "" && w.Reset.IsZero() {
				if n, err := strconv.ParseInt(r, 10, 64); err == nil && n >= 0 && n < int64(maxWindowHorizon/time.Second) {
					if t, why, ok := checkReset(now.Add(time.Duration(n)*time.Second), w.Length, now); ok {
						w.Reset = t
					} else {
						o.Notes = notef(o.Notes, "codex %s %s: reset after %s ignored: %s", fam, slot, noteQuote(r), why)
					}
				} else {
					o.Notes = notef(o.Notes, "codex %s %s: reset after seconds %s is not a whole number of seconds", fam, slot, noteQuote(r))
				}
			}
			w.Name = lengthName(w.Length)
			if w.Name == "" {
				w.Name = slot
			}
			if fam != "codex" {
				w.Name = fam + ":" + w.Name
			}
			if slices.ContainsFunc(o.Windows, func(x ObservedWindow) bool { return x.Name == w.Name }) {
				w.Name += "_" + slot // two slots of one length: keep both
			}
			o.Windows = append(o.Windows, w)
		}
	}
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// codexErrorBody is the part of a Codex 429 body read here.
type codexErrorBody struct {
	Error struct {
		Type            string          `json:"type"`
		ResetsAt        json.Number     `json:"resets_at"`
		ResetsInSeconds json.Number     `json:"resets_in_seconds"`
		PlanType        json.RawMessage `json:"plan_type"`
	} `json:"error"`
}

// parseCodexBody reads a usage_limit_reached refusal: the service is closed
// until resets_at. The window it names is the one used up (the one that
// resets last if several are), else one whose reset matches.
func parseCodexBody(body []byte, now time.Time, o *Observation) {
	var b codexErrorBody
	if json.Unmarshal(body, &b) != nil || b.Error.Type != "usage_limit_reached" {
		return
	}
	var until time.Time
	if v := b.Error.ResetsAt.String(); v != "" {
		t, why, ok := parseEpochReset(v, 0, now)
		if !ok {
			o.Notes = notef(o.Notes, "codex: usage_limit_reached resets_at %s ignored: %s", noteQuote(v), why)
		}
		until = t
	}
	if v := b.Error.ResetsInSeconds.String(); v != "" && until.IsZero() {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < int64(maxWindowHorizon/time.Second) {
			until = now.Add(time.Duration(n) * time.Second)
		} else {
			o.Notes = notef(o.Notes, "codex: usage_limit_reached resets_in_seconds %s ignored", noteQuote(v))
		}
	}
	rej := WindowRejection{Window: "usage_limit", Until: until}
	matched, spent := -1, -1
	for i, w := range o.Windows {
		switch {
		case w.Dialect != "codex":
		case !until.IsZero() && !w.Reset.IsZero() && absDuration(w.Reset.Sub(until)) <= resetSkew:
			matched = i
		case w.HasUtilization && w.Utilization >= 1 && (spent < 0 || w.Reset.After(o.Windows[spent].Reset)):
			spent = i
		}
	}
	switch {
	case matched >= 0:
		rej.Window = o.Windows[matched].Name
		o.Windows[matched].Status = "rejected"
	case spent >= 0:
		rej.Window = o.Windows[spent].Name
		if !o.Windows[spent].Reset.IsZero() {
			rej.Until = o.Windows[spent].Reset
		}
		o.Windows[spent].Status = "rejected"
	}
	if rej.Until.IsZero() {
		o.Notes = notef(o.Notes, "codex: usage_limit_reached without a usable reset; the service cools down as after any refusal")
		return
	}
	o.Rejected = &rej
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// codexEvent is a codex.rate_limits stream event.
type codexEvent struct {
	Type       string `json:"type"`
	RateLimits *struct {
		Primary   *codexEventWindow `json:"primary"`
		Secondary *codexEventWindow `json:"secondary"`
	} `json:"rate_limits"`
	MeteredLimitName string `json:"metered_limit_name"`
	LimitName        string `json:"limit_name"`
}

type codexEventWindow struct {
	UsedPercent   json.Number `json:"used_percent"`
	WindowMinutes json.Number `json:"window_minutes"`
	ResetAt       json.Number `json:"reset_at"`
	ResetsAt      json.Number `json:"resets_at"`
}

// CodexEventType is the type of the stream event that carries Codex's plan
// windows, for a stream reader to find it cheaply before decoding.
const CodexEventType = "codex.rate_limits"

// CodexEventHeaders turns a codex.rate_limits stream event (one JSON
// object, as an SSE data line or a WebSocket message carries it) into the
// x-codex-* headers that say the same, so that the event can be reported
// like an answer's headers. ok is false when data is not such an event.
func CodexEventHeaders(data []byte) (h map[string]string, ok bool) {
	if len(data) > 64<<10 {
		return nil, false
	}
	var ev codexEvent
	if json.Unmarshal(data, &ev) != nil || ev.Type != CodexEventType || ev.RateLimits == nil {
		return nil, false
	}
	fam := strings.ToLower(strings.TrimSpace(ev.MeteredLimitName))
	if fam == "" {
		fam = strings.ToLower(strings.TrimSpace(ev.LimitName))
	}
	fam = strings.ReplaceAll(fam, "_", "-")
	if fam == "" || !isWindowName(strings.ReplaceAll(fam, "-", "_")) {
		fam = "codex"
	}
	h = map[string]string{}
	for slot, w := range map[string]*codexEventWindow{"primary": ev.RateLimits.Primary, "secondary": ev.RateLimits.Secondary} {
		if w == nil || w.UsedPercent == "" {
			continue
		}
		p := "x-" + fam + "-" + slot + "-"
		h[p+"used-percent"] = w.UsedPercent.String()
		if w.WindowMinutes != "" {
			h[p+"window-minutes"] = w.WindowMinutes.String()
		}
		if r := cmpOr(w.ResetAt, w.ResetsAt); r != "" {
			h[p+"reset-at"] = r.String()
		}
	}
	return h, len(h) > 0
}

func cmpOr(a, b json.Number) json.Number {
	if a != "" {
		return a
	}
	return b
}
