package cluster

import (
	"fmt"

	"github.com/quotabar/quotabar/limiter"
)

// keys are the Redis keys of one shared service. Every key starts with
// "quotabar:{<cluster>:<service>}:": both names are checked (cluster names
// by ValidClusterName, service names by limiter.ValidName) to hold only
// letters, digits, '.', '_' and '-', so no key can leave its namespace, and
// the braces make a hash tag, so that every key of one service lives in one
// slot of a Redis Cluster (a script may only touch keys of one slot). A
// Redis ACL of "~quotabar:{<cluster>:*" confines a daemon's user to them.
type keys struct {
	members, meta, cooldown, limits string
}

func serviceKeys(cluster, service string) (keys, error) {
	if err := ValidClusterName(cluster); err != nil {
		return keys{}, err
	}
	if err := limiter.ValidName(service); err != nil {
		return keys{}, fmt.Errorf("shared service: %w", err)
	}
	p := "quotabar:{" + cluster + ":" + service + "}:"
	return keys{members: p + "members", meta: p + "meta", cooldown: p + "cooldown", limits: p + "limits"}, nil
}

// channel is the cluster's pub/sub channel for cooldowns.
func channel(cluster string) string { return "quotabar:{" + cluster + "}:cooldown" }
