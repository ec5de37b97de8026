package limiter

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Limiter schedules the requests of every agent for every configured
// service. Create it with New; the zero Limiter is not usable. It is safe
// for concurrent use: one mutex guards all its state, and no method does
// I/O or blocks while holding it.
type Limiter struct {
	mu       sync.Mutex
	clock    Clock
	rng      *rand.Rand
	cfg      Config // with defaults applied
	services map[string]*service
	agents   map[string]*agent
	leases   map[string]*lease
	seq      uint64 // grants so far
	closed   bool
	subs     map[int]chan struct{}
	nextSub  int
	// parse reads provider headers; tests replace it to inject observations.
	parse func(dialect string, h map[string]string, now time.Time) Observation
}

// Option configures New.
type Option func(*options)

type options struct{ clock Clock }

// WithClock injects the clock (tests use a fake one).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

type agent struct {
	name     string
	cfg      AgentConfig
	prio     Priority // run-time override, PriorityUnset when none
	paused   bool
	caps     []*ledger
	lastSeen time.Time
	inFlight int
	queued   int
	granted  int64
	refused  int64
}

func (a *agent) priority() Priority {
	switch {
	case a.prio != PriorityUnset:
		return a.prio
	case a.cfg.Priority != PriorityUnset:
		return a.cfg.Priority
	}
	return Normal
}

func (a *agent) weight() float64 {
	if a.cfg.Weight > 0 {
		return a.cfg.Weight
	}
	return 1
}

type lease struct {
	id        string
	svc       *service
	g         *grant
	grantedAt time.Time
	expiresAt time.Time
	timer     Timer
}

// New returns a limiter for cfg, timed by the real clock unless WithClock
// says otherwise. Zero fields of cfg take the Default values; the zero
// Config is valid and gives a limiter with no services, whose acquires fail
// with CodeUnknownService until Reconfigure adds some. New fails when cfg
// names a service or agent twice, uses an invalid name, or has a limit that
// could never be met.
func New(cfg Config, opts ...Option) (*Limiter, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.clock == nil {
		o.clock = realClock{}
	}
	if err := validateConfig(cfg); err != nil {
		return nil, fmt.Errorf("limiter config: %w", err)
	}
	// The runtime seeds math/rand/v2's global source from the OS when the
	// process starts: lease IDs are unguessable without I/O here.
	var seed [32]byte
	for i := 0; i < len(seed); i += 8 {
		binary.LittleEndian.PutUint64(seed[i:], rand.Uint64())
	}
	l := &Limiter{
		clock:    o.clock,
		rng:      rand.New(rand.NewChaCha8(seed)),
		services: map[string]*service{},
		agents:   map[string]*agent{},
		leases:   map[string]*lease{},
		subs:     map[int]chan struct{}{},
		parse:    ParseHeaders,
	}
	l.apply(cfg)
	return l, nil
}

// Reconfigure applies a new configuration without losing queued requests:
// limits, weights and priorities change in place, new services appear, and a
// removed service refuses its waiters with CodeUnknownService.
func (l *Limiter) Reconfigure(cfg Config) error {
	if err := validateConfig(cfg); err != nil {
		return fmt.Errorf("limiter config: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	l.apply(cfg)
	for _, s := range l.services {
		l.dispatch(s)
	}
	l.notify()
	return nil
}

func (l *Limiter) apply(cfg Config) {
	now := l.clock.Now()
	l.cfg = cfg.withDefaults()
	keep := map[string]bool{}
	for _, sc := range cfg.Services {
		keep[sc.Name] = true
		s := l.services[sc.Name]
		if s == nil {
			s = newService(sc)
			l.services[sc.Name] = s
			continue
		}
		s.reconfigure(now, sc)
	}
	for name, s := range l.services {
		if !keep[name] {
			s.removed = true
		}
	}
	for name, s := range l.services {
		if !s.removed {
			continue
		}
		msg := fmt.Sprintf("service %q is no longer configured; configured: %s", name, l.serviceList())
		l.refuseAll(s, func(*waiter) error { return &Error{Code: CodeUnknownService, Message: msg} })
		s.stopWake()
		delete(l.services, name)
	}

	conf := map[string]AgentConfig{}
	for _, ac := range cfg.Agents {
		conf[ac.Name] = ac
	}
	for name, a := range l.agents {
		if _, ok := conf[name]; !ok {
			before := a.priority()
			a.cfg = AgentConfig{Name: name}
			a.caps = rebuildLedgers(now, a.caps, nil, 0)
			if a.priority() != before {
				l.requeueAgent(a)
			}
		}
	}
	for _, ac := range cfg.Agents {
		a := l.agents[ac.Name]
		if a == nil {
			l.agents[ac.Name] = newAgent(now, ac)
			continue
		}
		before := a.priority()
		a.cfg = ac
		a.caps = rebuildLedgers(now, a.caps, ac.Limits, 0)
		if a.priority() != before {
			l.requeueAgent(a)
		}
	}
}

func newAgent(now time.Time, ac AgentConfig) *agent {
	a := &agent{name: ac.Name, cfg: ac}
	a.caps = rebuildLedgers(now, nil, ac.Limits, 0)
	return a
}

// rebuildLedgers makes ledgers for ps, keeping the log of an old ledger with
// the same unit and window, and seeding a new one from the longest old log
// (every ledger logs every grant), so that a reload cannot forget recent
// grants and release a quota twice.
func rebuildLedgers(now time.Time, old []*ledger, ps []Policy, headroom float64) []*ledger {
	var longest *ledger
	for _, d := range old {
		if longest == nil || d.policy.Window > longest.policy.Window {
			longest = d
		}
	}
	var out []*ledger
	for _, p := range ps {
		var d *ledger
		for _, o := range old {
			if o.policy.Unit == p.Unit && o.policy.Window == p.Window && !slices.Contains(out, o) {
				d = o
				break
			}
		}
		if d != nil {
			d.setQuota(p.Quota, headroom)
			out = append(out, d)
			continue
		}
		d = newLedger(p, headroom, "config")
		if longest != nil {
			d.seed(now, longest.log)
		}
		out = append(out, d)
	}
	return out
}

// seed logs the grants of src that are still inside d's window.
func (d *ledger) seed(now time.Time, src []*grant) {
	cut := now.Add(-d.span())
	for _, g := range src {
		if g.at.After(cut) {
			d.log = append(d.log, g)
			d.used += g.cost[d.policy.Unit]
		}
	}
}

func (l *Limiter) serviceList() string {
	names := make([]string, 0, len(l.services))
	for n, s := range l.services {
		if !s.removed {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (l *Limiter) lookupService(name string) (*service, error) {
	if err := ValidName(name); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: "service: " + err.Error()}
	}
	s := l.services[name]
	if s == nil {
		return nil, &Error{Code: CodeUnknownService, Message: fmt.Sprintf("service %q is not configured; configured: %s", name, l.serviceList())}
	}
	return s, nil
}

// agentFor returns the named agent, registering it on first use.
func (l *Limiter) agentFor(name string, now time.Time) (*agent, error) {
	if err := ValidName(name); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: "agent: " + err.Error()}
	}
	a := l.agents[name]
	if a == nil {
		a = &agent{name: name, cfg: AgentConfig{Name: name}}
		l.agents[name] = a
	}
	a.lastSeen = now
	return a, nil
}

func badRequest(format string, args ...any) *Error {
	return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// checkCost checks c and returns a private copy.
func checkCost(field string, c Cost) (Cost, error) {
	out := make(Cost, len(c)+1)
	for u, n := range c {
		if !knownUnit(u) {
			return nil, badRequest("%s: unit %q is not one of requests, tokens, input_tokens, output_tokens", field, u)
		}
		if n < 0 {
			return nil, badRequest("%s: %s is %d; costs must not be negative", field, u, n)
		}
		out[u] = n
	}
	return out, nil
}

// requestCost is checkCost for an acquire: every call is one request unless
// the cost says otherwise (nil or empty means just that).
func requestCost(c Cost) (Cost, error) {
	out, err := checkCost("cost", c)
	if err != nil {
		return nil, err
	}
	if _, ok := out[Requests]; !ok {
		out[Requests] = 1
	}
	return out, nil
}

// Acquire asks permission for one call and blocks until it is granted, until
// req.MaxWait passes on the limiter's clock, or until ctx ends. A refusal is
// a *RefusedError, a request that can never be served an *Error; when ctx
// ends first the request leaves the queue, consumes nothing, and ctx.Err()
// is returned.
func (l *Limiter) Acquire(ctx context.Context, req Request) (Lease, error) {
	w, err := l.submit(req)
	if err != nil {
		return Lease{}, err
	}
	select {
	case r := <-w.done:
		return r.lease, r.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.state == waiting {
		l.withdraw(w)
		l.mu.Unlock()
		return Lease{}, ctx.Err()
	}
	l.mu.Unlock()
	// Granted or refused while ctx ended: a grant is taken back whole.
	if r := <-w.done; r.err == nil {
		l.revoke(r.lease.ID)
	}
	return Lease{}, ctx.Err()
}

// Report ends a lease (when r.Lease is set), corrects its cost from r.Usage,
// and applies what the provider's status and headers say: budgets, learned
// limits, and a cooldown after 429, after 503 with a retry time, or after a
// 403 that says the budget is spent. A report without a lease is an
// observation of a call made without asking; its usage (one request by
// default) is charged. A lease that is unknown (expired or made up) still
// has its headers applied when r.Service names a configured service, then
// the report fails with CodeUnknownLease.
func (l *Limiter) Report(r Report) (ReportResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ReportResult{}, &Error{Code: CodeShuttingDown, Message: "the limiter is shut down"}
	}
	now := l.clock.Now()
	var usage Cost
	if r.Usage != nil {
		var err error
		if usage, err = checkCost("usage", r.Usage); err != nil {
			return ReportResult{}, err
		}
	}
	var (
		ls *lease
		s  *service
		a  *agent
	)
	if r.Lease != "" {
		ls = l.leases[r.Lease]
		if ls == nil {
			msg := fmt.Sprintf("lease %q is not held: it was reported already, expired, or never granted", r.Lease)
			if sv := l.services[r.Service]; sv != nil && ValidName(r.Agent) == nil {
				a, _ := l.agentFor(r.Agent, now)
				l.observe(sv, a, nil, r, now)
				l.dispatchAll()
				l.notify()
			}
			return ReportResult{}, &Error{Code: CodeUnknownLease, Message: msg}
		}
		s, a = ls.svc, ls.g.agent
		a.lastSeen = now
	} else {
		if r.Agent == "" || r.Service == "" {
			return ReportResult{}, badRequest("a report without a lease needs both agent and service")
		}
		var err error
		if s, err = l.lookupService(r.Service); err != nil {
			return ReportResult{}, err
		}
		if a, err = l.agentFor(r.Agent, now); err != nil {
			return ReportResult{}, err
		}
	}

	if ls == nil {
		// Charged first: the provider's headers already count this call.
		c := usage
		if c == nil {
			c = Cost{}
		}
		if _, ok := c[Requests]; !ok {
			c[Requests] = 1
		}
		l.charge(s, a, c, now)
	}
	res := l.observe(s, a, ls, r, now)
	if ls != nil {
		if usage != nil {
			l.correct(s, ls.g, usage, now)
		}
		l.endLease(ls)
	}
	l.dispatchAll()
	l.notify()
	return res, nil
}

// correct sets g's cost to usage, unit by unit, refunding or charging every
// ledger and budget that counted it.
func (l *Limiter) correct(s *service, g *grant, usage Cost, now time.Time) {
	for u, n := range usage {
		delta := n - g.cost[u]
		if delta == 0 {
			continue
		}
		g.cost[u] = n
		for _, d := range s.ledgers() {
			if d.policy.Unit == u {
				d.adjust(now, g, delta)
			}
		}
		for _, d := range g.agent.caps {
			if d.policy.Unit == u {
				d.adjust(now, g, delta)
			}
		}
		for _, b := range s.budgets {
			if b.unit == u && g.seq > b.since {
				b.spent += delta
			}
		}
	}
}

// charge records usage that happened without a lease.
func (l *Limiter) charge(s *service, a *agent, c Cost, now time.Time) {
	l.seq++
	g := &grant{seq: l.seq, at: now, cost: c, agent: a}
	s.record(now, g, false)
	for _, d := range a.caps {
		d.add(now, g, false)
	}
}

func (l *Limiter) endLease(ls *lease) {
	delete(l.leases, ls.id)
	if ls.timer != nil {
		ls.timer.Stop()
	}
	ls.g.open = false
	ls.svc.inFlight--
	ls.g.agent.inFlight--
}

// revoke takes back a grant whose requester went away before hearing of it:
// it refunds everything and undoes the counters, as if never granted.
func (l *Limiter) revoke(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls := l.leases[id]
	if ls == nil {
		return
	}
	now := l.clock.Now()
	zero := Cost{}
	for u := range ls.g.cost {
		zero[u] = 0
	}
	l.correct(ls.svc, ls.g, zero, now)
	l.endLease(ls)
	ls.svc.granted--
	ls.g.agent.granted--
	l.dispatchAll()
	l.notify()
}

func (l *Limiter) expire(ls *lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases[ls.id] != ls {
		return
	}
	l.endLease(ls)
	l.dispatch(ls.svc)
	l.notify()
}

// SetServicePaused pauses or resumes a service. Pausing refuses its waiters
// at once with ReasonPaused.
func (l *Limiter) SetServicePaused(service string, paused bool) (ServiceStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.lookupService(service)
	if err != nil {
		return ServiceStatus{}, err
	}
	if s.paused != paused {
		s.paused = paused
		if paused {
			l.refuseAll(s, func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
		}
		l.dispatch(s)
		l.notify()
	}
	return l.serviceStatus(s, l.clock.Now()), nil
}

// UpdateAgent changes an agent's run-time pause and priority. An agent not
// seen before is registered, as on first use, so that a person can pause or
// reprioritise an agent before it starts. Pausing refuses its waiters at once
// with ReasonPaused; a new priority moves its waiting requests that did not
// name one. Setting PriorityUnset returns to the configured priority.
func (l *Limiter) UpdateAgent(name string, u AgentUpdate) (AgentStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := ValidName(name); err != nil {
		return AgentStatus{}, &Error{Code: CodeBadRequest, Message: "agent: " + err.Error()}
	}
	if u.Priority != nil && (*u.Priority < PriorityUnset || *u.Priority > High) {
		return AgentStatus{}, badRequest("priority %d is not low, normal or high", *u.Priority)
	}
	a := l.agents[name]
	if a == nil {
		// Not seen yet: last_seen stays unknown until it asks.
		a = &agent{name: name, cfg: AgentConfig{Name: name}}
		l.agents[name] = a
	}
	if u.Priority != nil && *u.Priority != a.prio {
		before := a.priority()
		a.prio = *u.Priority
		if a.priority() != before {
			l.requeueAgent(a)
		}
	}
	if u.Paused != nil && *u.Paused != a.paused {
		a.paused = *u.Paused
		if a.paused {
			for _, s := range l.services {
				l.refuseWhere(s, func(w *waiter) bool { return w.agent == a },
					func(w *waiter) error { return l.refusal(w, ReasonPaused, 0) })
			}
		}
	}
	l.dispatchAll()
	l.notify()
	return l.agentStatus(a), nil
}

func (l *Limiter) agentList() string {
	names := make([]string, 0, len(l.agents))
	for n := range l.agents {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Subscribe returns a channel that receives a value after state changes
// (grants, refusals, reports, pauses, reloads, Close); changes that happen
// while a value is pending coalesce into it. cancel ends the subscription
// and closes the channel. After Close a new subscription's channel is
// closed at once.
func (l *Limiter) Subscribe() (<-chan struct{}, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{}, 1)
	if l.closed {
		close(ch)
		return ch, func() {}
	}
	id := l.nextSub
	l.nextSub++
	l.subs[id] = ch
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if c, ok := l.subs[id]; ok {
			delete(l.subs, id)
			close(c)
		}
	}
}

func (l *Limiter) notify() {
	for _, ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Close refuses every waiter and every later call with CodeShuttingDown,
// stops the limiter's timers and pokes subscribers a last time.
func (l *Limiter) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for _, s := range l.services {
		l.refuseAll(s, func(*waiter) error {
			return &Error{Code: CodeShuttingDown, Message: "quotabar is shutting down"}
		})
		s.stopWake()
	}
	for _, ls := range l.leases {
		if ls.timer != nil {
			ls.timer.Stop()
		}
	}
	l.notify()
}

// Now returns the limiter's clock reading.
func (l *Limiter) Now() time.Time { return l.clock.Now() }

func (l *Limiter) newLeaseID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], l.rng.Uint64())
	return fmt.Sprintf("l_%x", b)
}

// jitter spreads retry times of refused agents: up to a tenth of d more,
// and at least up to a quarter second, so agents do not return together.
func (l *Limiter) jitter(d time.Duration) time.Duration {
	d = max(d, 0)
	span := max(d/10, 250*time.Millisecond)
	return d + time.Duration(l.rng.Int64N(int64(span)))
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}
