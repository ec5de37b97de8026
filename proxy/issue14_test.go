package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// Issue 14 item 7: the caller's Referer, which can carry the token, does
// not reach the upstream.
func TestRefererNotForwarded(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s"}}}, []Service{{Name: "s", BaseURL: upSrv.URL}}, nil)
	res, _ := post(t, r.base("a", "s")+"/v1/chat/completions", chatRequest("x", 1, false),
		map[string]string{"Referer": r.base("a", "s") + "/page"})
	if res.StatusCode != http.StatusOK {
		t.Fatal(res.Status)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if got := up.headers[0].Get("Referer"); got != "" {
		t.Errorf("the upstream got Referer %q", got)
	}
}

// Issue 14 item 7: paths with dot or empty segments never reach the
// upstream.
func TestUnnormalisedPathsRefused(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s"}}}, []Service{{Name: "s", BaseURL: upSrv.URL + "/api"}}, nil)
	for _, p := range []string{"/v1/../admin", "/v1/%2e%2e/admin", "/v1//chat", "/./v1", "/v1/a%2F..%2Fb", "/v1/%2E"} {
		t.Run(p, func(t *testing.T) {
			// A raw request: Go's client would clean some of these itself.
			c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /t/%s/a/s%s HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", testToken, p)
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusBadRequest || !json.Valid(b) || !strings.Contains(string(b), "segment") {
				t.Errorf("%s: %d %s; want 400 naming the bad segment", p, res.StatusCode, b)
			}
		})
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.calls != 0 {
		t.Errorf("upstream saw %v", up.paths)
	}
	if checkRest("v1/models/a%2Fb:generate/") != nil {
		t.Error("an escaped slash inside a name, and a trailing slash, must still pass")
	}
}

// Issue 14 item 7: the memory of buffered bodies is bounded, and a slow
// body times out.
func TestBodyMemoryBoundAndTimeout(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	arrived := make(chan struct{}, 4)
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	}))
	defer upSrv.Close()
	defer once.Do(func() { close(release) })
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 8}}}, []Service{{Name: "s", BaseURL: upSrv.URL}},
		func(c *Config) { c.MaxBuffered = 1 << 20; c.BodyTimeout = 300 * time.Millisecond })
	big := `{"input":"` + strings.Repeat("x", 700<<10) + `"}`
	first := make(chan int, 1)
	go func() {
		res, _ := post(t, r.base("a", "s")+"/v1/responses", big, nil)
		first <- res.StatusCode
	}()
	<-arrived // the first 700 KiB body is held for its call
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if chunked {
			body = io.MultiReader(strings.NewReader(big)) // no length: sent chunked
		}
		res, err := http.Post(r.base("a", "s")+"/v1/responses", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "bodies") {
			t.Errorf("a second large body (chunked %v) over the 1 MiB bound: %d %s; want 503 with Retry-After", chunked, res.StatusCode, b)
		}
	}
	once.Do(func() { close(release) })
	if st := <-first; st != http.StatusOK {
		t.Errorf("the first call: %d", st)
	}
	res, _ := post(t, r.base("a", "s")+"/v1/responses", big, nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("a large body after the first call ended: %d; its bytes were not given back", res.StatusCode)
	}

	// A body that stops arriving is cut at the body timeout.
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /t/%s/a/s/v1/responses HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in", testToken)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	sres, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a slow body got no answer: %v", err)
	}
	if sres.StatusCode != http.StatusRequestTimeout || time.Since(start) > 5*time.Second {
		t.Errorf("slow body: %d after %v; want 408 after the 300 ms body timeout", sres.StatusCode, time.Since(start))
	}
}

// Issue 14 item 7: usage numbers past int64 end the lease with the usage
// clamped, instead of failing the report and holding the slot.
func TestHugeUsageStillEndsTheLease(t *testing.T) {
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"usage":{"input_tokens":9223372036854775807,"cache_creation_input_tokens":9223372036854775807,"output_tokens":99999999999999999999999}}`)
	}))
	defer upSrv.Close()
	r := newRig(t, limiter.Config{LeaseTTL: time.Hour, Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 1,
		Limits: []limiter.Policy{{Quota: 1000, Unit: limiter.Tokens, Window: time.Hour}}}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, nil)
	res, _ := post(t, r.base("a", "s")+"/v1/messages", messagesRequest("x", 1, false), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatal(res.Status)
	}
	testenv.WaitFor(t, 10*time.Second, "the lease ended and the huge usage charged", func() bool {
		st := serviceStatus(t, r.lim, "s")
		return st.InFlight == 0 && remaining(t, r.lim, "s", limiter.Tokens) <= 0
	})
	if strings.Contains(r.logs.String(), "must not be negative") {
		t.Errorf("a report failed on the usage:\n%s", r.logs)
	}
}

// Issue 14 item 3: the proxy's listener caps connections, answers a wrong
// token without keeping the connection, bounds header reading, and
// answers an oversized request line with JSON.
func TestListenerLimits(t *testing.T) {
	lim, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{Name: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	p, err := New(Config{Limiter: lim, Token: testToken, Services: []Service{{Name: "s", BaseURL: "http://127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(p, slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != HeaderTimeout || srv.IdleTimeout != IdleTimeout || srv.MaxHeaderBytes != MaxHeaderBytes {
		t.Errorf("server timeouts %v/%v/%d", srv.ReadHeaderTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
	go srv.Serve(limitJSON431(raw, 2))
	defer srv.Close()
	addr := raw.Addr().String()

	// Two idle connections fill the limit: a third is not served
	// until one of them goes.
	idle1, _ := net.Dial("tcp", addr)
	idle2, _ := net.Dial("tcp", addr)
	defer idle2.Close()
	third, err := net.Dial("tcp", addr) // completes in the kernel's backlog
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	fmt.Fprintf(third, "GET /t/wrong/a/s/v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
	third.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.Read(make([]byte, 1)); err == nil {
		t.Fatal("a third connection was served past the limit of 2")
	}
	idle1.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(third)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the third connection after one closed: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusForbidden || !res.Close {
		t.Errorf("wrong token: %d, close %v; want 403 and the connection closed", res.StatusCode, res.Close)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection of a caller without the token stayed open: %v", err)
	}
	idle2.Close()

	for _, n := range []int{70 << 10, 2 << 20} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go fmt.Fprintf(c, "GET /t/%s/a/s/%s HTTP/1.1\r\nHost: x\r\n\r\n", testToken, strings.Repeat("a", n))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		c.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !json.Valid(b) || res.Header.Get("Content-Type") != "application/json" {
			t.Errorf("a %d-byte request line: %d %q %s; want 431 as JSON", n, res.StatusCode, res.Header.Get("Content-Type"), b)
		}
	}
	if MaxConns(1024) != 512 || MaxConns(1<<20) != maxConnsCap || MaxConns(10) != 16 {
		t.Errorf("MaxConns: %d %d %d", MaxConns(1024), MaxConns(1<<20), MaxConns(10))
	}
}
