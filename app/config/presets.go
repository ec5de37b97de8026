package config

import "sort"

// Preset is what quotabar knows about a provider: how to read its rate-limit
// headers, where its API lives and where its web interface is.
type Preset struct {
	Name    string
	Dialect string // limiter header dialect; "" parses every known dialect
	BaseURL string // the API's base URL
	WebURL  string // the web interface a fallback opens
}

// presets are the built-in providers a service names with `preset = "..."`.
var presets = map[string]Preset{
	"openai": {
		Name:    "openai",
		Dialect: "openai",
		BaseURL: "https://api.openai.com",
		WebURL:  "https://chatgpt.com/",
	},
	"anthropic": {
		Name:    "anthropic",
		Dialect: "anthropic",
		BaseURL: "https://api.anthropic.com",
		WebURL:  "https://claude.ai/",
	},
	"github": {
		Name:    "github",
		Dialect: "github",
		BaseURL: "https://api.github.com",
		WebURL:  "https://github.com/",
	},
	"gemini": {
		Name: "gemini",
		// Gemini sends no rate-limit headers of its own; a 429 carries
		// Retry-After, which every dialect reads.
		Dialect: "",
		BaseURL: "https://generativelanguage.googleapis.com",
		WebURL:  "https://gemini.google.com/",
	},
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

// dialects are the header dialects the limiter understands; "" means all.
var dialects = []string{"anthropic", "github", "ietf", "openai"}

// browsers are the fallback browsers webfallback can drive.
var browsers = []string{"chrome", "webkit", "system"}
