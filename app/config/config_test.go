package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/alerts"
	"github.com/quotabar/quotabar/limiter"
)

func TestDefaultConfigParses(t *testing.T) {
	cfg, err := Parse("config.toml", DefaultConfig())
	if err != nil {
		t.Fatalf("the default config does not parse:\n%v", err)
	}
	var names []string
	for _, s := range cfg.Services {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "openai,anthropic,github,gemini"; got != want {
		t.Errorf("services = %s, want %s (file order)", got, want)
	}
	for _, s := range cfg.Services {
		p, ok := LookupPreset(s.Name)
		if !ok {
			t.Errorf("service %s: no preset of that name", s.Name)
			continue
		}
		if s.Preset != p.Name || s.BaseURL != p.BaseURL || s.Dialect != p.Dialect {
			t.Errorf("service %s = preset %q base %q dialect %q, want the preset's %q %q %q", s.Name, s.Preset, s.BaseURL, s.Dialect, p.Name, p.BaseURL, p.Dialect)
		}
		if len(s.Limits) == 0 {
			t.Errorf("service %s has no limits in the default config", s.Name)
		}
	}
	if !cfg.Proxy.Enabled || cfg.Proxy.Listen != "127.0.0.1:7878" || cfg.Proxy.MaxWait != 2*time.Minute {
		t.Errorf("proxy = %+v, want enabled on 127.0.0.1:7878 holding calls up to 2m", cfg.Proxy)
	}
	if cfg.LeaseTTL != 2*time.Minute || cfg.MaxAging != 30*time.Second || cfg.QueueLimit != 1000 || !cfg.ShowTitle || cfg.FallbackIdleTimeout != 15*time.Minute {
		t.Errorf("top-level settings = %v %v %d %v %v", cfg.LeaseTTL, cfg.MaxAging, cfg.QueueLimit, cfg.ShowTitle, cfg.FallbackIdleTimeout)
	}

	// The anthropic fallback has web limits: the limiter gets a service for them.
	lc := cfg.Limiter()
	var web *limiter.ServiceConfig
	for i := range lc.Services {
		if lc.Services[i].Name == "anthropic.web" {
			web = &lc.Services[i]
		}
	}
	if web == nil || len(web.Limits) != 1 || web.Limits[0].Quota != 45 {
		t.Errorf("limiter services %+v: want anthropic.web with 45 requests/5h", lc.Services)
	}
	if lc.LeaseTTL != cfg.LeaseTTL || lc.QueueLimit != cfg.QueueLimit {
		t.Errorf("limiter config %+v does not carry the top-level settings", lc)
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(`
show_title = false

[services.custom]
base_url = "http://127.0.0.1:9000"
limits = [
  "10 requests/1s",
  "1000 tokens/1m",
]
fallback = { url = "http://127.0.0.1:9001/", browser = "system", enabled = true, headless = true, web_limits = ["6 requests/1m"] }

[services.openai]
preset = "openai"
dialect = ""
base_url = "https://proxy.example.com"

[agents.research]
priority = "high"
weight = 2.5
limits = ["100 requests/1m"]

[agents.bulk]
priority = "low"

[proxy]
enabled = false
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:      "c.toml",
		ShowTitle: false,
		Proxy:     ProxyConfig{Enabled: false, Listen: DefaultProxyListen},
		Alerts:    alerts.Config{Notify: true}, // the default: on
		Services: []ServiceConfig{
			{
				Name:    "custom",
				BaseURL: "http://127.0.0.1:9000",
				Limits: []limiter.Policy{
					{Quota: 10, Unit: limiter.Requests, Window: time.Second},
					{Quota: 1000, Unit: limiter.Tokens, Window: time.Minute},
				},
				Fallback: FallbackConfig{
					Browser: "system", URL: "http://127.0.0.1:9001/", Enabled: true, Headless: true,
					WebLimits: []limiter.Policy{{Quota: 6, Unit: limiter.Requests, Window: time.Minute}},
				},
			},
			// An explicit dialect = "" overrides the preset's: read every dialect.
			{Name: "openai", Preset: "openai", BaseURL: "https://proxy.example.com", Dialect: ""},
		},
		Agents: []AgentConfig{
			{Name: "research", Priority: limiter.High, Weight: 2.5, Limits: []limiter.Policy{{Quota: 100, Unit: limiter.Requests, Window: time.Minute}}},
			{Name: "bulk", Priority: limiter.Low},
		},
	}
	if d := diffConfig(cfg, want); d != "" {
		t.Error(d)
	}
	if s, _ := cfg.Service("openai"); s.Fallback.Browser != "" {
		t.Errorf("openai has fallback %+v without a fallback key", s.Fallback)
	}
}

func TestParseConfigPresetFallbackDefaults(t *testing.T) {
	cfg, err := Parse("c.toml", []byte("[services.chat]\npreset = \"anthropic\"\nfallback = {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	want := FallbackConfig{Browser: "chrome", URL: "https://claude.ai/"}
	if s.Fallback.Browser != want.Browser || s.Fallback.URL != want.URL || s.Fallback.Enabled {
		t.Errorf("fallback = %+v, want %+v: browser chrome, the preset's web address, off", s.Fallback, want)
	}
	if s.Dialect != "anthropic" || s.BaseURL != "https://api.anthropic.com" {
		t.Errorf("preset not applied: %+v", s)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		key  string
		msg  string // a fragment of the message
	}{
		{"syntax", "[services.a]\nlimits = [\"1 requests/1s\"\nx = 1\n", 3, "services.a.limits", "expected a comma"},
		{"missing value", "lease_ttl =\n", 1, "lease_ttl", "expected value"},
		{"wrong type", "[services.a]\n\nheadroom = \"lots\"\n", 3, "services.a.headroom", "want a number, not a string"},
		{"wrong type in list", "[services.a]\nlimits = [5]\n", 2, "services.a.limits", "want a string"},
		{"bad unit", "[services.openai]\nlimits = [\n  \"1 requests/1s\",\n  \"5 reqs/1m\",\n]\n", 4, "services.openai.limits[1]", `"reqs"`},
		{"bad unit inline", "[services.a]\nfallback = { web_limits = [\"1 requests/1m\", \"2 x/1m\"] }\n", 2, "services.a.fallback.web_limits[1]", `"x"`},
		{"unknown preset", "\n[services.a]\npreset = \"opneai\"\n", 3, "services.a.preset", "built in: anthropic, chatgpt, claude, codex, gemini, github, openai"},
		{"unknown browser", "[services.a]\npreset = \"openai\"\nfallback = { browser = \"firefox\" }\n", 3, "services.a.fallback.browser", "allowed: chrome, webkit, system"},
		{"fallback without url", "[services.a]\nfallback = { browser = \"chrome\" }\n", 2, "services.a.fallback", "needs a url"},
		{"bad priority", "[agents.x]\nweight = 1\npriority = \"urgent\"\n", 3, "agents.x.priority", "allowed: high, normal, low"},
		{"zero weight", "[agents.x]\nweight = 0\n", 2, "agents.x.weight", "more than 0"},
		{"negative weight", "[agents.x]\nweight = -1.5\n", 2, "agents.x.weight", "more than 0"},
		{"headroom one", "[services.a]\nheadroom = 1.0\n", 2, "services.a.headroom", "fraction"},
		{"negative headroom", "[services.a]\nheadroom = -0.1\n", 2, "services.a.headroom", "fraction"},
		{"reserve_high one", "[services.a]\nreserve_high = 1\n", 2, "services.a.reserve_high", "fraction"},
		{"low_share over half", "low_share = 0.6\n", 1, "low_share", "from 0 (the default) to 0.5"},
		{"shares over half together", "normal_share = 0.3\nlow_share = 0.3\n", 2, "low_share", "together must be at most 0.5"},
		{"bad agent_idle_ttl", "agent_idle_ttl = \"soon\"\n", 1, "agent_idle_ttl", "positive duration"},
		{"bad max_hold", "[services.a]\nmax_hold = \"-1h\"\n", 2, "services.a.max_hold", "positive duration"},
		{"negative reserve_high", "[services.a]\nreserve_high = -0.1\n", 2, "services.a.reserve_high", "high priority"},
		{"negative concurrency", "[services.a]\nmax_concurrent = -1\n", 2, "services.a.max_concurrent", "0 (no cap)"},
		{"bad dialect", "[services.a]\ndialect = \"azure\"\n", 2, "services.a.dialect", "is not one of " + limiter.DialectNames()},
		{"bad base url", "[services.a]\nbase_url = \"api.example.com\"\n", 2, "services.a.base_url", "http or https URL"},
		{"bad duration", "queue_limit = 5\nlease_ttl = \"2 minutes\"\n", 2, "lease_ttl", "positive duration"},
		{"bad idle timeout", "fallback_idle_timeout = \"soon\"\n", 1, "fallback_idle_timeout", "positive duration"},
		{"negative queue limit", "queue_limit = -5\n", 1, "queue_limit", "0 (the default) or more"},
		{"bad listen", "[proxy]\nlisten = \"7878\"\n", 2, "proxy.listen", "host:port"},
		{"bad proxy wait", "[proxy]\nmax_wait = \"soon\"\n", 2, "proxy.max_wait", "positive duration"},
		{"unknown top-level key", "lease_tl = \"1m\"\n", 1, "lease_tl", "allowed here: lease_ttl"},
		{"unknown service key", "[services.a]\n\nlimts = []\n", 3, "services.a.limts", "allowed here: preset, base_url, limits"},
		{"unknown fallback key", "[services.a]\nfallback = { url = \"https://x.example/\", browsr = \"chrome\" }\n", 2, "services.a.fallback.browsr", "allowed here: browser, url"},
		{"misspelt table", "\n[service.openai]\npreset = \"openai\"\n", 2, "service", "allowed here: lease_ttl"},
		{"unknown agent key", "[agents.b]\npriority = \"low\"\nweigth = 2\n", 3, "agents.b.weigth", "allowed here: priority, weight, limits"},
		{"bad service name", "[services.\"open ai\"]\nlimits = []\n", 1, `services."open ai"`, "bad name"},
		{"web name taken", "[services.a]\nfallback = { url = \"https://a.example/\", web_limits = [\"1 requests/1m\"] }\n[services.\"a.web\"]\n", 3, `services."a.web"`, "taken by the web limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("/etc/q/config.toml", []byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *Error", err, err)
			}
			if ce.File != "/etc/q/config.toml" || ce.Line != tt.line || ce.Key != tt.key {
				t.Errorf("error at %s:%d key %q, want line %d key %q (%v)", ce.File, ce.Line, ce.Key, tt.line, tt.key, err)
			}
			if !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ce.Msg, tt.msg)
			}
			prefix := "/etc/q/config.toml:" + strconv.Itoa(tt.line) + ": "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestParseConfigUnknownTableOnce(t *testing.T) {
	_, err := Parse("c.toml", []byte("[service.openai]\npreset = \"openai\"\nlimits = []\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Errorf("a misspelt table gave %v; want one error", err)
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	_, err := Parse("c.toml", []byte("[agents.b]\nweight = 0\n[services.a]\nlimits = [\"x\"]\npreset = \"nope\"\n"))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not Errors", err)
	}
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	if len(lines) != 3 || lines[0] != 2 || lines[1] != 4 || lines[2] != 5 {
		t.Errorf("error lines %v, want [2 4 5] in order:\n%v", lines, err)
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment with key = "x"
a = 1
s = """multi
line = 3
"""
[t."quoted.key"]
b = 'lit' # trailing
arr = [
  "one", # first
  [2, 3],
  { x = 1, y = "}" },
]
inl = { p = 1, q = [4, 5] }
[[tables]]
c.d = true
`
	got := keyLines([]byte(src))
	want := map[string]int{
		"a":                        2,
		"s":                        3,
		`t."quoted.key"`:           6,
		`t."quoted.key".b`:         7,
		`t."quoted.key".arr`:       8,
		`t."quoted.key".arr[0]`:    9,
		`t."quoted.key".arr[1]`:    10,
		`t."quoted.key".arr[1][1]`: 10,
		`t."quoted.key".arr[2]`:    11,
		`t."quoted.key".arr[2].y`:  11,
		`t."quoted.key".inl.q[1]`:  13,
		"tables":                   14,
		"tables.c.d":               15,
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("line of %s = %d, want %d", k, got[k], line)
		}
	}
	if _, ok := got["line"]; ok {
		t.Error("a line inside a multi-line string was taken for a key")
	}
}

func TestWriteDefaultConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "config.toml")
	if err := WriteDefaultConfig(path, false); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if _, err := Load(path); err != nil {
		t.Errorf("the written config does not load: %v", err)
	}
	if err := WriteDefaultConfig(path, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write: %v, want fs.ErrExist", err)
	}
	os.WriteFile(path, []byte("# mine\n"), 0o600)
	if err := WriteDefaultConfig(path, true); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != string(DefaultConfig()) {
		t.Error("overwrite did not write the default config")
	}
}

func TestDefaultPaths(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("the XDG layout is for Linux; macOS uses Application Support")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	tests := []struct {
		name                  string
		env                   map[string]string
		wantConfig, wantState string
	}{
		{"overrides", map[string]string{"QUOTABAR_CONFIG": "/x/c.toml", "QUOTABAR_STATE_DIR": "/y"}, "/x/c.toml", "/y"},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/st"}, "/cfg/quotabar/config.toml", "/st/quotabar"},
		{"home", nil, home + "/.config/quotabar/config.toml", home + "/.local/state/quotabar"},
		{"relative xdg ignored", map[string]string{"XDG_CONFIG_HOME": "rel"}, home + "/.config/quotabar/config.toml", home + "/.local/state/quotabar"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"QUOTABAR_CONFIG", "QUOTABAR_STATE_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"} {
				t.Setenv(k, tt.env[k])
			}
			c, err := DefaultConfigPath()
			if err != nil || c != tt.wantConfig {
				t.Errorf("DefaultConfigPath = %q, %v; want %q", c, err, tt.wantConfig)
			}
			s, err := DefaultStateDir()
			if err != nil || s != tt.wantState {
				t.Errorf("DefaultStateDir = %q, %v; want %q", s, err, tt.wantState)
			}
		})
	}
}

// diffConfig describes how got differs from want, or returns "".
func diffConfig(got, want *Config) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	return fmt.Sprintf("config =\n%+v\nwant\n%+v", *got, *want)
}

// FuzzParseConfig checks that no input makes the parser, the nesting check
// or the key locator panic or hang (the locator and the nesting check read
// the file before the TOML parser has judged it), and that every error it
// returns is located in the file.
//
// Inputs are small on purpose. The fuzzer minimizes every new interesting
// input before it goes on, in a number of runs that grows with the square
// of the input's size (removing every span of bytes in turn): with the 4 KB
// default file as a seed, and the kilobytes mutation grows inputs to, it
// spent its whole time minimizing (0 execs/s) unless -fuzzminimizetime was
// cut. The default file is TestDefaultConfigParses's; inputs over
// maxFuzzInput bytes are passed over, which keeps every minimization to
// seconds. The size and nesting caps, which need big inputs, have their own
// tests.
func FuzzParseConfig(f *testing.F) {
	const maxFuzzInput = 512
	f.Add([]byte("lease_ttl = \"1m\"\n[proxy]\nenabled = false\n"))
	f.Add([]byte("[services.openai]\npreset = \"openai\"\nlimits = [\"500 requests/1m\"]\nfallback = { web_limits = [\"1 requests/1m\"] }\n"))
	f.Add([]byte("[agents.a]\npriority = \"high\"\nweight = 2.5\n"))
	f.Add([]byte("a = [}\n"))
	f.Add([]byte("[services.a]\nlimits = [\"1 x/1m\",\n fallback = { url = 'x' \n"))
	f.Add([]byte("s = \"\"\"\nunterminated"))
	f.Add([]byte("a = \"\\"))
	f.Add([]byte("a = [[[[1, {x = ["))
	f.Add([]byte("a = '''x''''\nb = [\"#\", '''\n]''']"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		keyLines(data) // also on input the TOML parser rejects
		cfg, err := Parse("f.toml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T %v is not a Errors", err, err)
		}
		for _, e := range errs {
			if e.File != "f.toml" {
				t.Fatalf("error without the file name: %v", e)
			}
		}
	})
}

// TestParseHostileFiles feeds the files of issue 14.5: each must be refused
// with an error naming the file and, where there is one, the line, without
// a stack overflow or gigabytes of memory.
func TestParseHostileFiles(t *testing.T) {
	deep := func(open, close string, n int) []byte {
		return []byte("a = " + strings.Repeat(open, n) + "1" + strings.Repeat(close, n) + "\n")
	}
	tests := []struct {
		name string
		data []byte
		line int
		msg  string
	}{
		{"10 MB of [", bytes.Repeat([]byte("["), 10<<20), 0, "over the 1048576-byte cap"},
		{"1 MB of [", bytes.Repeat([]byte("["), MaxFileSize), 1, "nest more than 32 deep"},
		{"inline tables 5000 deep", []byte("\n\na = " + strings.Repeat("{b=", 5000) + "1" + strings.Repeat("}", 5000) + "\n"), 3, "nest more than 32 deep"},
		{"lists 40000 deep", deep("[", "]", 40000), 1, "nest more than 32 deep"},
		{"33 deep", deep("[", "]", 33), 1, "nest more than 32 deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.toml", tt.data)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if ce.File != "c.toml" || ce.Line != tt.line || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("error %v; want line %d and %q", err, tt.line, tt.msg)
			}
		})
	}
	// Brackets inside strings and comments are not nesting, and 32 deep is
	// allowed.
	ok := "a = \"" + strings.Repeat("[", 100) + "\" # " + strings.Repeat("{", 100) + "\n" +
		"b = '''\n" + strings.Repeat("[", 100) + "'''\n" + strings.Replace(string(deep("[", "]", 32)), "a", "c", 1)
	if line, ok := checkNesting([]byte(ok), maxNesting); !ok {
		t.Errorf("checkNesting refused brackets in strings and comments, or 32 levels, at line %d", line)
	}
	if _, err := Parse("c.toml", []byte(ok)); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("Parse of a shallow file with unknown keys = %v; want the unknown keys reported", err)
	}
}

// TestParseManyKeysIsLinear checks issue 14.7's finding (80,000 unknown keys
// took 22.8 s): parsing 8 times as many keys must take less than 32 times as
// long as 10,000 (linear work is about 8 times; the quadratic checks were 64
// times).
// Both sizes run in this test, so the ratio does not depend on the machine.
func TestParseManyKeysIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("times two parses")
	}
	doc := func(n int) []byte {
		var b strings.Builder
		b.WriteString("[services.a]\n")
		for i := range n {
			fmt.Fprintf(&b, "k%d = 1\n", i)
		}
		return []byte(b.String())
	}
	small, big := doc(10000), doc(80000)
	parse := func(data []byte) time.Duration {
		start := time.Now()
		_, err := Parse("c.toml", data)
		d := time.Since(start)
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != maxErrors+1 || !strings.Contains(errs[maxErrors].Msg, "more problems") {
			t.Fatalf("Parse of many unknown keys: %d errors, want the first %d and a count of the rest", len(errs), maxErrors)
		}
		return d
	}
	// The two sizes take turns and each keeps its best of five, so that a
	// busy moment of the machine (other packages' tests run beside this
	// one) weighs on both alike.
	ts, tb := time.Duration(1<<63-1), time.Duration(1<<63-1)
	for range 5 {
		ts, tb = min(ts, parse(small)), min(tb, parse(big))
	}
	t.Logf("10,000 keys: %v; 80,000 keys: %v (ratio %.1f)", ts, tb, float64(tb)/float64(ts))
	// Linear work is 8 times, quadratic 64: 32 lies between with room for
	// noise on either side.
	if tb > 32*ts {
		t.Errorf("80,000 keys took %v, %.0f times 10,000 keys' %v: not linear", tb, float64(tb)/float64(ts), ts)
	}
}

func BenchmarkParseDefaultConfig(b *testing.B) {
	data := DefaultConfig()
	for b.Loop() {
		if _, err := Parse("c.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// The subscription presets: Claude Code's and Codex's plan traffic, with
// their upstreams and web addresses, and a reserve for high priority.
func TestSubscriptionPresets(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(`
[services.claude]
preset = "claude"
reserve_high = 0.10

[services.codex]
preset = "codex"
reserve_high = 0.2
fallback = { browser = "system" }
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		base    string
		dialect limiter.Dialect
		reserve float64
	}{
		"claude": {"https://api.anthropic.com", "anthropic", 0.10},
		"codex":  {"https://chatgpt.com/backend-api/codex", "openai", 0.2},
	}
	for _, s := range cfg.Services {
		w := want[s.Name]
		if s.BaseURL != w.base || s.Dialect != w.dialect || s.ReserveHigh != w.reserve {
			t.Errorf("service %s: %+v, want base %s, dialect %s, reserve %v", s.Name, s, w.base, w.dialect, w.reserve)
		}
	}
	if fb := cfg.Services[1].Fallback; fb.URL != "https://chatgpt.com/" {
		t.Errorf("codex fallback %+v, want chatgpt.com", fb)
	}
	if p, ok := LookupPreset("claude"); !ok || p.WebURL != "https://claude.ai/" {
		t.Errorf("claude preset %+v", p)
	}
	lc := cfg.Limiter()
	for _, s := range lc.Services {
		if s.ReserveHigh != want[s.Name].reserve {
			t.Errorf("limiter service %s reserve %v, want %v", s.Name, s.ReserveHigh, want[s.Name].reserve)
		}
	}
}

// The scheduler's keys reach the limiter: floor shares, the idle-agent TTL
// and a service's max_hold.
func TestSchedulerKeys(t *testing.T) {
	cfg, err := Parse("c.toml", []byte("normal_share = 0.2\nlow_share = 0.1\nagent_idle_ttl = \"10m\"\n[services.a]\nmax_hold = \"3h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	lc := cfg.Limiter()
	if lc.NormalShare != 0.2 || lc.LowShare != 0.1 || lc.AgentIdleTTL != 10*time.Minute {
		t.Errorf("limiter config %+v, want shares 0.2/0.1 and agent TTL 10m", lc)
	}
	if len(lc.Services) != 1 || lc.Services[0].MaxHold != 3*time.Hour {
		t.Errorf("services %+v, want a with max_hold 3h", lc.Services)
	}
	if _, err := limiter.New(lc); err != nil {
		t.Errorf("the limiter refuses what the config accepted: %v", err)
	}
}
