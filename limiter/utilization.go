package limiter

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// This file keeps a service's utilization windows (rule 10): subscription
// windows known only as "fraction used, length, reset", learned from the
// answers that pass. It holds the reserve (past 1 - ReserveHigh only high
// priority is granted), the resume after a hold (paced, never a herd), and
// who spent each window.

// DefaultResumeSpacing is the gap between grants after a window's hold
// ends, for Config.ResumeSpacing's zero value.
const DefaultResumeSpacing = 500 * time.Millisecond

// resumeRamp is how long after a hold ends grants stay spaced: long enough
// for the backlog of a few agents to go out one by one.
const resumeRamp = time.Minute

// warnUtilization is the use past which a window is shown as a warning
// even when the provider says nothing.
const warnUtilization = 0.8

// uwindow is one utilization window of a service.
type uwindow struct {
	name     string
	dialect  string
	title    string
	length   time.Duration
	util     float64
	hasUtil  bool
	reset    time.Time
	status   string
	warning  bool
	observed time.Time
	// since is when the period the agent counts cover began: the window's
	// start, or when quotabar first saw it, whichever is later (calls
	// before quotabar saw them are not known).
	since time.Time
	use   map[string]*windowUse
	// held says the window held requests back (reserve or rejection):
	// its reset resumes them paced.
	held bool
}

type windowUse struct{ requests, tokens int64 }

// windowFor returns the service's window of that name, adding it. When
// the service has maxWindows already, the one heard of longest ago gives
// way, so that names an upstream sent once cannot crowd out the real
// windows; nil when every one was heard of just now.
func (s *service) windowFor(name string, now time.Time) *uwindow {
	oldest := -1
	for i, w := range s.windows {
		if w.name == name {
			return w
		}
		if w.observed.Before(now) && (oldest < 0 || w.observed.Before(s.windows[oldest].observed)) {
			oldest = i
		}
	}
	w := &uwindow{name: name, since: now, observed: now, use: map[string]*windowUse{}}
	if len(s.windows) < maxWindows {
		s.windows = append(s.windows, w)
		return w
	}
	if oldest < 0 {
		return nil
	}
	s.windows[oldest] = w
	return w
}

// applyWindows makes the observed windows the service's: utilization,
// status and reset replace what was known. A reset later than the one known
// by more than the skew starts a new period, whose agent counts start at 0.
func (l *Limiter) applyWindows(s *service, obs Observation, now time.Time) {
	for _, ow := range obs.Windows {
		w := s.windowFor(ow.Name, now)
		if w == nil {
			continue // maxWindows heard of in this very instant
		}
		s.learnedAny = true
		if !ow.Reset.IsZero() && !w.reset.IsZero() && ow.Reset.Sub(w.reset) > resetSkew {
			w.rollover(w.reset)
		}
		w.dialect, w.title, w.observed = ow.Dialect, ow.Title, now
		if ow.Length > 0 {
			w.length = ow.Length
		}
		if ow.HasUtilization {
			w.util, w.hasUtil = ow.Utilization, true
		}
		if !ow.Reset.IsZero() {
			w.reset = ow.Reset
			if w.length > 0 && len(w.use) == 0 {
				w.since = later(w.since, ow.Reset.Add(-w.length))
			}
		}
		w.status, w.warning = ow.Status, ow.Warning
		if w.held && !s.windowHolds(w, now) {
			// Back under the reserve before the reset (a sliding window
			// gave some back): resume, paced.
			w.held = false
			s.startResume(now)
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// rollover starts the window's next period at t: nothing used, nothing
// counted.
func (w *uwindow) rollover(t time.Time) {
	w.util, w.status, w.warning = 0, "", false
	w.since = t
	clear(w.use)
	if w.length > 0 && !w.reset.IsZero() {
		w.reset = w.reset.Add(w.length)
	} else {
		w.reset = time.Time{}
		w.hasUtil = false
	}
}

// settleWindows rolls over the windows whose reset has passed; a window
// that held requests back resumes them, paced.
func (s *service) settleWindows(now time.Time) {
	for _, w := range s.windows {
		for !w.reset.IsZero() && !now.Before(w.reset) {
			at := w.reset
			w.rollover(at)
			if w.held {
				w.held = false
				s.startResume(at)
			}
		}
	}
}

// windowHolds reports whether w holds back requests below high priority:
// it is past 1 - ReserveHigh and will reset (a window with no known reset
// gives no time to resume at, and does not hold).
func (s *service) windowHolds(w *uwindow, now time.Time) bool {
	r := s.cfg.ReserveHigh
	return r > 0 && w.hasUtil && w.util >= 1-r && w.reset.After(now)
}

// reservedUntil returns until when requests of class ci (an index into
// service.classes) are held by the reserve; zero when they are not.
func (s *service) reservedUntil(ci int, now time.Time) time.Time {
	if ci >= int(High)-1 {
		return time.Time{}
	}
	var until time.Time
	for _, w := range s.windows {
		if s.windowHolds(w, now) {
			w.held = true
			until = later(until, w.reset)
		}
	}
	return until
}

// startResume spaces the grants after a hold that ended at t.
func (s *service) startResume(t time.Time) {
	if t.Add(resumeRamp).After(s.resumeUntil) {
		s.resumeUntil = t.Add(resumeRamp)
	}
	if s.resumeNext.Before(t) {
		s.resumeNext = t
	}
}

// resumeAllows reports whether the resume after a hold lets a grant go now,
// and if not when it will.
func (s *service) resumeAllows(now time.Time) (bool, time.Time) {
	if !now.Before(s.resumeUntil) || !now.Before(s.resumeNext) {
		return true, time.Time{}
	}
	return false, s.resumeNext
}

// resumeGranted spaces the next grant while the resume lasts.
func (l *Limiter) resumeGranted(s *service, now time.Time) {
	if now.Before(s.resumeUntil) {
		s.resumeNext = now.Add(l.cfg.ResumeSpacing)
	}
}

// windowRejection turns what a refusal says about the windows into the
// cooldown it calls for: until the named window's reset. A 429 that names
// no window but comes with a window used up is taken as that window's.
func windowRejection(s *service, obs Observation, status int, now time.Time) *WindowRejection {
	if rej := obs.Rejected; rej != nil && rej.Until.After(now) {
		return rej
	}
	if status != 429 {
		return nil
	}
	var rej *WindowRejection
	for _, ow := range obs.Windows {
		if ow.HasUtilization && ow.Utilization >= 1 && ow.Reset.After(now) && (rej == nil || ow.Reset.After(rej.Until)) {
			rej = &WindowRejection{Window: ow.Name, Until: ow.Reset}
		}
	}
	return rej
}

// boundRejection holds a rejection to the window it names: its reset may
// be as far ahead as that window lasts (a week for a weekly one), and for
// a window of unknown length as far as MaxHold, so that one answer naming
// a made-up window cannot freeze the service for a month.
func (s *service) boundRejection(rej *WindowRejection, obs Observation, now time.Time, warn func(format string, args ...any)) *WindowRejection {
	var length time.Duration
	for _, ow := range obs.Windows {
		if ow.Name == rej.Window {
			length = ow.Length
		}
	}
	for _, w := range s.windows {
		if w.name == rej.Window && length == 0 {
			length = w.length
		}
	}
	allowed := max(s.maxHold(), length+resetSkew)
	if limit := now.Add(allowed); rej.Until.After(limit) {
		warn("the %s window's rejection resets in %v; held to %v (max_hold, or the window's length)", rej.Window, rej.Until.Sub(now).Round(time.Second), allowed)
		return &WindowRejection{Window: rej.Window, Until: limit}
	}
	return rej
}

// markRejected records that the window rejected: it holds, so that its
// reset resumes waiters paced.
func (s *service) markRejected(rej *WindowRejection, now time.Time) {
	if w := s.windowFor(rej.Window, now); w != nil {
		w.status, w.held, w.warning = "rejected", true, true
		if w.reset.IsZero() || w.reset.Before(rej.Until) {
			w.reset = rej.Until
		}
	}
}

// rejectedUntil is the latest reset of the service's windows that
// rejected and hold; zero when none does.
func (s *service) rejectedUntil(now time.Time) time.Time {
	var until time.Time
	for _, w := range s.windows {
		if w.status == "rejected" && w.held && w.reset.After(now) {
			until = later(until, w.reset)
		}
	}
	return until
}

// countWindows adds one finished call's cost to the agent's use of every
// window of the service.
func (s *service) countWindows(a *agent, c Cost) {
	tokens := c[Tokens]
	if _, ok := c[Tokens]; !ok {
		tokens = c[InputTokens] + c[OutputTokens]
	}
	for _, w := range s.windows {
		u := w.use[a.name]
		if u == nil {
			u = &windowUse{}
			w.use[a.name] = u
		}
		u.requests += c[Requests]
		u.tokens += tokens
	}
}

// WindowStatus is one utilization window of a service in a Status.
type WindowStatus struct {
	Name string
	// Label is how a person reads Name: "5-hour", "week", "day".
	Label  string
	Title  string
	Length time.Duration // 0 when not known
	// Utilization is the fraction used (it may exceed 1), valid when
	// HasUtilization.
	Utilization    float64
	HasUtilization bool
	ResetsAt       time.Time // zero when not known
	Status         string    // "allowed", "allowed_warning", "rejected" or ""
	// Warning is set when the provider warned, the window passed
	// warnUtilization or the reserve, or it rejected.
	Warning bool
	// Reserved is set while only high priority is granted.
	Reserved   bool
	ObservedAt time.Time
	// Since is when the period that Requests, Tokens and Agents cover began.
	Since    time.Time
	Requests int64
	Tokens   int64
	Agents   []WindowAgent // largest share first
}

// WindowAgent is one agent's use of a window since its start.
type WindowAgent struct {
	Agent    string
	Requests int64
	Tokens   int64
	// Share is the agent's part of the window's use seen here: of its
	// tokens, or of its requests when no tokens were counted. The shares
	// of a window add up to 1.
	Share float64
}

func (s *service) windowStatus(now time.Time) []WindowStatus {
	var out []WindowStatus
	for _, w := range s.windows {
		ws := WindowStatus{
			Name: w.name, Label: WindowLabel(w.name, w.length), Title: w.title, Length: w.length,
			Utilization: w.util, HasUtilization: w.hasUtil, ResetsAt: w.reset, Status: w.status,
			ObservedAt: w.observed, Since: w.since, Reserved: s.windowHolds(w, now),
		}
		ws.Warning = w.warning || w.status == "rejected" || ws.Reserved || (w.hasUtil && w.util >= warnUtilization)
		for name, u := range w.use {
			ws.Requests += u.requests
			ws.Tokens += u.tokens
			ws.Agents = append(ws.Agents, WindowAgent{Agent: name, Requests: u.requests, Tokens: u.tokens})
		}
		for i := range ws.Agents {
			switch {
			case ws.Tokens > 0:
				ws.Agents[i].Share = float64(ws.Agents[i].Tokens) / float64(ws.Tokens)
			case ws.Requests > 0:
				ws.Agents[i].Share = float64(ws.Agents[i].Requests) / float64(ws.Requests)
			}
		}
		slices.SortFunc(ws.Agents, func(a, b WindowAgent) int {
			return cmp.Or(cmp.Compare(b.Share, a.Share), strings.Compare(a.Agent, b.Agent))
		})
		out = append(out, ws)
	}
	slices.SortFunc(out, func(a, b WindowStatus) int {
		return cmp.Or(cmp.Compare(a.Length, b.Length), strings.Compare(a.Name, b.Name))
	})
	return out
}

// WindowState is one utilization window in a saved State.
type WindowState struct {
	Name        string                      `json:"name"`
	Dialect     string                      `json:"dialect,omitempty"`
	Title       string                      `json:"title,omitempty"`
	LengthMS    int64                       `json:"length_ms,omitempty"`
	Utilization *float64                    `json:"utilization,omitempty"`
	ResetsAt    time.Time                   `json:"resets_at"`
	Status      string                      `json:"status,omitempty"`
	Warning     bool                        `json:"warning,omitempty"`
	Held        bool                        `json:"held,omitempty"`
	ObservedAt  time.Time                   `json:"observed_at,omitzero"`
	Since       time.Time                   `json:"since,omitzero"`
	Agents      map[string]WindowAgentState `json:"agents,omitempty"`
}

// WindowAgentState is one agent's use of a window in a saved State.
type WindowAgentState struct {
	Requests int64 `json:"requests"`
	Tokens   int64 `json:"tokens"`
}

// snapshotWindows returns the windows worth saving: those with a reset
// still ahead (the others have nothing left to say).
func (s *service) snapshotWindows(now time.Time) []WindowState {
	var out []WindowState
	for _, w := range s.windows {
		if !w.reset.After(now) {
			continue
		}
		ws := WindowState{
			Name: w.name, Dialect: w.dialect, Title: w.title, LengthMS: w.length.Milliseconds(),
			ResetsAt: w.reset, Status: w.status, Warning: w.warning, Held: w.held,
			ObservedAt: w.observed, Since: w.since,
		}
		if w.hasUtil {
			u := w.util
			ws.Utilization = &u
		}
		if len(w.use) > 0 {
			ws.Agents = map[string]WindowAgentState{}
			for name, u := range w.use {
				ws.Agents[name] = WindowAgentState{Requests: u.requests, Tokens: u.tokens}
			}
		}
		out = append(out, ws)
	}
	return out
}

// restoreWindows applies saved windows; a window whose reset has passed is
// dropped, a window that makes no sense is reported and skipped.
func (s *service) restoreWindows(saved []WindowState, now time.Time) []error {
	var errs []error
	for i, ws := range saved {
		length := time.Duration(ws.LengthMS) * time.Millisecond
		switch {
		case !isWindowName(strings.ReplaceAll(ws.Name, ":", "_")):
			errs = append(errs, fmt.Errorf("service %q window %d: name %q is not 1 to 32 of a-z, 0-9, \"_\" and \":\"", s.name, i+1, ws.Name))
			continue
		case ws.LengthMS < 0 || length > maxWindowHorizon:
			errs = append(errs, fmt.Errorf("service %q window %q: length %v is not between 0 and %v", s.name, ws.Name, length, maxWindowHorizon))
			continue
		case ws.Utilization != nil && (math.IsNaN(*ws.Utilization) || *ws.Utilization < 0 || *ws.Utilization > maxUtilization):
			errs = append(errs, fmt.Errorf("service %q window %q: utilization %v is not between 0 and %d", s.name, ws.Name, *ws.Utilization, maxUtilization))
			continue
		}
		if !ws.ResetsAt.After(now) {
			continue // over: the next period starts from nothing
		}
		if _, why, ok := checkReset(ws.ResetsAt, length, now); !ok {
			errs = append(errs, fmt.Errorf("service %q window %q: reset %s", s.name, ws.Name, why))
			continue
		}
		w := s.windowFor(ws.Name, now)
		if w == nil {
			errs = append(errs, fmt.Errorf("service %q window %q: more than %d windows", s.name, ws.Name, maxWindows))
			continue
		}
		s.learnedAny = true
		w.dialect, w.title, w.length, w.reset = ws.Dialect, ws.Title, length, ws.ResetsAt
		w.status, w.warning, w.held = claudeStatus(ws.Status), ws.Warning, ws.Held
		w.observed, w.since = ws.ObservedAt, cmp.Or(ws.Since, now)
		if ws.Utilization != nil {
			w.util, w.hasUtil = *ws.Utilization, true
		}
		clear(w.use)
		for name, u := range ws.Agents {
			if ValidName(name) != nil || u.Requests < 0 || u.Tokens < 0 {
				errs = append(errs, fmt.Errorf("service %q window %q: agent %q with %d requests, %d tokens is not a use", s.name, ws.Name, name, u.Requests, u.Tokens))
				continue
			}
			w.use[name] = &windowUse{requests: u.Requests, tokens: u.Tokens}
		}
	}
	return errs
}
