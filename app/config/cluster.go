package config

import (
	"path/filepath"
	"strings"

	"github.com/quotabar/quotabar/cluster"
)

var clusterKeys = []string{"redis", "password_env", "ca_file", "cert_file", "key_file", "name", "refresh", "lease", "offline"}

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
		CAFile:      p.besideFile(t.str("ca_file")),
		CertFile:    p.besideFile(t.str("cert_file")),
		KeyFile:     p.besideFile(t.str("key_file")),
	}
	n := len(p.errs)
	tls := strings.HasPrefix(strings.ToLower(c.Redis), "rediss://")
	if c.CAFile != "" {
		if !tls {
			p.errorf("cluster.ca_file", `a CA is for TLS: the redis URL must start with rediss://`)
		} else if _, err := cluster.LoadCAFile(c.CAFile); err != nil {
			p.errorf("cluster.ca_file", "%v", err)
		}
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		p.errorf("cluster.cert_file", "needs key_file, the client certificate's key")
	case c.CertFile == "" && c.KeyFile != "":
		p.errorf("cluster.key_file", "needs cert_file, the client certificate")
	case c.CertFile != "" && !tls:
		p.errorf("cluster.cert_file", `a client certificate is for TLS: the redis URL must start with rediss://`)
	case c.CertFile != "":
		if _, err := cluster.LoadClientCert(c.CertFile, c.KeyFile); err != nil {
			p.errorf("cluster.cert_file", "%v", err)
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

// besideFile makes a relative path relative to the config file's
// directory, as a person reading the file would take it.
func (p *parser) besideFile(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(p.file), path)
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
