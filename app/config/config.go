package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/quotabar/quotabar/limiter"
)

// Config is a parsed and checked configuration file.
type Config struct {
	// Path is the file the configuration was read from.
	Path string

	LeaseTTL   time.Duration // 0: the limiter's default
	MaxAging   time.Duration // 0: the limiter's default
	QueueLimit int           // 0: the limiter's default
	ShowTitle  bool          // show the tightest quota as the menu-bar title
	ChromePath string        // "" finds Chrome or Chromium on the system
	// FallbackIdleTimeout closes a fallback tab or session no agent used for
	// this long, and a browser left with none; 0: webfallback's default.
	FallbackIdleTimeout time.Duration

	Proxy    ProxyConfig
	Services []ServiceConfig // in file order
	Agents   []AgentConfig   // in file order
}

// ServiceConfig is one [services.NAME] table, with its preset applied.
type ServiceConfig struct {
	Name          string
	Preset        string // "" when none
	BaseURL       string
	Dialect       string // "" parses every dialect
	Limits        []limiter.Policy
	MaxConcurrent int
	Headroom      float64
	Fallback      FallbackConfig
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
		LeaseTTL:   c.LeaseTTL,
		MaxAging:   c.MaxAging,
		QueueLimit: c.QueueLimit,
	}
	for _, s := range c.Services {
		lc.Services = append(lc.Services, limiter.ServiceConfig{
			Name:          s.Name,
			Limits:        s.Limits,
			MaxConcurrent: s.MaxConcurrent,
			Headroom:      s.Headroom,
			Dialect:       limiter.Dialect(s.Dialect),
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

// Error is one problem in a configuration file, located by line and
// key so that a person can go straight to it.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path, e.g. services.openai.limits[1]; may be ""
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in line order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// rawConfig is the file as TOML decodes it; Parse checks it and turns
// it into a Config.
type rawConfig struct {
	LeaseTTL    string                `toml:"lease_ttl"`
	MaxAging    string                `toml:"max_aging"`
	QueueLimit  int                   `toml:"queue_limit"`
	ShowTitle   *bool                 `toml:"show_title"`
	ChromePath  string                `toml:"chrome_path"`
	IdleTimeout string                `toml:"fallback_idle_timeout"`
	Proxy       rawProxy              `toml:"proxy"`
	Services    map[string]rawService `toml:"services"`
	Agents      map[string]rawAgent   `toml:"agents"`
}

type rawProxy struct {
	Enabled *bool  `toml:"enabled"`
	Listen  string `toml:"listen"`
	MaxWait string `toml:"max_wait"`
}

type rawService struct {
	Preset        string       `toml:"preset"`
	BaseURL       string       `toml:"base_url"`
	Limits        []string     `toml:"limits"`
	MaxConcurrent int          `toml:"max_concurrent"`
	Headroom      float64      `toml:"headroom"`
	Dialect       *string      `toml:"dialect"`
	Fallback      *rawFallback `toml:"fallback"`
}

type rawFallback struct {
	Browser   string   `toml:"browser"`
	URL       string   `toml:"url"`
	Enabled   bool     `toml:"enabled"`
	Headless  bool     `toml:"headless"`
	WebLimits []string `toml:"web_limits"`
}

type rawAgent struct {
	Priority string   `toml:"priority"`
	Weight   *float64 `toml:"weight"`
	Limits   []string `toml:"limits"`
}

// allowedKeys lists the keys of each kind of table, for unknown-key errors.
var allowedKeys = map[string][]string{
	"":         {"lease_ttl", "max_aging", "queue_limit", "show_title", "chrome_path", "fallback_idle_timeout", "proxy", "services", "agents"},
	"proxy":    {"enabled", "listen", "max_wait"},
	"service":  {"preset", "base_url", "limits", "max_concurrent", "headroom", "dialect", "fallback"},
	"fallback": {"browser", "url", "enabled", "headless", "web_limits"},
	"agent":    {"priority", "weight", "limits"},
}

// DefaultProxyListen is the proxy's address when [proxy] sets no listen.
const DefaultProxyListen = "127.0.0.1:7878"

// Parse checks a configuration file's contents; path is used in
// errors and recorded in Config.Path.
func Parse(path string, data []byte) (*Config, error) {
	p := &configParser{file: path, data: data}
	var raw rawConfig
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, Errors{p.decodeError(err)}
	}
	// One error per unknown key: a misspelt table's own keys are not news.
	var unknown []toml.Key
	for _, k := range md.Undecoded() {
		if !slices.Contains(allowedKeys[""], k[0]) {
			k = k[:1] // a misspelt top-level table: report the table
		}
		if !slices.ContainsFunc(unknown, func(u toml.Key) bool { return len(u) <= len(k) && slices.Equal(u, k[:len(u)]) }) {
			unknown = append(unknown, k)
			p.unknownKey(k)
		}
	}
	cfg := &Config{
		Path:                path,
		LeaseTTL:            p.duration("lease_ttl", raw.LeaseTTL),
		MaxAging:            p.duration("max_aging", raw.MaxAging),
		QueueLimit:          raw.QueueLimit,
		ShowTitle:           raw.ShowTitle == nil || *raw.ShowTitle,
		ChromePath:          raw.ChromePath,
		FallbackIdleTimeout: p.duration("fallback_idle_timeout", raw.IdleTimeout),
		Proxy: ProxyConfig{
			Enabled: raw.Proxy.Enabled == nil || *raw.Proxy.Enabled,
			Listen:  raw.Proxy.Listen,
			MaxWait: p.duration("proxy.max_wait", raw.Proxy.MaxWait),
		},
	}
	if cfg.QueueLimit < 0 {
		p.errorf("queue_limit", "must be 0 (the default) or more, not %d", cfg.QueueLimit)
	}
	if cfg.Proxy.Listen == "" {
		cfg.Proxy.Listen = DefaultProxyListen
	} else if _, _, err := net.SplitHostPort(cfg.Proxy.Listen); err != nil {
		p.errorf("proxy.listen", "want host:port such as %q: %v", DefaultProxyListen, err)
	}

	// Tables keep the file's order, which is the order the menu shows.
	for _, name := range p.tableNames(md, "services") {
		cfg.Services = append(cfg.Services, p.service(name, raw.Services[name]))
	}
	for _, name := range p.tableNames(md, "agents") {
		cfg.Agents = append(cfg.Agents, p.agent(name, raw.Agents[name]))
	}
	for _, s := range cfg.Services {
		if strings.HasSuffix(s.Name, ".web") {
			if base, ok := cfg.Service(strings.TrimSuffix(s.Name, ".web")); ok && len(base.Fallback.WebLimits) > 0 {
				p.errorf(keyPath("services", s.Name), "the name is taken by the web limits of service %q; rename one of them", base.Name)
			}
		}
	}
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs
	}
	return cfg, nil
}

type configParser struct {
	file  string
	data  []byte
	lines map[string]int // from locateKeys, made at the first error
	errs  Errors
}

// errorf records a problem at key (a path as written by keyPath).
func (p *configParser) errorf(key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: p.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// line finds the line of key, or of its closest enclosing key.
func (p *configParser) line(key string) int {
	if p.lines == nil {
		p.lines = locateKeys(p.data)
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

// typeErrorRE matches the errors BurntSushi/toml returns when a value has the
// wrong type: they carry the line and key only in their text.
var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

var typeMsgRE = regexp.MustCompile(`incompatible types: TOML value has type (\w+); destination has type (\w+)`)

func (p *configParser) decodeError(err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		if line == 0 && pe.LastKey != "" {
			line = p.line(pe.LastKey)
		}
		return &Error{File: p.file, Line: line, Key: pe.LastKey, Msg: pe.Message}
	}
	if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := m[3]
		if t := typeMsgRE.FindStringSubmatch(msg); t != nil {
			msg = fmt.Sprintf("wrong type: want %s, not %s", tomlTypeName(t[2]), tomlTypeName(t[1]))
		}
		return &Error{File: p.file, Line: line, Key: m[2], Msg: msg}
	}
	return &Error{File: p.file, Msg: err.Error()}
}

// tomlTypeName turns the Go or TOML type names in decode errors into words a
// person writing TOML knows.
func tomlTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case t == "slice", t == "array":
		return "a list [...]"
	case t == "map", t == "struct", t == "table":
		return "a table"
	}
	return t
}

func (p *configParser) unknownKey(k toml.Key) {
	kind := ""
	switch {
	case len(k) == 2 && k[0] == "proxy":
		kind = "proxy"
	case len(k) == 3 && k[0] == "services":
		kind = "service"
	case len(k) == 4 && k[0] == "services" && k[2] == "fallback":
		kind = "fallback"
	case len(k) == 3 && k[0] == "agents":
		kind = "agent"
	case len(k) != 1:
		p.errorf(keyPath(k...), "unknown key")
		return
	}
	p.errorf(keyPath(k...), "unknown key %q; allowed here: %s", k[len(k)-1], strings.Join(allowedKeys[kind], ", "))
}

// tableNames lists the sub-tables of section (services or agents) in file
// order, checking each name.
func (p *configParser) tableNames(md toml.MetaData, section string) []string {
	var names []string
	for _, k := range md.Keys() {
		if len(k) != 2 || k[0] != section || slices.Contains(names, k[1]) {
			continue
		}
		if err := limiter.ValidName(k[1]); err != nil {
			p.errorf(keyPath(k...), "bad name %q: %v", k[1], err)
			continue
		}
		names = append(names, k[1])
	}
	return names
}

func (p *configParser) duration(key, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		p.errorf(key, "want a positive duration such as \"2m\" or \"30s\", not %q", s)
		return 0
	}
	return d
}

func (p *configParser) policies(key string, in []string) []limiter.Policy {
	var out []limiter.Policy
	for i, s := range in {
		pol, err := limiter.ParsePolicy(s)
		if err != nil {
			p.errorf(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			continue
		}
		out = append(out, pol)
	}
	return out
}

func (p *configParser) service(name string, raw rawService) ServiceConfig {
	key := keyPath("services", name)
	s := ServiceConfig{
		Name:          name,
		Preset:        raw.Preset,
		BaseURL:       raw.BaseURL,
		Limits:        p.policies(key+".limits", raw.Limits),
		MaxConcurrent: raw.MaxConcurrent,
		Headroom:      raw.Headroom,
	}
	var preset Preset
	if raw.Preset != "" {
		var ok bool
		if preset, ok = presets[raw.Preset]; !ok {
			p.errorf(key+".preset", "unknown preset %q; built in: %s", raw.Preset, strings.Join(PresetNames(), ", "))
		}
		s.Dialect = preset.Dialect
	}
	if raw.Dialect != nil {
		s.Dialect = *raw.Dialect
		if s.Dialect != "" && !slices.Contains(dialects, s.Dialect) {
			p.errorf(key+".dialect", "unknown dialect %q; allowed: %s, or \"\" for all of them", s.Dialect, strings.Join(dialects, ", "))
		}
	}
	if s.BaseURL == "" {
		s.BaseURL = preset.BaseURL
	} else {
		p.checkURL(key+".base_url", s.BaseURL)
	}
	if s.MaxConcurrent < 0 {
		p.errorf(key+".max_concurrent", "must be 0 (no cap) or more, not %d", s.MaxConcurrent)
	}
	if s.Headroom < 0 || s.Headroom >= 1 {
		p.errorf(key+".headroom", "must be a fraction from 0 up to (not including) 1, such as 0.05; got %v", s.Headroom)
	}
	if fb := raw.Fallback; fb != nil {
		fkey := key + ".fallback"
		s.Fallback = FallbackConfig{
			Browser:   fb.Browser,
			URL:       fb.URL,
			Enabled:   fb.Enabled,
			Headless:  fb.Headless,
			WebLimits: p.policies(fkey+".web_limits", fb.WebLimits),
		}
		if s.Fallback.Browser == "" {
			s.Fallback.Browser = "chrome"
		} else if !slices.Contains(browsers, s.Fallback.Browser) {
			p.errorf(fkey+".browser", "unknown browser %q; allowed: %s", fb.Browser, strings.Join(browsers, ", "))
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

func (p *configParser) checkURL(key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.errorf(key, "want an http or https URL such as \"https://api.example.com\", not %q", s)
	}
}

func (p *configParser) agent(name string, raw rawAgent) AgentConfig {
	key := keyPath("agents", name)
	a := AgentConfig{Name: name, Limits: p.policies(key+".limits", raw.Limits)}
	if raw.Priority != "" {
		pr, err := limiter.ParsePriority(raw.Priority)
		if err != nil || pr == limiter.PriorityUnset {
			p.errorf(key+".priority", "unknown priority %q; allowed: high, normal, low", raw.Priority)
		}
		a.Priority = pr
	}
	if raw.Weight != nil {
		if *raw.Weight <= 0 {
			p.errorf(key+".weight", "must be more than 0, such as 1 or 2.5; got %v", *raw.Weight)
		}
		a.Weight = *raw.Weight
	}
	return a
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

// locateKeys finds the line of every key in a TOML document that has already
// parsed: BurntSushi/toml keeps key positions private, and a person needs the
// line of a bad value, not just its name. Keys are written as keyPath does,
// array elements as key[i].
func locateKeys(data []byte) map[string]int {
	s := &keyScanner{src: data, line: 1, out: map[string]int{}}
	s.document()
	return s.out
}

type keyScanner struct {
	src  []byte
	pos  int
	line int
	out  map[string]int
}

func (s *keyScanner) peek() byte {
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

func (s *keyScanner) next() byte {
	if s.eof() {
		return 0
	}
	c := s.src[s.pos]
	if c == '\n' {
		s.line++
	}
	s.pos++
	return c
}

func (s *keyScanner) eof() bool { return s.pos >= len(s.src) }

// skip passes blanks and, when newlines is set, line breaks and comments.
func (s *keyScanner) skip(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case newlines && c == '\n':
			s.next()
		case newlines && c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *keyScanner) record(path string) {
	if _, ok := s.out[path]; !ok {
		s.out[path] = s.line
	}
}

// recordPrefixes records key and every table that holds it, so that an
// error about a table finds the line where the table first appears.
func (s *keyScanner) recordPrefixes(key []string) {
	for i := 1; i <= len(key); i++ {
		s.record(keyPath(key[:i]...))
	}
}

func (s *keyScanner) document() {
	var table []string
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.next()
			array := s.peek() == '['
			if array {
				s.next()
			}
			table = s.key()
			s.recordPrefixes(table)
			for !s.eof() && s.peek() != '\n' && s.peek() != '#' {
				s.next()
			}
			continue
		}
		start := s.pos
		k := s.key()
		s.skip(false)
		if s.peek() != '=' || s.pos == start {
			// Not something this scanner understands; move on a line.
			for !s.eof() && s.next() != '\n' {
			}
			continue
		}
		s.next()
		full := append(slices.Clone(table), k...)
		s.recordPrefixes(full)
		s.value(keyPath(full...))
	}
}

// key reads a dotted key, bare or quoted.
func (s *keyScanner) key() []string {
	var parts []string
	for {
		s.skip(false)
		switch c := s.peek(); c {
		case '"', '\'':
			parts = append(parts, s.str())
		default:
			start := s.pos
			for !s.eof() && isBareKey(string(s.peek())) {
				s.next()
			}
			if s.pos == start {
				return parts
			}
			parts = append(parts, string(s.src[start:s.pos]))
		}
		s.skip(false)
		if s.peek() != '.' {
			return parts
		}
		s.next()
	}
}

// str reads a string of any of TOML's four kinds and returns its raw text
// (escapes are left alone: keys with escapes are not worth decoding here).
func (s *keyScanner) str() string {
	q := s.next()
	multi := bytes.HasPrefix(s.src[s.pos:], []byte{q, q})
	if multi {
		s.pos += 2
	}
	start := s.pos
	for !s.eof() {
		if q == '"' && s.peek() == '\\' {
			s.next()
			s.next()
			continue
		}
		if s.peek() == q && (!multi || bytes.HasPrefix(s.src[s.pos:], []byte{q, q, q})) {
			text := string(s.src[start:s.pos])
			if multi {
				s.pos += 3
			} else {
				s.pos++
			}
			return text
		}
		if !multi && s.peek() == '\n' {
			break
		}
		s.next()
	}
	return string(s.src[start:s.pos])
}

// value reads one value, recording the lines of array elements and inline
// table keys under path.
func (s *keyScanner) value(path string) {
	s.skip(false)
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.next()
		for i := 0; ; i++ {
			s.skip(true)
			if s.eof() || s.peek() == ']' {
				s.next()
				return
			}
			start := s.pos
			elem := fmt.Sprintf("%s[%d]", path, i)
			s.record(elem)
			s.value(elem)
			s.skip(true)
			if s.peek() == ',' {
				s.next()
			}
			if s.pos == start {
				// Broken input (the scanner runs before the parser has
				// judged it): step over what it cannot read.
				s.next()
			}
		}
	case '{':
		s.next()
		for {
			s.skip(false)
			if s.eof() || s.peek() == '}' || s.peek() == '\n' {
				s.next()
				return
			}
			k := s.key()
			s.skip(false)
			if s.peek() != '=' {
				return
			}
			s.next()
			kp := path + "." + keyPath(k...)
			s.record(kp)
			s.value(kp)
			s.skip(false)
			if s.peek() == ',' {
				s.next()
			}
		}
	default:
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.next()
		}
	}
}
