package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/quotabar/quotabar/limiter"
)

// DefaultProxyListen is the proxy's address when [proxy] sets no listen.
const DefaultProxyListen = "127.0.0.1:7878"

// maxNesting is how deep arrays and inline tables may nest. quotabar's
// settings need 2 (`fallback = { web_limits = [...] }`); the cap is checked
// before the TOML parser runs, whose recursion a deeply nested file would
// otherwise drive into a stack overflow or gigabytes of memory.
const maxNesting = 32

// maxErrors is how many problems a check lists; the rest are counted.
const maxErrors = 100

// allowedKeys lists the keys of each kind of table, for unknown-key errors.
var allowedKeys = map[string][]string{
	"":         {"lease_ttl", "max_aging", "queue_limit", "normal_share", "low_share", "agent_idle_ttl", "show_title", "chrome_path", "fallback_idle_timeout", "proxy", "alerts", "services", "agents", "cluster"},
	"proxy":    {"enabled", "listen", "max_wait"},
	"alerts":   {"notify", "thresholds", "hook_timeout", "hooks"},
	"service":  {"preset", "base_url", "limits", "max_concurrent", "headroom", "reserve_high", "max_hold", "dialect", "fallback", "shared"},
	"cluster":  clusterKeys,
	"fallback": {"browser", "url", "enabled", "headless", "web_limits"},
	"agent":    {"priority", "weight", "limits"},
}

// Parse checks a configuration file's contents; path is used in errors and
// recorded in Config.Path. Every problem is reported (up to maxErrors), as
// an Errors in line order; each names the file, the line and the key.
//
// The work is linear in the size of the file: its size and nesting are
// capped before it is parsed, BurntSushi/toml decodes it (syntax and
// duplicate keys are its errors, with its positions), keyLines locates
// every key and list element, and the checks below visit each key once.
func Parse(path string, data []byte) (*Config, error) {
	p := &parser{file: path, data: data}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("the file is %d bytes, over the %d-byte cap; a real configuration is a few kilobytes", len(data), MaxFileSize)}}
	}
	if line, ok := checkNesting(data, maxNesting); !ok {
		return nil, Errors{{File: path, Line: line, Msg: fmt.Sprintf("lists and inline tables nest more than %d deep here; quotabar's settings need at most 2", maxNesting)}}
	}
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return nil, Errors{p.decodeError(err)}
	}
	p.lines = keyLines(data)

	top := p.table(nil, doc)
	top.unknown(allowedKeys[""])
	cfg := &Config{
		Path:                path,
		LeaseTTL:            top.duration("lease_ttl"),
		MaxAging:            top.duration("max_aging"),
		ShowTitle:           true,
		ChromePath:          top.str("chrome_path"),
		FallbackIdleTimeout: top.duration("fallback_idle_timeout"),
		NormalShare:         top.number("normal_share"),
		LowShare:            top.number("low_share"),
		AgentIdleTTL:        top.duration("agent_idle_ttl"),
		Proxy:               ProxyConfig{Enabled: true, Listen: DefaultProxyListen},
	}
	if n, ok := top.integer("queue_limit"); ok {
		if n < 0 {
			p.errorf("queue_limit", "must be 0 (the default) or more, not %d", n)
		}
		cfg.QueueLimit = n
	}
	for key, v := range map[string]float64{"normal_share": cfg.NormalShare, "low_share": cfg.LowShare} {
		if !(v >= 0 && v <= 0.5) {
			p.errorf(key, "must be a fraction from 0 (the default) to 0.5, such as 0.05 (a twentieth of the grants while higher priorities are busy); got %v", v)
		}
	}
	if cfg.NormalShare+cfg.LowShare > 0.5 {
		p.errorf("low_share", "normal_share and low_share together must be at most 0.5 (they are %v and %v): high priority keeps at least half", cfg.NormalShare, cfg.LowShare)
	}
	if b, ok := top.boolean("show_title"); ok {
		cfg.ShowTitle = b
	}
	if px, ok := top.sub("proxy"); ok {
		px.unknown(allowedKeys["proxy"])
		if b, ok := px.boolean("enabled"); ok {
			cfg.Proxy.Enabled = b
		}
		if l := px.str("listen"); l != "" {
			cfg.Proxy.Listen = l
			if _, _, err := net.SplitHostPort(l); err != nil {
				p.errorf("proxy.listen", "want host:port such as %q: %v", DefaultProxyListen, err)
			}
		}
		cfg.Proxy.MaxWait = px.duration("max_wait")
	}
	cfg.Alerts = p.alerts(top)

	// Tables keep the file's order, which is the order the menu shows.
	services, _ := top.sub("services")
	for _, name := range p.tableNames(md, "services") {
		if t, ok := services.sub(name); ok {
			cfg.Services = append(cfg.Services, p.service(t, name))
		}
	}
	agents, _ := top.sub("agents")
	for _, name := range p.tableNames(md, "agents") {
		if t, ok := agents.sub(name); ok {
			cfg.Agents = append(cfg.Agents, p.agent(t, name))
		}
	}
	cl, hasCluster := top.sub("cluster")
	cfg.Cluster = p.cluster(cl, hasCluster, cfg.Services)
	for _, s := range cfg.Services {
		if base, ok := strings.CutSuffix(s.Name, ".web"); ok {
			if b, ok := cfg.Service(base); ok && len(b.Fallback.WebLimits) > 0 {
				p.errorf(keyPath("services", s.Name), "the name is taken by the web limits of service %q; rename one of them", b.Name)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.result()
	}
	return cfg, nil
}

type parser struct {
	file  string
	data  []byte
	lines map[string]int // from keyLines
	errs  Errors
}

// errorf records a problem at key (a path as written by keyPath).
func (p *parser) errorf(key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: p.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// result returns the problems in line order (the order they were found
// within a line), at most maxErrors of them.
func (p *parser) result() Errors {
	sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
	if len(p.errs) <= maxErrors {
		return p.errs
	}
	out := p.errs[:maxErrors:maxErrors]
	return append(out, &Error{File: p.file, Msg: fmt.Sprintf("and %d more problems", len(p.errs)-maxErrors)})
}

// line finds the line of key, or of its closest enclosing key.
func (p *parser) line(key string) int {
	if p.lines == nil {
		p.lines = keyLines(p.data) // a decode error: the lines before it
	}
	for k := key; k != ""; {
		if l, ok := p.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// decodeError turns the TOML library's error, which carries its own line
// and the key it was reading, into an Error.
func (p *parser) decodeError(err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		if line == 0 && pe.LastKey != "" {
			line = p.line(pe.LastKey)
		}
		return &Error{File: p.file, Line: line, Key: pe.LastKey, Msg: pe.Message}
	}
	return &Error{File: p.file, Msg: err.Error()}
}

// tableNames lists the sub-tables of section (services or agents) in file
// order, checking each name.
func (p *parser) tableNames(md toml.MetaData, section string) []string {
	var names []string
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != section || seen[k[1]] {
			continue
		}
		seen[k[1]] = true
		if err := limiter.ValidName(k[1]); err != nil {
			p.errorf(keyPath(k...), "bad name %q: %v", k[1], err)
			continue
		}
		names = append(names, k[1])
	}
	return names
}

func (p *parser) service(t table, name string) ServiceConfig {
	key := t.path()
	t.unknown(allowedKeys["service"])
	s := ServiceConfig{
		Name:        name,
		Preset:      t.str("preset"),
		BaseURL:     t.str("base_url"),
		Limits:      t.policies("limits"),
		Headroom:    t.number("headroom"),
		ReserveHigh: t.number("reserve_high"),
		MaxHold:     t.duration("max_hold"),
	}
	s.Shared, _ = t.boolean("shared")
	if n, ok := t.integer("max_concurrent"); ok {
		if n < 0 {
			p.errorf(key+".max_concurrent", "must be 0 (no cap) or more, not %d", n)
		}
		s.MaxConcurrent = n
	}
	var preset Preset
	if s.Preset != "" {
		var ok bool
		if preset, ok = presets[s.Preset]; !ok {
			p.errorf(key+".preset", "unknown preset %q; built in: %s", s.Preset, strings.Join(PresetNames(), ", "))
		}
		s.Dialect = preset.Dialect
	}
	if _, ok := t.m["dialect"]; ok {
		d, err := limiter.ParseDialect(t.str("dialect"))
		if err != nil {
			p.errorf(key+".dialect", "%v", err)
		}
		s.Dialect = d
	}
	if s.BaseURL == "" {
		s.BaseURL = preset.BaseURL
	} else {
		p.checkURL(key+".base_url", s.BaseURL)
	}
	if s.Headroom < 0 || s.Headroom >= 1 {
		p.errorf(key+".headroom", "must be a fraction from 0 up to (not including) 1, such as 0.05; got %v", s.Headroom)
	}
	if !(s.ReserveHigh >= 0 && s.ReserveHigh < 1) {
		p.errorf(key+".reserve_high", "must be a fraction from 0 up to (not including) 1, such as 0.10 (the last 10%% of every subscription window is for high priority); got %v", s.ReserveHigh)
	}
	if fb, ok := t.sub("fallback"); ok {
		fkey := fb.path()
		fb.unknown(allowedKeys["fallback"])
		s.Fallback = FallbackConfig{
			Browser:   fb.str("browser"),
			URL:       fb.str("url"),
			WebLimits: fb.policies("web_limits"),
		}
		s.Fallback.Enabled, _ = fb.boolean("enabled")
		s.Fallback.Headless, _ = fb.boolean("headless")
		if s.Fallback.Browser == "" {
			s.Fallback.Browser = "chrome"
		} else if !slices.Contains(browsers, s.Fallback.Browser) {
			p.errorf(fkey+".browser", "unknown browser %q; allowed: %s", s.Fallback.Browser, strings.Join(browsers, ", "))
		}
		if s.Fallback.URL == "" {
			s.Fallback.URL = preset.WebURL
			if s.Fallback.URL == "" {
				p.errorf(fkey, "needs a url: the service has no preset with a web address")
			}
		} else {
			p.checkURL(fkey+".url", s.Fallback.URL)
		}
	}
	return s
}

func (p *parser) checkURL(key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.errorf(key, "want an http or https URL such as \"https://api.example.com\", not %q", s)
	}
}

func (p *parser) agent(t table, name string) AgentConfig {
	key := t.path()
	t.unknown(allowedKeys["agent"])
	a := AgentConfig{Name: name, Limits: t.policies("limits")}
	if _, ok := t.m["priority"]; ok {
		pr, err := limiter.ParsePriority(t.str("priority"))
		if err != nil {
			p.errorf(key+".priority", "%v", err)
		}
		a.Priority = pr
	}
	if _, ok := t.m["weight"]; ok {
		a.Weight = t.number("weight")
		if a.Weight <= 0 {
			p.errorf(key+".weight", "must be more than 0, such as 1 or 2.5; got %v", a.Weight)
		}
	}
	return a
}

// table is one table of the decoded file and the key path that leads to it.
// Its getters check the type of a value and record an error when it is
// wrong; a missing key gives the zero value.
type table struct {
	p   *parser
	key []string
	m   map[string]any
}

func (p *parser) table(key []string, m map[string]any) table {
	return table{p: p, key: key, m: m}
}

// path is the table's key, or with k, the key of its value k.
func (t table) path(k ...string) string {
	return keyPath(append(slices.Clip(t.key), k...)...)
}

func (t table) wrongType(k, want string, v any) {
	t.p.errorf(t.path(k), "wrong type: want %s, not %s", want, typeName(v))
}

// unknown reports every key of t that is not in allowed: one error per
// key, none for what is inside it (a misspelt table's own keys are not
// news).
func (t table) unknown(allowed []string) {
	var bad []string
	for k := range t.m {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	slices.Sort(bad) // the output must not depend on map order
	for _, k := range bad {
		t.p.errorf(t.path(k), "unknown key %q; allowed here: %s", k, strings.Join(allowed, ", "))
	}
}

func (t table) str(k string) string {
	v, ok := t.m[k]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		t.wrongType(k, "a string", v)
	}
	return s
}

func (t table) integer(k string) (int, bool) {
	v, ok := t.m[k]
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		t.wrongType(k, "an integer", v)
		return 0, false
	}
	if int64(int(n)) != n {
		t.p.errorf(t.path(k), "%d is out of range", n)
		return 0, false
	}
	return int(n), true
}

// number reads an integer or a float.
func (t table) number(k string) float64 {
	switch v := t.m[k].(type) {
	case nil:
	case int64:
		return float64(v)
	case float64:
		return v
	default:
		t.wrongType(k, "a number", v)
	}
	return 0
}

func (t table) boolean(k string) (bool, bool) {
	v, ok := t.m[k]
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		t.wrongType(k, "true or false", v)
	}
	return b, ok
}

func (t table) sub(k string) (table, bool) {
	v, ok := t.m[k]
	if !ok {
		return table{p: t.p, key: append(slices.Clip(t.key), k)}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.wrongType(k, "a table", v)
	}
	return table{p: t.p, key: append(slices.Clip(t.key), k), m: m}, ok
}

func (t table) duration(k string) time.Duration {
	s := t.str(k)
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.p.errorf(t.path(k), "want a positive duration such as \"2m\" or \"30s\", not %q", s)
		return 0
	}
	return d
}

// policies reads a list of limits, each as limiter.ParsePolicy reads it;
// an error names the element (key[i]) on its own line.
func (t table) policies(k string) []limiter.Policy {
	v, ok := t.m[k]
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		t.wrongType(k, "a list of strings such as [\"500 requests/1m\"]", v)
		return nil
	}
	var out []limiter.Policy
	for i, e := range list {
		elem := fmt.Sprintf("%s[%d]", t.path(k), i)
		s, ok := e.(string)
		if !ok {
			// Keyed by the list, lined by the element.
			t.p.errs = append(t.p.errs, &Error{File: t.p.file, Line: t.p.line(elem), Key: t.path(k),
				Msg: fmt.Sprintf("element %d: wrong type: want a string such as \"500 requests/1m\", not %s", i, typeName(e))})
			continue
		}
		pol, err := limiter.ParsePolicy(s)
		if err != nil {
			t.p.errorf(elem, "%v", err)
			continue
		}
		out = append(out, pol)
	}
	return out
}

// typeName names the type of a decoded TOML value in words a person
// writing TOML knows.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a number"
	case bool:
		return "true or false"
	case []any, []map[string]any:
		return "a list [...]"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}

// keyPath joins key parts as errors show them; a part that is not a bare key
// is quoted, as in TOML.
func keyPath(parts ...string) string {
	var b strings.Builder
	for i, part := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareKey(part) {
			b.WriteString(part)
		} else {
			b.WriteString(strconv.Quote(part))
		}
	}
	return b.String()
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
