package config

import (
	"sort"

	"github.com/quotabar/quotabar/limiter"
)

// Preset is what quotabar knows about a provider: how to read its rate-limit
// headers, where its API lives and where its web interface is.
type Preset struct {
	Name    string
	Dialect limiter.Dialect // limiter.DialectAll parses every known dialect
	BaseURL string          // the API's base URL
	WebURL  string          // the web interface a fallback opens
	// Reservation is the provider's rule for what a call counts against
	// its token limits before it runs (proxy.Reservation): "openai",
	// "anthropic", or "" (prompt plus max output, the safe default).
	Reservation string
}

// presets are the built-in providers a service names with `preset = "..."`.
var presets = map[string]Preset{
	"openai": {
		Name:        "openai",
		Dialect:     limiter.DialectOpenAI,
		BaseURL:     "https://api.openai.com",
		WebURL:      "https://chatgpt.com/",
		Reservation: "openai",
	},
	"anthropic": {
		Name:        "anthropic",
		Dialect:     limiter.DialectAnthropic,
		BaseURL:     "https://api.anthropic.com",
		WebURL:      "https://claude.ai/",
		Reservation: "anthropic",
	},
	// Claude Code signed in to a Claude Pro or Max plan: the same API,
	// with an OAuth bearer, and answers that carry the plan's 5-hour and
	// weekly windows (anthropic-ratelimit-unified-*).
	"claude": {
		Name:        "claude",
		Dialect:     limiter.DialectAnthropic,
		BaseURL:     "https://api.anthropic.com",
		WebURL:      "https://claude.ai/",
		Reservation: "anthropic",
	},
	// Codex signed in with ChatGPT: its backend, whose answers carry the
	// plan's windows (x-codex-*, and codex.rate_limits events). Also
	// called "chatgpt" (presetAliases).
	"codex": {
		Name:        "codex",
		Dialect:     limiter.DialectOpenAI,
		BaseURL:     "https://chatgpt.com/backend-api/codex",
		WebURL:      "https://chatgpt.com/",
		Reservation: "openai",
	},
	"github": {
		Name:    "github",
		Dialect: limiter.DialectGitHub,
		BaseURL: "https://api.github.com",
		WebURL:  "https://github.com/",
	},
	"gemini": {
		Name: "gemini",
		// Gemini sends no rate-limit headers of its own; a 429 carries
		// Retry-After, which every dialect reads.
		Dialect: limiter.DialectAll,
		BaseURL: "https://generativelanguage.googleapis.com",
		WebURL:  "https://gemini.google.com/",
	},
}

// presetAliases are other names of built-in presets: "chatgpt" is Codex
// signed in with ChatGPT, by the name of the account rather than the tool.
var presetAliases = map[string]string{"chatgpt": "codex"}

func init() {
	for alias, name := range presetAliases {
		p := presets[name]
		p.Name = alias
		presets[alias] = p
	}
}

// LookupPreset returns the built-in preset with the given name.
func LookupPreset(name string) (Preset, bool) {
	p, ok := presets[name]
	return p, ok
}

// PresetNames lists the built-in presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// browsers are the fallback browsers webfallback can drive.
var browsers = []string{"chrome", "webkit", "system"}
