// Package ipctest starts a real limiter behind a real server on a real
// socket for the tests of the ipc packages, and reads its answers.
package ipctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

const LeaseTTL = time.Minute

// TestConfig has a roomy service, a one-shot service, and one that tests
// drive into a cooldown.
func TestConfig() limiter.Config {
	return limiter.Config{
		LeaseTTL: LeaseTTL,
		Services: []limiter.ServiceConfig{
			{Name: "openai", MaxConcurrent: 8, Limits: []limiter.Policy{
				{Quota: 1000, Unit: limiter.Requests, Window: time.Minute},
				{Quota: 100000, Unit: limiter.Tokens, Window: time.Minute},
			}},
			{Name: "tiny", Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests, Window: time.Hour}}},
			{Name: "cool", Limits: []limiter.Policy{{Quota: 100, Unit: limiter.Requests, Window: time.Minute}}},
		},
		Agents: []limiter.AgentConfig{{Name: "research", Priority: limiter.High, Weight: 2}},
	}
}

type Daemon struct {
	Srv    *server.Server
	Lim    *limiter.Limiter
	Path   string
	Client *ipc.Client
	Served chan error
}

// StartDaemon runs a real limiter behind a real server on a real socket.
func StartDaemon(t testing.TB, cfg limiter.Config, fb server.Fallback) *Daemon {
	t.Helper()
	lim, err := limiter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(testenv.ShortTempDir(t), "q.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{
		Srv:    server.New(server.Config{Limiter: lim, Fallback: fb, Logger: slog.New(slog.DiscardHandler)}),
		Lim:    lim,
		Path:   path,
		Client: &ipc.Client{SocketPath: path},
		Served: make(chan error, 1),
	}
	go func() { d.Served <- d.Srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-d.Served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
		d.Client.CloseIdleConnections()
		d.Lim.Close()
	})
	return d
}

// RawHTTP is a plain net/http client over the socket, for checking the wire
// format without the package's own client.
func RawHTTP(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

type RawResp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r RawResp) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

func DoRaw(t testing.TB, hc *http.Client, method, path string, body io.Reader, hdr ...string) RawResp {
	t.Helper()
	req, err := http.NewRequest(method, "http://x"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return RawResp{resp.StatusCode, resp.Header, data}
}

func Str(s string) io.Reader { return strings.NewReader(s) }

func ServiceOf(t testing.TB, st wire.StatusResponse, name string) wire.ServiceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("service %q not in status %+v", name, st)
	return wire.ServiceStatus{}
}

func AgentOf(st wire.StatusResponse, name string) (wire.AgentStatus, bool) {
	for _, a := range st.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return wire.AgentStatus{}, false
}

// Fallback is an in-memory server.Fallback for the services "openai" and
// "tiny"; the real one (app + webfallback) starts browsers.
type Fallback struct {
	mu      sync.Mutex
	enabled map[string]bool
	open    map[string]int
}

func NewFallback() *Fallback {
	return &Fallback{enabled: map[string]bool{}, open: map[string]int{}}
}

func (f *Fallback) has(service string) bool { return service == "openai" || service == "tiny" }

func (f *Fallback) Info(service string) (wire.FallbackInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.has(service) {
		return wire.FallbackInfo{}, false
	}
	return wire.FallbackInfo{Browser: "system", Enabled: f.enabled[service], OpenSessions: f.open[service]}, true
}

func (f *Fallback) SetEnabled(service string, on bool) (wire.FallbackInfo, error) {
	f.mu.Lock()
	f.enabled[service] = on
	f.mu.Unlock()
	info, _ := f.Info(service)
	return info, nil
}

func (f *Fallback) Open(ctx context.Context, service, agent string) (wire.OpenResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.enabled[service] {
		return wire.OpenResult{}, wire.Errorf(wire.CodeFallbackDisabled, "the web fallback of %s is off", service)
	}
	f.open[service]++
	return wire.OpenResult{Browser: "chrome", URL: "https://chatgpt.invalid/", CDPURL: "ws://127.0.0.1:1/devtools/page/T1", TargetID: "T1"}, nil
}

func (f *Fallback) Close(ctx context.Context, service string, req wire.CloseRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.TargetID != "T1" || f.open[service] == 0 {
		return wire.Errorf(wire.CodeNotFound, "no open target %s", req.TargetID)
	}
	f.open[service]--
	return nil
}

func JSONBody(t testing.TB, v any) io.Reader {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

// Events is c.Events as a channel, for tests that wait on it in a select:
// the channel closes when the stream ends, and *err then holds the stream's
// last error (nil when ctx ended it).
func Events(ctx context.Context, c *ipc.Client) (_ <-chan wire.StatusResponse, err *error) {
	ch := make(chan wire.StatusResponse)
	err = new(error)
	go func() {
		defer close(ch)
		for st, e := range c.Events(ctx) {
			if e != nil {
				*err = e
				return
			}
			select {
			case ch <- st:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, err
}
