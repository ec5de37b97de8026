package config

import (
	"fmt"
	"strings"

	"github.com/quotabar/quotabar/alerts"
)

// alerts reads [alerts] and [alerts.hooks]: notifications are on unless
// notify = false; thresholds are percentages used, 1 to 99; each hook is
// a non-empty command for one of alerts.Kinds.
func (p *parser) alerts(top table) alerts.Config {
	cfg := alerts.Config{Notify: true}
	t, ok := top.sub("alerts")
	if !ok {
		return cfg
	}
	t.unknown(allowedKeys["alerts"])
	if b, ok := t.boolean("notify"); ok {
		cfg.Notify = b
	}
	cfg.HookTimeout = t.duration("hook_timeout")
	if v, ok := t.m["thresholds"]; ok {
		list, ok := v.([]any)
		if !ok {
			t.wrongType("thresholds", "a list of percentages such as [80, 95]", v)
		}
		for i, e := range list {
			n, ok := e.(int64)
			key := fmt.Sprintf("%s[%d]", t.path("thresholds"), i)
			switch {
			case !ok:
				p.errorf(key, "wrong type: want a whole percentage such as 80, not %s", typeName(e))
			case n < 1 || n > 99:
				p.errorf(key, "%d: give percentages used from 1 to 99, e.g. [80, 95] (100%% is quota_exhausted)", n)
			default:
				cfg.Thresholds = append(cfg.Thresholds, int(n))
			}
		}
	}
	hooks, ok := t.sub("hooks")
	if !ok {
		return cfg
	}
	kinds := make([]string, len(alerts.Kinds))
	for i, k := range alerts.Kinds {
		kinds[i] = string(k)
	}
	hooks.unknown(kinds)
	for _, kind := range kinds {
		if _, ok := hooks.m[kind]; !ok {
			continue
		}
		cmd := hooks.str(kind)
		if strings.TrimSpace(cmd) == "" {
			p.errorf(hooks.path(kind), "the command is empty; remove the line to run no hook")
			continue
		}
		if cfg.Hooks == nil {
			cfg.Hooks = map[alerts.Kind]string{}
		}
		cfg.Hooks[alerts.Kind(kind)] = cmd
	}
	return cfg
}
