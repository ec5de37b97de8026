package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

const testToken = "0123456789abcdef0123456789abcdef"

type harness struct {
	lim  *limiter.Limiter
	url  string // the proxy's root, http://127.0.0.1:PORT
	logs *testenv.Buffer
}

// base is the base URL an SDK would be given for agent and service.
func (h *harness) base(agent, service string) string {
	return h.url + "/t/" + testToken + "/" + agent + "/" + service
}

// newHarness starts a real limiter and the proxy on 127.0.0.1 in front of
// the given upstreams (service name → base URL).
func newHarness(t *testing.T, services []limiter.ServiceConfig, upstreams map[string]string, maxWait time.Duration) *harness {
	t.Helper()
	lim, err := limiter.New(limiter.Config{Services: services, LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lim.Close)
	logs := &testenv.Buffer{}
	var svcs []Service
	for _, s := range services {
		svcs = append(svcs, Service{Name: s.Name, BaseURL: upstreams[s.Name]})
	}
	p, err := New(Config{
		Limiter:  lim,
		Token:    testToken,
		Services: svcs,
		MaxWait:  maxWait,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &harness{lim: lim, url: srv.URL, logs: logs}
}

func serviceStatus(t *testing.T, lim *limiter.Limiter, name string) limiter.ServiceStatus {
	t.Helper()
	for _, s := range lim.Status().Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("service %q not in limiter status", name)
	return limiter.ServiceStatus{}
}

// chatRequest is an OpenAI chat completions request body.
func chatRequest(prompt string, maxTokens int, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":          "gpt-test",
		"max_tokens":     maxTokens,
		"stream":         stream,
		"stream_options": map[string]any{"include_usage": stream},
		"messages":       []map[string]string{{"role": "user", "content": prompt}},
	})
	return string(b)
}

// messagesRequest is an Anthropic messages request body.
func messagesRequest(prompt string, maxTokens int, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":      "claude-test",
		"max_tokens": maxTokens,
		"stream":     stream,
		"messages":   []map[string]any{{"role": "user", "content": []map[string]string{{"type": "text", "text": prompt}}}},
	})
	return string(b)
}

// fakeProvider answers the OpenAI chat completions and Anthropic messages
// shapes, each call costing usage prompt/completion tokens, and enforces an
// optional sliding-window request quota by answering 429.
type fakeProvider struct {
	prompt, completion int64
	quota              int           // 0: no quota
	window             time.Duration // of the quota

	mu       sync.Mutex
	arrivals []time.Time
	calls    int
	over     int // calls answered 429 because the quota was spent
	bodies   []string
	headers  []http.Header
	paths    []string
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	f.mu.Lock()
	f.calls++
	f.bodies = append(f.bodies, string(body))
	f.headers = append(f.headers, r.Header.Clone())
	f.paths = append(f.paths, r.URL.RequestURI()+" host="+r.Host)
	if f.quota > 0 {
		n := 0
		for _, a := range f.arrivals {
			if now.Sub(a) < f.window {
				n++
			}
		}
		if n >= f.quota {
			f.over++
			f.mu.Unlock()
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"rate limit","type":"rate_limit_error"}}`, http.StatusTooManyRequests)
			return
		}
		f.arrivals = append(f.arrivals, now)
	}
	f.mu.Unlock()

	var req struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal(body, &req)
	anthropic := strings.HasSuffix(r.URL.Path, "/messages")
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		if anthropic {
			fmt.Fprintf(w, `{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":%d,"output_tokens":%d}}`, f.prompt, f.completion)
		} else {
			fmt.Fprintf(w, `{"id":"c1","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, f.prompt, f.completion, f.prompt+f.completion)
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	if anthropic {
		fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":%d,\"output_tokens\":1}}}\n\n", f.prompt)
		fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n")
		fmt.Fprintf(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":%d}}\n\n", f.completion)
		fmt.Fprintf(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
		return
	}
	fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n")
	fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", f.prompt, f.completion, f.prompt+f.completion)
	fmt.Fprintf(w, "data: [DONE]\n\n")
}

func post(t *testing.T, url, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestConcurrentClientsStayUnderQuota(t *testing.T) {
	const quota, clients, perClient = 4, 5, 3
	// The provider counts arrivals in a window shorter than the limiter's,
	// so that the delay between a grant and its arrival upstream cannot
	// make two windows' grants look like one.
	up := &fakeProvider{prompt: 10, completion: 5, quota: quota, window: 700 * time.Millisecond}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{
		Name:   "openai",
		Limits: []limiter.Policy{{Quota: quota, Unit: limiter.Requests, Window: time.Second}},
	}}, map[string]string{"openai": upSrv.URL}, 0)

	var wg sync.WaitGroup
	statuses := make(chan int, clients*perClient)
	for c := range clients {
		wg.Go(func() {
			for range perClient {
				res, err := http.Post(h.base(fmt.Sprintf("agent-%d", c), "openai")+"/v1/chat/completions",
					"application/json", strings.NewReader(chatRequest("hello", 5, false)))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				statuses <- res.StatusCode
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a caller got %d, want 200 for every call", s)
		}
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.over != 0 {
		t.Errorf("upstream saw %d calls over its quota of %d per window", up.over, quota)
	}
	if up.calls != clients*perClient {
		t.Errorf("upstream saw %d calls, want %d", up.calls, clients*perClient)
	}
	if s := serviceStatus(t, h.lim, "openai"); s.Provider429 != 0 {
		t.Errorf("limiter saw %d provider 429s, want 0", s.Provider429)
	}
	// A lease ends when its report is made, just after the last byte went
	// to the client.
	testenv.WaitFor(t, 10*time.Second, "every lease to end", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 0 })
}

func TestUsageCorrectsEstimate(t *testing.T) {
	const quota = 100000
	up := &fakeProvider{prompt: 30, completion: 12}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	tokens := []limiter.Policy{{Quota: quota, Unit: limiter.Tokens, Window: time.Hour}}
	prompt := strings.Repeat("word ", 400) // estimate: 500 prompt tokens
	tests := []struct {
		name, service, path, body string
	}{
		{"openai json", "openai", "/v1/chat/completions", chatRequest(prompt, 1000, false)},
		{"openai stream", "openai", "/v1/chat/completions", chatRequest(prompt, 1000, true)},
		{"anthropic json", "anthropic", "/v1/messages", messagesRequest(prompt, 1000, false)},
		{"anthropic stream", "anthropic", "/v1/messages", messagesRequest(prompt, 1000, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []limiter.ServiceConfig{
				{Name: "openai", Limits: tokens}, {Name: "anthropic", Limits: tokens},
			}, map[string]string{"openai": upSrv.URL, "anthropic": upSrv.URL}, 0)
			if est := Estimate([]byte(tt.body))[limiter.Tokens]; est < 1000 {
				t.Fatalf("estimate %d tokens: the test needs one far from the real 42", est)
			}
			res, _ := post(t, h.base("a1", tt.service)+tt.path, tt.body, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			// The report happens after the last byte reached the client.
			want := int64(quota - up.prompt - up.completion)
			testenv.WaitFor(t, 10*time.Second, "the tokens remaining to equal the quota minus the real usage", func() bool {
				s := serviceStatus(t, h.lim, tt.service)
				return len(s.Limits) == 1 && s.Limits[0].Remaining == want && s.InFlight == 0
			})
		})
	}
}

// TestStreamPassesChunkByChunk checks that an event stream is neither
// buffered nor changed: the client reads the first event while the
// upstream still holds the second back.
func TestStreamPassesChunkByChunk(t *testing.T) {
	first := "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	second := "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"
	next := make(chan struct{})
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, first)
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, second)
	}))
	defer upSrv.Close()
	defer func() {
		select {
		case <-next:
		default:
			close(next)
		}
	}()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 2}}, map[string]string{"openai": upSrv.URL}, 0)

	res, err := http.Post(h.base("streamer", "openai")+"/v1/chat/completions", "application/json",
		strings.NewReader(chatRequest("hi", 10, true)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got := make([]byte, len(first))
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(res.Body, got); read <- err }()
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not reach the client while the upstream held the second: the proxy buffers streams")
	}
	if string(got) != first {
		t.Fatalf("first chunk = %q, want %q", got, first)
	}
	close(next)
	rest, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != second {
		t.Errorf("rest of the stream = %q, want %q", rest, second)
	}
}

func TestClientGoneMidStreamFreesSlot(t *testing.T) {
	started := make(chan struct{})
	upstreamCancelled := make(chan struct{})
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[]}\n\n")
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		close(upstreamCancelled)
	}))
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": upSrv.URL}, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base("quitter", "openai")+"/v1/chat/completions",
		strings.NewReader(chatRequest("hi", 10, true)))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	<-started
	if s := serviceStatus(t, h.lim, "openai"); s.InFlight != 1 {
		t.Fatalf("in flight during the stream = %d, want 1", s.InFlight)
	}
	cancel()
	res.Body.Close()
	select {
	case <-upstreamCancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
	testenv.WaitFor(t, 10*time.Second, "the concurrency slot to be freed", func() bool {
		return serviceStatus(t, h.lim, "openai").InFlight == 0
	})
}

func TestTokenRequired(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 4}}, map[string]string{"openai": upSrv.URL}, 0)
	for _, path := range []string{
		"/v1/chat/completions",
		"/t/",
		"/t//a/openai/v1/chat/completions",
		"/t/wrong/a/openai/v1/chat/completions",
		"/t/" + testToken[:31] + "/a/openai/v1/chat/completions",
		"/t/" + testToken + "0/a/openai/v1/chat/completions",
		"/t/" + strings.ToUpper(testToken) + "/a/openai/v1/chat/completions",
		"/x/" + testToken + "/a/openai/v1/chat/completions",
		"/t/" + testToken,
	} {
		t.Run(path, func(t *testing.T) {
			res, body := post(t, h.url+path, chatRequest("hi", 1, false), nil)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", res.StatusCode)
			}
			if strings.Contains(body, "openai") {
				t.Errorf("a 403 tells who has no token which services exist: %s", body)
			}
		})
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.calls != 0 {
		t.Errorf("upstream saw %d requests without a valid token", up.calls)
	}
}

func TestBadRequests(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 4}, {Name: "local", MaxConcurrent: 4}},
		map[string]string{"openai": upSrv.URL}, 0)
	tests := []struct {
		name, path string
		header     map[string]string
		status     int
		says       string
	}{
		{"bad agent", "/t/" + testToken + "/bad agent!/openai/v1/x", nil, 400, "agent"},
		{"long agent", "/t/" + testToken + "/" + strings.Repeat("a", 65) + "/openai/v1/x", nil, 400, "65 bytes"},
		{"unknown service", "/t/" + testToken + "/a/opneai/v1/x", nil, 404, "configured: local, openai"},
		{"service without upstream", "/t/" + testToken + "/a/local/v1/x", nil, 404, "base_url"},
		{"bad priority", "/t/" + testToken + "/a/openai/v1/x", map[string]string{PriorityHeader: "urgent"}, 400, "high, normal or low"},
		{"bad priority in the URL", "/t/" + testToken + "/a~urgent/openai/v1/x", nil, 400, "high, normal or low"},
		{"empty priority in the URL", "/t/" + testToken + "/a~/openai/v1/x", nil, 400, "high, normal or low"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := post(t, h.url+tt.path, "{}", tt.header)
			if res.StatusCode != tt.status || !strings.Contains(body, tt.says) {
				t.Errorf("got %d %s; want %d saying %q", res.StatusCode, body, tt.status, tt.says)
			}
		})
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.calls != 0 {
		t.Errorf("upstream saw %d bad requests", up.calls)
	}
}

func TestForwarding(t *testing.T) {
	up := &fakeProvider{prompt: 1, completion: 1}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 4}, {Name: "prefixed", MaxConcurrent: 4}},
		map[string]string{"openai": upSrv.URL, "prefixed": upSrv.URL + "/api/"}, 0)
	hdr := map[string]string{
		"Authorization":   "Bearer sk-caller-own-key",
		"X-Api-Key":       "caller-anthropic-key",
		PriorityHeader:    "high",
		"Accept-Encoding": "br",
	}
	for _, tt := range []struct{ service, path, want string }{
		{"openai", "/v1/chat/completions?limit=2&key=k", "/v1/chat/completions?limit=2&key=k"},
		{"prefixed", "/v1/models/a%2Fb:generate", "/api/v1/models/a%2Fb:generate"},
	} {
		t.Run(tt.service, func(t *testing.T) {
			res, _ := post(t, h.base("fwd", tt.service)+tt.path, chatRequest("hi", 3, false), hdr)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			up.mu.Lock()
			defer up.mu.Unlock()
			got := up.headers[len(up.headers)-1]
			if got.Get("Authorization") != hdr["Authorization"] || got.Get("X-Api-Key") != hdr["X-Api-Key"] {
				t.Errorf("credentials not passed untouched: %q, %q", got.Get("Authorization"), got.Get("X-Api-Key"))
			}
			if got.Get(PriorityHeader) != "" {
				t.Errorf("%s reached upstream", PriorityHeader)
			}
			if got.Get("Accept-Encoding") == "br" {
				t.Error("the caller's Accept-Encoding reached upstream; usage could not be read from a compressed body")
			}
			wantPath := tt.want + " host=" + strings.TrimPrefix(upSrv.URL, "http://")
			if p := up.paths[len(up.paths)-1]; p != wantPath {
				t.Errorf("upstream request %q, want %q", p, wantPath)
			}
			if b := up.bodies[len(up.bodies)-1]; b != chatRequest("hi", 3, false) {
				t.Errorf("upstream body %q changed", b)
			}
		})
	}
}

func TestRetryAfter429(t *testing.T) {
	t.Run("held and retried after the cooldown", func(t *testing.T) {
		var mu sync.Mutex
		var bodies []string
		upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			n := len(bodies)
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				http.Error(w, `{"error":{"type":"rate_limit_error"}}`, http.StatusTooManyRequests)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
		}))
		defer upSrv.Close()
		h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 4}}, map[string]string{"openai": upSrv.URL}, time.Minute)
		body := chatRequest("retry me", 5, false)
		res, got := post(t, h.base("patient", "openai")+"/v1/chat/completions", body, nil)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("caller got %d %s, want 200 after the proxy's retry", res.StatusCode, got)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(bodies) != 2 || bodies[0] != body || bodies[1] != body {
			t.Errorf("upstream saw %d calls with bodies %q; want the same body twice", len(bodies), bodies)
		}
		if s := serviceStatus(t, h.lim, "openai"); s.Provider429 != 1 {
			t.Errorf("limiter saw %d provider 429s, want 1", s.Provider429)
		}
	})
	t.Run("429 to the caller when the wait would be too long", func(t *testing.T) {
		calls := 0
		var mu sync.Mutex
		upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			mu.Unlock()
			w.Header().Set("Retry-After", "30")
			http.Error(w, `{"error":{"type":"rate_limit_error","message":"slow down"}}`, http.StatusTooManyRequests)
		}))
		defer upSrv.Close()
		h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 4}}, map[string]string{"openai": upSrv.URL}, time.Second)
		url := h.base("hasty", "openai") + "/v1/chat/completions"
		res, body := post(t, url, chatRequest("x", 1, false), nil)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || !strings.Contains(body, "slow down") {
			t.Errorf("first call: %d Retry-After=%q %s; want the upstream's 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		// The service is cooling down: the next call is answered by the
		// proxy without reaching upstream.
		res, body = post(t, url, chatRequest("x", 1, false), nil)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
			t.Errorf("second call: %d Retry-After=%q %s; want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 1 {
			t.Errorf("upstream saw %d calls, want 1: the second must wait out the cooldown, not hit upstream", calls)
		}
	})
}

func TestNoSecretsInLogs(t *testing.T) {
	secrets := []string{"sk-live-SECRET-1", "anthropic-SECRET-2", "gemini-SECRET-3", testToken}
	up := &fakeProvider{prompt: 1, completion: 1}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "{}", http.StatusTooManyRequests)
	}))
	defer limited.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // connection refused: the 502 path
	h := newHarness(t, []limiter.ServiceConfig{
		{Name: "openai", MaxConcurrent: 4}, {Name: "limited", MaxConcurrent: 4}, {Name: "gone", MaxConcurrent: 4},
	}, map[string]string{"openai": upSrv.URL, "limited": limited.URL, "gone": gone.URL}, time.Second)
	hdr := map[string]string{"Authorization": "Bearer " + secrets[0], "X-Api-Key": secrets[1]}
	for _, svc := range []string{"openai", "limited", "limited", "gone", "nope"} {
		post(t, h.base("logged", svc)+"/v1beta/models/m:generateContent?key="+secrets[2], chatRequest("hi", 1, false), hdr)
	}
	post(t, h.url+"/t/"+secrets[1]+"/a/openai/v1/x", "{}", hdr)
	logs := h.logs.String()
	if !strings.Contains(logs, "upstream 429") && !strings.Contains(logs, "refused") {
		t.Fatalf("the log is missing the calls it should record:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q appears in the log:\n%s", s, logs)
		}
	}
}

// TestPriority queues a low and then a high call behind a call in flight:
// the high one, whether its priority comes from the URL or the header, goes
// upstream first.
func TestPriority(t *testing.T) {
	for _, tt := range []struct {
		name            string
		lowURL, highURL string // agent segments
		lowHdr, highHdr string // X-Quotabar-Priority
	}{
		{"from the URL", "slow~low", "fast~high", "", ""},
		{"from the header", "slow", "fast", "low", "high"},
		{"header beats URL", "slow~high", "fast~low", "low", "high"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			var order []string
			upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				order = append(order, string(b))
				first := len(order) == 1
				mu.Unlock()
				if first {
					<-release
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, "{}")
			}))
			defer upSrv.Close()
			h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": upSrv.URL}, 0)
			call := func(agent, prio, body string) chan int {
				done := make(chan int, 1)
				go func() {
					req, _ := http.NewRequest(http.MethodPost, h.url+"/t/"+testToken+"/"+agent+"/openai/v1/x", strings.NewReader(body))
					if prio != "" {
						req.Header.Set(PriorityHeader, prio)
					}
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						done <- 0
						return
					}
					res.Body.Close()
					done <- res.StatusCode
				}()
				return done
			}
			first := call("busy", "", "first")
			testenv.WaitFor(t, 10*time.Second, "the first call in flight", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 1 })
			low := call(tt.lowURL, tt.lowHdr, "low")
			testenv.WaitFor(t, 10*time.Second, "the low call queued", func() bool { return serviceStatus(t, h.lim, "openai").Queued == 1 })
			high := call(tt.highURL, tt.highHdr, "high")
			testenv.WaitFor(t, 10*time.Second, "the high call queued", func() bool { return serviceStatus(t, h.lim, "openai").Queued == 2 })
			close(release)
			for _, c := range []chan int{first, low, high} {
				if s := <-c; s != http.StatusOK {
					t.Errorf("status %d", s)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(order, ",") != "first,high,low" {
				t.Errorf("upstream order %v, want first, high, low", order)
			}
		})
	}
}

// TestClientGoneWhileQueued: a caller that leaves while its call waits for
// a slot leaves the queue, and its call never goes upstream.
func TestClientGoneWhileQueued(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		<-release
	}))
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": upSrv.URL}, 0)
	url := h.base("a", "openai") + "/v1/x"
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		if res, err := http.Post(url, "application/json", strings.NewReader("busy")); err == nil {
			res.Body.Close()
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the first call in flight", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("queued"))
		_, err := http.DefaultClient.Do(req)
		gone <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "the second call queued", func() bool { return serviceStatus(t, h.lim, "openai").Queued == 1 })
	cancel()
	<-gone
	testenv.WaitFor(t, 10*time.Second, "the queue to empty", func() bool { return serviceStatus(t, h.lim, "openai").Queued == 0 })
	close(release)
	<-busy
	testenv.WaitFor(t, 10*time.Second, "the slot to be free", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 0 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "busy" {
		t.Errorf("upstream saw %q; the call whose client left must not go upstream", seen)
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": gone.URL}, 0)
	for range 2 { // a leaked slot would hold the second call in the queue
		res, body := post(t, h.base("a", "openai")+"/v1/x", "{}", nil)
		if res.StatusCode != http.StatusBadGateway || !strings.Contains(body, "cannot reach") {
			t.Fatalf("got %d %s; want 502 saying the upstream cannot be reached", res.StatusCode, body)
		}
		testenv.WaitFor(t, 10*time.Second, "the slot to be free", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 0 })
	}
}

func TestBodyTooLarge(t *testing.T) {
	up := &fakeProvider{}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": upSrv.URL}, 0)
	res, body := post(t, h.base("a", "openai")+"/v1/x", strings.Repeat("x", MaxBody+1), nil)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "MiB") {
		t.Errorf("got %d %s; want 413", res.StatusCode, body)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.calls != 0 {
		t.Errorf("upstream saw %d calls", up.calls)
	}
}

// TestLimiterClosed: when the daemon stops, a call waiting in the queue is
// answered 503, not left hanging.
func TestLimiterClosed(t *testing.T) {
	release := make(chan struct{})
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer upSrv.Close()
	defer close(release) // before upSrv.Close, which waits for its handlers
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", MaxConcurrent: 1}}, map[string]string{"openai": upSrv.URL}, 0)
	url := h.base("a", "openai") + "/v1/x"
	go func() {
		if res, err := http.Post(url, "application/json", strings.NewReader("{}")); err == nil {
			res.Body.Close()
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the first call in flight", func() bool { return serviceStatus(t, h.lim, "openai").InFlight == 1 })
	queued := make(chan *http.Response, 1)
	go func() {
		res, err := http.Post(url, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Error(err)
			close(queued)
			return
		}
		queued <- res
	}()
	testenv.WaitFor(t, 10*time.Second, "the second call queued", func() bool { return serviceStatus(t, h.lim, "openai").Queued == 1 })
	h.lim.Close()
	res := <-queued
	if res == nil {
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("queued call after the limiter closed: %d %s; want 503", res.StatusCode, body)
	}
}

// TestRejectedCallRefundsTokens: a 4xx from upstream used no tokens, so
// the estimate reserved for it is given back.
func TestRejectedCallRefundsTokens(t *testing.T) {
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":{"message":"bad model","type":"invalid_request_error"}}`)
	}))
	defer upSrv.Close()
	const quota = 100000
	h := newHarness(t, []limiter.ServiceConfig{{Name: "openai", Limits: []limiter.Policy{
		{Quota: quota, Unit: limiter.Tokens, Window: time.Hour},
		{Quota: 100, Unit: limiter.Requests, Window: time.Hour},
	}}}, map[string]string{"openai": upSrv.URL}, 0)
	res, body := post(t, h.base("a", "openai")+"/v1/chat/completions", chatRequest("hello", 5000, false), nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "bad model") {
		t.Fatalf("got %d %s; want the upstream's 400", res.StatusCode, body)
	}
	testenv.WaitFor(t, 10*time.Second, "the tokens to be given back, the request still counted", func() bool {
		s := serviceStatus(t, h.lim, "openai")
		if s.InFlight != 0 {
			return false
		}
		for _, l := range s.Limits {
			if l.Unit == limiter.Tokens && l.Remaining != quota || l.Unit == limiter.Requests && l.Remaining != 99 {
				return false
			}
		}
		return true
	})
}
