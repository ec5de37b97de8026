package ipc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client talks to the daemon. The zero value is ready to use: it finds the
// socket with SocketPath. A Client is safe for concurrent use and keeps
// connections open between calls; do not copy it after first use.
type Client struct {
	// SocketPath is the daemon's socket; "" means SocketPath().
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
			if path, err = SocketPath(); err != nil {
				c.err = fmt.Errorf("ipc: find the daemon's socket: %w", err)
				return
			}
		}
		if c.err = checkPathLen(path); c.err != nil {
			return
		}
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				conn, err := d.DialContext(ctx, "unix", path)
				if err != nil {
					return nil, fmt.Errorf("cannot reach the quotabar daemon at %s (is it running? start it with `quotabar serve`): %w", path, err)
				}
				return conn, nil
			},
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}}
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
// answer: a Lease, a *Refused, or an *APIError. Cancelling ctx abandons the
// wait and the daemon withdraws the request.
func (c *Client) Acquire(ctx context.Context, req AcquireRequest) (Lease, error) {
	var ok AcquireResponse
	var no RefusalResponse
	status, err := c.call(ctx, http.MethodPost, "/v1/acquire", req, &ok, &no)
	if err != nil {
		return Lease{}, err
	}
	if status == http.StatusTooManyRequests {
		return Lease{}, &Refused{
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
func (c *Client) Report(ctx context.Context, req ReportRequest) (ReportResponse, error) {
	var out ReportResponse
	_, err := c.call(ctx, http.MethodPost, "/v1/report", req, &out, nil)
	return out, err
}

// Status returns every service and agent.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var out StatusResponse
	_, err := c.call(ctx, http.MethodGet, "/v1/status", nil, &out, nil)
	return out, err
}

// Health returns nil when the daemon answers.
func (c *Client) Health(ctx context.Context) error {
	var out HealthResponse
	_, err := c.call(ctx, http.MethodGet, "/v1/health", nil, &out, nil)
	return err
}

// SetServicePaused pauses or resumes a service and returns its new status.
func (c *Client) SetServicePaused(ctx context.Context, service string, paused bool) (ServiceStatus, error) {
	var out ServiceStatus
	_, err := c.call(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(service), ServiceUpdate{Paused: &paused}, &out, nil)
	return out, err
}

// UpdateAgent changes the fields of u that are set and returns the agent's
// new status.
func (c *Client) UpdateAgent(ctx context.Context, agent string, u AgentUpdate) (AgentStatus, error) {
	var out AgentStatus
	_, err := c.call(ctx, http.MethodPut, "/v1/agents/"+url.PathEscape(agent), u, &out, nil)
	return out, err
}

// SetFallback switches a service's web fallback on or off.
func (c *Client) SetFallback(ctx context.Context, service string, enabled bool) (FallbackInfo, error) {
	var out FallbackInfo
	_, err := c.call(ctx, http.MethodPut, "/v1/services/"+url.PathEscape(service)+"/fallback", FallbackUpdate{Enabled: &enabled}, &out, nil)
	return out, err
}

// OpenFallback opens the service's web interface in its browser and says
// how to drive it.
func (c *Client) OpenFallback(ctx context.Context, service, agent string) (OpenResult, error) {
	var out OpenResult
	_, err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/fallback/open", OpenRequest{Agent: agent}, &out, nil)
	return out, err
}

// CloseFallback closes a tab or session that OpenFallback opened.
func (c *Client) CloseFallback(ctx context.Context, service string, req CloseRequest) error {
	var out OKResponse
	_, err := c.call(ctx, http.MethodPost, "/v1/services/"+url.PathEscape(service)+"/fallback/close", req, &out, nil)
	return err
}

// Events streams the status: the first value is the status at connect, then
// one value per change, at most 4 a second. The channel is closed when ctx
// ends or the daemon goes away.
func (c *Client) Events(ctx context.Context) (<-chan StatusResponse, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, errorFrom(resp)
	}
	ch := make(chan StatusResponse)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		readEvents(ctx, resp.Body, ch)
	}()
	return ch, nil
}

// readEvents parses a text/event-stream and sends every "status" event.
func readEvents(ctx context.Context, r io.Reader, ch chan<- StatusResponse) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if (event == "status" || event == "") && len(data) > 0 {
				var st StatusResponse
				if json.Unmarshal(data, &st) == nil {
					select {
					case ch <- st:
					case <-ctx.Done():
						return
					}
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
	var e ErrorResponse
	if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: msg}
}
