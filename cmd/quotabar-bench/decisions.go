package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
	"github.com/quotabar/quotabar/limiter"
)

// The three things timed at each concurrency.
const (
	kindAllow    = "rate.Limiter.Allow (in process)"
	kindNoop     = "no-op HTTP handler (Unix socket)"
	kindQuotabar = "quotabar acquire (Unix socket)"
)

// DecisionResult is one decision-latency measurement.
type DecisionResult struct {
	Kind    string  `json:"kind"`
	Clients int     `json:"clients"`
	Calls   int64   `json:"calls"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	PerSec  float64 `json:"per_second"`
	// VsNoopP50 is this p50 over the no-op handler's at the same
	// concurrency (quotabar only).
	VsNoopP50 float64 `json:"vs_noop_p50,omitempty"`
}

// benchService is the daemon's service in the child process; its limit is
// never reached in the decision benchmark and reached at once in the memory
// one.
const benchService = "bench"

// childConfig is the daemon configuration a child runs with.
func childConfig(name string) (limiter.Config, error) {
	switch name {
	case "decisions":
		// Never blocks: every acquire is a pure decision. Leases are not
		// reported, so a short TTL keeps them from piling up.
		return limiter.Config{
			Services: []limiter.ServiceConfig{{Name: benchService, Limits: []limiter.Policy{{Quota: 1e12, Unit: limiter.Requests, Window: time.Second}}}},
			LeaseTTL: 2 * time.Second,
		}, nil
	case "memory":
		// One call an hour: after the first grant every acquire waits.
		return limiter.Config{
			Services:   []limiter.ServiceConfig{{Name: benchService, Limits: []limiter.Policy{{Quota: 1, Unit: limiter.Requests, Window: time.Hour}}}},
			QueueLimit: 1 << 20,
		}, nil
	}
	return limiter.Config{}, fmt.Errorf("unknown --child-config %q", name)
}

// serveDaemon is the child: a daemon on socket until stdin closes.
func serveDaemon(ctx context.Context, socket, config string) error {
	cfg, err := childConfig(config)
	if err != nil {
		return err
	}
	d, err := sim.StartDaemon(cfg, socket)
	if err != nil {
		return err
	}
	defer d.Close()
	d.Server.Handle("GET /bench/mem", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(heapStats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys, Goroutines: runtime.NumGoroutine()})
	}))
	return serveUntilStdinCloses(ctx)
}

type heapStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
}

// serveNoop is the child: a handler that reads the body and answers a fixed
// grant, the floor of any daemon over HTTP on a Unix socket.
func serveNoop(ctx context.Context, socket string) error {
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	answer := []byte(`{"granted":true,"lease":"l_0","waited_ms":0,"lease_expires_at":"2026-01-01T00:00:00Z"}` + "\n")
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		}),
		ErrorLog: slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelError),
	}
	go srv.Serve(ln)
	defer srv.Close()
	return serveUntilStdinCloses(ctx)
}

// serveUntilStdinCloses tells the parent the child is ready, then waits for
// the parent to close stdin (or die).
func serveUntilStdinCloses(ctx context.Context) error {
	fmt.Println("ready")
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// child is the benchmark binary re-executed to serve on a socket.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	socket string
	dir    string
}

func startChild(ctx context.Context, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "qb")
	if err != nil {
		return nil, err
	}
	c := &child{socket: filepath.Join(dir, "s.sock"), dir: dir}
	c.cmd = exec.CommandContext(ctx, exe, append(args, c.socket)...)
	c.cmd.Stderr = os.Stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", strings.Join(args, " "), err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("child said %q, want ready", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = errors.New("child not ready after 30s")
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(c.dir)
}

// hist is a latency histogram with about 3% resolution: bucket e*64+m holds
// values v with v>>e == m (m in [32, 64) once e > 0), so recording every
// call costs no allocation whatever the call rate.
type hist struct {
	counts [64 * 64]int64
	n      int64
}

func (h *hist) add(d time.Duration) {
	v := uint64(max(d, 0))
	e := max(0, bits.Len64(v)-6)
	h.counts[min(64*e+int(v>>e), len(h.counts)-1)]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile is the q-quantile, as the middle of its bucket.
func (h *hist) quantile(q float64) time.Duration {
	rank := int64(q*float64(h.n-1)) + 1
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			e, m := i/64, uint64(i%64)
			lo := m << e
			return time.Duration(lo + (uint64(1)<<e)/2)
		}
	}
	return 0
}

// timeLoop runs op from clients goroutines for d after a short warm-up and
// returns the calls' latency histogram and their rate.
func timeLoop(ctx context.Context, clients int, d time.Duration, op func(worker int) error) (*hist, float64, error) {
	warm, stop := time.Now().Add(d/10), time.Now().Add(d/10+d)
	hs := make([]hist, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	var began, ended time.Time
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(stop) {
					return
				}
				if err := op(w); err != nil {
					errs <- err
					return
				}
				if t0.After(warm) {
					hs[w].add(time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	began, ended = warm, stop
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, err
	}
	total := &hist{}
	for i := range hs {
		total.merge(&hs[i])
	}
	return total, float64(total.n) / ended.Sub(began).Seconds(), nil
}

// measureDecisions times a decision three ways at each concurrency, in the
// same run: the in-process floor, the socket floor, and quotabar.
func measureDecisions(ctx context.Context, clients []int, d time.Duration) ([]DecisionResult, error) {
	daemon, err := startChild(ctx, "--child-config", "decisions", "--serve-daemon")
	if err != nil {
		return nil, fmt.Errorf("daemon child: %w", err)
	}
	defer daemon.stop()
	noop, err := startChild(ctx, "--serve-noop")
	if err != nil {
		return nil, fmt.Errorf("no-op child: %w", err)
	}
	defer noop.stop()

	maxClients := 0
	for _, c := range clients {
		maxClients = max(maxClients, c)
	}
	qb := &ipc.Client{SocketPath: daemon.socket, HTTPClient: sim.UnixHTTPClient(daemon.socket, maxClients)}
	noopHC := sim.UnixHTTPClient(noop.socket, maxClients)
	body, _ := json.Marshal(wire.AcquireRequest{Agent: "bench-1", Service: benchService, MaxWaitMS: wire.Wait(0)})
	// A huge rate so that Allow does its token arithmetic and says yes.
	lim := rate.NewLimiter(rate.Limit(1e12), 1e9)

	ops := []struct {
		kind string
		op   func(w int) error
	}{
		{kindAllow, func(int) error {
			if !lim.Allow() {
				return errors.New("rate.Limiter refused")
			}
			return nil
		}},
		{kindNoop, func(int) error {
			resp, err := noopHC.Post("http://noop/v1/acquire", "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}},
		{kindQuotabar, func(w int) error {
			_, err := qb.Acquire(ctx, wire.AcquireRequest{Agent: fmt.Sprintf("bench-%d", w%8), Service: benchService, MaxWaitMS: wire.Wait(0)})
			return err
		}},
	}
	var out []DecisionResult
	for _, c := range clients {
		var noopP50 time.Duration
		for _, o := range ops {
			h, perSec, err := timeLoop(ctx, c, d, o.op)
			if err != nil {
				return nil, fmt.Errorf("%s at %d clients: %w", o.kind, c, err)
			}
			r := DecisionResult{Kind: o.kind, Clients: c, Calls: h.n, P50us: us(h.quantile(0.5)), P99us: us(h.quantile(0.99)), PerSec: perSec}
			switch o.kind {
			case kindNoop:
				noopP50 = h.quantile(0.5)
			case kindQuotabar:
				if noopP50 > 0 {
					r.VsNoopP50 = float64(h.quantile(0.5)) / float64(noopP50)
				}
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
