package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

func (s *Server) handleAcquire(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Agent     string                     `json:"agent"`
		Service   string                     `json:"service"`
		Cost      map[string]json.RawMessage `json:"cost"`
		Priority  *string                    `json:"priority"`
		MaxWaitMS *int64                     `json:"max_wait_ms"`
	}
	if !s.decode(w, r, &body, true) {
		return
	}
	req := limiter.Request{Agent: body.Agent, Service: body.Service, MaxWait: defaultWait}
	err := errors.Join(checkName("agent", body.Agent, true), checkName("service", body.Service, true))
	if err == nil {
		req.Cost, err = parseCost("cost", body.Cost)
	}
	if err == nil && body.Priority != nil {
		req.Priority, err = parsePriority("priority", *body.Priority)
	}
	if err == nil && body.MaxWaitMS != nil {
		if ms := *body.MaxWaitMS; ms < 0 || ms > maxWait.Milliseconds() {
			err = badRequest("max_wait_ms is %d; allowed: 0 (answer at once) to %d", ms, maxWait.Milliseconds())
		} else {
			req.MaxWait = time.Duration(ms) * time.Millisecond
		}
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// A waiting acquire ends when its client goes away or when the server
	// shuts down; the limiter withdraws it either way and it consumes
	// nothing.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	lease, err := s.lim.Acquire(ctx, req)
	var refused *limiter.RefusedError
	switch {
	case err == nil:
		WriteJSON(w, http.StatusOK, wire.AcquireResponse{
			Granted:        true,
			Lease:          lease.ID,
			WaitedMS:       lease.Waited.Milliseconds(),
			LeaseExpiresAt: lease.ExpiresAt.UTC(),
		})
	case errors.As(err, &refused):
		s.writeRefusal(w, req.Service, refused)
	case r.Context().Err() != nil:
		// The client went away and the limiter withdrew the request;
		// nobody reads an answer.
	case s.ctx.Err() != nil:
		s.writeErr(w, wire.Errorf(wire.CodeShuttingDown, "quotabar is shutting down; ask again when it is back"))
	default:
		s.writeErr(w, err)
	}
}

func (s *Server) writeRefusal(w http.ResponseWriter, service string, e *limiter.RefusedError) {
	ms := ceilDiv(int64(e.RetryAfter), int64(time.Millisecond))
	secs := ceilDiv(int64(e.RetryAfter), int64(time.Second))
	body := wire.RefusalResponse{Reason: wire.Reason(e.Reason), RetryAfterMS: max(ms, 0)}
	if s.fb != nil {
		if info, ok := s.fb.Info(service); ok {
			body.Fallback = &wire.FallbackRef{Enabled: info.Enabled, Open: "/v1/services/" + service + "/fallback/open"}
		}
	}
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 0), 10))
	WriteJSON(w, http.StatusTooManyRequests, body)
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Lease   string                     `json:"lease"`
		Agent   string                     `json:"agent"`
		Service string                     `json:"service"`
		Status  *int                       `json:"status"`
		Headers map[string]string          `json:"headers"`
		Usage   map[string]json.RawMessage `json:"usage"`
		// ErrorBody is the body of a refusal (windows.go).
		ErrorBody string `json:"error_body"`
	}
	if !s.decode(w, r, &body, true) {
		return
	}
	needNames := body.Lease == ""
	rep := limiter.Report{Lease: body.Lease, Agent: body.Agent, Service: body.Service, Header: body.Headers}
	if body.ErrorBody != "" {
		rep.Body = []byte(body.ErrorBody)
	}
	err := errors.Join(checkName("agent", body.Agent, needNames), checkName("service", body.Service, needNames))
	if err == nil && body.Status != nil {
		if st := *body.Status; st != 0 && (st < 100 || st > 599) {
			err = badRequest("status is %d; allowed: an HTTP status from 100 to 599, or 0 when unknown", st)
		} else {
			rep.Status = st
		}
	}
	if err == nil && body.Usage != nil {
		rep.Usage, err = parseCost("usage", body.Usage)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	res, err := s.lim.Report(rep)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	out := wire.ReportResponse{OK: true, CooldownUntil: timePtr(res.CooldownUntil)}
	if res.RetryAfter > 0 || rep.Status == http.StatusTooManyRequests || rep.Status == http.StatusServiceUnavailable {
		ms := ceilDiv(int64(res.RetryAfter), int64(time.Millisecond))
		out.RetryAfterMS = &ms
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, s.Status())
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, wire.HealthResponse{OK: true, Version: s.version})
}

// handleReset clears what the provider's answers left on a service (its
// cooldown and the limits learned from headers): the person's way out of
// an answer that froze the service. It is a person's change, so it is
// durable before it is answered.
func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.decode(w, r, &struct{}{}, false) {
		return
	}
	err := checkName("service name in the path", name, true)
	if err == nil {
		if _, err = s.findService(name); err == nil {
			err = s.lim.Reset(name)
		}
	}
	if err == nil {
		s.Notify()
		err = s.persistChange()
	}
	var st limiter.ServiceStatus
	if err == nil {
		st, err = s.findService(name)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.log.Info("reset: cooldown and learned limits cleared", "service", name)
	WriteJSON(w, http.StatusOK, s.serviceStatus(st))
}

func (s *Server) handleService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body wire.ServiceUpdate
	if !s.decode(w, r, &body, true) {
		return
	}
	if err := checkName("service name in the path", name, true); err != nil {
		s.writeErr(w, err)
		return
	}
	var st limiter.ServiceStatus
	var err error
	if body.Paused != nil {
		st, err = s.lim.SetServicePaused(name, *body.Paused)
		s.Notify()
		if err == nil {
			err = s.persistChange()
		}
	} else {
		st, err = s.findService(name)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, s.serviceStatus(st))
}

func (s *Server) handleAgent(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var body struct {
		Paused   *bool   `json:"paused"`
		Priority *string `json:"priority"`
	}
	if !s.decode(w, r, &body, true) {
		return
	}
	u := limiter.AgentUpdate{Paused: body.Paused}
	err := checkName("agent name in the path", name, true)
	if err == nil && body.Priority != nil {
		var p limiter.Priority
		p, err = parsePriority("priority", *body.Priority)
		u.Priority = &p
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	st, err := s.lim.UpdateAgent(name, u)
	if err == nil {
		s.Notify()
		err = s.persistChange()
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, agentStatus(st))
}

// fallbackService validates the {name} of a fallback route and returns it
// when the service exists and has a fallback configured.
func (s *Server) fallbackService(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := checkName("service name in the path", name, true); err != nil {
		return "", err
	}
	if _, err := s.findService(name); err != nil {
		return "", err
	}
	if s.fb == nil {
		return "", &wire.APIError{Status: http.StatusNotFound, Code: "not_found",
			Message: "this quotabar runs without web fallbacks, so service " + strconv.Quote(name) + " has none"}
	}
	if _, ok := s.fb.Info(name); !ok {
		return "", &wire.APIError{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("service %q has no web fallback configured; add fallback = { browser = \"chrome\", url = \"...\" } to its section of the config file", name)}
	}
	return name, nil
}

func (s *Server) handleFallbackSwitch(w http.ResponseWriter, r *http.Request) {
	var body wire.FallbackUpdate
	if !s.decode(w, r, &body, true) {
		return
	}
	name, err := s.fallbackService(r)
	if err == nil && body.Enabled == nil {
		err = badRequest("enabled is required: true or false")
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	info, err := s.fb.SetEnabled(name, *body.Enabled)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.Notify()
	WriteJSON(w, http.StatusOK, info)
}

func (s *Server) handleFallbackOpen(w http.ResponseWriter, r *http.Request) {
	var body wire.OpenRequest
	if !s.decode(w, r, &body, false) {
		return
	}
	name, err := s.fallbackService(r)
	if err == nil {
		err = checkName("agent", body.Agent, false)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	res, err := s.fb.Open(r.Context(), name, body.Agent)
	s.Notify()
	if err != nil {
		s.writeErr(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, res)
}

func (s *Server) handleFallbackClose(w http.ResponseWriter, r *http.Request) {
	var body wire.CloseRequest
	if !s.decode(w, r, &body, false) {
		return
	}
	name, err := s.fallbackService(r)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	err = s.fb.Close(r.Context(), name, body)
	s.Notify()
	if err != nil {
		s.writeErr(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, wire.OKResponse{OK: true})
}

// decode reads the JSON object in r's body into v. Unknown fields are
// ignored. An empty body is an error when required, else it leaves v zero.
// On failure it has answered and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, required bool) bool {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
				fmt.Sprintf("the request body is over %d bytes; at most %d are allowed", tooBig.Limit, tooBig.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "reading the request body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if !required {
			return true
		}
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, "the request body is empty; send a JSON object")
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeBadRequest, jsonMessage(err))
		return false
	}
	return true
}

// jsonMessage explains a decoding error in terms of the request's fields.
func jsonMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the body is not valid JSON (at byte %d: %v)", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, kindName(typ.Type), typ.Value)
	}
	return "the body is not valid JSON: " + err.Error()
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "a " + t.String()
}

func checkName(field, name string, required bool) error {
	if name == "" {
		if required {
			return badRequest("%s is required: 1 to 64 characters of A-Z a-z 0-9 . _ -", field)
		}
		return nil
	}
	if limiter.ValidName(name) != nil {
		return badRequest("%s %q is not a valid name; allowed: 1 to 64 characters of A-Z a-z 0-9 . _ -", field, truncate(name))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// parseCost checks every value of a cost object and keeps the units the
// limiter knows; other units are accepted and ignored, as API.md says.
func parseCost(field string, raw map[string]json.RawMessage) (limiter.Cost, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	cost := make(limiter.Cost, len(raw))
	for unit, v := range raw {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if errors.Is(err, strconv.ErrRange) && field == "usage" && isDigits(v) {
			// A provider's usage past int64 is nonsense, but the call
			// ran: the report must still end its lease. The limiter
			// bounds what a usage may charge.
			n, err = math.MaxInt64, nil
		}
		if err != nil || n < 0 {
			return nil, badRequest("%s.%s is %s; allowed: a non-negative integer up to %d", field, unit, truncate(string(v)), int64(math.MaxInt64))
		}
		if known(limiter.Unit(unit)) {
			cost[limiter.Unit(unit)] = n
		}
	}
	return cost, nil
}

// isDigits reports whether v is a JSON integer without sign or exponent.
func isDigits(v []byte) bool {
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(v) > 0
}

func known(u limiter.Unit) bool {
	for _, k := range limiter.Units {
		if u == k {
			return true
		}
	}
	return false
}

func badRequest(format string, args ...any) error {
	return wire.Errorf(wire.CodeBadRequest, format, args...)
}

// persistChange makes a person's change durable before it is answered
// (Config.Persist).
func (s *Server) persistChange() error {
	if s.persist == nil {
		return nil
	}
	return s.persist()
}

func (s *Server) writeErr(w http.ResponseWriter, err error) {
	ae := s.apiError(err)
	writeError(w, ae.Status, ae.Code, ae.Message)
}

func writeError(w http.ResponseWriter, status int, code wire.Code, message string) {
	WriteJSON(w, status, wire.ErrorResponse{Error: wire.ErrorBody{Code: code, Message: message}})
}

// WriteJSON answers v as JSON with status, for the handlers of extension
// routes (Server.Handle). v must be one of the wire types: a value that
// cannot be marshalled is a bug and panics.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled; this is a bug, not input.
		panic(fmt.Sprintf("server: marshal %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}
