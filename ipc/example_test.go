package ipc_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/server"
	"github.com/quotabar/quotabar/ipc/socket"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// startExampleDaemon runs a daemon for the examples: a service "embed" with
// 100 requests and 50,000 tokens a minute. A real agent does not need this:
// the quotabar app is the daemon.
func startExampleDaemon() (path string, stop func()) {
	dir, err := os.MkdirTemp("", "qb")
	if err != nil {
		log.Fatal(err)
	}
	lim, err := limiter.New(limiter.Config{Services: []limiter.ServiceConfig{{
		Name: "embed",
		Limits: []limiter.Policy{
			{Quota: 100, Unit: limiter.Requests, Window: time.Minute},
			{Quota: 50000, Unit: limiter.Tokens, Window: time.Minute},
		},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	path = filepath.Join(dir, "quotabar.sock")
	ln, err := socket.Listen(path)
	if err != nil {
		log.Fatal(err)
	}
	srv := server.New(server.Config{Limiter: lim, Logger: slog.New(slog.DiscardHandler)})
	go srv.Serve(ln)
	return path, func() {
		srv.Shutdown(context.Background())
		lim.Close()
		os.RemoveAll(dir)
	}
}

// Many small calls under one lease: DoBatch asks once for 20 requests and
// their summed token estimate, makes the calls, and reports what they
// really used, so the unused estimate goes back to the quota.
func ExampleClient_DoBatch() {
	sock, stop := startExampleDaemon()
	defer stop()
	c := &ipc.Client{SocketPath: sock} // agents use the zero Client

	texts := make([]string, 20)
	for i := range texts {
		texts[i] = fmt.Sprintf("document %d", i)
	}
	var calls []ipc.BatchCall
	for _, text := range texts {
		calls = append(calls, ipc.BatchCall{
			Cost: wire.Cost{"tokens": 500}, // the estimate for one text
			Call: func(ctx context.Context) (ipc.CallResult, error) {
				_ = text // here: POST the text to the provider's embeddings API
				return ipc.CallResult{
					Status: 200,
					Header: http.Header{"X-Ratelimit-Remaining-Requests": {"80"}},
					Usage:  wire.Cost{"tokens": 120}, // from the response's usage
				}, nil
			},
		})
	}
	ctx := context.Background()
	req := wire.AcquireRequest{Agent: "indexer", Service: "embed", MaxWaitMS: wire.Wait(30 * time.Second)}
	if err := c.DoBatch(ctx, req, calls); err != nil {
		log.Fatal(err)
	}

	st, err := c.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range st.Services[0].Limits {
		fmt.Printf("%s: %d of %d left\n", l.Unit, l.Remaining, l.Quota)
	}
	fmt.Println("acquires granted:", st.Services[0].Counters.Granted)
	// Output:
	// requests: 80 of 100 left
	// tokens: 47600 of 50000 left
	// acquires granted: 1
}

// One call: Do acquires, runs the call, and reports its status, headers
// and usage. A refusal is waited out unless the context's deadline comes
// first.
func ExampleClient_Do() {
	sock, stop := startExampleDaemon()
	defer stop()
	c := &ipc.Client{SocketPath: sock}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := wire.AcquireRequest{Agent: "research-1", Service: "embed", Cost: wire.Cost{"tokens": 1200}}
	err := c.Do(ctx, req, func(ctx context.Context) (ipc.CallResult, error) {
		// Here: the provider call, with ctx. Return its status and headers
		// whatever they are: a 429 puts the service into a cooldown.
		return ipc.CallResult{Status: 200, Usage: wire.Cost{"tokens": 950}}, nil
	})
	fmt.Println("err:", err)
	// Output:
	// err: <nil>
}
