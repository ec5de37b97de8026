package webfallback

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/target"
	"github.com/coder/websocket"
)

// maxCDPMessage bounds one message from an agent; screenshots and large
// scripts fit, a runaway client does not take the daemon's memory.
const maxCDPMessage = 64 << 20

// cdpRelay serves the DevTools HTTP and WebSocket endpoints of one Chrome to
// agents, on 127.0.0.1, only under the secret path prefix of a grant:
//
//	/SECRET/json/version             the browser, with its webSocketDebuggerUrl
//	/SECRET/json, /SECRET/json/list  the page targets
//	/SECRET/devtools/browser/ID      the browser (chromedp, Playwright, Puppeteer)
//	/SECRET/devtools/page/TARGET     one page (raw CDP clients)
//
// Chrome itself has no port: it speaks only over the pipe that the mux owns,
// so this relay, which lives and dies with the daemon, is the only door.
type cdpRelay struct {
	mux       *cdpMux
	log       *slog.Logger
	ln        net.Listener
	srv       *http.Server
	port      string
	browserID string // not a secret: the last segment of the browser URL

	mu     sync.Mutex
	grants map[string]*grant
	// emptySince is when the last grant ended (or the relay started).
	emptySince time.Time
	closed     bool
}

// grant is what one Open handed out: a secret for the tab it opened.
// Connections made with the secret count as activity of the grant.
type grant struct {
	secret  string
	target  string
	last    time.Time
	clients map[*muxClient]struct{}
}

func newCDPRelay(mux *cdpMux, log *slog.Logger) (*cdpRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &cdpRelay{
		mux: mux, log: log, ln: ln,
		port:       portOfAddr(ln.Addr()),
		browserID:  newSecret()[:32],
		grants:     map[string]*grant{},
		emptySince: time.Now(),
	}
	r.srv = newRelayServer(ln, r, log)
	go func() {
		<-mux.done
		r.close()
	}()
	return r, nil
}

func portOfAddr(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// grantFor hands out a new secret for the tab target.
func (r *cdpRelay) grantFor(tgt string) string {
	g := &grant{secret: newSecret(), target: tgt, last: time.Now(), clients: map[*muxClient]struct{}{}}
	r.mu.Lock()
	r.grants[g.secret] = g
	r.mu.Unlock()
	return g.secret
}

// browserURL is the cdp_url of a grant.
func (r *cdpRelay) browserURL(secret string) string {
	return "ws://127.0.0.1:" + r.port + "/" + secret + "/devtools/browser/" + r.browserID
}

// revokeTarget ends the grants of a tab that closed and disconnects the
// agents that used them.
func (r *cdpRelay) revokeTarget(tgt string) {
	r.mu.Lock()
	var drop []*muxClient
	for s, g := range r.grants {
		if g.target == tgt {
			for c := range g.clients {
				drop = append(drop, c)
			}
			delete(r.grants, s)
		}
	}
	if len(r.grants) == 0 && len(drop) > 0 {
		r.emptySince = time.Now()
	}
	r.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
}

// idleTargets returns the tabs whose grants saw no connection for d.
func (r *cdpRelay) idleTargets(now time.Time, d time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, g := range r.grants {
		if len(g.clients) == 0 && now.Sub(g.last) >= d {
			out = append(out, g.target)
		}
	}
	return out
}

// emptyFor reports whether the relay has had no grant for d.
func (r *cdpRelay) emptyFor(now time.Time, d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.grants) == 0 && now.Sub(r.emptySince) >= d
}

// lookup finds the grant of secret. Every grant is compared in constant
// time, so that the time of a refusal says nothing about the secrets.
func (r *cdpRelay) lookup(secret string) *grant {
	r.mu.Lock()
	defer r.mu.Unlock()
	var found *grant
	for s, g := range r.grants {
		if matchSecret(secret, s) {
			found = g
		}
	}
	return found
}

func (r *cdpRelay) touch(g *grant, c *muxClient, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.last = time.Now()
	if c == nil {
		return
	}
	if add {
		g.clients[c] = struct{}{}
	} else {
		delete(g.clients, c)
	}
}

func (r *cdpRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The secret comes first: nothing else of the request is looked at
	// before it matched.
	secret, rest := splitSecret(req.URL.Path)
	g := r.lookup(secret)
	if g == nil || !loopbackHost(req) {
		refuse(w)
		return
	}
	r.touch(g, nil, false)
	base := "ws://" + req.Host + "/" + secret
	switch {
	case rest == "/json/version" || rest == "/json/version/":
		r.serveVersion(w, req, base)
	case rest == "/json" || rest == "/json/" || rest == "/json/list" || rest == "/json/list/":
		r.serveList(w, req, base)
	case strings.HasPrefix(rest, "/devtools/browser"):
		r.serveWS(w, req, g, "")
	case strings.HasPrefix(rest, "/devtools/page/"):
		r.serveWS(w, req, g, target.ID(strings.TrimPrefix(rest, "/devtools/page/")))
	default:
		http.Error(w, "unknown DevTools endpoint; use /json/version, /json/list, /devtools/browser/… or /devtools/page/TARGET under this prefix", http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	json.NewEncoder(w).Encode(v)
}

func (r *cdpRelay) serveVersion(w http.ResponseWriter, req *http.Request, base string) {
	var v browser.GetVersionResult
	if err := r.mux.call(req.Context(), "", browser.CommandGetVersion, nil, &v); err != nil {
		http.Error(w, "the browser did not answer: "+err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, map[string]string{
		"Browser":              v.Product,
		"Protocol-Version":     v.ProtocolVersion,
		"User-Agent":           v.UserAgent,
		"V8-Version":           v.JsVersion,
		"webSocketDebuggerUrl": base + "/devtools/browser/" + r.browserID,
	})
}

func (r *cdpRelay) serveList(w http.ResponseWriter, req *http.Request, base string) {
	var res target.GetTargetsResult
	if err := r.mux.call(req.Context(), "", target.CommandGetTargets, target.GetTargetsParams{}, &res); err != nil {
		http.Error(w, "the browser did not answer: "+err.Error(), http.StatusBadGateway)
		return
	}
	list := []map[string]string{}
	for _, ti := range res.TargetInfos {
		if ti.Type != "page" {
			continue
		}
		list = append(list, map[string]string{
			"id": string(ti.TargetID), "type": ti.Type, "title": ti.Title, "url": ti.URL,
			"description":          "",
			"webSocketDebuggerUrl": base + "/devtools/page/" + string(ti.TargetID),
		})
	}
	writeJSON(w, list)
}

// serveWS connects an agent's WebSocket to a session of its own on the
// browser (page "") or on one page.
func (r *cdpRelay) serveWS(w http.ResponseWriter, req *http.Request, g *grant, page target.ID) {
	ws, err := websocket.Accept(w, req, nil)
	if err != nil {
		return // Accept answered the client
	}
	ws.SetReadLimit(maxCDPMessage)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := r.mux.attach(ctx, page)
	if err != nil {
		ws.Close(websocket.StatusInternalError, "attaching: "+err.Error())
		return
	}
	c.onMessage = func() { r.touch(g, nil, false) }
	r.touch(g, c, true)
	defer r.touch(g, c, false)
	// A grant revoked meanwhile (its tab closed) must not keep this client.
	if r.lookup(g.secret) == nil {
		c.close()
	}
	defer c.close()

	go func() {
		defer cancel()
		for {
			select {
			case msg := <-c.out:
				b, err := marshalMessage(msg)
				if err != nil {
					continue
				}
				if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
					return
				}
			case <-c.gone:
				ws.Close(websocket.StatusGoingAway, "the tab or the browser closed")
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var msg cdproto.Message
		if err := jsonv2.Unmarshal(data, &msg); err != nil || msg.Method == "" {
			ws.Close(websocket.StatusUnsupportedData, "not a DevTools command")
			return
		}
		if err := c.send(ctx, &msg); err != nil {
			if !errors.Is(err, errMuxClosed) {
				r.log.Debug("relaying a DevTools command", "err", err)
			}
			return
		}
	}
}

// close stops listening and disconnects everyone. Safe to call twice.
func (r *cdpRelay) close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	var drop []*muxClient
	for _, g := range r.grants {
		for c := range g.clients {
			drop = append(drop, c)
		}
	}
	r.grants = map[string]*grant{}
	r.mu.Unlock()
	for _, c := range drop {
		c.close()
	}
	r.srv.Close()
}

// wireMessage is cdproto.Message as it goes to an agent. cdproto's own
// encoding drops an empty result ("result":{}), and clients such as chromedp
// then fail to decode the answer; json.RawMessage keeps it.
type wireMessage struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdproto.Error  `json:"error,omitempty"`
}

func marshalMessage(msg *cdproto.Message) ([]byte, error) {
	return json.Marshal(wireMessage{
		ID: msg.ID, SessionID: string(msg.SessionID), Method: string(msg.Method),
		Params: json.RawMessage(msg.Params), Result: json.RawMessage(msg.Result), Error: msg.Error,
	})
}
