package cluster_test

import (
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// Daemons given the CA join a redis-server that speaks only TLS (rediss://
// with a password) and share as over a socket: shares that add up to at
// most the whole, a 429 on one a cooldown on the other. Daemons that cannot
// verify the server (no ca_file against a private CA, the wrong CA, a
// certificate for another host), or that it refuses, do not join: their shared service grants
// nothing, and status and log say why without the password.
func TestTLS(t *testing.T) {
	ca := testenv.NewTestCA(t, "quotabar test CA")
	other := testenv.NewTestCA(t, "some other CA")
	r := testenv.StartRedisWith(t, testenv.RedisOptions{Password: secret, TLS: ca.ServerTLS(false)})
	url := r.URL(true)
	if !strings.HasPrefix(url, "rediss://") {
		t.Fatalf("the TLS server's URL is %q", cluster.Redacted(url))
	}

	a := startNode(t, 0, nodeOpts{url: url, caFile: ca.CertFile})
	b := startNode(t, 1, nodeOpts{url: url, caFile: ca.CertFile})
	refused := []struct {
		name string
		o    nodeOpts
		want string // in the status's error
	}{
		{"no ca_file: system roots, private CA", nodeOpts{url: url}, "not signed by a trusted CA"},
		{"the wrong CA", nodeOpts{url: url, caFile: other.CertFile}, "not signed by a trusted CA"},
		{"certificate for another host", nodeOpts{url: strings.Replace(url, "127.0.0.1", "localhost", 1), caFile: ca.CertFile}, "not for the host in the redis URL"},
		// Verified, then refused by Redis: the wrong password goes over TLS only.
		{"the wrong password", nodeOpts{url: strings.Replace(url, secret, "wrong-"+secret, 1), caFile: ca.CertFile}, "WRONGPASS"},
	}
	var bad []*node
	for i, tc := range refused {
		bad = append(bad, startNode(t, 2+i, tc.o))
	}

	for _, n := range []*node{a, b} {
		waitFor(t, 3*time.Second, "online over TLS", func() bool { return n.status().State == cluster.Online && n.status().Members == 2 })
	}
	if s := sumShares(a, b); s > 1.0001 || s <= 0 {
		t.Errorf("shares over TLS add up to %v, want (0, 1]", s)
	}
	if _, err := a.lim.Report(limiter.Report{Agent: "a", Service: svcName, Status: 429, Header: map[string]string{"Retry-After": "3"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the 429 on node 0 a cooldown on node 1", func() bool {
		d, _ := b.lim.Demand(svcName)
		return time.Until(d.CooldownUntil) > 2*time.Second
	})

	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			n := bad[i]
			waitFor(t, 3*time.Second, "an error", func() bool { return n.status().Error != "" })
			st := n.status()
			if st.State != cluster.Joining || !strings.Contains(st.Error, tc.want) {
				t.Errorf("status %+v, want joining with %q in the error", st, tc.want)
			}
			if d, _ := n.lim.Demand(svcName); d.Share != 0 {
				t.Errorf("share %v, want 0: a daemon that has not joined grants nothing shared", d.Share)
			}
			if log := n.logs.String(); !strings.Contains(log, "cannot join yet") || !strings.Contains(log, tc.want) {
				t.Errorf("the log does not say why:\n%s", log)
			}
			t.Logf("status: %s; error: %s", st.Text, st.Error)
		})
	}
	// Had any refused daemon registered, the two would count it.
	for _, n := range []*node{a, b} {
		if m := n.status().Members; m != 2 {
			t.Errorf("node %d counts %d members, want 2: a daemon that cannot verify the server joined", n.i, m)
		}
	}
	for _, n := range append([]*node{a, b}, bad...) {
		if seen := n.status().Error + n.status().Text + n.logs.String(); strings.Contains(seen, secret) {
			t.Errorf("node %d shows the password:\n%s", n.i, seen)
		}
	}
}
