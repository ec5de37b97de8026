package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/quotabar/quotabar/limiter"
)

// A Responses API WebSocket (OpenAI's GET /v1/responses upgrade, which
// Codex opens first) carries every model call of a session: the client
// sends {"type":"response.create", ...} and the server streams that
// response's events back, up to a terminal one (response.completed,
// response.failed, response.incomplete, or an error event with a status).
// The proxy meters each call on the socket as it meters an HTTP call: a
// permit is acquired before the response.create is forwarded (so the
// socket's next call waits out a cooldown or a pause, up to max_wait), and
// the call is reported, with its usage, when its terminal event passes.
// The upgrade itself is free: a refused upgrade costs nothing, although the
// provider's status and headers are still observed.

// wsDialTimeout bounds the upstream handshake.
const wsDialTimeout = 30 * time.Second

// wsReadLimit is the largest message read on either side: a
// response.create carries the whole conversation.
const wsReadLimit = MaxBody

type wsCall struct {
	agent, service string
	prio           limiter.Priority
	target         *url.URL
	reserve        Reservation
	log            *slog.Logger
}

// isWebSocket reports whether r asks for a WebSocket upgrade.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// wsDropRequest are the request headers not passed upstream: the
// handshake's own (the upstream handshake makes its own), hop-by-hop ones,
// and those that would leak the token or the proxy.
var wsDropRequest = []string{
	"Connection", "Upgrade", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions",
	"Sec-Websocket-Protocol", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer",
	"Transfer-Encoding", "Content-Length", "Host", "Referer", "Origin", "Accept-Encoding", PriorityHeader,
}

// wsDropResponse are the upstream handshake's headers not passed back.
var wsDropResponse = []string{
	"Connection", "Upgrade", "Sec-Websocket-Accept", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol",
	"Keep-Alive", "Transfer-Encoding", "Content-Length", "Date",
}

func (p *Proxy) serveWebSocket(w http.ResponseWriter, r *http.Request, c wsCall) {
	u := *c.target
	u.RawQuery = r.URL.RawQuery
	hdr := r.Header.Clone()
	for _, k := range wsDropRequest {
		hdr.Del(k)
	}
	var subprotocols []string
	for _, v := range r.Header.Values("Sec-Websocket-Protocol") {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				subprotocols = append(subprotocols, s)
			}
		}
	}
	dctx, cancel := context.WithTimeout(r.Context(), wsDialTimeout)
	defer cancel()
	up, res, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: p.tr},
		HTTPHeader:   hdr,
		Subprotocols: subprotocols,
	})
	if err != nil {
		if res == nil || res.StatusCode == http.StatusSwitchingProtocols {
			writeError(w, http.StatusBadGateway, "upstream_unreachable",
				fmt.Sprintf("quotabar proxy: cannot open a WebSocket to %s: %v", u.Host, err), 0)
			return
		}
		// A refused upgrade: the provider's answer reaches the client and
		// the limiter (a 429 starts a cooldown), and nothing is charged.
		if _, err := p.lim.Observe(limiter.Report{Agent: c.agent, Service: c.service, Status: res.StatusCode, Header: limitHeaders(res.Header)}); err != nil {
			c.log.Debug("proxy: observe a refused upgrade", "error", err)
		}
		c.log.Info("proxy: upstream refused the WebSocket upgrade", "status", res.StatusCode)
		for k, vs := range res.Header {
			if k == "Content-Length" || k == "Connection" || k == "Transfer-Encoding" {
				continue
			}
			w.Header()[k] = vs
		}
		w.WriteHeader(res.StatusCode)
		if res.Body != nil {
			io.Copy(w, res.Body)
		}
		return
	}
	defer up.CloseNow()
	up.SetReadLimit(wsReadLimit)
	if _, err := p.lim.Observe(limiter.Report{Agent: c.agent, Service: c.service, Status: 0, Header: limitHeaders(res.Header)}); err != nil {
		c.log.Debug("proxy: observe the upgrade", "error", err)
	}
	for k, vs := range res.Header {
		if !slicesContainsFold(wsDropResponse, k) {
			w.Header()[k] = vs
		}
	}
	var accepted []string
	if sp := up.Subprotocol(); sp != "" {
		accepted = []string{sp}
	}
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: accepted})
	if err != nil {
		c.log.Info("proxy: WebSocket accept failed", "error", err)
		return // Accept has answered
	}
	defer down.CloseNow()
	down.SetReadLimit(wsReadLimit)
	c.log.Debug("proxy: WebSocket open")

	s := &wsSession{p: p, c: c, up: up, down: down}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pump(ctx, up, down, s.fromUpstream)
		stop()
	}()
	s.pump(ctx, down, up, s.fromClient)
	stop()
	<-done
	s.endAll()
	c.log.Debug("proxy: WebSocket closed")
}

func slicesContainsFold(list []string, k string) bool {
	k = textproto.CanonicalMIMEHeaderKey(k)
	for _, s := range list {
		if textproto.CanonicalMIMEHeaderKey(s) == k {
			return true
		}
	}
	return false
}

// wsSession is one proxied WebSocket: the calls in flight on it, oldest
// first (a Responses socket answers its calls in order).
type wsSession struct {
	p    *Proxy
	c    wsCall
	up   *websocket.Conn
	down *websocket.Conn

	mu      sync.Mutex
	pending []*wsPending
	calls   int
}

type wsPending struct {
	lease limiter.Lease
	stop  func() // stops the lease's renewal
}

// pump copies messages from src to dst until either side ends, letting
// inspect see (and for the client's side hold or answer) each message
// first; the close code of src is passed on to dst. Messages are read
// ahead of inspect, so that a client that goes away while its call waits
// for a permit is noticed: the ctx inspect gets ends with src.
func (s *wsSession) pump(ctx context.Context, src, dst *websocket.Conn, inspect func(ctx context.Context, typ websocket.MessageType, msg []byte) (forward bool)) {
	srcCtx, srcGone := context.WithCancel(ctx)
	defer srcGone()
	type message struct {
		typ  websocket.MessageType
		data []byte
	}
	msgs := make(chan message, 16)
	var readErr error // set before msgs is closed
	go func() {
		defer close(msgs)
		for {
			typ, data, err := src.Read(ctx)
			if err != nil {
				readErr = err
				srcGone()
				return
			}
			select {
			case msgs <- message{typ, data}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for m := range msgs {
		if !inspect(srcCtx, m.typ, m.data) {
			continue
		}
		if err := dst.Write(ctx, m.typ, m.data); err != nil {
			src.Close(websocket.StatusGoingAway, "the other side went away")
			return
		}
	}
	code, reason := websocket.StatusGoingAway, "the other side went away"
	if st := websocket.CloseStatus(readErr); st != -1 {
		code, reason = st, ""
		var ce websocket.CloseError
		if errors.As(readErr, &ce) {
			reason = ce.Reason
		}
	}
	dst.Close(code, reason)
}

// fromClient meters a response.create: it waits for a permit, or answers
// the client with an error event the Responses clients read (status 429
// and a retry-after header) without forwarding the call.
func (s *wsSession) fromClient(ctx context.Context, typ websocket.MessageType, msg []byte) bool {
	if typ != websocket.MessageText || wsType(msg) != "response.create" {
		return true
	}
	req := limiter.Request{Agent: s.c.agent, Service: s.c.service, Cost: s.c.reserve.Estimate(msg), Priority: s.c.prio}
	deadline := time.Now().Add(time.Duration(s.p.maxWait.Load()))
	lease, err := s.p.acquire(ctx, &req, deadline, s.c.log)
	if err != nil {
		var ans *answer
		if errors.As(err, &ans) {
			s.down.Write(ctx, websocket.MessageText, wsErrorEvent(ans))
		}
		return false
	}
	s.mu.Lock()
	s.calls++
	s.pending = append(s.pending, &wsPending{lease: lease, stop: s.p.keepAlive(lease)})
	s.mu.Unlock()
	return true
}

// fromUpstream reports a call when its terminal event passes.
func (s *wsSession) fromUpstream(ctx context.Context, typ websocket.MessageType, msg []byte) bool {
	if typ != websocket.MessageText {
		return true
	}
	var status int
	var header map[string]string
	var usage limiter.Cost
	switch t := wsType(msg); t {
	case limiter.CodexEventType:
		s.p.observeWindows(s.c.agent, s.c.service, msg)
		return true
	case "response.completed", "response.incomplete", "response.failed", "response.done":
		status = http.StatusOK
		uw := &usageWatcher{}
		uw.object(msg)
		usage, _ = uw.Usage()
		if t == "response.failed" && bytes.Contains(msg, []byte(`"rate_limit_exceeded"`)) {
			status, usage = http.StatusTooManyRequests, refund
		}
	case "error":
		var ev struct {
			Status     int            `json:"status"`
			StatusCode int            `json:"status_code"`
			Headers    map[string]any `json:"headers"`
		}
		json.Unmarshal(msg, &ev)
		status = max(ev.Status, ev.StatusCode)
		if status < 400 {
			return true // not about a call
		}
		header = map[string]string{}
		for k, v := range ev.Headers {
			switch v := v.(type) {
			case string:
				header[strings.ToLower(k)] = v
			case float64:
				header[strings.ToLower(k)] = strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		if status < 500 {
			usage = refund
		}
	default:
		return true
	}
	s.mu.Lock()
	var pd *wsPending
	if len(s.pending) > 0 {
		pd, s.pending = s.pending[0], s.pending[1:]
	}
	s.mu.Unlock()
	if pd == nil {
		return true
	}
	pd.stop()
	a := &attempt{lease: pd.lease, status: status, header: toHeader(header)}
	if status >= 400 {
		a.errBody = msg // an error event says which window refused (windows.go)
	}
	s.p.report(a, usage)
	return true
}

// endAll reports the calls still in flight when the socket closed: their
// reservations stand, since their cost is unknown.
func (s *wsSession) endAll() {
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, pd := range pending {
		pd.stop()
		s.p.report(&attempt{lease: pd.lease}, nil)
	}
}

func toHeader(m map[string]string) http.Header {
	if m == nil {
		return nil
	}
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

// wsType is the "type" of a JSON message, "" when it has none.
func wsType(msg []byte) string {
	var m struct {
		Type string `json:"type"`
	}
	json.Unmarshal(msg, &m)
	return m.Type
}

// wsErrorEvent is a refusal as a Responses WebSocket error event, the shape
// Codex maps to an HTTP error with its status and headers.
func wsErrorEvent(a *answer) []byte {
	typ := "quotabar_error"
	if a.status == http.StatusTooManyRequests {
		typ = "rate_limit_error"
	}
	ev := map[string]any{
		"type":   "error",
		"status": a.status,
		"error":  map[string]string{"type": typ, "code": a.code, "message": a.msg},
	}
	if a.retryAfter > 0 {
		ev["headers"] = map[string]string{
			"retry-after":    retryAfterSeconds(a.retryAfter),
			"retry-after-ms": strconv.FormatInt(a.retryAfter.Milliseconds(), 10),
		}
	}
	b, _ := json.Marshal(ev)
	return b
}
