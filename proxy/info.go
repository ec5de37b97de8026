package proxy

import "strings"

// Info is the body of GET /v1/proxy on the daemon's socket: how a local
// program reaches the proxy. The token is secret; the socket only answers
// its own user.
type Info struct {
	Enabled  bool          `json:"enabled"`
	URL      string        `json:"url,omitempty"`   // e.g. "http://127.0.0.1:7878"
	Token    string        `json:"token,omitempty"` // absent when disabled
	Services []ServiceInfo `json:"services,omitempty"`
}

// ServiceInfo is one service the proxy forwards to.
type ServiceInfo struct {
	Name    string `json:"name"`
	Preset  string `json:"preset,omitempty"`
	BaseURL string `json:"base_url"` // the upstream
}

// AgentURL is the proxy's base URL for one agent and service; an SDK
// appends its API paths to it.
func (i Info) AgentURL(agent, service string) string {
	return strings.TrimSuffix(i.URL, "/") + "/t/" + i.Token + "/" + agent + "/" + service
}
