package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// codexWSUpstream is Codex's Responses WebSocket on a ChatGPT plan: each
// call's events start with codex.rate_limits, its 5-hour window 10% more
// used each time; call reject is answered with a usage_limit_reached error.
type codexWSUpstream struct {
	creates atomic.Int32
	reject  int32
	reset5  time.Time
}

func (u *codexWSUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background()
	reset5 := strconv.FormatInt(u.reset5.Unix(), 10)
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if wsType(msg) != "response.create" {
			continue
		}
		n := u.creates.Add(1)
		if n == u.reject {
			c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","status":429,"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","resets_at":`+reset5+`}}`))
			continue
		}
		events := []string{
			fmt.Sprintf(`{"type":"codex.rate_limits","plan_type":"pro","rate_limits":{"primary":{"used_percent":%d,"window_minutes":300,"reset_at":%s},"secondary":{"used_percent":12,"window_minutes":10080,"reset_at":%d}}}`,
				10*n, reset5, u.reset5.Add(90*time.Hour).Unix()),
			`{"type":"response.created","response":{"id":"r"}}`,
			`{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":10,"output_tokens":5,"total_tokens":15}}}`,
		}
		for _, ev := range events {
			if c.Write(ctx, websocket.MessageText, []byte(ev)) != nil {
				return
			}
		}
	}
}

func TestWebSocketCodexWindows(t *testing.T) {
	up := &codexWSUpstream{reject: 4, reset5: time.Now().Add(3 * time.Hour).Truncate(time.Second)}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "codex", Dialect: limiter.DialectOpenAI}}},
		[]Service{{Name: "codex", BaseURL: upSrv.URL + "/backend-api/codex", Reservation: ReserveOpenAI}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(r.base("codex-1", "codex"))+"/responses", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer chatgpt-access-token"}, "Chatgpt-Account-Id": {"acct"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		if typ := wsCallOnce(t, ctx, c); typ != "response.completed" {
			t.Fatalf("call %d ended with %s", i+1, typ)
		}
		want := 0.1 * float64(i+1)
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("5-hour at %v after call %d", want, i+1), func() bool {
			w, ok := findWindow(r.lim, "codex", "5h")
			return ok && math.Abs(w.Utilization-want) < 1e-9 && w.Requests == int64(i+1)
		})
	}
	if w, ok := findWindow(r.lim, "codex", "7d"); !ok || w.Length != 7*24*time.Hour || math.Abs(w.Utilization-0.12) > 1e-9 {
		t.Fatalf("week window %+v, %v", w, ok)
	}
	// The usage_limit_reached error event closes the service until the
	// 5-hour reset.
	if typ := wsCallOnce(t, ctx, c); typ != "error" {
		t.Fatalf("call 4 ended with %s, want the error", typ)
	}
	testenv.WaitFor(t, 10*time.Second, "the rejection's cooldown", func() bool {
		return serviceStatus(t, r.lim, "codex").CooldownUntil.Equal(up.reset5)
	})
	req, _ := json.Marshal(map[string]any{"type": "response.create", "model": "gpt-5-codex", "input": "hi"})
	if err := c.Write(ctx, websocket.MessageText, req); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wsType(msg) != "error" || up.creates.Load() != 4 {
		t.Fatalf("a call during the rejection: %s (upstream saw %d); want it answered by the proxy", msg, up.creates.Load())
	}
}
