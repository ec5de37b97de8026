package config

import (
	_ "embed"
	"time"

	"github.com/quotabar/quotabar/alerts"
	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/limiter"
)

// Config is a parsed and checked configuration file.
type Config struct {
	// Path is the file the configuration was read from.
	Path string

	LeaseTTL   time.Duration // 0: the limiter's default
	MaxAging   time.Duration // 0: the limiter's default
	QueueLimit int           // 0: the limiter's default
	// NormalShare and LowShare are the floor shares of grants owed to the
	// normal and low levels under higher-priority load; 0: the limiter's
	// defaults.
	NormalShare, LowShare float64
	// AgentIdleTTL forgets an idle, unconfigured agent without overrides
	// after this long; 0: the limiter's default.
	AgentIdleTTL time.Duration
	ShowTitle    bool   // show the tightest quota as the menu-bar title
	ChromePath   string // "" finds Chrome or Chromium on the system
	// FallbackIdleTimeout closes a fallback tab or session no agent used for
	// this long, and a browser left with none; 0: webfallback's default.
	FallbackIdleTimeout time.Duration

	Proxy    ProxyConfig
	Alerts   alerts.Config   // [alerts]: notifications and hooks
	Services []ServiceConfig // in file order
	Agents   []AgentConfig   // in file order
	// Cluster is the [cluster] table (cluster.go); nil when there is none,
	// and then nothing is shared and nothing connects.
	Cluster *cluster.Config
}

// ServiceConfig is one [services.NAME] table, with its preset applied.
type ServiceConfig struct {
	Name          string
	Preset        string // "" when none
	BaseURL       string
	Dialect       limiter.Dialect // DialectAll parses every dialect
	Limits        []limiter.Policy
	MaxConcurrent int
	Headroom      float64
	// ReserveHigh is the part of every subscription window kept for high
	// priority (reserve_high).
	ReserveHigh float64
	// MaxHold is the longest one provider answer may hold the service
	// (max_hold); 0: the limiter's default for its dialect.
	MaxHold  time.Duration
	Fallback FallbackConfig
	Shared   bool // shared with other daemons through [cluster]
}

// FallbackConfig is a service's web fallback. Browser is "" when the service
// has none.
type FallbackConfig struct {
	Browser  string // "chrome", "webkit" or "system"
	URL      string
	Enabled  bool // the switch's value until the person flips it at run time
	Headless bool
	// WebLimits pace the web interface itself; when set, the limiter has a
	// service named WebServiceName(service) with these limits.
	WebLimits []limiter.Policy
}

// AgentConfig is one [agents.NAME] table.
type AgentConfig struct {
	Name     string
	Priority limiter.Priority // PriorityUnset: normal
	Weight   float64          // 0: 1
	Limits   []limiter.Policy
}

// ProxyConfig is the [proxy] table.
type ProxyConfig struct {
	Enabled bool
	Listen  string
	// MaxWait is how long the proxy holds a call (queued, and through
	// upstream 429 cooldowns) before it answers 429; 0 means 2m.
	MaxWait time.Duration
}

// WebServiceName is the limiter service that paces a service's web fallback.
func WebServiceName(service string) string { return service + ".web" }

// Service returns the configured service with the given name.
func (c *Config) Service(name string) (ServiceConfig, bool) {
	for _, s := range c.Services {
		if s.Name == name {
			return s, true
		}
	}
	return ServiceConfig{}, false
}

// Limiter returns the limiter configuration: every service, plus a
// "<name>.web" service for each fallback that has web limits.
func (c *Config) Limiter() limiter.Config {
	lc := limiter.Config{
		LeaseTTL:     c.LeaseTTL,
		MaxAging:     c.MaxAging,
		QueueLimit:   c.QueueLimit,
		NormalShare:  c.NormalShare,
		LowShare:     c.LowShare,
		AgentIdleTTL: c.AgentIdleTTL,
	}
	for _, s := range c.Services {
		lc.Services = append(lc.Services, limiter.ServiceConfig{
			Name:          s.Name,
			Limits:        s.Limits,
			MaxConcurrent: s.MaxConcurrent,
			Headroom:      s.Headroom,
			Dialect:       s.Dialect,
			ReserveHigh:   s.ReserveHigh,
			MaxHold:       s.MaxHold,
		})
		if len(s.Fallback.WebLimits) > 0 {
			lc.Services = append(lc.Services, limiter.ServiceConfig{
				Name:   WebServiceName(s.Name),
				Limits: s.Fallback.WebLimits,
			})
		}
	}
	for _, a := range c.Agents {
		lc.Agents = append(lc.Agents, limiter.AgentConfig{
			Name:     a.Name,
			Priority: a.Priority,
			Weight:   a.Weight,
			Limits:   a.Limits,
		})
	}
	return lc
}
