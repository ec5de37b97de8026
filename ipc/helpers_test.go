package ipc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/limiter"
)

// shortDir returns a private temporary directory whose socket paths stay
// well under the 104-byte limit (t.TempDir can be too long on macOS).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

const testLeaseTTL = time.Minute

// testConfig has a roomy service, a one-shot service, and one that tests
// drive into a cooldown.
func testConfig() limiter.Config {
	return limiter.Config{
		LeaseTTL: testLeaseTTL,
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

type daemon struct {
	srv    *Server
	lim    *limiter.Limiter
	path   string
	client *Client
	served chan error
}

// startDaemon runs a real limiter behind a real server on a real socket.
func startDaemon(t testing.TB, cfg limiter.Config, fb Fallback) *daemon {
	t.Helper()
	lim, err := limiter.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(shortDir(t), "q.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		srv:    NewServer(ServerConfig{Limiter: lim, Fallback: fb, Logger: slog.New(slog.DiscardHandler)}),
		lim:    lim,
		path:   path,
		client: &Client{SocketPath: path},
		served: make(chan error, 1),
	}
	go func() { d.served <- d.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-d.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
		d.client.CloseIdleConnections()
	})
	return d
}

// rawHTTP is a plain net/http client over the socket, for checking the wire
// format without the package's own client.
func rawHTTP(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

type rawResp struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

func doRaw(t testing.TB, hc *http.Client, method, path string, body io.Reader, hdr ...string) rawResp {
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
	return rawResp{resp.StatusCode, resp.Header, data}
}

func str(s string) io.Reader { return strings.NewReader(s) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func serviceOf(t testing.TB, st StatusResponse, name string) ServiceStatus {
	t.Helper()
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("service %q not in status %+v", name, st)
	return ServiceStatus{}
}

func agentOf(st StatusResponse, name string) (AgentStatus, bool) {
	for _, a := range st.Agents {
		if a.Name == name {
			return a, true
		}
	}
	return AgentStatus{}, false
}

// testFallback is an in-memory Fallback for the services "openai" and
// "tiny"; the real one (app + webfallback) starts browsers.
type testFallback struct {
	mu      sync.Mutex
	enabled map[string]bool
	open    map[string]int
}

func newTestFallback() *testFallback {
	return &testFallback{enabled: map[string]bool{}, open: map[string]int{}}
}

func (f *testFallback) has(service string) bool { return service == "openai" || service == "tiny" }

func (f *testFallback) Info(service string) (FallbackInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.has(service) {
		return FallbackInfo{}, false
	}
	return FallbackInfo{Browser: "system", Enabled: f.enabled[service], OpenSessions: f.open[service]}, true
}

func (f *testFallback) SetEnabled(service string, on bool) (FallbackInfo, error) {
	f.mu.Lock()
	f.enabled[service] = on
	f.mu.Unlock()
	info, _ := f.Info(service)
	return info, nil
}

func (f *testFallback) Open(ctx context.Context, service, agent string) (OpenResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.enabled[service] {
		return OpenResult{}, &APIError{Status: 409, Code: "fallback_disabled", Message: "the web fallback of " + service + " is off"}
	}
	f.open[service]++
	return OpenResult{Browser: "chrome", URL: "https://chatgpt.invalid/", CDPURL: "ws://127.0.0.1:1/devtools/page/T1", TargetID: "T1"}, nil
}

func (f *testFallback) Close(ctx context.Context, service string, req CloseRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.TargetID != "T1" || f.open[service] == 0 {
		return &APIError{Status: 404, Code: "not_found", Message: "no open target " + req.TargetID}
	}
	f.open[service]--
	return nil
}

func jsonBody(t testing.TB, v any) io.Reader {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}
