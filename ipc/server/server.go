package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/quotabar/quotabar/internal/notify"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// Fallback is the app's web-fallback manager, as the server sees it. Its
// methods are called from request goroutines concurrently. An error that is
// an *APIError is answered with its status and code; any other error is a
// 500.
type Fallback interface {
	// Info tells whether service has a web fallback configured.
	Info(service string) (wire.FallbackInfo, bool)
	SetEnabled(service string, enabled bool) (wire.FallbackInfo, error)
	Open(ctx context.Context, service, agent string) (wire.OpenResult, error)
	Close(ctx context.Context, service string, req wire.CloseRequest) error
}

// Cluster tells how a shared service stands with the cluster (package
// cluster); ok is false for a service that is not shared.
type Cluster interface {
	ClusterStatus(service string) (st wire.ClusterStatus, ok bool)
}

// Config configures New.
type Config struct {
	Limiter  *limiter.Limiter // required
	Fallback Fallback         // nil: no service has a web fallback
	Cluster  Cluster          // nil: no service is shared
	Version  string           // "" means wire.Version
	Logger   *slog.Logger     // nil means slog.Default()
	// Persist, when set, runs after a person's change made through the API
	// (a service's pause, an agent's pause or priority) is applied and
	// before it is answered: the daemon saves its state there, so that a
	// change answered 200 survives a crash (API.md). An error is answered
	// 500 with its message; the change stays applied until a restart. The
	// fallback switch is saved by the Fallback itself.
	Persist func() error
}

const (
	maxBody        = 64 << 10
	defaultWait    = 60 * time.Second
	maxWait        = 600 * time.Second
	eventInterval  = time.Second / 4 // API.md: at most 4 events a second
	eventRecheck   = time.Second     // catch changes that come with time alone
	writeTimeout   = 10 * time.Second
	readHdrTimeout = 10 * time.Second
)

// Server answers API.md over HTTP. Create it with NewServer; it is safe for
// concurrent use.
type Server struct {
	lim     *limiter.Limiter
	fb      Fallback
	cl      Cluster
	persist func() error
	version string
	log     *slog.Logger
	mux     *http.ServeMux
	hs      *http.Server

	closing   chan struct{} // closed by Shutdown
	closeOnce sync.Once
	// ctx ends at Shutdown; every waiting acquire waits under it.
	ctx    context.Context
	cancel context.CancelFunc

	changed notify.Hub
	fwdOnce sync.Once
}

// New returns a server for cfg.Limiter with every route of docs/API.md; add
// extensions with Handle before calling Serve, which does not change routes.
func New(cfg Config) *Server {
	if cfg.Limiter == nil {
		panic("server: New without a Limiter")
	}
	s := &Server{
		lim:     cfg.Limiter,
		fb:      cfg.Fallback,
		cl:      cfg.Cluster,
		persist: cfg.Persist,
		version: cfg.Version,
		log:     cfg.Logger,
		mux:     http.NewServeMux(),
		closing: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.version == "" {
		s.version = wire.Version
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHdrTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxBody,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mux.HandleFunc("POST /v1/acquire", s.handleAcquire)
	s.mux.HandleFunc("POST /v1/report", s.handleReport)
	s.mux.HandleFunc("GET /v1/status", s.handleStatus)
	s.mux.HandleFunc("PUT /v1/services/{name}", s.handleService)
	s.mux.HandleFunc("POST /v1/services/{name}/reset", s.handleReset)
	s.mux.HandleFunc("PUT /v1/agents/{name}", s.handleAgent)
	s.mux.HandleFunc("PUT /v1/services/{name}/fallback", s.handleFallbackSwitch)
	s.mux.HandleFunc("POST /v1/services/{name}/fallback/open", s.handleFallbackOpen)
	s.mux.HandleFunc("POST /v1/services/{name}/fallback/close", s.handleFallbackClose)
	s.mux.HandleFunc("GET /v1/events", s.handleEvents)
	s.mux.HandleFunc("GET /v1/health", s.handleHealth)
	return s
}

// Handle adds a route (a Go ServeMux pattern, e.g. "GET /v1/thing") for an
// extension of the API. The route gets the same checks as the built-in ones:
// peer uid, no Origin or Referer, bodies up to 64 KiB, JSON errors for 404
// and 405. Add every route before Serve: a route added later would answer
// 404 to the requests that came first.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Serve answers requests on ln until Shutdown; ln should come from
// socket.Listen, whose refusals of other users it then logs. It returns
// http.ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if l, ok := ln.(interface{ SetLogger(*slog.Logger) }); ok {
		l.SetLogger(s.log)
	}
	return s.hs.Serve(ln)
}

// Shutdown stops accepting connections, answers every waiting acquire 503
// shutting_down (the limiter withdraws them), ends event streams, and waits
// for the answers to be written; when ctx ends first, it closes the
// connections that are left and returns ctx's error. Closing the listener
// removes the socket file. The limiter is the caller's: Shutdown does not
// close it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.cancel()
	})
	err := s.hs.Shutdown(ctx)
	if err != nil {
		s.hs.Close()
	}
	return err
}

// ServeHTTP applies the checks every route shares, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		writeError(w, http.StatusForbidden, wire.CodeForbidden,
			"requests with an Origin or Referer header are refused: a web page may not drive quotabar")
		return
	}
	if r.ContentLength > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			fmt.Sprintf("the request body is %d bytes; at most %d are allowed", r.ContentLength, maxBody))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// noRoute answers 404 or 405 with the JSON error body; ServeMux's own
// answers are plain text.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	rec := &headerRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	if rec.code == http.StatusMethodNotAllowed {
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound,
		fmt.Sprintf("no endpoint %s %s; the API is described in API.md (e.g. POST /v1/acquire, GET /v1/status)", r.Method, r.URL.Path))
}

// headerRecorder keeps the status and headers a ServeMux error handler
// writes and drops its plain-text body.
type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header         { return h.header }
func (h *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}

// Changed returns a channel that receives (without blocking the sender) when
// the status may have changed, and a function that stops it. Used by the
// event stream and the tray.
func (s *Server) Changed() (<-chan struct{}, func()) {
	s.fwdOnce.Do(s.forwardLimiter)
	return s.changed.Subscribe()
}

// Notify tells Changed's subscribers that the status may have changed. The
// server calls it for changes it makes; the app calls it for fallback changes
// made elsewhere (the menu).
func (s *Server) Notify() { s.changed.Notify() }

// forwardLimiter relays the limiter's change notifications to Changed's
// subscribers until Shutdown.
func (s *Server) forwardLimiter() {
	ch, stop := s.lim.Subscribe()
	go func() {
		defer stop()
		for {
			select {
			case <-ch:
				s.Notify()
			case <-s.closing:
				return
			}
		}
	}()
}

// Status returns the /v1/status body.
func (s *Server) Status() wire.StatusResponse {
	st := s.lim.Status()
	out := wire.StatusResponse{
		Version:  s.version,
		Services: make([]wire.ServiceStatus, 0, len(st.Services)),
		Agents:   make([]wire.AgentStatus, 0, len(st.Agents)),
	}
	for _, svc := range st.Services {
		out.Services = append(out.Services, s.serviceStatus(svc))
	}
	for _, a := range st.Agents {
		out.Agents = append(out.Agents, agentStatus(a))
	}
	return out
}

func (s *Server) serviceStatus(svc limiter.ServiceStatus) wire.ServiceStatus {
	out := wire.ServiceStatus{
		Name:          svc.Name,
		Paused:        svc.Paused,
		Limits:        make([]wire.LimitStatus, 0, len(svc.Limits)),
		MaxConcurrent: svc.MaxConcurrent,
		InFlight:      svc.InFlight,
		Queued:        svc.Queued,
		CooldownUntil: timePtr(svc.CooldownUntil),
		Counters:      wire.Counters{Granted: svc.Granted, Refused: svc.Refused, Provider429: svc.Provider429},
		ReserveHigh:   svc.ReserveHigh,
		Windows:       windowStatus(svc.Windows),
	}
	for _, l := range svc.Limits {
		out.Limits = append(out.Limits, wire.LimitStatus{
			Unit:      string(l.Unit),
			Quota:     l.Quota,
			WindowMS:  l.Window.Milliseconds(),
			Remaining: l.Remaining,
			ResetsAt:  timePtr(l.ResetsAt),
			Source:    l.Source,
		})
	}
	if s.fb != nil {
		if info, ok := s.fb.Info(svc.Name); ok {
			out.Fallback = &info
		}
	}
	if s.cl != nil {
		if cs, ok := s.cl.ClusterStatus(svc.Name); ok {
			out.Cluster = &cs
		}
	}
	return out
}

func agentStatus(a limiter.AgentStatus) wire.AgentStatus {
	return wire.AgentStatus{
		Name:     a.Name,
		Priority: priorityName(a.Priority),
		Weight:   a.Weight,
		Paused:   a.Paused,
		LastSeen: timePtr(a.LastSeen),
		InFlight: a.InFlight,
		Queued:   a.Queued,
		Counters: wire.AgentCounters{Granted: a.Granted, Refused: a.Refused},
	}
}

// priorityName is the wire name of an agent's priority.
func priorityName(p limiter.Priority) string {
	if p == limiter.PriorityUnset {
		return limiter.Normal.String()
	}
	return p.String()
}

// parsePriority is limiter.ParsePriority with the field named in the error.
// On the wire a priority that is present must name one: "" is refused.
func parsePriority(field, s string) (limiter.Priority, error) {
	p, err := limiter.ParsePriority(s)
	if err != nil || p == limiter.PriorityUnset {
		return 0, badRequest("%s %q is not a priority; allowed: high, normal, low", field, truncate(s))
	}
	return p, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// serviceNames lists the configured services, for messages.
func (s *Server) serviceNames() string {
	st := s.lim.Status()
	names := make([]string, 0, len(st.Services))
	for _, svc := range st.Services {
		names = append(names, svc.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// findService returns the status of one service or an unknown_service error.
func (s *Server) findService(name string) (limiter.ServiceStatus, error) {
	for _, svc := range s.lim.Status().Services {
		if svc.Name == name {
			return svc, nil
		}
	}
	return limiter.ServiceStatus{}, wire.Errorf(wire.CodeUnknownService,
		"service %q is not configured; configured: %s", name, s.serviceNames())
}

// apiError turns any error into the status, code and message to answer.
func (s *Server) apiError(err error) *wire.APIError {
	var ae *wire.APIError
	if errors.As(err, &ae) {
		return ae
	}
	var le *limiter.Error
	if errors.As(err, &le) {
		// The limiter's codes are a subset of the wire's, spelled alike.
		code := wire.Code(le.Code)
		return &wire.APIError{Status: code.HTTPStatus(), Code: code, Message: le.Message}
	}
	s.log.Error("server: internal error", "err", err)
	return &wire.APIError{Status: http.StatusInternalServerError, Code: wire.CodeInternal, Message: err.Error()}
}
