package limiter_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/quotabar/quotabar/limiter"
)

// BenchmarkDecision measures one grant decision: Acquire and Report of a
// lease on a service whose limits never bind (so no one waits), uncontended
// and from 8 and 64 goroutines, beside rate.Limiter.Allow on a limiter that
// never refuses either, the in-process floor. Run with -benchmem.
func BenchmarkDecision(b *testing.B) {
	for _, g := range []int{1, 8, 64} {
		name := "uncontended"
		if g > 1 {
			name = fmt.Sprintf("contended-%d", g)
		}
		b.Run("rate.Allow/"+name, func(b *testing.B) {
			lim := rate.NewLimiter(rate.Limit(1e12), 1e9)
			run(b, g, func(int) {
				if !lim.Allow() {
					b.Fatal("refused")
				}
			})
		})
		b.Run("limiter/"+name, func(b *testing.B) {
			l, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{
				Name: "s",
				Limits: []limiter.Policy{
					{Quota: 1 << 50, Unit: limiter.Requests, Window: time.Second},
					{Quota: 1 << 60, Unit: limiter.Tokens, Window: time.Second},
				},
			}}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			agents := make([]string, g)
			for i := range agents {
				agents[i] = fmt.Sprintf("agent-%d", i)
			}
			ctx := context.Background()
			run(b, g, func(i int) {
				ls, err := l.Acquire(ctx, limiter.Request{Agent: agents[i], Service: "s",
					Cost: limiter.Cost{limiter.Requests: 1, limiter.Tokens: 1000}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Report(limiter.Report{Lease: ls.ID, Status: 200, Usage: limiter.Cost{limiter.Tokens: 800}}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// run calls f b.N times in total from g goroutines; f gets the goroutine's
// index.
func run(b *testing.B, g int, f func(i int)) {
	b.ReportAllocs()
	if g == 1 {
		for b.Loop() {
			f(0)
		}
		return
	}
	b.SetParallelism((g + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % g
		for pb.Next() {
			f(i)
		}
	})
}

// BenchmarkReportHeaders measures Acquire and Report of a lease whose report
// carries a real OpenAI header set, uncontended and from 8 goroutines: the
// headers are parsed before the limiter's lock is taken, so under
// contention the parse runs in parallel instead of in line. Beside it,
// ParseHeaders alone: the work that was moved out of the lock.
func BenchmarkReportHeaders(b *testing.B) {
	h := map[string]string{
		"X-Ratelimit-Limit-Requests":     "5000",
		"X-Ratelimit-Remaining-Requests": "4999",
		"X-Ratelimit-Reset-Requests":     "12ms",
		"X-Ratelimit-Limit-Tokens":       "800000",
		"X-Ratelimit-Remaining-Tokens":   "799000",
		"X-Ratelimit-Reset-Tokens":       "75ms",
		"Content-Type":                   "application/json",
		"Openai-Processing-Ms":           "412",
		"X-Request-Id":                   "req_0123456789abcdef",
	}
	b.Run("ParseHeaders", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			if o := limiter.ParseHeaders(limiter.DialectOpenAI, h, now); len(o.Limits) != 2 {
				b.Fatalf("%d limits", len(o.Limits))
			}
		}
	})
	for _, g := range []int{1, 8} {
		name := "uncontended"
		if g > 1 {
			name = fmt.Sprintf("contended-%d", g)
		}
		b.Run("limiter/"+name, func(b *testing.B) {
			l, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{
				Name: "s", Dialect: limiter.DialectOpenAI,
				Limits: []limiter.Policy{{Quota: 1 << 50, Unit: limiter.Requests, Window: time.Second}},
			}}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			run(b, g, func(i int) {
				ls, err := l.Acquire(ctx, limiter.Request{Agent: fmt.Sprint("agent-", i), Service: "s"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Report(limiter.Report{Lease: ls.ID, Service: "s", Status: 200, Header: h}); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
