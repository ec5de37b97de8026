package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// WindowKind is how a provider counts a policy's window.
type WindowKind int

const (
	// Sliding counts every grant in the last Window: the strictest model,
	// the one quotabar promises to respect.
	Sliding WindowKind = iota
	// Fixed counts grants in consecutive windows aligned to the provider's
	// start, as GitHub does.
	Fixed
	// Bucket is a token bucket holding the quota and refilled at quota per
	// window, as OpenAI and Anthropic describe their limits: it lets up to
	// twice the quota through in one window after an idle one.
	Bucket
)

// String names the kind as the benchmark prints it.
func (k WindowKind) String() string {
	switch k {
	case Fixed:
		return "fixed"
	case Bucket:
		return "bucket"
	}
	return "sliding"
}

// ParseWindowKind reads "sliding", "fixed" or "bucket".
func ParseWindowKind(s string) (WindowKind, error) {
	for _, k := range []WindowKind{Sliding, Fixed, Bucket} {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("sim: window kind %q is unknown; use sliding, fixed or bucket", s)
}

// Dialects lists the header dialects a Provider can speak (a subset of
// limiter.Dialects: those whose headers it writes).
var Dialects = []limiter.Dialect{limiter.DialectOpenAI, limiter.DialectAnthropic, limiter.DialectGitHub, limiter.DialectIETF}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	// Limits are enforced exactly; units are requests (1 per call), tokens
	// (prompt + completion), input_tokens (prompt) and output_tokens
	// (completion).
	Limits        []limiter.Policy
	Window        WindowKind
	MaxConcurrent int // 0: no cap
	// Dialect selects the rate-limit headers sent with every answer:
	// one of Dialects, or "" (limiter.DialectAll) for none.
	Dialect limiter.Dialect
	// Latency is how long an accepted call takes, plus a uniform random
	// part in [0, Jitter).
	Latency time.Duration
	Jitter  time.Duration
	// Now is the provider's clock; nil means time.Now. Latency is slept in
	// real time either way, so tests with a fake clock leave it zero.
	Now  func() time.Time
	Seed uint64
}

// CallRequest is the JSON body a client POSTs to the provider.
type CallRequest struct {
	Agent        string `json:"agent"`
	PromptTokens int64  `json:"prompt_tokens"`
	MaxTokens    int64  `json:"max_tokens"`
	// CompletionTokens is how long the answer will be (the workload decides
	// it so that the provider stays deterministic); nil means MaxTokens.
	CompletionTokens *int64 `json:"completion_tokens,omitempty"`
}

// Usage is what an accepted call really cost, in the "usage" field of the
// answer, named as OpenAI names it.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// Cost turns the usage into the units quotabar counts.
func (u Usage) Cost() limiter.Cost {
	return limiter.Cost{
		limiter.Requests:     1,
		limiter.Tokens:       u.TotalTokens,
		limiter.InputTokens:  u.PromptTokens,
		limiter.OutputTokens: u.CompletionTokens,
	}
}

// CallResponse is the body of an accepted call.
type CallResponse struct {
	ID    string `json:"id"`
	Usage Usage  `json:"usage"`
}

// Grant is one accepted call, as the provider counted it.
type Grant struct {
	At    time.Time
	Agent string
	Cost  limiter.Cost
}

// AgentStats counts one agent's calls as the provider saw them.
type AgentStats struct {
	Accepted int64
	Refused  int64
	Used     limiter.Cost
}

// Stats counts everything a provider accepted and refused.
type Stats struct {
	Accepted int64
	Refused  int64 // answered 429
	// RefusedBy counts refusals by the first limit that was over: a unit
	// name, or "concurrency".
	RefusedBy   map[string]int64
	Used        limiter.Cost
	MaxInFlight int
	Agents      map[string]AgentStats
}

// Provider is a fake rate-limited API: an http.Handler that accepts POSTed
// CallRequests while every limit allows them, answers 429 with Retry-After
// and retry-after-ms when one does not, and sends rate-limit headers in its
// dialect. Safe for concurrent use.
type Provider struct {
	cfg   ProviderConfig
	now   func() time.Time
	epoch time.Time

	mu       sync.Mutex
	rng      *rand.Rand
	ledgers  []*ledger
	inFlight []time.Time // when each call in flight ends
	grants   []Grant
	stats    Stats
	nextID   int64
	srv      *http.Server
}

// NewProvider checks cfg and returns a provider whose windows start now.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if len(cfg.Limits) == 0 && cfg.MaxConcurrent == 0 {
		return nil, errors.New("sim: provider config has no limits and no max_concurrent; give at least one")
	}
	if cfg.Dialect != "" && !slices.Contains(Dialects, cfg.Dialect) {
		return nil, fmt.Errorf("sim: provider dialect %q is unknown; use one of %v or \"\"", cfg.Dialect, Dialects)
	}
	if cfg.MaxConcurrent < 0 || cfg.Latency < 0 || cfg.Jitter < 0 {
		return nil, errors.New("sim: provider max_concurrent, latency and jitter must not be negative")
	}
	p := &Provider{cfg: cfg, now: cfg.Now, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5eed))}
	if p.now == nil {
		p.now = time.Now
	}
	p.epoch = p.now()
	seen := map[limiter.Unit]bool{}
	for i, pol := range cfg.Limits {
		if pol.Quota <= 0 || pol.Window <= 0 {
			return nil, fmt.Errorf("sim: provider limit %d: quota and window must be positive, got %d per %s", i, pol.Quota, pol.Window)
		}
		if !slices.Contains(limiter.Units, pol.Unit) {
			return nil, fmt.Errorf("sim: provider limit %d: unit %q is unknown; use requests, tokens, input_tokens or output_tokens", i, pol.Unit)
		}
		if seen[pol.Unit] {
			// Header dialects name limits by unit, so two policies of one
			// unit could not be told apart by a client.
			return nil, fmt.Errorf("sim: provider limit %d: a second %s policy; give each unit at most one", i, pol.Unit)
		}
		seen[pol.Unit] = true
		p.ledgers = append(p.ledgers, &ledger{pol: pol, kind: cfg.Window, winStart: p.epoch, last: p.epoch})
	}
	p.stats.RefusedBy = map[string]int64{}
	p.stats.Used = limiter.Cost{}
	p.stats.Agents = map[string]AgentStats{}
	return p, nil
}

// Start serves the provider on a fresh 127.0.0.1 port and returns its base
// URL. Close stops it.
func (p *Provider) Start() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("sim: provider listen: %w", err)
	}
	p.mu.Lock()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	srv := p.srv
	p.mu.Unlock()
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

// Close stops a provider that Start started, waiting for calls in flight.
func (p *Provider) Close() error {
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// ServeHTTP handles one call: POST with a CallRequest body.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST with a JSON body")
		return
	}
	var req CallRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body: "+err.Error())
		return
	}
	completion := req.MaxTokens
	if req.CompletionTokens != nil {
		completion = min(*req.CompletionTokens, req.MaxTokens)
	}
	if req.PromptTokens < 0 || req.MaxTokens < 0 || completion < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "prompt_tokens, max_tokens and completion_tokens must not be negative")
		return
	}
	usage := Usage{PromptTokens: req.PromptTokens, CompletionTokens: completion, TotalTokens: req.PromptTokens + completion}

	d := p.admit(req.Agent, usage.Cost())
	h := w.Header()
	p.writeLimitHeaders(h, d)
	switch {
	case d.tooLarge != "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", d.tooLarge)
		return
	case !d.ok:
		ms := max(1, ceilDiv(d.retry, time.Millisecond))
		h.Set("Retry-After", strconv.FormatInt(max(1, ceilDiv(d.retry, time.Second)), 10))
		h.Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "rate limit reached for "+d.over)
		return
	}
	if d.latency > 0 {
		t := time.NewTimer(d.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	p.finish(d.end)
	h.Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(CallResponse{ID: d.id, Usage: usage})
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": typ, "message": msg}})
}

// decision is the outcome of admit, with what the headers must say.
type decision struct {
	ok       bool
	tooLarge string // a call that no window could ever hold
	over     string // the first limit that refused
	retry    time.Duration
	latency  time.Duration
	end      time.Time
	id       string
	now      time.Time
	limits   []limitState
}

// limitState is one policy after the decision, for the headers.
type limitState struct {
	pol       limiter.Policy
	remaining int64
	used      int64
	reset     time.Duration // until the policy is back to its full quota
}

// admit decides one call at the provider's now and, when it is accepted,
// counts it.
func (p *Provider) admit(agent string, cost limiter.Cost) decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	d := decision{now: now}
	for _, l := range p.ledgers {
		l.advance(now)
	}
	for _, l := range p.ledgers {
		c := cost[l.pol.Unit]
		if c > l.pol.Quota {
			d.tooLarge = fmt.Sprintf("this call costs %d %s, more than the whole quota of %d per %s", c, l.pol.Unit, l.pol.Quota, l.pol.Window)
			break
		}
		if l.sum+c > l.pol.Quota && !d.refused() {
			d.over, d.retry = string(l.pol.Unit), l.freeAt(now, c).Sub(now)
		}
	}
	if d.tooLarge == "" && !d.refused() && p.cfg.MaxConcurrent > 0 && len(p.inFlight) >= p.cfg.MaxConcurrent {
		d.over, d.retry = "concurrency", slices.MinFunc(p.inFlight, time.Time.Compare).Sub(now)
	}
	as := p.stats.Agents[agent]
	if as.Used == nil {
		as.Used = limiter.Cost{}
	}
	switch {
	case d.tooLarge != "":
	case d.refused():
		p.stats.Refused++
		p.stats.RefusedBy[d.over]++
		as.Refused++
	default:
		d.ok = true
		for _, l := range p.ledgers {
			l.add(now, cost[l.pol.Unit])
		}
		p.grants = append(p.grants, Grant{At: now, Agent: agent, Cost: cost})
		p.stats.Accepted++
		as.Accepted++
		for u, v := range cost {
			p.stats.Used[u] += v
			as.Used[u] += v
		}
		d.latency = p.cfg.Latency
		if p.cfg.Jitter > 0 {
			d.latency += time.Duration(p.rng.Int64N(int64(p.cfg.Jitter)))
		}
		d.end = now.Add(d.latency)
		p.inFlight = append(p.inFlight, d.end)
		p.stats.MaxInFlight = max(p.stats.MaxInFlight, len(p.inFlight))
		p.nextID++
		d.id = "call_" + strconv.FormatInt(p.nextID, 10)
	}
	p.stats.Agents[agent] = as
	for _, l := range p.ledgers {
		d.limits = append(d.limits, limitState{pol: l.pol, used: l.sum, remaining: max(0, l.pol.Quota-l.sum), reset: l.fullAt(now).Sub(now)})
	}
	return d
}

func (d *decision) refused() bool { return d.over != "" }

// finish frees the concurrency slot of a call that ends at end.
func (p *Provider) finish(end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.IndexFunc(p.inFlight, end.Equal); i >= 0 {
		p.inFlight = slices.Delete(p.inFlight, i, i+1)
	}
}

// Stats returns a copy of the provider's counters.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.RefusedBy = cloneMap(s.RefusedBy)
	s.Used = cloneMap(s.Used)
	s.Agents = make(map[string]AgentStats, len(p.stats.Agents))
	for k, v := range p.stats.Agents {
		v.Used = cloneMap(v.Used)
		s.Agents[k] = v
	}
	return s
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Grants returns every accepted call in the order accepted.
func (p *Provider) Grants() []Grant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.grants)
}

// Limits returns the provider's policies.
func (p *Provider) Limits() []limiter.Policy { return slices.Clone(p.cfg.Limits) }

// Epoch is when the provider's windows started.
func (p *Provider) Epoch() time.Time { return p.epoch }

// Overshoot is the most of pol.Unit granted in any window [t, t+pol.Window)
// divided by pol.Quota: above 1 means the quota was exceeded in the
// sliding-window sense. grants must be in time order.
func Overshoot(grants []Grant, pol limiter.Policy) float64 {
	var best, sum int64
	j := 0
	for i := range grants {
		sum += grants[i].Cost[pol.Unit]
		for grants[i].At.Sub(grants[j].At) >= pol.Window {
			sum -= grants[j].Cost[pol.Unit]
			j++
		}
		best = max(best, sum)
	}
	return float64(best) / float64(pol.Quota)
}

// ledger counts one policy's window.
type ledger struct {
	pol  limiter.Policy
	kind WindowKind
	sum  int64
	// sliding: grants still in the window, oldest first.
	log []entry
	// fixed: the current window's start.
	winStart time.Time
	// bucket: sum is what has been taken and not yet refilled, as of last.
	debt float64
	last time.Time
}

type entry struct {
	at time.Time
	n  int64
}

// advance drops what has left the window at now. A grant at s counts in
// every window [t, t+W) that holds s, so at now it has left once s <= now-W.
func (l *ledger) advance(now time.Time) {
	switch l.kind {
	case Bucket:
		if now.After(l.last) {
			l.debt = max(0, l.debt-now.Sub(l.last).Seconds()*l.rate())
			l.last = now
		}
		// Round up: a part-refilled token is not yet there to spend.
		l.sum = int64(math.Ceil(l.debt - 1e-9))
		return
	case Fixed:
		if n := now.Sub(l.winStart) / l.pol.Window; n > 0 {
			l.winStart = l.winStart.Add(n * l.pol.Window)
			l.sum = 0
		}
		return
	}
	i := 0
	for i < len(l.log) && !l.log[i].at.After(now.Add(-l.pol.Window)) {
		l.sum -= l.log[i].n
		i++
	}
	l.log = l.log[i:]
}

func (l *ledger) add(now time.Time, n int64) {
	if n == 0 {
		return
	}
	l.sum += n
	switch l.kind {
	case Sliding:
		l.log = append(l.log, entry{now, n})
	case Bucket:
		l.debt += float64(n)
	}
}

// rate is a bucket's refill in units per second.
func (l *ledger) rate() float64 { return float64(l.pol.Quota) / l.pol.Window.Seconds() }

// refillTime is how long a bucket takes to refill n units.
func (l *ledger) refillTime(n float64) time.Duration {
	return time.Duration(math.Ceil(n / l.rate() * float64(time.Second)))
}

// freeAt is the earliest time a cost of c fits, given no further grants.
func (l *ledger) freeAt(now time.Time, c int64) time.Time {
	switch l.kind {
	case Fixed:
		return l.winStart.Add(l.pol.Window)
	case Bucket:
		return now.Add(l.refillTime(l.debt + float64(c) - float64(l.pol.Quota)))
	}
	need := l.sum + c - l.pol.Quota
	for _, e := range l.log {
		need -= e.n
		if need <= 0 {
			return e.at.Add(l.pol.Window)
		}
	}
	return now
}

// fullAt is when the whole quota is free again, given no further grants:
// what providers call the reset time.
func (l *ledger) fullAt(now time.Time) time.Time {
	switch l.kind {
	case Bucket:
		return now.Add(l.refillTime(l.debt))
	case Fixed:
		if l.sum == 0 {
			return now
		}
		return l.winStart.Add(l.pol.Window)
	}
	if len(l.log) == 0 {
		return now
	}
	return l.log[len(l.log)-1].at.Add(l.pol.Window)
}

// writeLimitHeaders sets the rate-limit headers of the provider's dialect.
// Times are rounded up so that a client that trusts them is never early.
func (p *Provider) writeLimitHeaders(h http.Header, d decision) {
	switch p.cfg.Dialect {
	case limiter.DialectOpenAI:
		for _, s := range d.limits {
			name, ok := map[limiter.Unit]string{limiter.Requests: "requests", limiter.Tokens: "tokens"}[s.pol.Unit]
			if !ok {
				continue // OpenAI has no input/output token limits
			}
			h.Set("x-ratelimit-limit-"+name, strconv.FormatInt(s.pol.Quota, 10))
			h.Set("x-ratelimit-remaining-"+name, strconv.FormatInt(s.remaining, 10))
			h.Set("x-ratelimit-reset-"+name, ceilDur(s.reset, time.Millisecond).String())
		}
	case limiter.DialectAnthropic:
		for _, s := range d.limits {
			name := strings.ReplaceAll(string(s.pol.Unit), "_", "-")
			rem := s.remaining
			if s.pol.Unit != limiter.Requests {
				// Anthropic rounds token counts to the nearest thousand.
				rem = (rem + 500) / 1000 * 1000
			}
			reset := d.now.Add(s.reset)
			if t := reset.Truncate(time.Second); t.Before(reset) {
				reset = t.Add(time.Second)
			}
			h.Set("anthropic-ratelimit-"+name+"-limit", strconv.FormatInt(s.pol.Quota, 10))
			h.Set("anthropic-ratelimit-"+name+"-remaining", strconv.FormatInt(rem, 10))
			h.Set("anthropic-ratelimit-"+name+"-reset", reset.UTC().Format(time.RFC3339))
		}
	case limiter.DialectGitHub:
		for _, s := range d.limits {
			if s.pol.Unit != limiter.Requests {
				continue // GitHub counts requests only
			}
			reset := d.now.Add(s.reset)
			epoch := reset.Unix()
			if reset.After(time.Unix(epoch, 0)) {
				epoch++
			}
			h.Set("x-ratelimit-limit", strconv.FormatInt(s.pol.Quota, 10))
			h.Set("x-ratelimit-remaining", strconv.FormatInt(s.remaining, 10))
			h.Set("x-ratelimit-used", strconv.FormatInt(s.used, 10))
			h.Set("x-ratelimit-reset", strconv.FormatInt(epoch, 10))
			h.Set("x-ratelimit-resource", "core")
		}
	case limiter.DialectIETF:
		var pols, states []string
		for _, s := range d.limits {
			name := strconv.Quote(string(s.pol.Unit))
			pol := fmt.Sprintf("%s;q=%d;w=%d", name, s.pol.Quota, max(1, ceilDiv(s.pol.Window, time.Second)))
			if s.pol.Unit != limiter.Requests {
				pol += ";qu=" + name
			}
			pols = append(pols, pol)
			states = append(states, fmt.Sprintf("%s;r=%d;t=%d", name, s.remaining, ceilDiv(s.reset, time.Second)))
		}
		if len(pols) > 0 {
			h.Set("RateLimit-Policy", strings.Join(pols, ", "))
			h.Set("RateLimit", strings.Join(states, ", "))
		}
	}
}

// ceilDiv is d/unit rounded up, for d >= 0.
func ceilDiv(d, unit time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + unit - 1) / unit)
}

// ceilDur rounds d up to a multiple of unit.
func ceilDur(d, unit time.Duration) time.Duration {
	return time.Duration(ceilDiv(d, unit)) * unit
}

// Headers flattens an http.Header into the map a limiter.Report carries.
func Headers(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			m[strings.ToLower(k)] = strings.Join(v, ", ")
		}
	}
	return m
}
