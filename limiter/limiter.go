package limiter

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the Limiter itself: construction, reconfiguration,
// subscriptions and shutdown. The rules of behaviour live in the files named
// for them (see doc.go).

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
	// nextSweep is when sweepAgents next looks for agents to forget.
	nextSweep time.Time
	closed    bool
	subs      map[int]chan struct{}
	nextSub   int
	// dialects maps each configured service to its dialect, for parsing
	// a report's headers before the lock is taken; apply replaces it.
	dialects atomic.Pointer[map[string]Dialect]
	// parse reads provider headers; tests replace it to inject observations.
	parse func(dialect Dialect, h map[string]string, now time.Time) Observation
	// log hears what the limiter ignored in providers' answers, and why.
	log *slog.Logger
}

// Option configures New.
type Option func(*options)

type options struct {
	clock Clock
	log   *slog.Logger
}

// WithClock injects the clock (tests use a fake one).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithLogger sets where the limiter says what it ignored in providers'
// answers (an absurd reset, a garbled utilization) and why; without it,
// slog.Default(). Nothing it logs comes from a request: no credential can
// reach it.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

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
	if o.log == nil {
		o.log = slog.Default()
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
		log:      o.log,
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
	dialects := make(map[string]Dialect, len(cfg.Services))
	for _, sc := range cfg.Services {
		dialects[sc.Name] = sc.Dialect
	}
	l.dialects.Store(&dialects)
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
			a.configured = false
			before := a.priority()
			a.cfg = AgentConfig{Name: name}
			a.caps = rebuildLedgers(now, a.caps, nil, 0, false)
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
		a.configured = true
		a.caps = rebuildLedgers(now, a.caps, ac.Limits, 0, false)
		if a.priority() != before {
			l.requeueAgent(a)
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

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}
