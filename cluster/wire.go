package cluster

import "github.com/quotabar/quotabar/ipc/wire"

// ClusterStatus is Status as /v1/status carries it: a *Member is the ipc
// server's Cluster.
func (m *Member) ClusterStatus(service string) (wire.ClusterStatus, bool) {
	st, ok := m.Status(service)
	if !ok {
		return wire.ClusterStatus{}, false
	}
	return wire.ClusterStatus{State: string(st.State), Share: st.Share, Members: st.Members,
		Recovering: st.Recovering, Text: st.Text, Error: st.Error}, true
}
