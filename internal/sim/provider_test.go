package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// fakeNow is a clock the test moves by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Set(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = t0.Add(d)
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newTestProvider(t *testing.T, cfg ProviderConfig) (*Provider, *fakeNow, string) {
	t.Helper()
	clock := &fakeNow{t: t0}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	p, err := NewProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, clock, srv.URL
}

type answer struct {
	status int
	header http.Header
	body   CallResponse
}

func post(t *testing.T, url string, req CallRequest) answer {
	t.Helper()
	b, _ := json.Marshal(req)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func ptr[T any](v T) *T { return &v }

func TestProviderWindows(t *testing.T) {
	reqs := func(q int64) []limiter.Policy {
		return []limiter.Policy{{Quota: q, Unit: limiter.Requests, Window: time.Second}}
	}
	type step struct {
		at        time.Duration
		prompt    int64
		wantCode  int
		wantRetry int64 // retry-after-ms on a 429
	}
	tests := []struct {
		name  string
		cfg   ProviderConfig
		steps []step
	}{
		{"sliding frees each grant one window after it", ProviderConfig{Limits: reqs(2)}, []step{
			{0, 0, 200, 0},
			{400 * time.Millisecond, 0, 200, 0},
			{500 * time.Millisecond, 0, 429, 500},
			{999 * time.Millisecond, 0, 429, 1},
			{time.Second, 0, 200, 0},
			{time.Second, 0, 429, 400},
			{1400 * time.Millisecond, 0, 200, 0},
		}},
		{"fixed resets at the window edge", ProviderConfig{Limits: reqs(2), Window: Fixed}, []step{
			{900 * time.Millisecond, 0, 200, 0},
			{950 * time.Millisecond, 0, 200, 0},
			{960 * time.Millisecond, 0, 429, 40},
			{time.Second, 0, 200, 0},
			{1100 * time.Millisecond, 0, 200, 0},
			{1200 * time.Millisecond, 0, 429, 800},
		}},
		{"bucket refills at quota per window", ProviderConfig{Limits: reqs(2), Window: Bucket}, []step{
			{0, 0, 200, 0},
			{0, 0, 200, 0},
			{0, 0, 429, 500},
			{500 * time.Millisecond, 0, 200, 0},
			{500 * time.Millisecond, 0, 429, 500},
			{3 * time.Second, 0, 200, 0}, // full again, not fuller
			{3 * time.Second, 0, 200, 0},
			{3 * time.Second, 0, 429, 500},
		}},
		{"tokens count prompt plus completion", ProviderConfig{Limits: []limiter.Policy{
			{Quota: 100, Unit: limiter.Requests, Window: time.Second},
			{Quota: 1000, Unit: limiter.Tokens, Window: time.Second},
		}}, []step{
			{0, 300, 200, 0},                        // 300 + 100 = 400
			{100 * time.Millisecond, 300, 200, 0},   // 800
			{200 * time.Millisecond, 300, 429, 800}, // 1200 > 1000: wait for the first to leave
			{200 * time.Millisecond, 50, 200, 0},    // 950
			{1000 * time.Millisecond, 300, 200, 0},  // the first 400 has left: 550 + 400
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, clock, url := newTestProvider(t, tt.cfg)
			var ok, refused int64
			for i, s := range tt.steps {
				clock.Set(s.at)
				a := post(t, url, CallRequest{Agent: "a", PromptTokens: s.prompt, MaxTokens: 100})
				if a.status != s.wantCode {
					t.Fatalf("step %d at %v: status %d, want %d", i, s.at, a.status, s.wantCode)
				}
				if a.status == 200 {
					ok++
					continue
				}
				refused++
				ms, err := strconv.ParseInt(a.header.Get("retry-after-ms"), 10, 64)
				if err != nil || ms != s.wantRetry {
					t.Errorf("step %d: retry-after-ms %q, want %d", i, a.header.Get("retry-after-ms"), s.wantRetry)
				}
				if sec := a.header.Get("Retry-After"); sec != strconv.FormatInt((ms+999)/1000, 10) {
					t.Errorf("step %d: Retry-After %q does not round %d ms up to seconds", i, sec, ms)
				}
			}
			st := p.Stats()
			if st.Accepted != ok || st.Refused != refused || st.Agents["a"].Accepted != ok || st.Agents["a"].Refused != refused {
				t.Errorf("stats %+v, want %d accepted and %d refused", st, ok, refused)
			}
			if got := int64(len(p.Grants())); got != ok {
				t.Errorf("%d grants recorded, want %d", got, ok)
			}
		})
	}
}

func TestProviderUsage(t *testing.T) {
	p, _, url := newTestProvider(t, ProviderConfig{Limits: []limiter.Policy{{Quota: 10000, Unit: limiter.Tokens, Window: time.Minute}}})
	a := post(t, url, CallRequest{Agent: "x", PromptTokens: 120, MaxTokens: 500, CompletionTokens: ptr[int64](80)})
	want := Usage{PromptTokens: 120, CompletionTokens: 80, TotalTokens: 200}
	if a.status != 200 || a.body.Usage != want {
		t.Fatalf("status %d usage %+v, want 200 and %+v", a.status, a.body.Usage, want)
	}
	// A completion longer than max_tokens is cut at max_tokens, as a real
	// model's would be.
	a = post(t, url, CallRequest{Agent: "x", PromptTokens: 10, MaxTokens: 20, CompletionTokens: ptr[int64](99)})
	if a.body.Usage.CompletionTokens != 20 {
		t.Errorf("completion %d, want it capped at max_tokens 20", a.body.Usage.CompletionTokens)
	}
	if got := p.Stats().Used[limiter.Tokens]; got != 230 {
		t.Errorf("provider counted %d tokens, want 230", got)
	}
}

func TestProviderRejectsBadCalls(t *testing.T) {
	_, _, url := newTestProvider(t, ProviderConfig{Limits: []limiter.Policy{{Quota: 100, Unit: limiter.Tokens, Window: time.Minute}}})
	tests := []struct {
		name   string
		method string
		body   string
		want   int
	}{
		{"get", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"not json", http.MethodPost, "{", http.StatusBadRequest},
		{"negative tokens", http.MethodPost, `{"agent":"a","prompt_tokens":-1}`, http.StatusBadRequest},
		{"bigger than the quota", http.MethodPost, `{"agent":"a","prompt_tokens":101}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url, bytes.NewBufferString(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestNewProviderErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ProviderConfig
	}{
		{"nothing to enforce", ProviderConfig{}},
		{"unknown dialect", ProviderConfig{MaxConcurrent: 1, Dialect: "aws"}},
		{"zero window", ProviderConfig{Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests}}}},
		{"unknown unit", ProviderConfig{Limits: []limiter.Policy{{Quota: 1, Unit: "bytes", Window: time.Second}}}},
		{"two policies of one unit", ProviderConfig{Limits: []limiter.Policy{
			{Quota: 1, Unit: limiter.Requests, Window: time.Second}, {Quota: 5, Unit: limiter.Requests, Window: time.Minute}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewProvider(tt.cfg); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestProviderConcurrency(t *testing.T) {
	p, _, url := newTestProvider(t, ProviderConfig{MaxConcurrent: 1, Latency: time.Hour})
	// The first call holds the only slot until the test cancels it, which
	// closes its connection and ends the provider's latency wait.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		b, _ := json.Marshal(CallRequest{Agent: "slow"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testenv.WaitFor(t, 10*time.Second, "the first call to be accepted", func() bool { return p.Stats().Accepted > 0 })
	a := post(t, url, CallRequest{Agent: "second"})
	if a.status != http.StatusTooManyRequests {
		t.Fatalf("second call while the slot is held: status %d, want 429", a.status)
	}
	if got := p.Stats().RefusedBy["concurrency"]; got != 1 {
		t.Errorf("refused by concurrency %d, want 1", got)
	}
	if got := p.Stats().MaxInFlight; got != 1 {
		t.Errorf("max in flight %d, want 1", got)
	}
}

func TestOvershoot(t *testing.T) {
	at := func(ms int64, n int64) Grant {
		return Grant{At: t0.Add(time.Duration(ms) * time.Millisecond), Cost: limiter.Cost{limiter.Requests: n}}
	}
	pol := limiter.Policy{Quota: 4, Unit: limiter.Requests, Window: time.Second}
	tests := []struct {
		name   string
		grants []Grant
		want   float64
	}{
		{"none", nil, 0},
		{"exactly the quota", []Grant{at(0, 1), at(500, 2), at(999, 1)}, 1},
		{"one window apart do not add up", []Grant{at(0, 4), at(1000, 4)}, 1},
		{"a fixed-window edge doubles it", []Grant{at(900, 4), at(1000, 4)}, 2},
		{"spread out", []Grant{at(0, 1), at(600, 1), at(1200, 1), at(1800, 1)}, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Overshoot(tt.grants, pol); got != tt.want {
				t.Errorf("Overshoot = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestProviderHeadersParse checks every dialect's headers against the
// limiter's own parser: what the provider says must read back as its state,
// with times rounded up to the dialect's precision (never early).
func TestProviderHeadersParse(t *testing.T) {
	limits := []limiter.Policy{
		{Quota: 10, Unit: limiter.Requests, Window: time.Second},
		{Quota: 50000, Unit: limiter.Tokens, Window: time.Second},
	}
	at := 250 * time.Millisecond // one call at 0.25 s: full again at 1.25 s
	type want struct {
		unit      limiter.Unit
		limit     int64
		remaining int64
		reset     time.Duration // from t0
		window    time.Duration
	}
	tests := []struct {
		dialect limiter.Dialect
		want    []want
	}{
		{"openai", []want{
			{limiter.Requests, 10, 9, 1250 * time.Millisecond, 0},
			{limiter.Tokens, 50000, 48800, 1250 * time.Millisecond, 0}}},
		// Second precision, rounded up; tokens to the nearest thousand.
		{"anthropic", []want{
			{limiter.Requests, 10, 9, 2 * time.Second, 0},
			{limiter.Tokens, 50000, 49000, 2 * time.Second, 0}}},
		// Requests only; the resource header makes it GitHub's hour.
		{"github", []want{
			{limiter.Requests, 10, 9, 2 * time.Second, time.Hour}}},
		// IETF has no token unit: the tokens policy is sent with
		// qu="tokens", which a requests-only reader rightly skips.
		{"ietf", []want{
			{limiter.Requests, 10, 9, 1250 * time.Millisecond, time.Second}}},
	}
	for _, tt := range tests {
		t.Run(string(tt.dialect), func(t *testing.T) {
			_, clock, url := newTestProvider(t, ProviderConfig{Limits: limits, Dialect: tt.dialect})
			clock.Set(at)
			a := post(t, url, CallRequest{Agent: "a", PromptTokens: 1000, MaxTokens: 200})
			if a.status != 200 {
				t.Fatalf("status %d", a.status)
			}
			obs := limiter.ParseHeaders(tt.dialect, Headers(a.header), t0.Add(at))
			if len(obs.Limits) != len(tt.want) {
				t.Fatalf("parsed %d limits from %v, want %d", len(obs.Limits), a.header, len(tt.want))
			}
			for i, w := range tt.want {
				got := obs.Limits[i]
				if got.Unit != w.unit || got.Limit != w.limit || !got.HasRemaining || got.Remaining != w.remaining ||
					!got.Reset.Equal(t0.Add(w.reset)) || got.Window != w.window {
					t.Errorf("limit %d = %+v, want %+v", i, got, w)
				}
			}
		})
	}
}

func TestProviderRefusalHeadersParse(t *testing.T) {
	for _, dialect := range Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			_, clock, url := newTestProvider(t, ProviderConfig{Dialect: dialect,
				Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests, Window: 2 * time.Second}}})
			post(t, url, CallRequest{Agent: "a"})
			clock.Set(700 * time.Millisecond)
			a := post(t, url, CallRequest{Agent: "a"})
			if a.status != http.StatusTooManyRequests {
				t.Fatalf("status %d, want 429", a.status)
			}
			obs := limiter.ParseHeaders(dialect, Headers(a.header), t0.Add(700*time.Millisecond))
			if !obs.HasRetryAfter || obs.RetryAfter != 1300*time.Millisecond {
				t.Errorf("retry after %v (given: %v), want 1.3s from retry-after-ms", obs.RetryAfter, obs.HasRetryAfter)
			}
			if len(obs.Limits) != 1 || obs.Limits[0].Remaining != 0 || !obs.Limits[0].HasRemaining {
				t.Errorf("limits %+v, want one with remaining 0", obs.Limits)
			}
		})
	}
}

// TestProviderBucketHeaders checks that a token-bucket provider reports
// OpenAI's meaning of reset, the time until the bucket is full again, which
// the limiter reads as a refilling budget.
func TestProviderBucketHeaders(t *testing.T) {
	_, clock, url := newTestProvider(t, ProviderConfig{Window: Bucket, Dialect: "openai", Limits: []limiter.Policy{
		{Quota: 10, Unit: limiter.Requests, Window: time.Second},
		{Quota: 50000, Unit: limiter.Tokens, Window: time.Second},
	}})
	clock.Set(250 * time.Millisecond)
	a := post(t, url, CallRequest{Agent: "a", PromptTokens: 1000, MaxTokens: 200})
	now := t0.Add(250 * time.Millisecond)
	obs := limiter.ParseHeaders("openai", Headers(a.header), now)
	want := []struct {
		remaining int64
		reset     time.Duration
	}{{9, 100 * time.Millisecond}, {48800, 24 * time.Millisecond}} // 1 of 10/s; 1200 of 50000/s
	if len(obs.Limits) != 2 {
		t.Fatalf("parsed %+v from %v", obs.Limits, a.header)
	}
	for i, w := range want {
		if got := obs.Limits[i]; got.Remaining != w.remaining || !got.Reset.Equal(now.Add(w.reset)) {
			t.Errorf("limit %d: remaining %d reset %v, want %d and %v", i, got.Remaining, got.Reset.Sub(now), w.remaining, w.reset)
		}
	}
}
