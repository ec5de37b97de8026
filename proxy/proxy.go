package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// Defaults for Config.
const (
	// DefaultMaxWait is how long a caller's request may be held, in the
	// queue, through cooldowns after upstream 429s and while its service
	// is paused, before the caller gets the 429 itself.
	DefaultMaxWait = 2 * time.Minute
	// MaxBody is the largest request body forwarded. Bodies are held in
	// memory so that a request can be sent again after a 429; the largest
	// provider requests (images, PDFs as base64) stay well below this.
	MaxBody = 64 << 20
	// DefaultMaxBuffered bounds the memory of all request bodies held at
	// once; a request that would pass it is answered 503 with a retry
	// time, so that a burst of large bodies cannot exhaust the daemon.
	DefaultMaxBuffered = 256 << 20
	// DefaultBodyTimeout is how long a caller may take to send its body.
	DefaultBodyTimeout = 60 * time.Second
)

// minRetryWait keeps a cooldown refusal without a retry time from turning
// the retry loop into a busy loop.
const minRetryWait = 100 * time.Millisecond

// pausedRetryAfter is the retry time of a call answered 429 because its
// service or agent stayed paused for the whole max_wait: long enough that
// an SDK's own retries do not burn out in a few milliseconds, short enough
// (under the 60 s the OpenAI SDKs still honour) to resume soon after.
const pausedRetryAfter = 30 * time.Second

// busyRetryAfter is the retry time of a call refused because the proxy
// already holds DefaultMaxBuffered of request bodies.
const busyRetryAfter = 2 * time.Second

// PriorityHeader lets a caller set the priority of one request ("high",
// "normal" or "low"). It is removed before the request goes upstream.
const PriorityHeader = "X-Quotabar-Priority"

// Limiter is the part of *limiter.Limiter the proxy uses.
type Limiter interface {
	Acquire(ctx context.Context, req limiter.Request) (limiter.Lease, error)
	Report(r limiter.Report) (limiter.ReportResult, error)
	// Observe applies a provider's status and headers when they arrive,
	// without ending the lease.
	Observe(r limiter.Report) (limiter.ReportResult, error)
	// Renew keeps the lease of a call that is still streaming alive.
	Renew(lease string) (time.Time, error)
}

// subscriber is implemented by *limiter.Limiter: a paused call waits for a
// change instead of polling.
type subscriber interface {
	Subscribe() (<-chan struct{}, func())
}

// Service is one service the proxy forwards to.
type Service struct {
	Name string
	// BaseURL is the upstream API root, e.g. "https://api.openai.com";
	// the rest of the proxy path is appended to it. Empty: the service is
	// known but cannot be proxied.
	BaseURL string
	// Reservation is how the provider counts a call against its token
	// limits before it has run; see Reservation.
	Reservation Reservation
}

// Config configures New.
type Config struct {
	Limiter  Limiter
	Token    string // the secret every URL must carry; see LoadOrCreateToken
	Services []Service
	// MaxWait is the most a caller's request is held before it is answered
	// 429; 0 means DefaultMaxWait.
	MaxWait time.Duration
	// MaxBuffered bounds the bytes of request bodies held at once; 0 means
	// DefaultMaxBuffered.
	MaxBuffered int64
	// BodyTimeout bounds how long a caller may take to send its body; 0
	// means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// Transport makes the upstream calls; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil means slog.Default()
}

// Proxy is an http.Handler that forwards agent calls upstream under the
// limiter. Safe for concurrent use.
type Proxy struct {
	lim         Limiter
	token       string
	maxWait     atomic.Int64 // time.Duration; changed by SetMaxWait
	bodyTimeout time.Duration
	buffered    budget
	log         *slog.Logger
	tr          http.RoundTripper
	rp          *httputil.ReverseProxy
	services    atomic.Pointer[serviceTable]
}

type serviceTable struct {
	upstream map[string]*url.URL // nil value: known, no base URL
	reserve  map[string]Reservation
	names    []string // sorted, for error messages
}

// New returns a proxy. The token must be non-empty.
func New(cfg Config) (*Proxy, error) {
	if cfg.Limiter == nil {
		return nil, errors.New("proxy: Config.Limiter is nil")
	}
	if cfg.Token == "" {
		return nil, errors.New("proxy: Config.Token is empty; a proxy without a token would let any local user spend this user's quota")
	}
	p := &Proxy{
		lim:         cfg.Limiter,
		token:       cfg.Token,
		log:         cfg.Logger,
		bodyTimeout: cfg.BodyTimeout,
	}
	if p.bodyTimeout <= 0 {
		p.bodyTimeout = DefaultBodyTimeout
	}
	p.buffered.max = cfg.MaxBuffered
	if p.buffered.max <= 0 {
		p.buffered.max = DefaultMaxBuffered
	}
	p.SetMaxWait(cfg.MaxWait)
	if p.log == nil {
		p.log = slog.Default()
	}
	if err := p.SetServices(cfg.Services); err != nil {
		return nil, err
	}
	p.tr = cfg.Transport
	if p.tr == nil {
		p.tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      p.tr,
		FlushInterval:  -1, // every write reaches the client at once: SSE chunks are not held
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		// Its own messages carry no URLs or headers; keep them in our log.
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetMaxWait changes how long a caller's request may be held (queued,
// through upstream 429 cooldowns and pauses) before it is answered 429;
// d <= 0 means DefaultMaxWait. Requests already held keep their deadline.
func (p *Proxy) SetMaxWait(d time.Duration) {
	if d <= 0 {
		d = DefaultMaxWait
	}
	p.maxWait.Store(int64(d))
}

// SetServices replaces the services the proxy forwards to (after a config
// reload). Requests in flight keep the upstream they started with.
func (p *Proxy) SetServices(svcs []Service) error {
	t := &serviceTable{upstream: make(map[string]*url.URL, len(svcs)), reserve: make(map[string]Reservation, len(svcs))}
	for _, s := range svcs {
		var u *url.URL
		if s.BaseURL != "" {
			var err error
			u, err = url.Parse(s.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
				return fmt.Errorf("proxy: service %q: base_url %q must be an http:// or https:// URL with a host and no query", s.Name, s.BaseURL)
			}
		}
		if !s.Reservation.valid() {
			return fmt.Errorf("proxy: service %q: reservation %q is not one of %s", s.Name, s.Reservation, reservationNames())
		}
		t.upstream[s.Name] = u
		t.reserve[s.Name] = s.Reservation
		t.names = append(t.names, s.Name)
	}
	slices.Sort(t.names)
	p.services.Store(t)
	return nil
}

// attempt is one try of a caller's request, shared by ServeHTTP and the
// ReverseProxy hooks through the request context.
type attempt struct {
	target   *url.URL // upstream URL without query
	lease    limiter.Lease
	free     bool // passes without a permit: nothing to observe or report
	deadline time.Time

	status   int
	header   http.Header
	observed bool // the status and headers were given to the limiter as they arrived
	watcher  *usageWatcher
	body     *watchedBody
	retry    bool // upstream said 429 and there is time to try again
	result   *limiter.ReportResult
	err      error  // upstream could not be reached
	errBody  []byte // the start of a refusal's body (windows.go)
}

type attemptKey struct{}

func rewrite(pr *httputil.ProxyRequest) {
	a := pr.In.Context().Value(attemptKey{}).(*attempt)
	u := *a.target
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = "" // the upstream's own host, not 127.0.0.1
	pr.Out.Header.Del(PriorityHeader)
	// The Referer of a page or tool that called the proxy carries the
	// proxy URL, and with it the token: the upstream must not learn it.
	pr.Out.Header.Del("Referer")
	// Without the caller's Accept-Encoding the transport asks for gzip
	// itself and decompresses, so that usage can be read from the body.
	pr.Out.Header.Del("Accept-Encoding")
}

// errRetry tells the ReverseProxy's error handler that a 429 was kept
// from the caller to be tried again: nothing is written.
var errRetry = errors.New("proxy: upstream 429, retrying")

func (p *Proxy) modifyResponse(res *http.Response) error {
	a := res.Request.Context().Value(attemptKey{}).(*attempt)
	a.status, a.header = res.StatusCode, res.Header
	if a.free {
		return nil
	}
	a.errBody = peekErrorBody(res)
	// The headers describe the provider's limits as of now: applied now,
	// not when a stream that may last minutes ends, so that the windows
	// learned from them are not shortened by the stream's length.
	rr, err := p.lim.Observe(limiter.Report{Lease: a.lease.ID, Agent: a.lease.Agent, Service: a.lease.Service,
		Status: res.StatusCode, Header: limitHeaders(res.Header), Body: a.errBody})
	if err != nil {
		p.log.Debug("proxy: observe", "service", a.lease.Service, "agent", a.lease.Agent, "error", err)
	} else {
		a.observed = true
	}
	if res.StatusCode == http.StatusTooManyRequests {
		// The cooldown this starts decides whether the caller's request
		// can wait for another try. The refused attempt is refunded.
		p.report(a, refund)
		a.result = &rr
		if time.Now().Add(rr.RetryAfter).Before(a.deadline) && res.Request.Context().Err() == nil {
			a.retry = true
			return errRetry
		}
		if res.Header.Get("Retry-After") == "" && rr.RetryAfter > 0 {
			res.Header.Set("Retry-After", retryAfterSeconds(rr.RetryAfter))
		}
		return nil
	}
	if w := newUsageWatcher(res.Header.Get("Content-Type"), res.Header.Get("Content-Encoding")); w != nil {
		a.watcher = w
		a.body = &watchedBody{ReadCloser: res.Body, w: w}
		res.Body = a.body
	}
	return nil
}

// refund is the usage of a call the provider refused or rejected: it
// generated nothing, so the tokens reserved for it are given back (the
// request itself still counts: providers count refused requests too).
var refund = limiter.Cost{limiter.Tokens: 0, limiter.InputTokens: 0, limiter.OutputTokens: 0}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errRetry) {
		return
	}
	a := r.Context().Value(attemptKey{}).(*attempt)
	a.err = err
	if r.Context().Err() != nil {
		return // the caller went away; nobody to answer
	}
	writeError(w, http.StatusBadGateway, "upstream_unreachable",
		fmt.Sprintf("quotabar proxy: cannot reach %s: %v", a.target.Host, err), 0)
}

// ServeHTTP checks the token, agent and service of the URL, then acquires,
// forwards and reports, trying again after upstream 429s while the caller's
// total wait allows.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, agentSeg, service, rest, ok := splitPath(r.URL.EscapedPath())
	if !ok || !tokenEqual(token, p.token) {
		// Say nothing about what else is wrong: only token holders learn
		// which agents and services exist. Read nothing more from a
		// caller without the token, and do not keep its connection.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusForbidden, "forbidden",
			"quotabar proxy: missing or wrong token; use the URL from `quotabar run`, or GET /v1/proxy on the daemon socket", 0)
		return
	}
	// The agent segment is NAME or NAME~PRIORITY: tools that cannot send
	// a header can still carry a priority in their base URL.
	agent, urlPrio, hasPrio := strings.Cut(agentSeg, "~")
	if err := limiter.ValidName(agent); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("quotabar proxy: the agent in the URL: %v", err), 0)
		return
	}
	if err := checkRest(rest); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error(), 0)
		return
	}
	target, reserve, err := p.upstream(service, rest)
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown_service", err.Error(), 0)
		return
	}
	var prio limiter.Priority
	if hasPrio {
		if prio, err = limiter.ParsePriority(urlPrio); err != nil || prio == limiter.PriorityUnset {
			writeError(w, http.StatusBadRequest, "bad_request",
				fmt.Sprintf("quotabar proxy: the priority %q after ~ in the URL's agent: use high, normal or low", urlPrio), 0)
			return
		}
	}
	if h := r.Header.Get(PriorityHeader); h != "" {
		if prio, err = limiter.ParsePriority(h); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request",
				fmt.Sprintf("quotabar proxy: header %s: %q is not a priority; use high, normal or low", PriorityHeader, h), 0)
			return
		}
	}
	log := p.log.With("agent", agent, "service", service, "method", r.Method, "path", target.Path)
	if isWebSocket(r) {
		p.serveWebSocket(w, r, wsCall{agent: agent, service: service, prio: prio, target: target, reserve: reserve, log: log})
		return
	}
	if Free(r.Method, target.Path) {
		// Cannot cost quota: no permit, nothing to report.
		a := &attempt{target: target, free: true}
		out := r.Clone(context.WithValue(r.Context(), attemptKey{}, a))
		p.rp.ServeHTTP(w, out)
		log.Debug("proxy: free call done", "status", a.status, "error", a.err)
		return
	}
	body, release, err := p.readBody(w, r)
	if err != nil {
		return // answered
	}
	defer release()

	ctx := r.Context()
	start := time.Now()
	deadline := start.Add(time.Duration(p.maxWait.Load()))
	req := limiter.Request{Agent: agent, Service: service, Cost: reserve.Estimate(body), Priority: prio}
	lease, err := p.acquire(ctx, &req, deadline, log)
	for try := 1; ; try++ {
		if err != nil {
			var ans *answer
			if errors.As(err, &ans) {
				writeError(w, ans.status, ans.code, ans.msg, ans.retryAfter)
			}
			return
		}
		a := &attempt{target: target, lease: lease, deadline: deadline}
		p.forward(w, r, a, body)
		if !a.retry {
			log.Debug("proxy: call done", "status", a.status, "tries", try,
				"waited", time.Since(start).Round(time.Millisecond), "error", a.err)
			return
		}
		log.Info("proxy: upstream 429, holding the request for another try",
			"retry_after", a.result.RetryAfter, "tries", try)
		lease, err = p.acquire(ctx, &req, deadline, log)
	}
}

// answer is a refusal for the caller: what ServeHTTP writes, or what a
// WebSocket call sends as an error event.
type answer struct {
	status     int
	code, msg  string
	retryAfter time.Duration
}

func (a *answer) Error() string { return a.msg }

// errGone means the caller went away: nobody to answer.
var errGone = errors.New("proxy: the caller went away")

// acquire asks the limiter for a permit for req until deadline: through
// cooldowns (waiting them out) and pauses (waiting for the resume), and
// without refusing a call only for its token estimate. Its error is
// errGone or an *answer.
func (p *Proxy) acquire(ctx context.Context, req *limiter.Request, deadline time.Time, log *slog.Logger) (limiter.Lease, error) {
	var changes <-chan struct{}
	for {
		req.MaxWait = max(time.Until(deadline), 0)
		lease, err := p.lim.Acquire(ctx, *req)
		if err == nil {
			return lease, nil
		}
		if ctx.Err() != nil {
			return limiter.Lease{}, errGone
		}
		var le *limiter.Error
		if errors.As(err, &le) && le.Code == limiter.CodeCostExceedsQuota && hasTokens(req.Cost) {
			// The tokens are our estimate, not the provider's count:
			// a call is not refused for them. It goes with its request
			// alone, and the provider, which knows, decides.
			log.Info("proxy: the token estimate is more than a whole limit; forwarding with the request reserved alone", "estimate", req.Cost, "limit", le.Message)
			req.Cost = limiter.Cost{limiter.Requests: req.Cost[limiter.Requests]}
			continue
		}
		var refused *limiter.RefusedError
		if !errors.As(err, &refused) {
			return limiter.Lease{}, limiterAnswer(err)
		}
		switch refused.Reason {
		case limiter.ReasonCooldown:
			wait := max(refused.RetryAfter, minRetryWait)
			if time.Now().Add(wait).Before(deadline) {
				if sleep(ctx, wait) != nil {
					return limiter.Lease{}, errGone
				}
				continue
			}
		case limiter.ReasonPaused:
			// Held until the service or agent is resumed, within the
			// caller's wait; a change of the limiter's state is the
			// moment to ask again.
			if time.Until(deadline) > 0 {
				if changes == nil {
					if s, ok := p.lim.(subscriber); ok {
						ch, cancel := s.Subscribe()
						defer cancel()
						changes = ch
					}
				}
				if waitChange(ctx, changes, deadline) != nil {
					return limiter.Lease{}, errGone
				}
				continue
			}
			refused.RetryAfter = pausedRetryAfter
		}
		log.Info("proxy: refused", "reason", refused.Reason, "retry_after", refused.RetryAfter)
		return limiter.Lease{}, &answer{status: http.StatusTooManyRequests, code: string(refused.Reason),
			msg: refusalMessage(req.Service, refused), retryAfter: refused.RetryAfter}
	}
}

// waitChange waits for the next change of the limiter's state, one second
// at most (without a subscription), or until deadline.
func waitChange(ctx context.Context, changes <-chan struct{}, deadline time.Time) error {
	d := time.Until(deadline)
	if changes == nil {
		d = min(d, time.Second)
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-changes:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func hasTokens(c limiter.Cost) bool {
	return c[limiter.Tokens] > 0 || c[limiter.InputTokens] > 0 || c[limiter.OutputTokens] > 0
}

// forward makes one attempt upstream and reports it, which ends its lease.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, a *attempt, body []byte) {
	stop := p.keepAlive(a.lease)
	// ReverseProxy panics with http.ErrAbortHandler when the client goes
	// away mid-stream; the report must still free the lease's slot.
	defer func() {
		stop()
		if a.result != nil {
			return // a 429, reported as it arrived
		}
		var usage limiter.Cost
		if a.body != nil && a.body.eof {
			usage, _ = a.watcher.Usage()
		}
		if usage == nil && a.status >= 400 && a.status < 500 {
			// A request the provider rejected (bad request, bad key)
			// generated nothing: give back the tokens reserved for it.
			usage = refund
		}
		p.report(a, usage)
	}()
	out := r.Clone(context.WithValue(r.Context(), attemptKey{}, a))
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	p.rp.ServeHTTP(w, out)
}

// keepAlive renews a lease while its call runs, so that a stream longer
// than the lease TTL keeps its slot and its final report still counts. The
// returned func stops it.
func (p *Proxy) keepAlive(lease limiter.Lease) (stop func()) {
	ttl := lease.ExpiresAt.Sub(lease.GrantedAt)
	if ttl <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(max(ttl/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := p.lim.Renew(lease.ID); err != nil {
					p.log.Debug("proxy: renew", "service", lease.Service, "agent", lease.Agent, "error", err)
					return
				}
			}
		}
	}()
	return func() { close(done) }
}

// report ends an attempt's lease with what upstream answered. Status and
// headers already observed when they arrived are not applied again.
func (p *Proxy) report(a *attempt, usage limiter.Cost) limiter.ReportResult {
	r := limiter.Report{
		Lease:   a.lease.ID,
		Agent:   a.lease.Agent,
		Service: a.lease.Service,
		Usage:   usage,
	}
	if !a.observed {
		r.Status, r.Header, r.Body = a.status, limitHeaders(a.header), a.errBody
	}
	// A stream's codex.rate_limits event comes after the headers.
	r.Header = withStreamWindows(r.Header, a.watcher.windows())
	rr, err := p.lim.Report(r)
	var le *limiter.Error
	if errors.As(err, &le) && le.Code == limiter.CodeBadRequest && r.Usage != nil {
		// Usage the limiter cannot take must not keep the lease (and its
		// slot) until the TTL: end it with the reservation standing.
		p.log.Warn("proxy: the provider's usage was refused; keeping the estimate", "service", r.Service, "agent", r.Agent, "error", err)
		r.Usage = nil
		rr, err = p.lim.Report(r)
	}
	if errors.As(err, &le) && le.Code == limiter.CodeUnknownLease && usage != nil {
		// The lease ended without us (the daemon was very busy, or the
		// renewals failed): what the call used beyond its reservation
		// still counts.
		extra := limiter.Cost{limiter.Requests: 0}
		for u, n := range usage {
			if d := n - a.lease.Cost[u]; d > 0 {
				extra[u] = d
			}
		}
		if _, err2 := p.lim.Report(limiter.Report{Agent: r.Agent, Service: r.Service, Usage: extra}); err2 != nil {
			p.log.Debug("proxy: late usage", "service", r.Service, "agent", r.Agent, "error", err2)
		}
		return rr
	}
	if err != nil {
		p.log.Debug("proxy: report", "service", a.lease.Service, "agent", a.lease.Agent, "error", err)
	}
	return rr
}

// limitHeaders keeps the response headers that speak about rate limits: the
// limiter needs no others, and cookies have no business in it.
func limitHeaders(h http.Header) map[string]string {
	if h == nil {
		return nil
	}
	m := make(map[string]string)
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "ratelimit") || strings.Contains(lk, "rate-limit") ||
			strings.HasPrefix(lk, "retry-after") || lk == "date" || windowHeader(lk) {
			m[lk] = strings.Join(v, ", ")
		}
	}
	return m
}

// upstream returns the upstream URL for a service and the escaped rest of
// the proxy path, and the service's reservation rule.
func (p *Proxy) upstream(service, rest string) (*url.URL, Reservation, error) {
	t := p.services.Load()
	base, known := t.upstream[service]
	if !known {
		return nil, "", fmt.Errorf("quotabar proxy: service %q is not configured; configured: %s", service, strings.Join(t.names, ", "))
	}
	if base == nil {
		return nil, "", fmt.Errorf("quotabar proxy: service %q has no upstream; set base_url (or a preset) under [services.%s] in the config", service, service)
	}
	joined := strings.TrimSuffix(base.EscapedPath(), "/")
	if rest != "" {
		joined += "/" + rest
	}
	u, err := url.Parse(base.Scheme + "://" + base.Host + joined)
	if err != nil {
		return nil, "", fmt.Errorf("quotabar proxy: bad upstream path %q: %w", rest, err)
	}
	return u, t.reserve[service], nil
}

// checkRest refuses an upstream path that a server could resolve to
// another one than it reads as: dot segments ("..", "." and their escaped
// forms) and empty segments ("//"), also inside a segment whose escaped
// slashes or backslashes an upstream may decode ("a%2F..%2Fb"). The
// upstream gets exactly the path that was checked, or nothing.
func checkRest(rest string) error {
	if rest == "" {
		return nil
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		if s == "" && i == len(segs)-1 {
			continue // a trailing slash
		}
		dec, err := url.PathUnescape(s)
		if err != nil {
			return fmt.Errorf("quotabar proxy: the path segment %q is not valid URL escaping", s)
		}
		if dec == "" {
			return errors.New("quotabar proxy: the path has an empty segment (//); write upstream paths without one")
		}
		for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return fmt.Errorf("quotabar proxy: the path segment %q is or holds a %q segment; upstream paths must not contain . or .. segments", s, part)
			}
		}
		if strings.Trim(dec, "/\\") != dec || strings.Contains(dec, "//") {
			return fmt.Errorf("quotabar proxy: the path segment %q holds an empty segment once unescaped", s)
		}
	}
	return nil
}

// splitPath takes "/t/<token>/<agent>/<service>/<rest>" apart; rest is
// still escaped.
func splitPath(p string) (token, agent, service, rest string, ok bool) {
	p, ok = strings.CutPrefix(p, "/t/")
	if !ok {
		return "", "", "", "", false
	}
	parts := strings.SplitN(p, "/", 4)
	if len(parts) < 3 || parts[0] == "" {
		return "", "", "", "", false
	}
	if len(parts) == 4 {
		rest = parts[3]
	}
	return parts[0], parts[1], parts[2], rest, true
}

func refusalMessage(service string, r *limiter.RefusedError) string {
	switch r.Reason {
	case limiter.ReasonCooldown:
		return fmt.Sprintf("quotabar proxy: %s is cooling down after a rate limit; retry after %s", service, r.RetryAfter.Round(time.Second))
	case limiter.ReasonTimeout:
		return fmt.Sprintf("quotabar proxy: %s had no capacity within the proxy's max_wait; retry after %s", service, r.RetryAfter.Round(time.Second))
	case limiter.ReasonPaused:
		return fmt.Sprintf("quotabar proxy: %s or this agent is paused in quotabar and stayed paused for the proxy's max_wait; resume it (quotabar resume) or retry after %s", service, r.RetryAfter.Round(time.Second))
	case limiter.ReasonShed:
		return fmt.Sprintf("quotabar proxy: the queue for %s is full", service)
	}
	return fmt.Sprintf("quotabar proxy: %s refused: %s", service, r.Reason)
}

// limiterAnswer is the caller's answer for a request the limiter cannot
// serve at all.
func limiterAnswer(err error) *answer {
	var le *limiter.Error
	if !errors.As(err, &le) {
		return &answer{status: http.StatusInternalServerError, code: "internal", msg: "quotabar proxy: " + err.Error()}
	}
	status := http.StatusBadRequest
	switch le.Code {
	case limiter.CodeUnknownService, limiter.CodeNotFound, limiter.CodeUnknownLease:
		status = http.StatusNotFound
	case limiter.CodeShuttingDown:
		status = http.StatusServiceUnavailable
	}
	return &answer{status: status, code: string(le.Code), msg: "quotabar proxy: " + le.Message}
}

// errorBody is the body that API.md's clients, the OpenAI SDKs
// (error.message, error.code, error.type) and the Anthropic SDKs
// (type "error", error.type, error.message) all read.
func errorBody(status int, code, msg string) []byte {
	typ := "quotabar_error"
	switch status {
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestHeaderFieldsTooLarge:
		typ = "invalid_request_error"
	case http.StatusServiceUnavailable:
		typ = "overloaded_error"
	}
	b, _ := json.Marshal(map[string]any{
		"type":  "error",
		"error": map[string]string{"code": code, "type": typ, "message": msg},
	})
	return append(b, '\n')
}

// writeError answers with errorBody and, for a refusal, the retry time in
// the headers every SDK reads.
func writeError(w http.ResponseWriter, status int, code, msg string, retryAfter time.Duration) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		h.Set("Retry-After", retryAfterSeconds(retryAfter))
		h.Set("Retry-After-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	}
	w.WriteHeader(status)
	w.Write(errorBody(status, code, msg))
}

// retryAfterSeconds is a Retry-After value: whole seconds, rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
