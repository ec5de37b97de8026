package wire

import "strings"

// ProxyInfo is the body of GET /v1/proxy: how a local program reaches the
// daemon's base-URL proxy. The token is secret; the socket answers only its
// own user.
type ProxyInfo struct {
	Enabled  bool               `json:"enabled"`
	URL      string             `json:"url,omitempty"`   // e.g. "http://127.0.0.1:7878"
	Token    string             `json:"token,omitempty"` // absent when disabled
	Services []ProxyServiceInfo `json:"services,omitempty"`
	// Listen is the configured [proxy] listen address; URL differs from
	// it when that address was taken (Problem then says so).
	Listen string `json:"listen,omitempty"`
	// Problem says what is wrong with the proxy and what to do: why it
	// did not start (Enabled false), or why it is not at Listen.
	Problem string `json:"problem,omitempty"`
}

// ProxyServiceInfo is one service the proxy forwards to.
type ProxyServiceInfo struct {
	Name    string `json:"name"`
	Preset  string `json:"preset,omitempty"`
	BaseURL string `json:"base_url"` // the upstream
}

// AgentURL is the proxy's base URL for one agent and service; an SDK
// appends its API paths to it.
func (i ProxyInfo) AgentURL(agent, service string) string {
	return strings.TrimSuffix(i.URL, "/") + "/t/" + i.Token + "/" + agent + "/" + service
}
