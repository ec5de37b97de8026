package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quotabar/quotabar/internal/sim"
	"github.com/quotabar/quotabar/ipc"
	"github.com/quotabar/quotabar/ipc/wire"
)

// MemoryResult is the daemon's memory with many acquires waiting.
type MemoryResult struct {
	Waiters int `json:"waiters"`
	// IdleRSSKiB is the daemon's resident set before the waiters came;
	// RSSKiB with them all queued; PeakRSSKiB is VmHWM, the most it ever
	// held.
	IdleRSSKiB int64 `json:"idle_rss_kib"`
	RSSKiB     int64 `json:"rss_kib"`
	PeakRSSKiB int64 `json:"peak_rss_kib"`
	// Heap figures from runtime.MemStats inside the daemon, with the
	// waiters queued.
	IdleHeapKiB  int64   `json:"idle_heap_inuse_kib"`
	HeapKiB      int64   `json:"heap_inuse_kib"`
	Goroutines   int     `json:"goroutines"`
	PerWaiterKiB float64 `json:"rss_per_waiter_kib"`
}

// measureMemory runs a daemon in a child process whose service allows one
// call an hour, takes that call, queues waiters acquires behind it (each on
// its own connection, as separate agent processes would), and reads the
// child's memory from /proc and from its runtime.
func measureMemory(ctx context.Context, waiters int) (MemoryResult, error) {
	res := MemoryResult{Waiters: waiters}
	d, err := startChild(ctx, "--child-config", "memory", "--serve-daemon")
	if err != nil {
		return res, err
	}
	defer d.stop()
	hc := sim.UnixHTTPClient(d.socket, waiters+8)
	c := &ipc.Client{SocketPath: d.socket, HTTPClient: hc}
	if _, err := c.Acquire(ctx, wire.AcquireRequest{Agent: "first", Service: benchService, MaxWaitMS: wire.Wait(0)}); err != nil {
		return res, fmt.Errorf("first acquire: %w", err)
	}
	pid := d.cmd.Process.Pid
	idle, err := procStatus(pid)
	if err != nil {
		return res, err
	}
	idleHeap, err := childHeap(ctx, hc)
	if err != nil {
		return res, err
	}
	res.IdleRSSKiB, res.IdleHeapKiB = idle["VmRSS"], int64(idleHeap.HeapInuse/1024)

	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The daemon withdraws each request when cancel closes its
			// connection; the error is expected then.
			c.Acquire(wctx, wire.AcquireRequest{Agent: fmt.Sprintf("agent-%d", i%100), Service: benchService, MaxWaitMS: wire.Wait(10 * time.Minute)})
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return res, fmt.Errorf("status: %w", err)
		}
		if len(st.Services) > 0 && st.Services[0].Queued >= waiters {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d acquires queued after 60s", st.Services[0].Queued, waiters)
		}
		time.Sleep(20 * time.Millisecond)
	}
	full, err := procStatus(pid)
	if err != nil {
		return res, err
	}
	heap, err := childHeap(ctx, hc)
	if err != nil {
		return res, err
	}
	res.RSSKiB, res.PeakRSSKiB = full["VmRSS"], full["VmHWM"]
	res.HeapKiB, res.Goroutines = int64(heap.HeapInuse/1024), heap.Goroutines
	res.PerWaiterKiB = float64(res.RSSKiB-res.IdleRSSKiB) / float64(waiters)
	return res, nil
}

func childHeap(ctx context.Context, hc *http.Client) (heapStats, error) {
	var hs heapStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://quotabar/bench/mem", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return hs, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return hs, fmt.Errorf("GET /bench/mem: %s", resp.Status)
	}
	return hs, json.NewDecoder(resp.Body).Decode(&hs)
}

// procStatus reads the kB fields (VmRSS, VmHWM, ...) of /proc/PID/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read the daemon's memory (Linux /proc only): %w", err)
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasSuffix(v, " kB") {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64); err == nil {
			m[k] = n
		}
	}
	if m["VmRSS"] == 0 {
		return nil, errors.New("no VmRSS in /proc status")
	}
	return m, nil
}
