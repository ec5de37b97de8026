package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// Strategy is a way for agents to share the provider's quota.
type Strategy string

// The strategies a run compares.
const (
	// SDKRetry agents call the provider directly and retry 429s like
	// openai-python: what users do today.
	SDKRetry Strategy = "sdk-retry"
	// StaticSplit agents each pace themselves with an x/time/rate limiter
	// holding 1/N of every quota, and retry like SDKRetry.
	StaticSplit Strategy = "static-split"
	// Quotabar agents ask quotabar's daemon, over its Unix socket, before
	// every call, and report each answer; the daemon knows the limits.
	Quotabar Strategy = "quotabar"
	// QuotabarLearn is Quotabar with no limits configured: the daemon
	// learns them from the provider's headers.
	QuotabarLearn Strategy = "quotabar-learn"
)

// Strategies lists every strategy in the order results are shown.
var Strategies = []Strategy{SDKRetry, StaticSplit, Quotabar, QuotabarLearn}

// ParseStrategy checks a strategy name.
func ParseStrategy(s string) (Strategy, error) {
	for _, st := range Strategies {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("sim: unknown strategy %q; use sdk-retry, static-split, quotabar or quotabar-learn", s)
}

// openai-python's retry policy (_base_client.py): 2 retries; the server's
// retry-after-ms or Retry-After when it is in (0, 60] seconds, else
// min(0.5 s * 2^n, 8 s) * (1 - 0.25 * rand).
const (
	sdkMaxRetries    = 2
	sdkInitialDelay  = 500 * time.Millisecond
	sdkMaxDelay      = 8 * time.Second
	sdkMaxRetryAfter = 60 * time.Second
)

// service is the name the provider has in the daemon.
const service = "sim"

// record is one call an agent wanted to make.
type record struct {
	want     time.Time
	sent     time.Time // when the attempt the provider accepted was sent; zero if none
	ok       bool
	gaveUp   bool // an SDK ran out of retries
	refusals int  // daemon refusals (timeout, cooldown) before the grant
}

// call is one call an agent makes.
type call struct {
	prompt, maxTokens, completion int64
}

func (c call) estimate() int64 { return c.prompt + c.maxTokens }

type agentRun struct {
	spec AgentSpec
	idx  int
	// static-split pacing
	reqLim, tokLim *rate.Limiter

	mu      sync.Mutex
	records []record
}

func (a *agentRun) add(r record) {
	a.mu.Lock()
	a.records = append(a.records, r)
	a.mu.Unlock()
}

// runner is one run of one strategy.
type runner struct {
	w        Workload
	strategy Strategy
	url      string
	hc       *http.Client
	client   *ipc.Client
	agents   []*agentRun
	end      time.Time
	cancel   context.CancelFunc

	errOnce sync.Once
	err     error
}

// fail ends the run with err, the first thing that went wrong which no
// strategy should meet (an error from the daemon or the provider, a status
// other than 200 or 429). Errors after the run's end are only the end.
func (r *runner) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	r.errOnce.Do(func() {
		r.err = err
		r.cancel()
	})
}

// Run runs w under strategy s against a fresh provider (and, for the
// quotabar strategies, a fresh daemon) and measures the result.
func Run(ctx context.Context, w Workload, s Strategy) (Result, error) {
	return run(ctx, w, s, nil)
}

// run is Run, handing the provider to inspect (when not nil) after the run.
func run(ctx context.Context, w Workload, s Strategy, inspect func(*Provider)) (Result, error) {
	if _, err := ParseStrategy(string(s)); err != nil {
		return Result{}, err
	}
	if err := w.validate(); err != nil {
		return Result{}, err
	}
	p, err := NewProvider(w.Provider)
	if err != nil {
		return Result{}, err
	}
	url, err := p.Start()
	if err != nil {
		return Result{}, err
	}
	defer p.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	r := &runner{w: w, strategy: s, url: url + "/v1/chat/completions", hc: &http.Client{Transport: tr}}

	switch s {
	case Quotabar, QuotabarLearn:
		cfg := r.limiterConfig(s == Quotabar)
		d, err := StartDaemon(cfg, "")
		if err != nil {
			return Result{}, err
		}
		defer d.Close()
		r.client = d.Client(1024)
	}
	for i, spec := range w.Agents {
		a := &agentRun{spec: spec, idx: i}
		if s == StaticSplit {
			a.reqLim, a.tokLim = r.staticLimiters(spec)
		}
		r.agents = append(r.agents, a)
	}

	start := time.Now()
	r.end = start.Add(w.Duration)
	runCtx, cancel := context.WithDeadline(ctx, r.end)
	defer cancel()
	r.cancel = cancel
	var wg sync.WaitGroup
	for _, a := range r.agents {
		r.startAgent(runCtx, &wg, a)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if r.err != nil {
		return Result{}, fmt.Errorf("sim: %s run: %w", s, r.err)
	}
	if inspect != nil {
		inspect(p)
	}
	return r.measure(p, start), nil
}

// limiterConfig is the daemon's configuration for the workload: the
// provider's limits when known, the agents' weights and priorities, and the
// aging bound compressed like everything else.
func (r *runner) limiterConfig(known bool) limiter.Config {
	sc := limiter.ServiceConfig{Name: service, Dialect: r.w.Provider.Dialect, MaxConcurrent: r.w.Provider.MaxConcurrent, Headroom: r.w.Headroom}
	if known {
		sc.Limits = r.w.Limits
		if sc.Limits == nil {
			sc.Limits = r.w.Provider.Limits
		}
	}
	cfg := limiter.Config{
		Services: []limiter.ServiceConfig{sc},
		MaxAging: time.Duration(float64(limiter.DefaultMaxAging) / r.w.Compression),
	}
	for _, a := range r.w.Agents {
		cfg.Agents = append(cfg.Agents, limiter.AgentConfig{Name: a.Name, Priority: a.Priority, Weight: a.Weight})
	}
	return cfg
}

// staticLimiters gives an agent 1/N of each quota as a token bucket. The
// request bucket holds one call, so calls are spread evenly; the token
// bucket holds the agent's largest call, the least that lets it call at all.
func (r *runner) staticLimiters(spec AgentSpec) (req, tok *rate.Limiter) {
	// A unit the provider does not limit is not paced.
	req, tok = rate.NewLimiter(rate.Inf, 1), rate.NewLimiter(rate.Inf, 1)
	n := float64(len(r.w.Agents))
	for _, pol := range r.w.Provider.Limits {
		perSec := rate.Limit(float64(pol.Quota) / n / pol.Window.Seconds())
		switch pol.Unit {
		case limiter.Requests:
			req = rate.NewLimiter(perSec, 1)
		case limiter.Tokens:
			tok = rate.NewLimiter(perSec, int(spec.Estimate()))
		}
	}
	return req, tok
}

func (r *runner) startAgent(ctx context.Context, wg *sync.WaitGroup, a *agentRun) {
	spec := a.spec
	seed := func(k uint64) *rand.Rand { return rand.New(rand.NewPCG(r.w.Seed, uint64(a.idx)<<16|k)) }
	switch spec.Shape {
	case Busy:
		for k := range spec.Workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := seed(uint64(k))
				for ctx.Err() == nil {
					a.add(r.do(ctx, a, newCall(spec, rng), rng))
				}
			}()
		}
	case Poisson, Bursty:
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := seed(0)
			// Bursty agents start at a random point of their period, so
			// that several of them do not burst in step.
			next := time.Duration(0)
			if spec.Shape == Bursty {
				next = time.Duration(rng.Int64N(int64(spec.Period)))
			}
			t := time.NewTimer(0)
			defer t.Stop()
			for {
				if spec.Shape == Poisson {
					next = time.Duration(rng.ExpFloat64() / spec.Rate * float64(time.Second))
				}
				t.Reset(next)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				n := 1
				if spec.Shape == Bursty {
					n, next = spec.Burst, spec.Period
				}
				for range n {
					c := newCall(spec, rng)
					crng := rand.New(rand.NewPCG(rng.Uint64(), 0))
					wg.Add(1)
					go func() {
						defer wg.Done()
						a.add(r.do(ctx, a, c, crng))
					}()
				}
			}
		}()
	}
}

func newCall(s AgentSpec, rng *rand.Rand) call {
	c := call{prompt: s.PromptMin, maxTokens: s.MaxTokens}
	if s.PromptMax > s.PromptMin {
		c.prompt += rng.Int64N(s.PromptMax - s.PromptMin + 1)
	}
	lo := s.MaxTokens / 5
	c.completion = lo + rng.Int64N(s.MaxTokens-lo+1)
	return c
}

// do makes one call under the run's strategy.
func (r *runner) do(ctx context.Context, a *agentRun, c call, rng *rand.Rand) record {
	rec := record{want: time.Now()}
	switch r.strategy {
	case SDKRetry:
		r.sdkCall(ctx, a, c, rng, &rec)
	case StaticSplit:
		if a.reqLim.Wait(ctx) != nil || a.tokLim.WaitN(ctx, int(c.estimate())) != nil {
			// Wait fails at once when the run would end first: the call
			// waits out the run, as its agent would.
			<-ctx.Done()
			return rec
		}
		r.sdkCall(ctx, a, c, rng, &rec)
	default:
		r.quotabarCall(ctx, a, c, rng, &rec)
	}
	return rec
}

// providerAnswer is what the provider said to one attempt.
type providerAnswer struct {
	status int
	header http.Header
	usage  Usage
	body   string // of an answer other than 200, for error messages
}

func (r *runner) post(ctx context.Context, a *agentRun, c call) (providerAnswer, error) {
	comp := c.completion
	body, _ := json.Marshal(CallRequest{Agent: a.spec.Name, PromptTokens: c.prompt, MaxTokens: c.maxTokens, CompletionTokens: &comp})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return providerAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(req)
	if err != nil {
		return providerAnswer{}, err
	}
	defer resp.Body.Close()
	ans := providerAnswer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		var cr CallResponse
		if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil {
			return ans, fmt.Errorf("sim: provider answer: %w", err)
		}
		ans.usage = cr.Usage
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		ans.body = strings.TrimSpace(string(b))
	}
	return ans, nil
}

// sdkCall is one call through an SDK's retry loop.
func (r *runner) sdkCall(ctx context.Context, a *agentRun, c call, rng *rand.Rand, rec *record) {
	for attempt := 0; ; attempt++ {
		sent := time.Now()
		ans, err := r.post(ctx, a, c)
		if err != nil {
			r.fail(ctx, fmt.Errorf("agent %s: provider: %w", a.spec.Name, err))
			return
		}
		if ans.status == http.StatusOK {
			rec.sent, rec.ok = sent, true
			return
		}
		if ans.status != http.StatusTooManyRequests {
			r.fail(ctx, fmt.Errorf("agent %s: provider answered %d: %s", a.spec.Name, ans.status, ans.body))
			return
		}
		if attempt == sdkMaxRetries {
			rec.gaveUp = true
			return
		}
		if !sleep(ctx, r.sdkDelay(ans.header, attempt, rng)) {
			return
		}
	}
}

// sdkDelay is openai-python's wait before retry number attempt+1. The
// provider's Retry-After is already in compressed time; the SDK's own
// constants are compressed here.
func (r *runner) sdkDelay(h http.Header, attempt int, rng *rand.Rand) time.Duration {
	compress := func(d time.Duration) time.Duration { return time.Duration(float64(d) / r.w.Compression) }
	var ra time.Duration
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil {
		ra = time.Duration(ms * float64(time.Millisecond))
	} else if s, err := strconv.ParseFloat(h.Get("retry-after"), 64); err == nil {
		ra = time.Duration(s * float64(time.Second))
	}
	if ra > 0 && ra <= compress(sdkMaxRetryAfter) {
		return ra
	}
	d := min(compress(sdkInitialDelay)<<attempt, compress(sdkMaxDelay))
	return time.Duration(float64(d) * (1 - 0.25*rng.Float64()))
}

// quotabarCall asks the daemon, calls, and reports. A 429 from the provider
// (which quotabar should prevent) is retried through the daemon, which has
// been told of it.
func (r *runner) quotabarCall(ctx context.Context, a *agentRun, c call, rng *rand.Rand, rec *record) {
	spec := a.spec
	for ctx.Err() == nil {
		lease, err := r.client.Acquire(ctx, wire.AcquireRequest{
			Agent:     spec.Name,
			Service:   service,
			Cost:      wire.Cost{string(limiter.Requests): 1, string(limiter.Tokens): c.estimate()},
			Priority:  spec.Priority.String(),
			MaxWaitMS: wire.Wait(time.Until(r.end) + time.Second),
		})
		var refused *ipc.RefusedError
		if errors.As(err, &refused) {
			rec.refusals++
			if !sleep(ctx, refused.RetryAfter) {
				return
			}
			continue
		}
		if err != nil {
			r.fail(ctx, fmt.Errorf("agent %s: acquire: %w", spec.Name, err))
			return
		}
		sent := time.Now()
		ans, err := r.post(ctx, a, c)
		if err != nil {
			// The call never got an answer: give the lease back unused (a
			// report without usage would keep its estimate charged).
			r.client.Report(context.WithoutCancel(ctx), wire.ReportRequest{Lease: lease.ID, Usage: nothing()})
			r.fail(ctx, fmt.Errorf("agent %s: provider: %w", spec.Name, err))
			return
		}
		rep := wire.ReportRequest{Lease: lease.ID, Status: ans.status, Headers: Headers(ans.header)}
		if ans.status == http.StatusOK {
			rep.Usage = wire.Cost{string(limiter.Requests): 1, string(limiter.Tokens): ans.usage.TotalTokens}
		} else {
			rep.Usage = nothing() // the provider counts only what it accepts
		}
		res, err := r.client.Report(context.WithoutCancel(ctx), rep)
		if err != nil {
			r.fail(ctx, fmt.Errorf("agent %s: report: %w", spec.Name, err))
			return
		}
		if ans.status == http.StatusOK {
			rec.sent, rec.ok = sent, true
			return
		}
		if ans.status != http.StatusTooManyRequests {
			r.fail(ctx, fmt.Errorf("agent %s: provider answered %d: %s", spec.Name, ans.status, ans.body))
			return
		}
		if !sleep(ctx, res.RetryAfter()) {
			return
		}
	}
}

// nothing is a usage of zero of every unit; an empty map would be omitted
// from the JSON and read as "usage unknown".
func nothing() wire.Cost {
	return wire.Cost{string(limiter.Requests): 0, string(limiter.Tokens): 0}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
