package proxy

import "github.com/quotabar/quotabar/ipc/wire"

// Info is the body of GET /v1/proxy on the daemon's socket (wire.ProxyInfo):
// how a local program reaches the proxy.
type Info = wire.ProxyInfo

// ServiceInfo is one service the proxy forwards to (wire.ProxyServiceInfo).
type ServiceInfo = wire.ProxyServiceInfo
