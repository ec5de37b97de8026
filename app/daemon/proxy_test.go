package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/proxy"
)

func proxyConfig(enabled bool, listen, upstream string) string {
	return fmt.Sprintf(`
[proxy]
enabled = %v
listen = %q

[services.openai]
preset = "openai"
base_url = %q
limits = ["100000 tokens/1h"]
max_concurrent = 4

[services.local]
limits = ["10 requests/1m"]
`, enabled, listen, upstream)
}

// getProxyInfo asks the daemon's socket for GET /v1/proxy.
func getProxyInfo(t *testing.T, socket string) wire.ProxyInfo {
	t.Helper()
	c := &ipc.Client{SocketPath: socket}
	defer c.CloseIdleConnections()
	info, err := c.Proxy(context.Background())
	if err != nil {
		t.Fatalf("GET /v1/proxy: %v", err)
	}
	return info
}

func TestProxyInDaemon(t *testing.T) {
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`)
	}))
	defer up.Close()
	td := newTestDaemon(t, proxyConfig(true, "127.0.0.1:0", up.URL))
	d := td.start(t)

	info := getProxyInfo(t, d.SocketPath())
	if !info.Enabled || !strings.HasPrefix(info.URL, "http://127.0.0.1:") || strings.HasSuffix(info.URL, ":0") || len(info.Token) != 32 {
		t.Fatalf("GET /v1/proxy = %+v; want enabled, a resolved 127.0.0.1 URL and a token", info)
	}
	if len(info.Services) != 1 || info.Services[0] != (wire.ProxyServiceInfo{Name: "openai", Preset: "openai", BaseURL: up.URL}) {
		t.Errorf("services = %+v; want openai only (local has no upstream)", info.Services)
	}
	fi, err := os.Stat(filepath.Join(d.StateDir(), proxy.TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, mode %v; want it in the state directory, 0600", err, fi.Mode().Perm())
	}

	res, err := http.Post(info.AgentURL("tester", "openai")+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","max_tokens":500,"messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || calls.Load() != 1 {
		t.Fatalf("call through the proxy: %d, upstream saw %d calls", res.StatusCode, calls.Load())
	}
	waitStatus(t, d, "the real usage of 10 tokens in /v1/status", func() bool {
		s, _ := serviceStatus(t, td.client(), "openai")
		return len(s.Limits) == 1 && s.Limits[0].Remaining == 100000-10 && s.InFlight == 0
	})

	// Turning the proxy off closes its port; on again, it keeps its token.
	td.writeConfig(t, proxyConfig(false, "127.0.0.1:0", up.URL))
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := getProxyInfo(t, d.SocketPath()); got.Enabled || got.Token != "" {
		t.Errorf("after enabled = false: %+v", got)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(info.URL, "http://")); err == nil {
		c.Close()
		t.Error("the proxy's port still accepts connections after enabled = false")
	}
	td.writeConfig(t, proxyConfig(true, "127.0.0.1:0", up.URL))
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	again := getProxyInfo(t, d.SocketPath())
	if !again.Enabled || again.Token != info.Token {
		t.Errorf("after enabling again: %+v; want enabled with the same token", again)
	}

	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(again.URL, "http://")); err == nil {
		c.Close()
		t.Error("the proxy's port still accepts connections after Shutdown")
	}
}

func TestProxyRefusesNonLoopback(t *testing.T) {
	td := newTestDaemon(t, proxyConfig(true, "0.0.0.0:0", "http://127.0.0.1:1"))
	d := td.start(t)
	if info := getProxyInfo(t, d.SocketPath()); info.Enabled {
		t.Errorf("a proxy on 0.0.0.0 started: %+v", info)
	}
	if !strings.Contains(td.logs.String(), "loopback") {
		t.Errorf("the log does not say why the proxy is off:\n%s", td.logs)
	}
	// The error is fixed by an edit, without a restart.
	td.writeConfig(t, proxyConfig(true, "127.0.0.1:0", "http://127.0.0.1:1"))
	if _, err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if info := getProxyInfo(t, d.SocketPath()); !info.Enabled {
		t.Errorf("after fixing listen: %+v; want enabled", info)
	}
}

// TestProxyInfoAnswersWhileProxyStops: switching the proxy off waits up to
// proxyShutdownWait for calls in flight, and GET /v1/proxy must not wait
// with it (issue 10: the wiring's mutex was held across the shutdown, the
// token file I/O and the listen). A call held open upstream keeps the
// shutdown waiting; meanwhile GET /v1/proxy already answers "off".
func TestProxyInfoAnswersWhileProxyStops(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(arrived)
		<-release
	}))
	defer up.Close()
	defer close(release)
	td := newTestDaemon(t, proxyConfig(true, "127.0.0.1:0", up.URL))
	d := td.start(t)
	info := getProxyInfo(t, d.SocketPath())

	go func() {
		res, err := http.Post(info.AgentURL("tester", "openai")+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","stream":true,"messages":[]}`))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	<-arrived

	td.writeConfig(t, proxyConfig(false, "127.0.0.1:0", up.URL))
	reloaded := make(chan error, 1)
	go func() { _, err := d.Reload(); reloaded <- err }()
	// The shutdown begins by saying "off"; it then waits for the stream.
	testenv.WaitFor(t, 10*time.Second, "GET /v1/proxy to say off", func() bool {
		return !getProxyInfo(t, d.SocketPath()).Enabled
	})
	select {
	case err := <-reloaded:
		t.Fatalf("the reload ended (%v) before the call in flight did: the test did not hold the shutdown", err)
	default:
	}
	// Answered again, still during the shutdown.
	if got := getProxyInfo(t, d.SocketPath()); got.Enabled || got.Token != "" {
		t.Errorf("GET /v1/proxy during the shutdown = %+v, want off", got)
	}
	release <- struct{}{} // let the stream end; the deferred close is for a test that fails first
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
}

// A busy proxy port (issue 12 item 8): the proxy still runs, on a free port
// that GET /v1/proxy publishes, and says what happened and what to do.
func TestProxyBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	td := newTestDaemon(t, proxyConfig(true, busy.Addr().String(), "http://127.0.0.1:1"))
	d := td.start(t)
	info := getProxyInfo(t, d.SocketPath())
	if !info.Enabled || info.URL == "http://"+busy.Addr().String() || !strings.HasPrefix(info.URL, "http://127.0.0.1:") {
		t.Fatalf("GET /v1/proxy with the port taken = %+v; want the proxy enabled on another port", info)
	}
	if info.Listen != busy.Addr().String() || !strings.Contains(info.Problem, "in use") || !strings.Contains(info.Problem, "[proxy] listen") {
		t.Errorf("listen %q, problem %q; want the configured address and a problem naming the busy port and the fix", info.Listen, info.Problem)
	}
	if !strings.Contains(td.logs.String(), "in use by another program") {
		t.Errorf("the log does not say the port was busy:\n%s", td.logs)
	}
	res, err := http.Get(info.AgentURL("t", "openai") + "/v1/models")
	if err != nil {
		t.Fatalf("the published URL does not answer: %v", err)
	}
	res.Body.Close()
}
