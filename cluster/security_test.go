package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
)

const secret = "s3cret-Pw-9f8e7d"

// The Redis password, from the URL or the environment, appears in no log,
// status, error or cooldown message, whatever happens to Redis.
func TestPasswordNeverShown(t *testing.T) {
	r := testenv.StartRedis(t, secret)
	t.Setenv("QB_TEST_REDIS_PW", secret)
	fromURL := startNode(t, 0, nodeOpts{url: r.URL(true)})
	fromEnv := startNode(t, 1, nodeOpts{url: r.URL(false), pwEnv: "QB_TEST_REDIS_PW"})
	t.Setenv("QB_TEST_REDIS_BAD", "wrong-"+secret)
	wrong := startNode(t, 2, nodeOpts{url: r.URL(true), pwEnv: "QB_TEST_REDIS_BAD"})
	for _, n := range []*node{fromURL, fromEnv} {
		waitFor(t, 3*time.Second, "online with the password", func() bool { return n.status().State == cluster.Online })
	}
	waitFor(t, 3*time.Second, "an error with the wrong password", func() bool { return wrong.status().Error != "" })
	// A cooldown goes over pub/sub; Redis goes away and comes back.
	fromURL.lim.Report(limiterReport429())
	waitFor(t, time.Second, "cooldown on the other", func() bool { d, _ := fromEnv.lim.Demand(svcName); return !d.CooldownUntil.IsZero() })
	r.Stop()
	waitFor(t, 2*time.Second, "offline", func() bool { return fromURL.status().State == cluster.Offline })
	r.Kill()
	waitFor(t, 2*time.Second, "an error with Redis gone", func() bool { return fromEnv.status().Error != "" && fromEnv.status().State == cluster.Offline })
	r.Start()
	waitFor(t, 3*time.Second, "online again", func() bool { return fromURL.status().State == cluster.Online })

	for i, n := range []*node{fromURL, fromEnv, wrong} {
		seen := fmt.Sprintf("%+v\n%s", n.status(), n.logs.String())
		if strings.Contains(seen, secret) {
			t.Errorf("node %d shows the password:\n%s", i, seen)
		}
		if n.logs.String() == "" {
			t.Errorf("node %d logged nothing: the check above proves nothing", i)
		}
	}
	t.Logf("wrong password: %q", wrong.status().Error)
	for _, bad := range []cluster.Config{
		{Redis: "redis://:" + secret + "@host:port/0"},
		{Redis: "redis://:" + secret + "@host:6379/zero"},
		{Redis: "redis://:" + secret + "@host:6379/0?dial_timeout=nope"},
		{Redis: "http://:" + secret + "@host/"},
		{Redis: "redis://:" + secret + "@[::1"},
		{Redis: "rediss://:" + secret + "@host:port/0"},
		{Redis: "rediss://user:" + secret + "@host:6380/zero"},
		{Redis: "rediss://:" + secret + "@host:6380/0?skip_verify=true"},
		{Redis: "redis://:" + secret + "@host:6379/0", CAFile: "ca.pem"},
		{Redis: "rediss://:" + secret + "@host:6380/0", CertFile: "client.pem"},
		{Redis: "redis://:" + secret + "@host:6379/0", CertFile: "client.pem", KeyFile: "client.key"},
	} {
		bad.Name = "x"
		err := bad.Validate()
		if err == nil {
			t.Errorf("%q accepted", cluster.Redacted(bad.Redis))
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	// A CA file that is not there stops New, with no password in the error.
	_, err := cluster.New(cluster.Config{Redis: "rediss://:" + secret + "@127.0.0.1:1/0", Name: "x", CAFile: t.TempDir() + "/none.pem"}, nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "ca_file") || strings.Contains(err.Error(), secret) {
		t.Errorf("New with a missing ca_file: %v", err)
	}
	for _, u := range []string{"redis://user:" + secret + "@h:1/0", "rediss://:" + secret + "@h:6380/0", "rediss://u:" + secret + "@[::1]:6380/0?dial_timeout=1s"} {
		if got := cluster.Redacted(u); strings.Contains(got, secret) || !strings.Contains(got, "xxxxx") {
			t.Errorf("Redacted: %s", got)
		}
	}
}
