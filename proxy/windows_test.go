package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// Subscription windows through the proxy (rule 10): a fake upstream on
// 127.0.0.1 speaks Claude Code's /v1/messages (JSON and SSE) with unified
// headers, and Codex's /responses with x-codex-* headers and
// codex.rate_limits events.

// oauthToken is shaped like a Claude subscription's OAuth bearer token; it
// must never reach a log.
const oauthToken = "sk-ant-oat01-Zq3xW9vK2mN7pL4tR8yB1cD6fG0hJ5kS-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP-QRSTUVWXAA"

// subUpstream plays a subscription provider. Each call adds step to the
// 5-hour utilization; reject makes it answer 429 rejected until reset.
type subUpstream struct {
	mu       sync.Mutex
	util5    float64
	util7    float64
	step     float64
	reset5   time.Time
	reset7   time.Time
	reject   bool
	codexSSE bool // the codex answer carries its windows only in a codex.rate_limits event
	arrivals []time.Time
	auth     []string
}

func (u *subUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	now := time.Now()
	u.arrivals = append(u.arrivals, now)
	u.auth = append(u.auth, r.Header.Get("Authorization"))
	if u.reject && !now.Before(u.reset5) {
		// The window reset: a fresh one.
		u.reject, u.util5 = false, 0
		u.reset5 = now.Add(5 * time.Hour)
	}
	reject := u.reject
	if !reject {
		u.util5 += u.step
		u.util7 += u.step / 10
	}
	util5, util7, reset5, reset7 := u.util5, u.util7, u.reset5, u.reset7
	codexSSE := u.codexSSE
	u.mu.Unlock()

	var req struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal(body, &req)
	h := w.Header()
	if strings.HasSuffix(r.URL.Path, "/responses") {
		u.codex(w, req.Stream, codexSSE, reject, util5, util7, reset5, reset7)
		return
	}
	status := "allowed"
	if util5 >= 0.9 {
		status = "allowed_warning"
	}
	if reject {
		status = "rejected"
	}
	h.Set("anthropic-ratelimit-unified-status", status)
	h.Set("anthropic-ratelimit-unified-reset", epochCeil(reset5))
	h.Set("anthropic-ratelimit-unified-representative-claim", "five_hour")
	h.Set("anthropic-ratelimit-unified-5h-utilization", strconv.FormatFloat(util5, 'f', 4, 64))
	h.Set("anthropic-ratelimit-unified-5h-reset", epochCeil(reset5))
	h.Set("anthropic-ratelimit-unified-5h-status", status)
	h.Set("anthropic-ratelimit-unified-7d-utilization", strconv.FormatFloat(util7, 'f', 4, 64))
	h.Set("anthropic-ratelimit-unified-7d-reset", epochCeil(reset7))
	h.Set("anthropic-ratelimit-unified-7d-status", "allowed")
	h.Set("anthropic-ratelimit-unified-fallback-percentage", "0.5")
	h.Set("request-id", "req_011CTest")
	if reject {
		h.Set("Content-Type", "application/json")
		h.Set("Retry-After", "100000") // overage-style; the window's reset wins
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account's rate limit. Please try again later."}}`)
		return
	}
	if !req.Stream {
		h.Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":100,"output_tokens":20}}`)
		return
	}
	h.Set("Content-Type", "text/event-stream")
	io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"usage\":{\"input_tokens\":100,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\n")
	io.WriteString(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n")
	io.WriteString(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20}}\n\n")
	io.WriteString(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
}

func (u *subUpstream) codex(w http.ResponseWriter, stream, eventOnly, reject bool, util5, util7 float64, reset5, reset7 time.Time) {
	h := w.Header()
	if !eventOnly || reject {
		h.Set("x-codex-primary-used-percent", strconv.FormatFloat(util5*100, 'f', 1, 64))
		h.Set("x-codex-primary-window-minutes", "300")
		h.Set("x-codex-primary-reset-at", epochCeil(reset5))
		h.Set("x-codex-secondary-used-percent", strconv.FormatFloat(util7*100, 'f', 1, 64))
		h.Set("x-codex-secondary-window-minutes", "10080")
		h.Set("x-codex-secondary-reset-at", epochCeil(reset7))
		h.Set("x-codex-active-limit", "codex")
	}
	if reject {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_at":%s}}`, epochCeil(reset5))
		return
	}
	if !stream {
		h.Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"resp_1","object":"response","status":"completed","usage":{"input_tokens":300,"output_tokens":50}}`)
		return
	}
	h.Set("Content-Type", "text/event-stream")
	if eventOnly {
		fmt.Fprintf(w, "event: codex.rate_limits\ndata: {\"type\":\"codex.rate_limits\",\"plan_type\":\"plus\",\"rate_limits\":{\"primary\":{\"used_percent\":%.1f,\"window_minutes\":300,\"reset_at\":%s},\"secondary\":{\"used_percent\":%.1f,\"window_minutes\":10080,\"reset_at\":%s}}}\n\n",
			util5*100, epochCeil(reset5), util7*100, epochCeil(reset7))
	}
	io.WriteString(w, "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n")
	io.WriteString(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":300,\"output_tokens\":50}}}\n\n")
}

// epochCeil writes t as Unix seconds, rounded up as a reset must be.
func epochCeil(t time.Time) string {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return strconv.FormatInt(s, 10)
}

type subHarness struct {
	*harness
	up      *subUpstream
	limLogs *testenv.Buffer
}

func newSubHarness(t *testing.T, reserve float64, spacing, maxWait time.Duration) *subHarness {
	t.Helper()
	up := &subUpstream{step: 0.1, reset5: time.Now().Add(100 * time.Minute), reset7: time.Now().Add(60 * time.Hour)}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	limLogs := &testenv.Buffer{}
	lim, err := limiter.New(limiter.Config{
		Services: []limiter.ServiceConfig{
			{Name: "claude", Dialect: limiter.DialectAnthropic, ReserveHigh: reserve},
			{Name: "codex", Dialect: limiter.DialectOpenAI, ReserveHigh: reserve},
		},
		LeaseTTL: time.Minute, ResumeSpacing: spacing,
	}, limiter.WithLogger(slog.New(slog.NewTextHandler(limLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lim.Close)
	logs := &testenv.Buffer{}
	p, err := New(Config{
		Limiter: lim, Token: testToken, MaxWait: maxWait,
		Services: []Service{{Name: "claude", BaseURL: upSrv.URL}, {Name: "codex", BaseURL: upSrv.URL + "/backend-api/codex"}},
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return &subHarness{harness: &harness{lim: lim, url: srv.URL, logs: logs}, up: up, limLogs: limLogs}
}

// claudeCall is one Claude Code-shaped call: POST /v1/messages?beta=true
// with the OAuth bearer, max_tokens 64000.
func (h *subHarness) claudeCall(t *testing.T, agent string, stream bool) (*http.Response, string) {
	t.Helper()
	return post(t, h.base(agent, "claude")+"/v1/messages?beta=true", messagesRequest("fix the bug", 64000, stream), map[string]string{
		"Authorization":     "Bearer " + oauthToken,
		"anthropic-version": "2023-06-01",
		"anthropic-beta":    "oauth-2025-04-20,claude-code-20250219",
		"User-Agent":        "claude-cli/2.0.0 (external, cli)",
	})
}

func (h *subHarness) codexCall(t *testing.T, agent string, stream bool) (*http.Response, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"model": "gpt-5-codex", "stream": stream, "input": []map[string]any{{"role": "user", "content": "fix the bug"}}})
	return post(t, h.base(agent, "codex")+"/responses", string(b), map[string]string{
		"Authorization":      "Bearer eyJhbGciOiJSUzI1NiJ9.chatgpt-access-token.sig",
		"chatgpt-account-id": "acct-1",
	})
}

func findWindow(lim *limiter.Limiter, service, name string) (limiter.WindowStatus, bool) {
	for _, s := range lim.Status().Services {
		if s.Name != service {
			continue
		}
		for _, w := range s.Windows {
			if w.Name == name {
				return w, true
			}
		}
	}
	return limiter.WindowStatus{}, false
}

func subWindow(t *testing.T, lim *limiter.Limiter, service, name string) limiter.WindowStatus {
	t.Helper()
	for _, w := range serviceStatus(t, lim, service).Windows {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("service %s has no window %q: %+v", service, name, serviceStatus(t, lim, service).Windows)
	return limiter.WindowStatus{}
}

func TestSubscriptionWindowsClimb(t *testing.T) {
	h := newSubHarness(t, 0, 0, 10*time.Second)
	agents := []string{"alpha", "beta", "alpha", "gamma", "alpha", "beta"}
	for i, a := range agents {
		res, body := h.claudeCall(t, a, i%2 == 1)
		if res.StatusCode != 200 {
			t.Fatalf("call %d: %d %s", i, res.StatusCode, body)
		}
		// The proxy reports once the body has gone to the client.
		want := 0.1 * float64(i+1)
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("5-hour utilization %v after call %d", want, i+1), func() bool {
			w, ok := findWindow(h.lim, "claude", "5h")
			return ok && math.Abs(w.Utilization-want) < 1e-3 && w.Requests == int64(i+1)
		})
	}
	w := subWindow(t, h.lim, "claude", "5h")
	if w.Requests != int64(len(agents)) || w.Tokens != int64(len(agents))*120 {
		t.Fatalf("5-hour totals %d requests, %d tokens; want %d and %d", w.Requests, w.Tokens, len(agents), len(agents)*120)
	}
	var share float64
	var req, tok int64
	for _, a := range w.Agents {
		share, req, tok = share+a.Share, req+a.Requests, tok+a.Tokens
	}
	if math.Abs(share-1) > 1e-9 || req != w.Requests || tok != w.Tokens {
		t.Fatalf("agents' shares %v, requests %d, tokens %d do not add up to 1, %d, %d: %+v", share, req, tok, w.Requests, w.Tokens, w.Agents)
	}
	if w.Agents[0].Agent != "alpha" || math.Abs(w.Agents[0].Share-0.5) > 1e-9 {
		t.Fatalf("top agent %+v, want alpha with half", w.Agents[0])
	}
	if wk := subWindow(t, h.lim, "claude", "7d"); math.Abs(wk.Utilization-0.06) > 1e-3 || wk.Label != "week" {
		t.Fatalf("week %+v", wk)
	}

	// Codex: headers on a JSON answer, then only a codex.rate_limits event
	// inside the SSE stream.
	for i, eventOnly := range []bool{false, true, true} {
		h.up.mu.Lock()
		h.up.codexSSE = eventOnly
		h.up.mu.Unlock()
		res, body := h.codexCall(t, "alpha", eventOnly)
		if res.StatusCode != 200 {
			t.Fatalf("codex call %d: %d %s", i, res.StatusCode, body)
		}
		if eventOnly && !strings.Contains(body, "codex.rate_limits") {
			t.Fatalf("the event did not reach the client: %s", body)
		}
		h.up.mu.Lock()
		want := h.up.util5
		h.up.mu.Unlock()
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("codex 5-hour utilization %v after call %d", want, i+1), func() bool {
			w, ok := findWindow(h.lim, "codex", "5h")
			return ok && math.Abs(w.Utilization-want) < 1e-3 && w.Requests == int64(i+1)
		})
	}
	if cw := subWindow(t, h.lim, "codex", "7d"); cw.Length != 7*24*time.Hour || cw.Tokens != 3*350 {
		t.Fatalf("codex week %+v", cw)
	}
	h.noCredentialLogged(t)
}

// noCredentialLogged checks the proxy's and the limiter's logs (at debug
// level) for the bearer tokens the calls carried, whole or in part.
func (h *subHarness) noCredentialLogged(t *testing.T) {
	t.Helper()
	h.up.mu.Lock()
	seen := slices0(h.up.auth)
	h.up.mu.Unlock()
	if len(seen) == 0 || seen[0] == "" {
		t.Fatal("the upstream saw no Authorization: the check below would prove nothing")
	}
	for _, log := range []string{h.logs.String(), h.limLogs.String()} {
		for _, secret := range []string{"sk-ant-oat01", oauthToken[20:40], "chatgpt-access-token"} {
			if strings.Contains(log, secret) {
				t.Fatalf("a log contains a credential (%q):\n%s", secret, log)
			}
		}
	}
}

func slices0(s []string) []string { return append([]string(nil), s...) }

func TestSubscriptionReserve(t *testing.T) {
	h := newSubHarness(t, 0.10, 0, 2*time.Second)
	h.up.mu.Lock()
	h.up.util5, h.up.step = 0.85, 0.06
	h.up.mu.Unlock()
	if res, body := h.claudeCall(t, "worker", false); res.StatusCode != 200 {
		t.Fatalf("%d %s", res.StatusCode, body)
	}
	testenv.WaitFor(t, 10*time.Second, "the call's report", func() bool {
		w, ok := findWindow(h.lim, "claude", "5h")
		return ok && w.Requests == 1
	})
	w := subWindow(t, h.lim, "claude", "5h")
	if !w.Reserved || !w.Warning || w.Status != "allowed_warning" {
		t.Fatalf("at 91%% with a 10%% reserve: %+v, want reserved and warning", w)
	}
	res, body := h.claudeCall(t, "worker", false)
	if res.StatusCode != 429 || !strings.Contains(body, `"reserved"`) {
		t.Fatalf("a normal agent past the reserve: %d %s, want 429 reserved", res.StatusCode, body)
	}
	if ra, _ := strconv.Atoi(res.Header.Get("Retry-After")); ra < 90*60 {
		t.Fatalf("Retry-After %q, want the window's reset about 100 minutes out", res.Header.Get("Retry-After"))
	}
	if res, body := h.claudeCall(t, "lead~high", true); res.StatusCode != 200 {
		t.Fatalf("a high agent past the reserve: %d %s, want it to pass", res.StatusCode, body)
	}
	h.up.mu.Lock()
	calls := len(h.up.arrivals)
	h.up.mu.Unlock()
	if calls != 2 {
		t.Fatalf("upstream saw %d calls, want 2: the held one must not reach it", calls)
	}
	h.noCredentialLogged(t)
}

// At rejected every agent, high included, is held; all resume at the
// (short) reset, spaced by ResumeSpacing: no herd.
func TestSubscriptionRejectedResumesWithoutHerd(t *testing.T) {
	for _, service := range []string{"claude", "codex"} {
		t.Run(service, func(t *testing.T) {
			const spacing = 150 * time.Millisecond
			h := newSubHarness(t, 0.10, spacing, 15*time.Second)
			reset := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
			h.up.mu.Lock()
			h.up.reject, h.up.reset5, h.up.util5 = true, reset, 1.0
			h.up.mu.Unlock()
			call := func(agent string) (*http.Response, string) {
				if service == "claude" {
					return h.claudeCall(t, agent, true)
				}
				return h.codexCall(t, agent, true)
			}
			// The first call meets the rejection; the proxy holds it.
			var wg sync.WaitGroup
			statuses := make(chan string, 6)
			wg.Go(func() {
				res, body := call("first")
				statuses <- fmt.Sprint(res.StatusCode, " ", body[:min(len(body), 80)])
			})
			testenv.WaitFor(t, 10*time.Second, "the rejection to cool the service", func() bool {
				return !serviceStatus(t, h.lim, service).CooldownUntil.IsZero()
			})
			if cu := serviceStatus(t, h.lim, service).CooldownUntil; !cu.Equal(reset) {
				t.Fatalf("cooldown until %v, want the 5-hour reset %v (not the week, not Retry-After)", cu, reset)
			}
			for _, a := range []string{"a", "b", "c", "boss~high", "d"} {
				wg.Go(func() {
					res, body := call(a)
					statuses <- fmt.Sprint(res.StatusCode, " ", body[:min(len(body), 80)])
				})
			}
			wg.Wait()
			close(statuses)
			for s := range statuses {
				if !strings.HasPrefix(s, "200 ") {
					t.Errorf("a held call ended %s, want 200 after the reset", s)
				}
			}
			h.up.mu.Lock()
			arrivals := slicesT(h.up.arrivals)
			h.up.mu.Unlock()
			// The first arrival is the rejected call; every later one came
			// after the reset, one by one.
			after := arrivals[1:]
			if len(after) != 6 {
				t.Fatalf("%d calls after the rejection, want 6", len(after))
			}
			for i, at := range after {
				if at.Before(reset) {
					t.Fatalf("call %d reached upstream at %v, before the reset %v", i, at, reset)
				}
				// The limiter spaces the grants exactly; on their way
				// upstream one may be late and meet the next, but three
				// within one spacing would be a herd (unpaced, all six
				// arrive within milliseconds).
				if i >= 2 {
					if d := at.Sub(after[i-2]); d < spacing {
						t.Fatalf("calls %d to %d reached upstream within %v: a herd (spacing %v)", i-2, i, d, spacing)
					}
				}
			}
			if span := after[len(after)-1].Sub(after[0]); span < 4*spacing {
				t.Fatalf("six calls reached upstream within %v; paced they take at least %v", span, 5*spacing)
			}
			if w := subWindow(t, h.lim, service, "5h"); w.Status == "rejected" || w.Utilization > 0.7 {
				t.Fatalf("after the reset the window is %+v, want the fresh one", w)
			}
			h.noCredentialLogged(t)
		})
	}
}

func slicesT(s []time.Time) []time.Time { return append([]time.Time(nil), s...) }

// A Gemini per-day quota refusal closes the service until the daily reset
// (midnight Pacific), not for the minute its retry delay says.
func TestGeminiPerDayQuota(t *testing.T) {
	var calls int
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[
			{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaValue":"250"}]},
			{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"43s"}]}}`)
	}))
	defer up.Close()
	h := newHarness(t, []limiter.ServiceConfig{{Name: "gemini"}}, map[string]string{"gemini": up.URL}, time.Second)
	res, body := post(t, h.base("a", "gemini")+"/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`, map[string]string{"x-goog-api-key": "AIzaTestKey"})
	if res.StatusCode != 429 || !strings.Contains(body, "RESOURCE_EXHAUSTED") {
		t.Fatalf("%d %s, want the provider's 429 passed on", res.StatusCode, body)
	}
	loc, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	now := time.Now().In(loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, loc)
	if cu := serviceStatus(t, h.lim, "gemini").CooldownUntil; !cu.Equal(midnight) {
		t.Fatalf("cooldown until %v, want midnight Pacific %v", cu, midnight)
	}
	if w, ok := findWindow(h.lim, "gemini", "day"); !ok || w.Status != "rejected" {
		t.Fatalf("day window %+v, %v", w, ok)
	}
	// The body reached the caller whole, though the proxy read its start.
	if !strings.HasSuffix(strings.TrimSpace(body), `"retryDelay":"43s"}]}}`) {
		t.Fatalf("body cut: %s", body)
	}
	if strings.Contains(h.logs.String(), "AIzaTestKey") {
		t.Fatal("the API key reached the log")
	}
}
