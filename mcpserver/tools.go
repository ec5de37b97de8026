package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/quotabar/quotabar/internal/quotaview"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// StatusArgs are quota_status's arguments.
type StatusArgs struct {
	Service string `json:"service,omitempty" jsonschema:"only this service; all services when empty"`
}

// Status is quota_status's structured answer: short keys, since it goes
// into a model's context.
type Status struct {
	Agent    string          `json:"agent"`
	Services []ServiceStatus `json:"services"`
	// Share is this agent's share of a contended service, 0 to 1.
	Share float64 `json:"share"`
	// Priority is this agent's configured priority, "" before it asked.
	Priority string `json:"priority,omitempty"`
}

// ServiceStatus is one service in Status.
type ServiceStatus struct {
	Name string `json:"name"`
	// State is ok, low, exhausted, paused or cooldown.
	State           string        `json:"state"`
	CooldownSeconds float64       `json:"cooldown_seconds,omitempty"`
	Limits          []LimitStatus `json:"limits"`
	// Windows are the subscription windows (5-hour, week), when the
	// service's answers carry them.
	Windows  []WindowStatus `json:"windows,omitempty"`
	InFlight int            `json:"in_flight"`
	Queued   int            `json:"queued"`
	// Fallback is "on" or "off" when the service has a web fallback, else
	// absent.
	Fallback string `json:"fallback,omitempty"`
}

// WindowStatus is one subscription window of a service.
type WindowStatus struct {
	Window        string  `json:"window"` // "5-hour", "week"
	UsedPercent   int     `json:"used_percent"`
	ResetsSeconds float64 `json:"resets_seconds,omitempty"`
	// HighOnly: past the reserve, only high priority goes on.
	HighOnly bool `json:"high_only,omitempty"`
}

// LimitStatus is one limit of a service.
type LimitStatus struct {
	Unit          string  `json:"unit"`
	Left          int64   `json:"left"`
	Quota         int64   `json:"quota"`
	Window        string  `json:"window"`
	ResetsSeconds float64 `json:"resets_seconds,omitempty"`
}

func (s *server) quotaStatus(ctx context.Context, _ *mcp.CallToolRequest, args StatusArgs) (*mcp.CallToolResult, Status, error) {
	st, err := s.c.Status(ctx)
	if err != nil {
		return nil, Status{}, toolError(err)
	}
	now := s.now()
	out := Status{Agent: s.agent, Share: round2(quotaview.Share(st, s.agent)), Services: []ServiceStatus{}}
	for _, a := range st.Agents {
		if a.Name == s.agent {
			out.Priority = a.Priority
		}
	}
	var names []string
	for _, v := range quotaview.Services(st, now) {
		names = append(names, v.Name)
		if args.Service != "" && v.Name != args.Service {
			continue
		}
		out.Services = append(out.Services, serviceStatus(v))
	}
	if args.Service != "" && len(out.Services) == 0 {
		return nil, Status{}, fmt.Errorf("service %q is not configured; configured: %s", args.Service, strings.Join(names, ", "))
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: statusText(out)}}}, out, nil
}

func serviceStatus(v quotaview.Service) ServiceStatus {
	ss := ServiceStatus{Name: v.Name, State: v.State.String(), InFlight: v.InFlight, Queued: v.Queued, Limits: []LimitStatus{}}
	if v.CooldownLeft > 0 {
		ss.CooldownSeconds = seconds(v.CooldownLeft)
	}
	if v.FallbackConfigured {
		ss.Fallback = "off"
		if v.FallbackEnabled {
			ss.Fallback = "on"
		}
	}
	for _, l := range v.Limits {
		ss.Limits = append(ss.Limits, LimitStatus{Unit: l.Unit, Left: max(l.Remaining, 0), Quota: l.Quota,
			Window: quotaview.Duration(l.Window), ResetsSeconds: seconds(l.ResetsIn)})
	}
	for _, w := range v.Windows {
		ss.Windows = append(ss.Windows, WindowStatus{Window: w.Label, UsedPercent: w.UsedPercent(),
			ResetsSeconds: seconds(w.ResetsIn), HighOnly: w.Reserved})
	}
	return ss
}

// statusText is the status in a few lines, for clients that show only text.
func statusText(st Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent %s (share %.0f%%)\n", st.Agent, st.Share*100)
	for _, s := range st.Services {
		fmt.Fprintf(&b, "%s: %s", s.Name, s.State)
		if s.CooldownSeconds > 0 {
			fmt.Fprintf(&b, " %gs", s.CooldownSeconds)
		}
		for _, l := range s.Limits {
			fmt.Fprintf(&b, "; %d/%d %s per %s left", l.Left, l.Quota, l.Unit, l.Window)
			if l.ResetsSeconds > 0 {
				fmt.Fprintf(&b, " (resets in %gs)", l.ResetsSeconds)
			}
		}
		for _, w := range s.Windows {
			fmt.Fprintf(&b, "; %s window %d%% used", w.Window, w.UsedPercent)
			if w.ResetsSeconds > 0 {
				fmt.Fprintf(&b, " (resets in %gs)", w.ResetsSeconds)
			}
			if w.HighOnly {
				b.WriteString(", high priority only")
			}
		}
		if len(s.Limits) == 0 && len(s.Windows) == 0 {
			b.WriteString("; limits not known yet (learned from the provider's headers)")
		}
		if s.Queued > 0 {
			fmt.Fprintf(&b, "; %d queued", s.Queued)
		}
		if s.Fallback != "" {
			fmt.Fprintf(&b, "; web fallback %s", s.Fallback)
		}
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// WaitArgs are wait_for_quota's arguments.
type WaitArgs struct {
	Service        string   `json:"service" jsonschema:"the service to wait for, as quota_status names it"`
	Priority       string   `json:"priority,omitempty" jsonschema:"high, normal or low; default: this agent's configured priority"`
	MaxWaitSeconds *float64 `json:"max_wait_seconds,omitempty" jsonschema:"how long to wait at most in seconds, 0 (answer at once) to 600; default 30"`
	Tokens         int64    `json:"tokens,omitempty" jsonschema:"estimated tokens of the next call (prompt plus max_tokens), so the wait also covers the token limits"`
	Reserve        bool     `json:"reserve,omitempty" jsonschema:"true counts the next call against the quota; leave false when the call goes through quotabar's proxy"`
}

// Wait is wait_for_quota's structured answer.
type Wait struct {
	Granted       bool    `json:"granted"`
	WaitedSeconds float64 `json:"waited_seconds"`
	// Reason is why not: cooldown, timeout, paused or shed.
	Reason            string  `json:"reason,omitempty"`
	RetryAfterSeconds float64 `json:"retry_after_seconds,omitempty"`
	RetryAt           string  `json:"retry_at,omitempty"`
	// Fallback is "on" or "off" when the service has a web fallback.
	Fallback string `json:"fallback,omitempty"`
	Message  string `json:"message"`
}

var refusalWhy = map[string]string{
	"cooldown": "the provider said the limit is spent; every agent waits for the cooldown",
	"timeout":  "the quota stayed taken for the whole wait",
	"paused":   "the person paused this service or this agent; wait for them to resume it",
	"shed":     "the service's queue is full",
}

func (s *server) waitForQuota(ctx context.Context, _ *mcp.CallToolRequest, args WaitArgs) (*mcp.CallToolResult, Wait, error) {
	if args.Service == "" {
		return nil, Wait{}, errors.New("service is required: name one that quota_status lists")
	}
	wait := DefaultMaxWait
	if ms := args.MaxWaitSeconds; ms != nil {
		if *ms < 0 || *ms > MaxWait.Seconds() || math.IsNaN(*ms) {
			return nil, Wait{}, fmt.Errorf("max_wait_seconds %g: use 0 (answer at once) to %g", *ms, MaxWait.Seconds())
		}
		wait = time.Duration(*ms * float64(time.Second))
	}
	switch args.Priority {
	case "", "high", "normal", "low":
	default:
		return nil, Wait{}, fmt.Errorf("priority %q: use high, normal or low", args.Priority)
	}
	if args.Tokens < 0 {
		return nil, Wait{}, fmt.Errorf("tokens %d: a count cannot be negative", args.Tokens)
	}
	cost := wire.Cost{"requests": 1}
	if args.Tokens > 0 {
		cost["tokens"] = args.Tokens
	}
	lease, err := s.c.Acquire(ctx, wire.AcquireRequest{Agent: s.agent, Service: args.Service, Cost: cost,
		Priority: args.Priority, MaxWaitMS: wire.Wait(wait)})
	var refused *ipc.RefusedError
	if errors.As(err, &refused) {
		out := Wait{Reason: string(refused.Reason), RetryAfterSeconds: seconds(refused.RetryAfter),
			RetryAt: s.now().Add(refused.RetryAfter).UTC().Format(time.RFC3339)}
		out.Message = fmt.Sprintf("not yet: %s (%s); try again in %s", refused.Reason, refusalWhy[string(refused.Reason)], quotaview.Duration(refused.RetryAfter))
		if f := refused.Fallback; f != nil {
			out.Fallback = "off"
			if f.Enabled {
				out.Fallback = "on"
				out.Message += "; the web fallback is on: open_web_fallback gives you a browser"
			}
		}
		return textResult(out.Message), out, nil
	}
	if err != nil {
		return nil, Wait{}, toolError(err)
	}
	// The lease ends here, whatever happens to this call: a lease the
	// model never reports would hold a concurrency slot until it expires.
	// Without reserve it is refunded whole: the wait only waited.
	rep := wire.ReportRequest{Lease: lease.ID}
	if !args.Reserve {
		rep.Usage = wire.Cost{"requests": 0}
		if args.Tokens > 0 {
			rep.Usage["tokens"] = 0
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.c.Report(rctx, rep); err != nil {
		s.log.Warn("ending the wait's lease", "lease", lease.ID, "err", err)
	}
	out := Wait{Granted: true, WaitedSeconds: seconds(lease.Waited),
		Message: fmt.Sprintf("go ahead: %s has quota for you (waited %s)", args.Service, quotaview.Duration(lease.Waited))}
	return textResult(out.Message), out, nil
}

// FallbackArgs are open_web_fallback's arguments.
type FallbackArgs struct {
	Service string `json:"service" jsonschema:"the service whose web interface to open"`
}

// Fallback is open_web_fallback's structured answer: the daemon's, passed
// through, so a secured endpoint stays exactly as the daemon made it.
type Fallback struct {
	Browser      string `json:"browser"`
	URL          string `json:"url"`
	CDPURL       string `json:"cdp_url,omitempty"`
	TargetID     string `json:"target_id,omitempty"`
	WebDriverURL string `json:"webdriver_url,omitempty"`
	SessionID    string `json:"session_id,omitempty"`
	Message      string `json:"message"`
}

func (s *server) openFallback(ctx context.Context, _ *mcp.CallToolRequest, args FallbackArgs) (*mcp.CallToolResult, Fallback, error) {
	if args.Service == "" {
		return nil, Fallback{}, errors.New("service is required: name one that quota_status shows with a web fallback")
	}
	res, err := s.c.OpenFallback(ctx, args.Service, s.agent)
	if err != nil {
		var apiErr *wire.APIError
		if errors.As(err, &apiErr) && apiErr.Code == wire.CodeFallbackDisabled {
			return nil, Fallback{}, fmt.Errorf("the web fallback of %s is switched off: only the person can switch it on (quotabar's menu, Web fallback); do not retry until they do: %s", args.Service, apiErr.Message)
		}
		return nil, Fallback{}, toolError(err)
	}
	out := Fallback{Browser: res.Browser, URL: res.URL, CDPURL: res.CDPURL, TargetID: res.TargetID,
		WebDriverURL: res.WebDriverURL, SessionID: res.SessionID}
	switch {
	case res.CDPURL != "":
		out.Message = fmt.Sprintf("opened %s in Chrome; attach over the DevTools protocol at cdp_url (Playwright MCP: --cdp-endpoint %s) to tab %s; call close_web_fallback with target_id when done",
			res.URL, res.CDPURL, res.TargetID)
	case res.WebDriverURL != "":
		out.Message = fmt.Sprintf("opened %s in WebKit; drive WebDriver session %s at %s; call close_web_fallback with session_id when done",
			res.URL, res.SessionID, res.WebDriverURL)
	default:
		out.Message = fmt.Sprintf("opened %s in the person's %s browser; there is no endpoint to drive it", res.URL, res.Browser)
	}
	return textResult(out.Message), out, nil
}

// CloseArgs are close_web_fallback's arguments.
type CloseArgs struct {
	Service   string `json:"service" jsonschema:"the service given to open_web_fallback"`
	TargetID  string `json:"target_id,omitempty" jsonschema:"the target_id open_web_fallback returned (Chrome)"`
	SessionID string `json:"session_id,omitempty" jsonschema:"the session_id open_web_fallback returned (WebKit)"`
}

// Closed is close_web_fallback's structured answer.
type Closed struct {
	Closed bool `json:"closed"`
}

func (s *server) closeFallback(ctx context.Context, _ *mcp.CallToolRequest, args CloseArgs) (*mcp.CallToolResult, Closed, error) {
	if args.Service == "" || (args.TargetID == "") == (args.SessionID == "") {
		return nil, Closed{}, errors.New("give service and exactly one of target_id or session_id, as open_web_fallback returned them")
	}
	if err := s.c.CloseFallback(ctx, args.Service, wire.CloseRequest{TargetID: args.TargetID, SessionID: args.SessionID}); err != nil {
		return nil, Closed{}, toolError(err)
	}
	return textResult("closed"), Closed{Closed: true}, nil
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// seconds is d in seconds with a tenth's precision: enough for a model.
func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

func round2(f float64) float64 { return math.Round(f*100) / 100 }
