package ipc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
)

// Client talks to the daemon. The zero value is ready to use: it finds the
// socket with socket.Path and talks only to a daemon of this user (see
// socket.Dial). A Client is safe for concurrent use and keeps connections
// open between calls; do not copy it after first use.
type Client struct {
	// SocketPath is the daemon's socket; "" means socket.Path().
	SocketPath string
	// HTTPClient, when set, is used as is (its transport must reach the
	// daemon); nil means a client that dials SocketPath. It should have no
	// Timeout: acquire is a long poll, bounded by its context instead.
	HTTPClient *http.Client

	once sync.Once
	hc   *http.Client
	err  error
}

// base is the URL prefix of every request; the host is ignored by the
// daemon and the dialer.
const base = "http://quotabar"

func (c *Client) init() {
	c.once.Do(func() {
		if c.HTTPClient != nil {
			c.hc = c.HTTPClient
			return
		}
		path := c.SocketPath
		if path == "" {
			var err error
			if path, err = socket.Path(); err != nil {
				c.err = fmt.Errorf("ipc: find the daemon's socket: %w", err)
				return
			}
		}
		if c.err = socket.CheckPathLen(path); c.err != nil {
			return
		}
		c.hc = &http.Client{Transport: socket.Transport(path)}
	})
}

// CloseIdleConnections closes the connections kept open between calls.
func (c *Client) CloseIdleConnections() {
	c.init()
	if c.hc != nil {
		c.hc.CloseIdleConnections()
	}
}

// Lease is a granted acquire. Report it when the call is done.
type Lease struct {
	ID        string
	Agent     string
	Service   string
	Waited    time.Duration
	ExpiresAt time.Time
}

// Acquire asks permission for one call (or one batch) and waits for the
// answer: a Lease, a *RefusedError, or a *wire.APIError. Cancelling ctx abandons the
// wait and the daemon withdraws the request.
func (c *Client) Acquire(ctx context.Context, req wire.AcquireRequest) (Lease, error) {
	var ok wire.AcquireResponse
	var no wire.RefusalResponse
	status, err := c.call(ctx, http.MethodPost, "/v1/acquire", req, &ok, &no)
	if err != nil {
		return Lease{}, err
	}
	if status == http.StatusTooManyRequests {
		return Lease{}, &RefusedError{
			Reason:     no.Reason,
			RetryAfter: time.Duration(no.RetryAfterMS) * time.Millisecond,
			Fallback:   no.Fallback,
		}
	}
	return Lease{
		ID:        ok.Lease,
		Agent:     req.Agent,
		Service:   req.Service,
		Waited:    time.Duration(ok.WaitedMS) * time.Millisecond,
		ExpiresAt: ok.LeaseExpiresAt,
	}, nil
}

// Report tells the daemon what happened to a call and ends its lease.
func (c *Client) Report(ctx context.Context, req wire.ReportRequest) (wire.ReportResponse, error) {
	var out wire.ReportResponse
	_, err := c.call(ctx, http.MethodPost, "/v1/report", req, &out, nil)
	return out, err
}

// Status returns every service and agent.
func (c *Client) Status(ctx context.Context) (wire.StatusResponse, error) {
	var out wire.StatusResponse
	_, err := c.call(ctx, http.MethodGet, "/v1/status", nil, &out, nil)
	return out, err
}

// Health returns nil when the daemon answers.
func (c *Client) Health(ctx context.Context) error {
	var out wire.HealthResponse
	_, err := c.call(ctx, http.MethodGet, "/v1/health", nil, &out, nil)
	return err
}

// SetServicePaused pauses or resumes a service and returns its new status.
func (c *Client) SetServicePaused(ctx context.Context, service string, paused bool) (wire.ServiceStatus, error) {
	var out wire.ServiceStatus
	_, err := c.call(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(service), wire.ServiceUpdate{Paused: &paused}, &out, nil)
	return out, err
}

// ResetService clears a service's cooldown and the limits it learned from
// the provider's headers, and returns its new status.
func (c *Client) ResetService(ctx context.Context, service string) (wire.ServiceStatus, error) {
	var out wire.ServiceStatus
	_, err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/reset", nil, &out, nil)
	return out, err
}

// UpdateAgent changes the fields of u that are set and returns the agent's
// new status.
func (c *Client) UpdateAgent(ctx context.Context, agent string, u wire.AgentUpdate) (wire.AgentStatus, error) {
	var out wire.AgentStatus
	_, err := c.call(ctx, http.MethodPut, "/v1/agents/"+url.PathEscape(agent), u, &out, nil)
	return out, err
}

// SetFallback switches a service's web fallback on or off.
func (c *Client) SetFallback(ctx context.Context, service string, enabled bool) (wire.FallbackInfo, error) {
	var out wire.FallbackInfo
	_, err := c.call(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(service)+"/fallback", wire.FallbackUpdate{Enabled: &enabled}, &out, nil)
	return out, err
}

// OpenFallback opens the service's web interface in its browser and says
// how to drive it.
func (c *Client) OpenFallback(ctx context.Context, service, agent string) (wire.OpenResult, error) {
	var out wire.OpenResult
	_, err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/fallback/open", wire.OpenRequest{Agent: agent}, &out, nil)
	return out, err
}

// CloseFallback closes a tab or session that OpenFallback opened.
func (c *Client) CloseFallback(ctx context.Context, service string, req wire.CloseRequest) error {
	var out wire.OKResponse
	_, err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/fallback/close", req, &out, nil)
	return err
}

// Proxy returns how to reach the daemon's base-URL proxy (GET /v1/proxy).
// The answer carries the proxy's secret token.
func (c *Client) Proxy(ctx context.Context) (wire.ProxyInfo, error) {
	var out wire.ProxyInfo
	_, err := c.call(ctx, http.MethodGet, "/v1/proxy", nil, &out, nil)
	return out, err
}

// Events streams the status: the first value is the status at connect, then
// one value per change, at most 4 a second. The stream ends when the loop
// stops, when ctx ends (silently), or with one final error that says why:
// the daemon could not be reached, answered an error, or went away
// (io.ErrUnexpectedEOF).
//
//	for st, err := range c.Events(ctx) {
//		if err != nil {
//			return err
//		}
//		show(st)
//	}
func (c *Client) Events(ctx context.Context) iter.Seq2[wire.StatusResponse, error] {
	return func(yield func(wire.StatusResponse, error) bool) {
		resp, err := c.do(ctx, http.MethodGet, "/v1/events", nil)
		if err != nil {
			if ctx.Err() == nil {
				yield(wire.StatusResponse{}, err)
			}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			yield(wire.StatusResponse{}, errorFrom(resp))
			return
		}
		err = readEvents(resp.Body, func(st wire.StatusResponse) bool { return yield(st, nil) })
		if err != nil && ctx.Err() == nil {
			yield(wire.StatusResponse{}, err)
		}
	}
}

// readEvents parses a text/event-stream and passes every "status" event to
// send until send returns false (nil) or the stream ends: with
// io.ErrUnexpectedEOF when it ends, since the daemon never ends a stream
// while it runs, or the read or decode error.
func readEvents(r io.Reader, send func(wire.StatusResponse) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if (event == "status" || event == "") && len(data) > 0 {
				var st wire.StatusResponse
				if err := json.Unmarshal(data, &st); err != nil {
					return fmt.Errorf("ipc: decode a status event: %w", err)
				}
				if !send(st) {
					return nil
				}
			}
			event, data = "", data[:0]
		case strings.HasPrefix(line, ":"): // a comment
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ipc: the event stream broke: %w", err)
	}
	return fmt.Errorf("ipc: the daemon ended the event stream: %w", io.ErrUnexpectedEOF)
}

// call sends a JSON request and decodes a 2xx answer into out. A 429 is
// decoded into refusal when it is not nil; any other non-2xx is an
// *APIError. It returns the HTTP status.
func (c *Client) call(ctx context.Context, method, path string, in, out, refusal any) (int, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("ipc: encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusTooManyRequests && refusal != nil:
		out = refusal
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return resp.StatusCode, errorFrom(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("ipc: decode the daemon's answer to %s %s: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	c.init()
	if c.err != nil {
		return nil, c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, fmt.Errorf("ipc: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// Keep ctx's own error visible to errors.Is.
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("ipc: %s %s: %w", method, path, ctx.Err())
		}
		return nil, fmt.Errorf("ipc: %s %s: %w", method, path, err)
	}
	return resp, nil
}

// errorFrom turns an error answer into an *APIError, also when its body is
// not the documented JSON (e.g. from something that is not quotabar).
func errorFrom(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e wire.ErrorResponse
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		return &wire.APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &wire.APIError{Status: resp.StatusCode, Code: wire.Code("http_" + strconv.Itoa(resp.StatusCode)), Message: msg}
}
