package config

import (
	"github.com/quotabar/quotabar/cluster"
)

// rawCluster is the [cluster] table: daemons on several machines sharing
// services through Redis (docs/CLUSTER.md).
type rawCluster struct {
	Redis       string `toml:"redis"`
	PasswordEnv string `toml:"password_env"`
	Name        string `toml:"name"`
	Refresh     string `toml:"refresh"`
	Lease       string `toml:"lease"`
}

var clusterKeys = []string{"redis", "password_env", "name", "refresh", "lease"}

// cluster checks the [cluster] table and the services' shared flags. Its
// errors never quote the redis URL, which may hold a password.
func (p *configParser) cluster(raw *rawCluster, services []ServiceConfig) *cluster.Config {
	if raw == nil {
		for _, s := range services {
			if s.Shared {
				p.errorf(keyPath("services", s.Name, "shared"), "shared = true needs a [cluster] table with redis and name (see docs/CLUSTER.md)")
			}
		}
		return nil
	}
	c := &cluster.Config{
		Redis:       raw.Redis,
		PasswordEnv: raw.PasswordEnv,
		Name:        raw.Name,
		Refresh:     p.duration("cluster.refresh", raw.Refresh),
		Lease:       p.duration("cluster.lease", raw.Lease),
	}
	n := len(p.errs)
	if err := cluster.ValidClusterName(c.Name); err != nil {
		p.errorf("cluster.name", "%v", err)
	}
	if c.Redis == "" {
		p.errorf("cluster", `needs redis = "redis://host:6379/0" (or rediss:// for TLS, unix:///path for a socket)`)
	}
	if len(p.errs) == n {
		if err := c.Validate(); err != nil {
			p.errorf("cluster", "%v", err)
		}
	}
	return c
}

// SharedServices lists the services with shared = true (none without a
// [cluster] table).
func (c *Config) SharedServices() []string {
	if c.Cluster == nil {
		return nil
	}
	var out []string
	for _, s := range c.Services {
		if s.Shared {
			out = append(out, s.Name)
		}
	}
	return out
}
