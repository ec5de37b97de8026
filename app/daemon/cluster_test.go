package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/ipc"
)

func clusterConfig(url string) string {
	return `
[proxy]
enabled = false
[cluster]
redis = "` + url + `"
password_env = "QB_DAEMON_TEST_PW"
name = "daemon-test"
refresh = "50ms"
[services.shared]
limits = ["100 requests/1s"]
shared = true
[services.local]
limits = ["100 requests/1s"]
`
}

// A password_env that is not set stops the start with a message naming it:
// a shared service must not run alone on the whole quota.
func TestClusterPasswordEnvUnset(t *testing.T) {
	td := newTestDaemon(t, clusterConfig("redis://127.0.0.1:1/0"))
	_, err := StartDaemon(context.Background(), td.opts)
	if err == nil || !strings.Contains(err.Error(), "QB_DAEMON_TEST_PW") {
		t.Fatalf("StartDaemon: %v, want an error naming QB_DAEMON_TEST_PW", err)
	}
}

// A daemon with [cluster] shows the shared service's standing in status,
// the local one without, and logs the URL without its password.
func TestClusterStatus(t *testing.T) {
	const pw = "daemon-test-secret-pw"
	r := testenv.StartRedis(t, pw)
	t.Setenv("QB_DAEMON_TEST_PW", pw)
	td := newTestDaemon(t, clusterConfig("unix://:"+pw+"@"+r.Socket))
	d := td.start(t)
	cl := &ipc.Client{SocketPath: d.SocketPath()}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := cl.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var online bool
		for _, s := range st.Services {
			switch s.Name {
			case "shared":
				online = s.Cluster != nil && s.Cluster.State == "online" && s.Cluster.Share == 1
			case "local":
				if s.Cluster != nil {
					t.Fatalf("local service has a cluster object %+v", s.Cluster)
				}
			}
		}
		if online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shared service is not online alone with the whole share: %+v\nlogs:\n%s", st.Services, td.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if logs := td.logs.String(); strings.Contains(logs, pw) || !strings.Contains(logs, "cluster: joining") {
		t.Errorf("logs show the password or not the join:\n%s", logs)
	}
}
