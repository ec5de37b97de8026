package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// wsUpstream is a Responses API WebSocket: every response.create is
// answered with response.created, a text delta and response.completed with
// usage of 10 input and 5 output tokens; the call whose number is in
// refuse is answered with a wrapped 429 error event instead.
type wsUpstream struct {
	upgrades atomic.Int32
	creates  atomic.Int32
	refuse   int32 // 1-based call number answered 429; 0: none
	status   int   // non-zero: refuse the upgrade with this status
}

func (u *wsUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.upgrades.Add(1)
	if u.status != 0 {
		w.Header().Set("Retry-After", "3")
		http.Error(w, `{"error":{"message":"too many sockets"}}`, u.status)
		return
	}
	w.Header().Set("X-Codex-Turn-State", "ts-1")
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if wsType(msg) != "response.create" {
			continue
		}
		n := u.creates.Add(1)
		if n == u.refuse {
			c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","status":429,"error":{"type":"rate_limit_error","message":"slow down"},"headers":{"retry-after":"0"}}`))
			continue
		}
		id := fmt.Sprintf("resp_%d", n)
		for _, ev := range []string{
			`{"type":"response.created","response":{"id":"` + id + `"}}`,
			`{"type":"response.output_text.delta","delta":"hi"}`,
			`{"type":"response.completed","response":{"id":"` + id + `","usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15}}}`,
		} {
			if c.Write(ctx, websocket.MessageText, []byte(ev)) != nil {
				return
			}
		}
	}
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// call sends one response.create and reads events up to a terminal one,
// returning its type.
func wsCallOnce(t *testing.T, ctx context.Context, c *websocket.Conn) string {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"type": "response.create", "model": "gpt-test", "input": "hello there", "max_output_tokens": 100})
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		t.Fatal(err)
	}
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		switch typ := wsType(msg); typ {
		case "response.completed", "error":
			return typ
		}
	}
}

// Item 3: every response.create on a Responses WebSocket is its own
// permit with its usage reported; the upgrade costs nothing.
func TestWebSocketMetersEveryCall(t *testing.T) {
	up := &wsUpstream{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	const quota = 100000
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 2,
		Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Tokens, Window: time.Hour}, {Quota: 100, Unit: limiter.Requests, Window: time.Hour}}}}},
		[]Service{{Name: "openai", BaseURL: upSrv.URL, Reservation: ReserveOpenAI}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, wsURL(r.base("codex", "openai"))+"/v1/responses", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer sk-test"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if res.Header.Get("X-Codex-Turn-State") != "ts-1" {
		t.Errorf("the upstream's handshake headers did not reach the client: %v", res.Header)
	}
	if st := serviceStatus(t, r.lim, "openai"); st.Granted != 0 {
		t.Errorf("the upgrade took %d permits; want none", st.Granted)
	}
	for i := range 3 {
		if typ := wsCallOnce(t, ctx, c); typ != "response.completed" {
			t.Fatalf("call %d ended with %s", i+1, typ)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "three permits, each call's 15 tokens charged", func() bool {
		st := serviceStatus(t, r.lim, "openai")
		return st.Granted == 3 && st.InFlight == 0 && remaining(t, r.lim, "openai", limiter.Tokens) == quota-45 &&
			remaining(t, r.lim, "openai", limiter.Requests) == 100-3
	})
	c.Close(websocket.StatusNormalClosure, "")
}

// Item 3: a call the provider refused on the socket is refunded and puts
// the service in its cooldown; quotabar's own refusal reaches the client
// as the error event Codex reads, and nothing is forwarded.
func TestWebSocketRefusals(t *testing.T) {
	up := &wsUpstream{refuse: 1}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	const quota = 100000
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "openai",
		Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Tokens, Window: time.Hour}}}}},
		[]Service{{Name: "openai", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = 5 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(r.base("codex", "openai"))+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if typ := wsCallOnce(t, ctx, c); typ != "error" {
		t.Fatalf("the refused call ended with %s; want the upstream's error event", typ)
	}
	testenv.WaitFor(t, 10*time.Second, "the refused call refunded and counted as a provider 429", func() bool {
		st := serviceStatus(t, r.lim, "openai")
		return st.InFlight == 0 && st.Provider429 == 1 && remaining(t, r.lim, "openai", limiter.Tokens) == quota
	})
	if typ := wsCallOnce(t, ctx, c); typ != "response.completed" {
		t.Fatalf("the next call ended with %s", typ)
	}

	// Paused past max_wait: quotabar answers on the socket itself.
	r.lim.SetServicePaused("openai", true)
	req, _ := json.Marshal(map[string]any{"type": "response.create", "input": "x"})
	before := up.creates.Load()
	start := time.Now()
	c.Write(ctx, websocket.MessageText, req)
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Type    string            `json:"type"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
	}
	json.Unmarshal(msg, &ev)
	if ev.Type != "error" || ev.Status != 429 || ev.Headers["retry-after"] == "" || time.Since(start) < 4*time.Second {
		t.Errorf("paused call: %s after %v; want a 429 error event with retry-after after the 5 s max_wait", msg, time.Since(start))
	}
	if up.creates.Load() != before {
		t.Error("a refused call reached the upstream")
	}
}

// Item 3: a refused upgrade costs nothing, reaches the client as the
// provider sent it, and starts the cooldown it asks for.
func TestWebSocketRefusedUpgrade(t *testing.T) {
	up := &wsUpstream{status: http.StatusTooManyRequests}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "openai",
		Limits: []limiter.Policy{{Quota: 100, Unit: limiter.Requests, Window: time.Hour}}}}},
		[]Service{{Name: "openai", BaseURL: upSrv.URL}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 { // Codex retries a refused upgrade
		_, res, err := websocket.Dial(ctx, wsURL(r.base("codex", "openai"))+"/v1/responses", nil)
		if err == nil || res == nil || res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "3" {
			t.Fatalf("refused upgrade: %v, %+v; want the upstream's 429 with its Retry-After", err, res)
		}
	}
	st := serviceStatus(t, r.lim, "openai")
	if st.Granted != 0 || remaining(t, r.lim, "openai", limiter.Requests) != 100 {
		t.Errorf("refused upgrades took %d permits, %d requests left; want none charged", st.Granted, remaining(t, r.lim, "openai", limiter.Requests))
	}
	if st.CooldownUntil.IsZero() {
		t.Error("a 429 on the upgrade started no cooldown")
	}
}

// A client that goes away while its call waits for a permit leaves the
// queue at once, not at max_wait.
func TestWebSocketClientGoneWhileQueued(t *testing.T) {
	up := &wsUpstream{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}},
		[]Service{{Name: "openai", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = time.Minute })
	held, err := r.lim.Acquire(context.Background(), limiter.Request{Agent: "other", Service: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(r.base("codex", "openai"))+"/v1/responses", nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(map[string]any{"type": "response.create", "input": "x"})
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the socket's call queued behind the held slot", func() bool { return serviceStatus(t, r.lim, "openai").Queued == 1 })
	c.CloseNow()
	testenv.WaitFor(t, 10*time.Second, "the gone client's call out of the queue", func() bool { return serviceStatus(t, r.lim, "openai").Queued == 0 })
	r.lim.Report(limiter.Report{Lease: held.ID})
	if n := up.creates.Load(); n != 0 {
		t.Errorf("the gone client's call reached the upstream (%d)", n)
	}
}
