package limiter_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/fakeclock"
	"github.com/quotabar/quotabar/limiter"
)

// slidingProvider is a provider that enforces "quota requests per window"
// exactly over a sliding window and answers in OpenAI's or GitHub's
// dialect (GitHub's with a fixed window instead).
type slidingProvider struct {
	quota    int64
	window   time.Duration
	fixed    bool
	log      []time.Time
	winStart time.Time
	accepted int
	refused  int
}

func (p *slidingProvider) call(now time.Time, dialect string) (int, map[string]string) {
	if p.fixed {
		for !now.Before(p.winStart.Add(p.window)) {
			p.winStart = p.winStart.Add(p.window)
			p.log = nil
		}
	} else {
		i := 0
		for i < len(p.log) && !p.log[i].After(now.Add(-p.window)) {
			i++
		}
		p.log = p.log[i:]
	}
	full := func() time.Time {
		if p.fixed {
			return p.winStart.Add(p.window)
		}
		if len(p.log) == 0 {
			return now
		}
		return p.log[len(p.log)-1].Add(p.window)
	}
	status := 200
	if int64(len(p.log)) >= p.quota {
		p.refused++
		status = 429
	} else {
		p.log = append(p.log, now)
		p.accepted++
	}
	rem := p.quota - int64(len(p.log))
	h := map[string]string{}
	switch dialect {
	case "openai":
		reset := full().Sub(now)
		h["x-ratelimit-limit-requests"] = strconv.FormatInt(p.quota, 10)
		h["x-ratelimit-remaining-requests"] = strconv.FormatInt(rem, 10)
		h["x-ratelimit-reset-requests"] = ((reset + time.Millisecond - 1) / time.Millisecond * time.Millisecond).String()
	case "github":
		h["x-ratelimit-limit"] = strconv.FormatInt(p.quota, 10)
		h["x-ratelimit-remaining"] = strconv.FormatInt(rem, 10)
		h["x-ratelimit-used"] = strconv.FormatInt(int64(len(p.log)), 10)
		h["x-ratelimit-reset"] = strconv.FormatInt((full().UnixNano()+int64(time.Second)-1)/int64(time.Second), 10)
	}
	if status == 429 {
		h["retry-after-ms"] = strconv.FormatInt(max(1, full().Sub(now).Milliseconds()), 10)
	}
	return status, h
}

// Learning mode against a real-shaped provider: no limits configured, the
// limiter learns them from each answer's headers. Calls take 30-70 ms and
// 16 workers want far more than the quota. The limiter must use the quota
// well (goodput) without provoking 429s.
func TestLearningAgainstProvider(t *testing.T) {
	tests := []struct {
		name       string
		dialect    string
		fixed      bool
		window     time.Duration
		known      bool // limits configured instead of learned
		minGoodput float64
	}{
		{"openai sliding 200/2s learned", "openai", false, 2 * time.Second, false, 0.90},
		{"openai sliding 200/1m learned", "openai", false, time.Minute, false, 0.90},
		{"openai sliding 200/2s configured", "openai", false, 2 * time.Second, true, 0.95},
		// GitHub's window is documented as an hour; compressed here to a
		// minute, which the limiter cannot know: it learns from the reset.
		{"github fixed 200/1m learned", "", true, time.Minute, false, 0.90},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const quota = 200
			svc := limiter.ServiceConfig{Name: "api", Dialect: limiter.Dialect(tc.dialect)}
			if tc.known {
				svc.Limits = []limiter.Policy{pol(quota, limiter.Requests, tc.window)}
			}
			clk := fakeclock.New(t0)
			l, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{svc}}, limiter.WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.Seed(3)
			prov := &slidingProvider{quota: quota, window: tc.window, fixed: tc.fixed, winStart: t0}
			dialect := tc.dialect
			if dialect == "" {
				dialect = "github"
			}
			rng := rand.New(rand.NewPCG(5, 5))
			const workers = 16
			pending := make([]*limiter.Pending, workers)
			ask := func(i int) {
				pending[i] = submit(t, l, limiter.Request{Agent: "w" + strconv.Itoa(i%4), Service: "api", MaxWait: time.Hour})
			}
			for i := range workers {
				ask(i)
			}
			windows := 20
			end := t0.Add(time.Duration(windows) * tc.window)
			step := 5 * time.Millisecond
			for clk.Now().Before(end) {
				for i, p := range pending {
					if p == nil {
						continue
					}
					ls, err, done := p.Poll()
					if !done {
						continue
					}
					pending[i] = nil
					if err != nil {
						// Refused (cooldown): come back after the retry time.
						var retry time.Duration
						if re, ok := err.(*limiter.RefusedError); ok {
							retry = re.RetryAfter
						} else {
							t.Fatalf("acquire: %#v", err)
						}
						clk.AfterFunc(retry, func() { ask(i) })
						continue
					}
					status, h := prov.call(clk.Now(), dialect)
					latency := 30*time.Millisecond + time.Duration(rng.Int64N(int64(40*time.Millisecond)))
					clk.AfterFunc(latency, func() {
						if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: status, Header: h}); err != nil {
							t.Errorf("report: %#v", err)
						}
						ask(i)
					})
				}
				clk.Advance(step)
			}
			goodput := float64(prov.accepted) / float64(windows*quota)
			rate429 := float64(prov.refused) / float64(prov.accepted+prov.refused)
			t.Logf("accepted %d (goodput %.1f%%), 429s %d (%.2f%%)", prov.accepted, 100*goodput, prov.refused, 100*rate429)
			if goodput < tc.minGoodput {
				t.Errorf("goodput %.1f%%, want at least %.0f%%", 100*goodput, 100*tc.minGoodput)
			}
			if rate429 > 0.005 {
				t.Errorf("%.2f%% of calls got 429, want at most 0.5%%", 100*rate429)
			}
		})
	}
}
