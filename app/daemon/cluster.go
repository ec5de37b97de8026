package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/quotabar/quotabar/app/config"
	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/ipc/wire"
)

// clusterPart is the daemon's membership in a [cluster]: the services with
// shared = true get their share of each quota from the other daemons
// through Redis (package cluster, docs/CLUSTER.md). Without a [cluster]
// table it is nil and nothing connects.
type clusterPart struct {
	d      *Daemon
	mem    *cluster.Member
	cfg    cluster.Config
	shared []string
	cancel context.CancelFunc
	done   chan struct{}
}

// ClusterStateFile is the file in the state dir where the cluster member
// keeps its last known shares (see cluster.WithStateFile).
const ClusterStateFile = "cluster.json"

// newClusterPart joins the cluster of cfg, or returns nil when cfg has
// none. It fails when the member cannot be set up (a password_env that is
// not set): a shared service must not run alone on a full quota.
func newClusterPart(d *Daemon, cfg *config.Config) (*clusterPart, error) {
	if cfg.Cluster == nil {
		return nil, nil
	}
	shared := cfg.SharedServices()
	mem, err := cluster.New(*cfg.Cluster, d.Limiter, shared, d.Logger,
		cluster.WithStateFile(filepath.Join(d.stateDir, ClusterStateFile)))
	if err != nil {
		return nil, fmt.Errorf("%s: [cluster]: %w", d.configPath, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &clusterPart{d: d, mem: mem, cfg: *cfg.Cluster, shared: mem.Services(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		mem.Run(ctx)
	}()
	d.Logger.Info("cluster: joining", "name", cfg.Cluster.Name, "redis", cluster.Redacted(cfg.Cluster.Redis), "shared", shared)
	return c, nil
}

// Reconfigure cannot move a running membership: a changed [cluster] table
// or a newly shared service needs a restart. Until then a newly shared
// service grants nothing (share 0), which is safe, and says why.
func (c *clusterPart) Reconfigure(cfg *config.Config) {
	if cfg.Cluster == nil || *cfg.Cluster != c.cfg {
		c.d.Logger.Warn("cluster: the [cluster] table changed; restart quotabar to apply it (the running membership goes on as before)")
	}
	for _, s := range c.shared {
		// A service removed and added again by the edit is new to the
		// limiter, with the whole quota: give it back its share at once.
		if st, ok := c.mem.Status(s); ok {
			c.d.Limiter.SetShare(s, st.Share)
		}
	}
	for _, s := range cfg.SharedServices() {
		if !slices.Contains(c.shared, s) {
			c.d.Logger.Warn("cluster: a newly shared service grants nothing until quotabar restarts and joins with it", "service", s)
			c.d.Limiter.SetShare(s, 0)
		}
	}
}

// Shutdown leaves Redis as it is: the share stays counted for its lease and
// a window, since the calls this daemon granted are still in the provider's
// windows.
func (c *clusterPart) Shutdown(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	return nil
}

// ClusterStatus is the server's view of a shared service.
func (c *clusterPart) ClusterStatus(service string) (wire.ClusterStatus, bool) {
	return c.mem.ClusterStatus(service)
}
