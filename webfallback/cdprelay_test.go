package webfallback

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/coder/websocket"
)

// TestRelayEndpoints: the HTTP endpoints under the secret point back to the
// relay, and a raw CDP client on a page endpoint drives that tab.
func TestRelayEndpoints(t *testing.T) {
	m, _ := chromeManager(t)
	site := testSite(t)
	ctx := openCtx(t)
	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/raw", Headless: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	base := "http" + strings.TrimPrefix(s.CDPURL[:strings.Index(s.CDPURL, "/devtools/")], "ws")
	wsBase := s.CDPURL[:strings.Index(s.CDPURL, "/devtools/")]
	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var version map[string]string
	getJSON("/json/version", &version)
	if version["webSocketDebuggerUrl"] != s.CDPURL || !strings.Contains(version["Browser"], "Chrom") {
		t.Fatalf("/json/version = %v, want the cdp_url %s as webSocketDebuggerUrl", version, s.CDPURL)
	}
	var list []map[string]string
	getJSON("/json/list", &list)
	var page string
	for _, e := range list {
		if e["id"] == s.TargetID {
			page = e["webSocketDebuggerUrl"]
		}
	}
	if page != wsBase+"/devtools/page/"+s.TargetID {
		t.Fatalf("/json/list = %v, want the tab %s at %s/devtools/page/…", list, s.TargetID, wsBase)
	}
	for _, bad := range []string{"/json/nope", "/"} {
		resp, err := http.Get(base + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %s, want 404", bad, resp.Status)
		}
	}
	// Without the secret: a bare 404, and the connection is not kept.
	resp, err := http.Get(strings.Replace(base, "/"+strings.Split(base, "/")[3], "/"+newSecret(), 1) + "/json/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Errorf("GET without the secret = %s (close %v), want 404 and the connection closed", resp.Status, resp.Close)
	}

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(wctx, page, nil)
	if err != nil {
		t.Fatalf("dialing the page endpoint: %v", err)
	}
	defer c.CloseNow()
	if err := c.Write(wctx, websocket.MessageText, []byte(`{"id":7,"method":"Runtime.evaluate","params":{"expression":"document.title","returnByValue":true}}`)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := c.Read(wctx)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		var msg struct {
			ID        int64
			SessionID string
			Result    struct{ Result struct{ Value string } }
		}
		if json.Unmarshal(b, &msg) != nil || msg.ID != 7 {
			continue
		}
		if msg.SessionID != "" || msg.Result.Result.Value != "raw" {
			t.Fatalf("Runtime.evaluate answered %s, want the title raw and no session id", b)
		}
		break
	}
}

// BenchmarkCDPRoundTrip measures one Runtime.evaluate on a tab: "relay" as
// an agent does it (WebSocket to the relay, over the pipe and back), against
// the baseline "pipe" (the Manager's own session on the pipe, no relay).
func BenchmarkCDPRoundTrip(b *testing.B) {
	m, _ := chromeManager(b)
	site := testSite(b)
	ctx := context.Background()
	s, err := m.Open(ctx, Target{Service: "svc", Browser: Chrome, URL: site.URL + "/page/bench", Headless: true})
	if err != nil {
		b.Fatal(err)
	}
	cb := browserOf(b, m, "svc")
	wsBase := s.CDPURL[:strings.Index(s.CDPURL, "/devtools/")]
	eval := []byte(`{"id":1,"method":"Runtime.evaluate","params":{"expression":"1+1","returnByValue":true}}`)
	b.Run("relay", func(b *testing.B) {
		c, _, err := websocket.Dial(ctx, wsBase+"/devtools/page/"+s.TargetID, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseNow()
		for b.Loop() {
			if err := c.Write(ctx, websocket.MessageText, eval); err != nil {
				b.Fatal(err)
			}
			for {
				_, msg, err := c.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if strings.HasPrefix(string(msg), `{"id":1,`) {
					break
				}
			}
		}
	})
	b.Run("pipe", func(b *testing.B) {
		c, err := cb.mux.attach(ctx, target.ID(s.TargetID))
		if err != nil {
			b.Fatal(err)
		}
		defer c.close()
		for b.Loop() {
			var res struct {
				Result struct {
					Value int `json:"value"`
				} `json:"result"`
			}
			if err := cb.mux.call(ctx, c.root, "Runtime.evaluate", map[string]any{"expression": "1+1", "returnByValue": true}, &res); err != nil || res.Result.Value != 2 {
				b.Fatal(err, res)
			}
		}
	})
}
