package webfallback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// clientQueue is how many messages a client may have waiting before it is
// dropped: one slow agent must not stall the browser for the others.
const clientQueue = 4096

// errMuxClosed is the error of a client whose browser pipe is gone.
var errMuxClosed = errors.New("the browser's DevTools pipe is closed")

// cdpMux shares the one DevTools pipe of a Chrome started with
// --remote-debugging-pipe between many clients: the Manager itself and the
// agents that attach through the relay. Each client gets a session of its
// own on the browser target (Target.attachToBrowserTarget) or on one page
// (Target.attachToTarget, flat), so that its discovery and auto-attach
// settings and its events are its own. Command ids are renumbered so that
// clients cannot collide, and messages of a session go only to the client
// that owns it.
type cdpMux struct {
	conn *chromedp.PipeConn
	log  *slog.Logger
	done chan struct{} // closed when the pipe fails: the browser is gone

	mu       sync.Mutex
	next     int64
	pending  map[int64]pendingCall
	sessions map[target.SessionID]*muxClient
	clients  map[*muxClient]struct{}
	closed   bool
}

// pendingCall is a command on its way to the browser: from a client (reply
// goes back under its own id) or from the mux itself (reply on own).
type pendingCall struct {
	client *muxClient
	id     int64
	method cdproto.MethodType
	own    chan *cdproto.Message
}

// muxClient is one connection to the browser through the mux.
type muxClient struct {
	m    *cdpMux
	root target.SessionID // messages without a session id go to this session
	out  chan *cdproto.Message
	// gone is closed when the client is closed, by itself or by the mux.
	gone      chan struct{}
	closeOnce sync.Once
	// onMessage, if set, is called for every message the client sends
	// (idle accounting).
	onMessage func()
}

func newCDPMux(conn *chromedp.PipeConn, log *slog.Logger) *cdpMux {
	m := &cdpMux{
		conn:     conn,
		log:      log,
		done:     make(chan struct{}),
		pending:  map[int64]pendingCall{},
		sessions: map[target.SessionID]*muxClient{},
		clients:  map[*muxClient]struct{}{},
	}
	go m.read()
	return m
}

// read routes everything the browser writes until the pipe ends.
func (m *cdpMux) read() {
	defer m.shut()
	for {
		msg := new(cdproto.Message)
		if err := m.conn.Read(context.Background(), msg); err != nil {
			m.log.Info("devtools pipe ended", "err", err)
			return
		}
		m.route(msg)
	}
}

func (m *cdpMux) route(msg *cdproto.Message) {
	m.mu.Lock()
	if msg.ID != 0 {
		pc, ok := m.pending[msg.ID]
		delete(m.pending, msg.ID)
		if !ok {
			m.mu.Unlock()
			return
		}
		if pc.own != nil {
			m.mu.Unlock()
			pc.own <- msg
			return
		}
		c := pc.client
		if msg.Error == nil && (pc.method == target.CommandAttachToTarget || pc.method == target.CommandAttachToBrowserTarget) {
			var res target.AttachToTargetResult
			if jsonv2.Unmarshal(msg.Result, &res) == nil && res.SessionID != "" {
				m.sessions[res.SessionID] = c
			}
		}
		m.mu.Unlock()
		msg.ID = pc.id
		c.deliver(msg)
		return
	}
	c := m.sessions[msg.SessionID]
	if c != nil {
		switch msg.Method {
		case cdproto.EventTargetAttachedToTarget:
			var ev target.EventAttachedToTarget
			if jsonv2.Unmarshal(msg.Params, &ev) == nil && ev.SessionID != "" {
				m.sessions[ev.SessionID] = c
			}
		case cdproto.EventTargetDetachedFromTarget:
			var ev target.EventDetachedFromTarget
			if jsonv2.Unmarshal(msg.Params, &ev) == nil && ev.SessionID != c.root {
				delete(m.sessions, ev.SessionID)
			}
		}
	}
	m.mu.Unlock()
	if c == nil {
		// Root events belong to nobody: no client enables anything there.
		return
	}
	c.deliver(msg)
}

// deliver hands msg to the client, without the client's root session id,
// which the client does not know. A client that does not keep up is closed.
func (c *muxClient) deliver(msg *cdproto.Message) {
	if msg.SessionID == c.root {
		msg.SessionID = ""
	}
	select {
	case c.out <- msg:
	case <-c.gone:
	default:
		c.m.log.Warn("devtools client does not read its messages; disconnecting it")
		c.close()
	}
}

// shut ends every client once the pipe is gone.
func (m *cdpMux) shut() {
	m.mu.Lock()
	m.closed = true
	clients := make([]*muxClient, 0, len(m.clients))
	for c := range m.clients {
		clients = append(clients, c)
	}
	for id, pc := range m.pending {
		if pc.own != nil {
			close(pc.own)
		}
		delete(m.pending, id)
	}
	m.mu.Unlock()
	for _, c := range clients {
		c.close()
	}
	close(m.done)
	m.conn.Close()
}

// call sends a command of the mux itself on the root of the pipe (or in
// session sid) and returns its result.
func (m *cdpMux) call(ctx context.Context, sid target.SessionID, method cdproto.MethodType, params, res any) error {
	var raw jsonv2.Value
	if params != nil {
		b, err := jsonv2.Marshal(params)
		if err != nil {
			return err
		}
		raw = b
	}
	own := make(chan *cdproto.Message, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errMuxClosed
	}
	m.next++
	id := m.next
	m.pending[id] = pendingCall{own: own, method: method}
	m.mu.Unlock()
	if err := m.conn.Write(ctx, &cdproto.Message{ID: id, SessionID: sid, Method: method, Params: raw}); err != nil {
		m.forget(id)
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case msg, ok := <-own:
		if !ok {
			return errMuxClosed
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %w", method, msg.Error)
		}
		if res != nil && len(msg.Result) > 0 {
			return jsonv2.Unmarshal(msg.Result, res)
		}
		return nil
	case <-ctx.Done():
		m.forget(id)
		return ctx.Err()
	}
}

func (m *cdpMux) forget(id int64) {
	m.mu.Lock()
	delete(m.pending, id)
	m.mu.Unlock()
}

// attach makes a client with a session of its own: on the browser target
// when page is "", else on that page target.
func (m *cdpMux) attach(ctx context.Context, page target.ID) (*muxClient, error) {
	var res target.AttachToTargetResult
	var err error
	if page == "" {
		err = m.call(ctx, "", target.CommandAttachToBrowserTarget, nil, &res)
	} else {
		flat := true
		err = m.call(ctx, "", target.CommandAttachToTarget, target.AttachToTargetParams{TargetID: page, Flatten: &flat}, &res)
	}
	if err != nil {
		return nil, err
	}
	c := &muxClient{m: m, root: res.SessionID, out: make(chan *cdproto.Message, clientQueue), gone: make(chan struct{})}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errMuxClosed
	}
	m.sessions[c.root] = c
	m.clients[c] = struct{}{}
	m.mu.Unlock()
	return c, nil
}

// send forwards a message of the client to the browser under a fresh id. A
// session id the client does not own is refused: sessions of other clients
// are theirs.
func (c *muxClient) send(ctx context.Context, msg *cdproto.Message) error {
	if c.onMessage != nil {
		c.onMessage()
	}
	m := c.m
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errMuxClosed
	}
	sid := msg.SessionID
	if sid == "" {
		sid = c.root
	} else if m.sessions[sid] != c {
		m.mu.Unlock()
		c.deliver(&cdproto.Message{ID: msg.ID, SessionID: msg.SessionID, Error: &cdproto.Error{Code: -32001, Message: "Session with given id not found."}})
		return nil
	}
	m.next++
	id := m.next
	m.pending[id] = pendingCall{client: c, id: msg.ID, method: msg.Method}
	m.mu.Unlock()
	return m.conn.Write(ctx, &cdproto.Message{ID: id, SessionID: sid, Method: msg.Method, Params: msg.Params})
}

// close detaches the client's sessions and forgets the client. Safe to call
// more than once and from any goroutine.
func (c *muxClient) close() {
	c.closeOnce.Do(func() {
		close(c.gone)
		m := c.m
		m.mu.Lock()
		delete(m.clients, c)
		for sid, owner := range m.sessions {
			if owner == c {
				delete(m.sessions, sid)
			}
		}
		for id, pc := range m.pending {
			if pc.client == c {
				delete(m.pending, id)
			}
		}
		closed := m.closed
		m.mu.Unlock()
		if closed {
			return
		}
		// Detaching the root session ends its child sessions too; an agent
		// that detached itself already makes this an error we ignore.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), probeWait)
			defer cancel()
			_ = m.call(ctx, "", target.CommandDetachFromTarget, target.DetachFromTargetParams{SessionID: c.root}, nil)
		}()
	})
}

// transport is the client as a chromedp.Transport, for the Manager's own
// chromedp.Browser.
type muxTransport struct{ c *muxClient }

func (t muxTransport) Read(ctx context.Context, msg *cdproto.Message) error {
	select {
	case m := <-t.c.out:
		*msg = *m
		return nil
	case <-t.c.gone:
		// Hand over what arrived before the end.
		select {
		case m := <-t.c.out:
			*msg = *m
			return nil
		default:
		}
		return errMuxClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t muxTransport) Write(ctx context.Context, msg *cdproto.Message) error {
	return t.c.send(ctx, msg)
}

func (t muxTransport) Close() error {
	t.c.close()
	return nil
}
