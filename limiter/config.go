package limiter

import (
	"fmt"
	"slices"
	"time"
)

// This file holds the Config defaults and its validation.

// Defaults for the zero values of Config.
const (
	DefaultLeaseTTL         = 10 * time.Minute
	DefaultMaxAging         = 30 * time.Second
	DefaultQueueLimit       = 10000
	DefaultLearnConcurrency = 4
	DefaultAgentIdleTTL     = time.Hour
	DefaultNormalShare      = 0.10
	DefaultLowShare         = 0.05
)

func (c Config) withDefaults() Config {
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MaxAging <= 0 {
		c.MaxAging = DefaultMaxAging
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = DefaultQueueLimit
	}
	if c.LearnConcurrency <= 0 {
		c.LearnConcurrency = DefaultLearnConcurrency
	}
	if c.ResumeSpacing <= 0 {
		c.ResumeSpacing = DefaultResumeSpacing
	}
	if c.NormalShare <= 0 {
		c.NormalShare = DefaultNormalShare
	}
	if c.LowShare <= 0 {
		c.LowShare = DefaultLowShare
	}
	if c.AgentIdleTTL <= 0 {
		c.AgentIdleTTL = DefaultAgentIdleTTL
	}
	return c
}

// maxFloorShare bounds the floor shares, alone and together.
const maxFloorShare = 0.5

func knownUnit(u Unit) bool { return slices.Contains(Units, u) }

func validatePolicies(ps []Policy) error {
	for i, p := range ps {
		switch {
		case !knownUnit(p.Unit):
			return fmt.Errorf("limit %d: unit %q is not one of requests, tokens, input_tokens, output_tokens", i+1, p.Unit)
		case p.Quota <= 0:
			return fmt.Errorf("limit %d: quota %d must be positive", i+1, p.Quota)
		case p.Window <= 0:
			return fmt.Errorf("limit %d: window %v must be positive", i+1, p.Window)
		}
	}
	return nil
}

func validateConfig(c Config) error {
	if c.LeaseTTL < 0 || c.MaxAging < 0 || c.QueueLimit < 0 || c.LearnConcurrency < 0 || c.AgentIdleTTL < 0 || c.ResumeSpacing < 0 {
		return fmt.Errorf("lease TTL, max aging, queue limit, learn concurrency, agent idle TTL and resume spacing must not be negative")
	}
	for _, sh := range []struct {
		name string
		v    float64
	}{{"normal_share", c.NormalShare}, {"low_share", c.LowShare}} {
		if !(sh.v >= 0 && sh.v <= maxFloorShare) { // also refuses NaN
			return fmt.Errorf("%s %v must be between 0 (the default) and %v", sh.name, sh.v, maxFloorShare)
		}
	}
	if c.NormalShare+c.LowShare > maxFloorShare {
		return fmt.Errorf("normal_share %v plus low_share %v is %v; together they may be at most %v, so that priorities still mean something", c.NormalShare, c.LowShare, c.NormalShare+c.LowShare, maxFloorShare)
	}
	seen := map[string]bool{}
	for _, s := range c.Services {
		if err := ValidName(s.Name); err != nil {
			return fmt.Errorf("service name: %w", err)
		}
		if seen[s.Name] {
			return fmt.Errorf("service %q is configured twice", s.Name)
		}
		seen[s.Name] = true
		if err := validatePolicies(s.Limits); err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
		if s.MaxHold < 0 {
			return fmt.Errorf("service %q: max_hold %v must not be negative", s.Name, s.MaxHold)
		}
		if s.MaxConcurrent < 0 {
			return fmt.Errorf("service %q: max_concurrent %d must not be negative", s.Name, s.MaxConcurrent)
		}
		if s.Headroom < 0 || s.Headroom >= 1 {
			return fmt.Errorf("service %q: headroom %v must be at least 0 and below 1", s.Name, s.Headroom)
		}
		if !(s.ReserveHigh >= 0 && s.ReserveHigh < 1) {
			return fmt.Errorf("service %q: reserve_high %v must be at least 0 and below 1 (0.10 keeps the last 10%% of every subscription window for high priority)", s.Name, s.ReserveHigh)
		}
		if !s.Dialect.Known() {
			return fmt.Errorf("service %q: dialect %q is not one of %s (or empty for all)", s.Name, s.Dialect, DialectNames())
		}
	}
	seen = map[string]bool{}
	for _, a := range c.Agents {
		if err := ValidName(a.Name); err != nil {
			return fmt.Errorf("agent name: %w", err)
		}
		if seen[a.Name] {
			return fmt.Errorf("agent %q is configured twice", a.Name)
		}
		seen[a.Name] = true
		if a.Priority < PriorityUnset || a.Priority > High {
			return fmt.Errorf("agent %q: priority %d is not low, normal or high", a.Name, a.Priority)
		}
		if a.Weight < 0 {
			return fmt.Errorf("agent %q: weight %v must not be negative", a.Name, a.Weight)
		}
		if err := validatePolicies(a.Limits); err != nil {
			return fmt.Errorf("agent %q: %w", a.Name, err)
		}
	}
	return nil
}
