package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// rig is a proxy in front of one upstream with a limiter and proxy
// configured by the test.
type rig struct {
	lim  *limiter.Limiter
	url  string
	logs *testenv.Buffer
}

func (r *rig) base(agent, service string) string {
	return r.url + "/t/" + testToken + "/" + agent + "/" + service
}

func newRig(t *testing.T, lc limiter.Config, svcs []Service, tweak func(*Config)) *rig {
	t.Helper()
	lim, err := limiter.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lim.Close)
	logs := &testenv.Buffer{}
	cfg := Config{Limiter: lim, Token: testToken, Services: svcs,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &rig{lim: lim, url: srv.URL, logs: logs}
}

func remaining(t *testing.T, lim *limiter.Limiter, service string, u limiter.Unit) int64 {
	t.Helper()
	for _, l := range serviceStatus(t, lim, service).Limits {
		if l.Unit == u {
			return l.Remaining
		}
	}
	t.Fatalf("service %s has no %s limit", service, u)
	return 0
}

func TestReservationEstimate(t *testing.T) {
	body := []byte(chatRequest(strings.Repeat("abcd", 100), 4000, false)) // 100 prompt tokens
	tests := []struct {
		rule          Reservation
		tok, in, outT int64
	}{
		{ReserveMaxTokens, 4100, 100, 4000},
		{ReserveOpenAI, 4000, 100, 4000}, // max(max_tokens, estimate)
		{ReserveAnthropic, 100, 100, 0},  // output counted as produced
	}
	for _, tt := range tests {
		t.Run(string(tt.rule)+"rule", func(t *testing.T) {
			c := tt.rule.Estimate(body)
			if c[limiter.Tokens] != tt.tok || c[limiter.InputTokens] != tt.in || c[limiter.OutputTokens] != tt.outT || c[limiter.Requests] != 1 {
				t.Errorf("Estimate = %v; want tokens %d, input %d, output %d, 1 request", c, tt.tok, tt.in, tt.outT)
			}
		})
	}
	if err := (&Proxy{}).SetServices([]Service{{Name: "s", Reservation: "gemini"}}); err == nil || !strings.Contains(err.Error(), "anthropic") {
		t.Errorf("an unknown reservation rule: %v; want an error listing the rules", err)
	}
}

// Item 1: Claude Code's max_tokens 64000 against Anthropic's default
// 8000 output tokens a minute is forwarded (Anthropic does not charge
// max_tokens), and a call is never refused for an estimate alone.
func TestReservationNeverRefusesForAnEstimate(t *testing.T) {
	up := &fakeProvider{prompt: 20, completion: 30}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{
		{Name: "anthropic", Limits: []limiter.Policy{{Quota: 8000, Unit: limiter.OutputTokens, Window: time.Minute}, {Quota: 50, Unit: limiter.Requests, Window: time.Minute}}},
		{Name: "other", Limits: []limiter.Policy{{Quota: 1000, Unit: limiter.Tokens, Window: time.Minute}}},
	}}, []Service{{Name: "anthropic", BaseURL: upSrv.URL, Reservation: ReserveAnthropic}, {Name: "other", BaseURL: upSrv.URL}}, nil)

	res, body := post(t, r.base("claude", "anthropic")+"/v1/messages?beta=true", messagesRequest("hi", 64000, true), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("Claude Code's call with max_tokens 64000: %d %s; want 200", res.StatusCode, body)
	}
	testenv.WaitFor(t, 10*time.Second, "the real 30 output tokens charged", func() bool {
		return remaining(t, r.lim, "anthropic", limiter.OutputTokens) == 8000-30 && serviceStatus(t, r.lim, "anthropic").InFlight == 0
	})
	// The default rule reserves prompt plus max output: more than the
	// whole limit, so the call goes with its request alone.
	res, body = post(t, r.base("a", "other")+"/v1/chat/completions", chatRequest("hi", 64000, false), nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a call whose estimate is over the whole limit: %d %s; want it forwarded", res.StatusCode, body)
	}
	testenv.WaitFor(t, 10*time.Second, "the real 50 tokens charged", func() bool {
		return remaining(t, r.lim, "other", limiter.Tokens) == 1000-50 && serviceStatus(t, r.lim, "other").InFlight == 0
	})
}

// Item 4: HEAD, OPTIONS, model lists and count_tokens pass without a permit.
func TestFreeCallsTakeNoPermit(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 1,
		Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests, Window: time.Hour}}}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = 200 * time.Millisecond })
	for _, c := range []struct{ method, path string }{
		{http.MethodHead, "/"}, {http.MethodHead, "/"}, {http.MethodOptions, "/v1/messages"},
		{http.MethodGet, "/v1/models"}, {http.MethodGet, "/v1/models/claude-x"},
		{http.MethodPost, "/v1/messages/count_tokens"},
	} {
		req, _ := http.NewRequest(c.method, r.base("cc", "s")+c.path, strings.NewReader(""))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode >= 400 {
			t.Errorf("%s %s: %d", c.method, c.path, res.StatusCode)
		}
	}
	st := serviceStatus(t, r.lim, "s")
	if st.Granted != 0 || remaining(t, r.lim, "s", limiter.Requests) != 1 {
		t.Errorf("free calls took %d permits (remaining %d); want none", st.Granted, remaining(t, r.lim, "s", limiter.Requests))
	}
	up.mu.Lock()
	calls := up.calls
	up.mu.Unlock()
	if calls != 6 {
		t.Errorf("upstream saw %d of the 6 free calls", calls)
	}
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/v1/models"}, {http.MethodGet, "/v1/files"}} {
		if Free(c.method, c.path) {
			t.Errorf("Free(%s %s) = true; only calls that cannot cost quota are free", c.method, c.path)
		}
	}
}

// Item 5: every attempt the provider refused is refunded.
func TestRefused429AttemptIsRefunded(t *testing.T) {
	var n atomic.Int32
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":{"type":"rate_limit_error"}}`, http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"usage":{"prompt_tokens":4,"completion_tokens":6}}`)
	}))
	defer upSrv.Close()
	const quota = 100000
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s",
		Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Tokens, Window: time.Hour}, {Quota: quota, Unit: limiter.OutputTokens, Window: time.Hour}}}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = 30 * time.Second })
	res, body := post(t, r.base("a", "s")+"/v1/chat/completions", chatRequest("hi", 4000, false), nil)
	if res.StatusCode != http.StatusOK || n.Load() != 2 {
		t.Fatalf("got %d %s after %d upstream calls; want 200 after a retry", res.StatusCode, body, n.Load())
	}
	testenv.WaitFor(t, 10*time.Second, "only the served call's 10 tokens charged", func() bool {
		return serviceStatus(t, r.lim, "s").InFlight == 0 &&
			remaining(t, r.lim, "s", limiter.Tokens) == quota-10 && remaining(t, r.lim, "s", limiter.OutputTokens) == quota-6
	})
}

// Item 6: a stream's headers count from when they arrived: the limits
// they state are known while the stream still runs.
func TestHeadersObservedWhenTheyArrive(t *testing.T) {
	release := make(chan struct{})
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("anthropic-ratelimit-requests-limit", "50")
		w.Header().Set("anthropic-ratelimit-requests-remaining", "49")
		w.Header().Set("anthropic-ratelimit-requests-reset", time.Now().Add(10*time.Second).UTC().Format(time.RFC3339))
		io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n")
	}))
	defer upSrv.Close()
	defer close(release)
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "anthropic", Dialect: "anthropic"}}},
		[]Service{{Name: "anthropic", BaseURL: upSrv.URL, Reservation: ReserveAnthropic}}, nil)
	go func() {
		res, err := http.Post(r.base("a", "anthropic")+"/v1/messages", "application/json", strings.NewReader(messagesRequest("x", 10, true)))
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the 50 requests limit learned while the stream runs", func() bool {
		st := serviceStatus(t, r.lim, "anthropic")
		for _, l := range st.Limits {
			if l.Unit == limiter.Requests && l.Quota == 50 {
				return st.InFlight == 1
			}
		}
		return false
	})
}

// Item 7: a stream longer than the lease TTL keeps its slot, and its usage
// counts.
func TestLongStreamKeepsItsLease(t *testing.T) {
	var inFlight, most atomic.Int32
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for range 8 { // 8 × 100 ms: longer than the 250 ms TTL
			io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond) // the upstream's pace, not a wait for a condition
		}
		io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":8}}\n\ndata: [DONE]\n\n")
	}))
	defer upSrv.Close()
	const quota = 100000
	r := newRig(t, limiter.Config{LeaseTTL: 250 * time.Millisecond, Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 1,
		Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Tokens, Window: time.Hour}}}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, nil)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			res, body := post(t, r.base("a", "s")+"/v1/chat/completions", chatRequest("x", 10, true), nil)
			if res.StatusCode != http.StatusOK {
				t.Errorf("%d %s", res.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Errorf("%d streams overlapped upstream with max_concurrent 1", m)
	}
	testenv.WaitFor(t, 10*time.Second, "both streams' 15 tokens charged", func() bool {
		return serviceStatus(t, r.lim, "s").InFlight == 0 && remaining(t, r.lim, "s", limiter.Tokens) == quota-30
	})
}

// Item 9: a paused service holds the call until it is resumed, and answers
// a retry time an SDK honours once max_wait is spent.
func TestPausedServiceHoldsTheCall(t *testing.T) {
	up := &fakeProvider{prompt: 1, completion: 1}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	r := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s", MaxConcurrent: 2}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = 30 * time.Second })
	if _, err := r.lim.SetServicePaused("s", true); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		res, _ := post(t, r.base("a", "s")+"/v1/chat/completions", chatRequest("x", 1, false), nil)
		done <- res.StatusCode
	}()
	testenv.WaitFor(t, 10*time.Second, "the call held while paused", func() bool { return serviceStatus(t, r.lim, "s").Refused >= 1 })
	select {
	case st := <-done:
		t.Fatalf("the call was answered %d while the service is paused; want it held", st)
	default:
	}
	if _, err := r.lim.SetServicePaused("s", false); err != nil {
		t.Fatal(err)
	}
	if st := <-done; st != http.StatusOK {
		t.Errorf("after resume: %d, want 200", st)
	}

	short := newRig(t, limiter.Config{Services: []limiter.ServiceConfig{{Name: "s"}}},
		[]Service{{Name: "s", BaseURL: upSrv.URL}}, func(c *Config) { c.MaxWait = 100 * time.Millisecond })
	short.lim.SetServicePaused("s", true)
	res, body := post(t, short.base("a", "s")+"/v1/chat/completions", chatRequest("x", 1, false), nil)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != fmt.Sprint(int(pausedRetryAfter.Seconds())) || !strings.Contains(body, "paused") {
		t.Errorf("paused past max_wait: %d Retry-After %q %s; want 429 with Retry-After %v saying it is paused",
			res.StatusCode, res.Header.Get("Retry-After"), body, pausedRetryAfter)
	}
}
