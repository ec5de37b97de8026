package config

import (
	"path/filepath"
	"strings"

	"github.com/quotabar/quotabar/cluster"
)

var clusterKeys = []string{"redis", "password_env", "ca_file", "name", "refresh", "lease", "offline"}

// cluster checks the [cluster] table (t, when present: daemons on several
// machines sharing services through Redis, docs/CLUSTER.md) and the
// services' shared flags. Its errors never quote the redis URL, which may
// hold a password.
func (p *parser) cluster(t table, present bool, services []ServiceConfig) *cluster.Config {
	if !present {
		for _, s := range services {
			if s.Shared {
				p.errorf(keyPath("services", s.Name, "shared"), "shared = true needs a [cluster] table with redis and name (see docs/CLUSTER.md)")
			}
		}
		return nil
	}
	t.unknown(clusterKeys)
	c := &cluster.Config{
		Redis:       t.str("redis"),
		PasswordEnv: t.str("password_env"),
		Name:        t.str("name"),
		Refresh:     t.duration("refresh"),
		Lease:       t.duration("lease"),
		Offline:     t.str("offline"),
		CAFile:      t.str("ca_file"),
	}
	n := len(p.errs)
	if c.CAFile != "" {
		// Relative to the config file, as a person reading it would take it.
		if !filepath.IsAbs(c.CAFile) {
			c.CAFile = filepath.Join(filepath.Dir(p.file), c.CAFile)
		}
		if !strings.HasPrefix(strings.ToLower(c.Redis), "rediss://") {
			p.errorf("cluster.ca_file", `a CA is for TLS: the redis URL must start with rediss://`)
		} else if _, err := cluster.LoadCAFile(c.CAFile); err != nil {
			p.errorf("cluster.ca_file", "%v", err)
		}
	}
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
