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
	// queue and through cooldowns after upstream 429s, before the caller
	// gets the 429 itself.
	DefaultMaxWait = 2 * time.Minute
	// MaxBody is the largest request body forwarded. Bodies are held in
	// memory so that a request can be sent again after a 429; the largest
	// provider requests (images, PDFs as base64) stay well below this.
	MaxBody = 64 << 20
)

// minRetryWait keeps a cooldown refusal without a retry time from turning
// the retry loop into a busy loop.
const minRetryWait = 100 * time.Millisecond

// PriorityHeader lets a caller set the priority of one request ("high",
// "normal" or "low"). It is removed before the request goes upstream.
const PriorityHeader = "X-Quotabar-Priority"

// Limiter is the part of *limiter.Limiter the proxy uses.
type Limiter interface {
	Acquire(ctx context.Context, req limiter.Request) (limiter.Lease, error)
	Report(r limiter.Report) (limiter.ReportResult, error)
}

// Service is one service the proxy forwards to.
type Service struct {
	Name string
	// BaseURL is the upstream API root, e.g. "https://api.openai.com";
	// the rest of the proxy path is appended to it. Empty: the service is
	// known but cannot be proxied.
	BaseURL string
}

// Config configures New.
type Config struct {
	Limiter  Limiter
	Token    string // the secret every URL must carry; see LoadOrCreateToken
	Services []Service
	// MaxWait is the most a caller's request is held before it is answered
	// 429; 0 means DefaultMaxWait.
	MaxWait time.Duration
	// Transport makes the upstream calls; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger // nil means slog.Default()
}

// Proxy is an http.Handler that forwards agent calls upstream under the
// limiter. Safe for concurrent use.
type Proxy struct {
	lim      Limiter
	token    string
	maxWait  atomic.Int64 // time.Duration; changed by SetMaxWait
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	services atomic.Pointer[serviceTable]
}

type serviceTable struct {
	upstream map[string]*url.URL // nil value: known, no base URL
	names    []string            // sorted, for error messages
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
		lim:   cfg.Limiter,
		token: cfg.Token,
		log:   cfg.Logger,
	}
	p.SetMaxWait(cfg.MaxWait)
	if p.log == nil {
		p.log = slog.Default()
	}
	if err := p.SetServices(cfg.Services); err != nil {
		return nil, err
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      tr,
		FlushInterval:  -1, // every write reaches the client at once: SSE chunks are not held
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		// Its own messages carry no URLs or headers; keep them in our log.
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// SetMaxWait changes how long a caller's request may be held (queued and
// through upstream 429 cooldowns) before it is answered 429; d <= 0 means
// DefaultMaxWait. Requests already held keep their deadline.
func (p *Proxy) SetMaxWait(d time.Duration) {
	if d <= 0 {
		d = DefaultMaxWait
	}
	p.maxWait.Store(int64(d))
}

// SetServices replaces the services the proxy forwards to (after a config
// reload). Requests in flight keep the upstream they started with.
func (p *Proxy) SetServices(svcs []Service) error {
	t := &serviceTable{upstream: make(map[string]*url.URL, len(svcs))}
	for _, s := range svcs {
		var u *url.URL
		if s.BaseURL != "" {
			var err error
			u, err = url.Parse(s.BaseURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
				return fmt.Errorf("proxy: service %q: base_url %q must be an http:// or https:// URL with a host and no query", s.Name, s.BaseURL)
			}
		}
		t.upstream[s.Name] = u
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
	deadline time.Time

	status  int
	header  http.Header
	watcher *usageWatcher
	body    *watchedBody
	retry   bool // upstream said 429 and there is time to try again
	result  *limiter.ReportResult
	err     error  // upstream could not be reached
	errBody []byte // the start of a refusal's body (windows.go)
}

type attemptKey struct{}

func rewrite(pr *httputil.ProxyRequest) {
	a := pr.In.Context().Value(attemptKey{}).(*attempt)
	u := *a.target
	u.RawQuery = pr.In.URL.RawQuery
	pr.Out.URL = &u
	pr.Out.Host = "" // the upstream's own host, not 127.0.0.1
	pr.Out.Header.Del(PriorityHeader)
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
	a.errBody = peekErrorBody(res)
	if res.StatusCode == http.StatusTooManyRequests {
		// Report at once: the cooldown this starts decides whether the
		// caller's request can wait for another try.
		rr := p.report(a, nil)
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
		// which agents and services exist.
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
	target, err := p.upstream(service, rest)
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("quotabar proxy: request body over %d MiB", MaxBody>>20), 0)
		}
		return // otherwise the caller went away while sending
	}

	ctx := r.Context()
	start := time.Now()
	deadline := start.Add(time.Duration(p.maxWait.Load()))
	req := limiter.Request{Agent: agent, Service: service, Cost: Estimate(body), Priority: prio}
	log := p.log.With("agent", agent, "service", service, "method", r.Method, "path", target.Path)
	for try := 1; ; try++ {
		req.MaxWait = max(time.Until(deadline), 0)
		lease, err := p.lim.Acquire(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var refused *limiter.RefusedError
			if errors.As(err, &refused) {
				wait := max(refused.RetryAfter, minRetryWait)
				if refused.Reason == limiter.ReasonCooldown && time.Now().Add(wait).Before(deadline) {
					if sleep(ctx, wait) != nil {
						return
					}
					continue
				}
				log.Info("proxy: refused", "reason", refused.Reason, "retry_after", refused.RetryAfter, "tries", try)
				writeError(w, http.StatusTooManyRequests, string(refused.Reason), refusalMessage(service, refused), refused.RetryAfter)
				return
			}
			writeLimiterError(w, err)
			return
		}

		a := &attempt{target: target, lease: lease, deadline: deadline}
		p.forward(w, r, a, body)
		if a.retry {
			log.Info("proxy: upstream 429, holding the request for another try",
				"retry_after", a.result.RetryAfter, "tries", try)
			continue
		}
		log.Debug("proxy: call done", "status", a.status, "tries", try,
			"waited", time.Since(start).Round(time.Millisecond), "error", a.err)
		return
	}
}

// forward makes one attempt upstream and reports it, which ends its lease.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, a *attempt, body []byte) {
	// ReverseProxy panics with http.ErrAbortHandler when the client goes
	// away mid-stream; the report must still free the lease's slot.
	defer func() {
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
			usage = limiter.Cost{limiter.Tokens: 0, limiter.InputTokens: 0, limiter.OutputTokens: 0}
		}
		p.report(a, usage)
	}()
	out := r.Clone(context.WithValue(r.Context(), attemptKey{}, a))
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	p.rp.ServeHTTP(w, out)
}

// report ends an attempt's lease with what upstream answered.
func (p *Proxy) report(a *attempt, usage limiter.Cost) limiter.ReportResult {
	rr, err := p.lim.Report(limiter.Report{
		Lease:   a.lease.ID,
		Agent:   a.lease.Agent,
		Service: a.lease.Service,
		Status:  a.status,
		Header:  withStreamWindows(limitHeaders(a.header), a.watcher.windows()),
		Usage:   usage,
		Body:    a.errBody,
	})
	if err != nil {
		// The lease may have expired during a very long call; the limiter
		// has already freed it.
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
// the proxy path.
func (p *Proxy) upstream(service, rest string) (*url.URL, error) {
	t := p.services.Load()
	base, known := t.upstream[service]
	if !known {
		return nil, fmt.Errorf("quotabar proxy: service %q is not configured; configured: %s", service, strings.Join(t.names, ", "))
	}
	if base == nil {
		return nil, fmt.Errorf("quotabar proxy: service %q has no upstream; set base_url (or a preset) under [services.%s] in the config", service, service)
	}
	joined := strings.TrimSuffix(base.EscapedPath(), "/")
	if rest != "" {
		joined += "/" + rest
	}
	u, err := url.Parse(base.Scheme + "://" + base.Host + joined)
	if err != nil {
		return nil, fmt.Errorf("quotabar proxy: bad upstream path %q: %w", rest, err)
	}
	return u, nil
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
		return fmt.Sprintf("quotabar proxy: %s or this agent is paused in quotabar", service)
	case limiter.ReasonShed:
		return fmt.Sprintf("quotabar proxy: the queue for %s is full", service)
	}
	return fmt.Sprintf("quotabar proxy: %s refused: %s", service, r.Reason)
}

func writeLimiterError(w http.ResponseWriter, err error) {
	var le *limiter.Error
	if !errors.As(err, &le) {
		writeError(w, http.StatusInternalServerError, "internal", "quotabar proxy: "+err.Error(), 0)
		return
	}
	status := http.StatusBadRequest
	switch le.Code {
	case limiter.CodeUnknownService, limiter.CodeNotFound, limiter.CodeUnknownLease:
		status = http.StatusNotFound
	case limiter.CodeShuttingDown:
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, string(le.Code), "quotabar proxy: "+le.Message, 0)
}

// writeError answers with a body that API.md's clients, the OpenAI SDKs
// (error.message, error.code, error.type) and the Anthropic SDKs
// (type "error", error.type, error.message) all read.
func writeError(w http.ResponseWriter, status int, code, msg string, retryAfter time.Duration) {
	typ := "quotabar_error"
	switch status {
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case http.StatusForbidden:
		typ = "permission_error"
	case http.StatusNotFound:
		typ = "not_found_error"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		typ = "invalid_request_error"
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if retryAfter > 0 {
		h.Set("Retry-After", retryAfterSeconds(retryAfter))
		h.Set("Retry-After-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{
		"type":  "error",
		"error": map[string]string{"code": code, "type": typ, "message": msg},
	})
	w.Write(append(b, '\n'))
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
