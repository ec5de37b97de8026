package cluster_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
	"github.com/quotabar/quotabar/limiter"
)

// Daemons given the CA and a client certificate join a redis-server that
// speaks only TLS and asks for client certificates (rediss:// with a
// password) and share as over a socket: shares that add up to at
// most the whole, a 429 on one a cooldown on the other. Daemons that cannot
// verify the server (no ca_file against a private CA, the wrong CA, a
// certificate for another host, a plain port), or that the server refuses (no client
// certificate, one of another CA, the wrong password), do not join: their shared service grants
// nothing, and status and log say why without the password.
func TestTLS(t *testing.T) {
	ca := testenv.NewTestCA(t, "quotabar test CA")
	other := testenv.NewTestCA(t, "some other CA")
	srv := ca.ServerTLS(false)
	srv.AuthClients = true // redis-server's default: a client certificate signed by the CA
	r := testenv.StartRedisWith(t, testenv.RedisOptions{Password: secret, TLS: srv, PlainTCP: true})
	cert, key := ca.ClientCert("quotabar")
	otherCert, otherKey := other.ClientCert("quotabar")
	url := r.URL(true)
	if !strings.HasPrefix(url, "rediss://") {
		t.Fatalf("the TLS server's URL is %q", cluster.Redacted(url))
	}

	good := nodeOpts{url: url, caFile: ca.CertFile, certFile: cert, keyFile: key}
	a := startNode(t, 0, good)
	b := startNode(t, 1, good)
	with := func(f func(*nodeOpts)) nodeOpts { o := good; f(&o); return o }
	refused := []struct {
		name string
		o    nodeOpts
		want string // in the status's error
	}{
		{"no ca_file: system roots, private CA", with(func(o *nodeOpts) { o.caFile = "" }), "not signed by a trusted CA"},
		{"the wrong CA", with(func(o *nodeOpts) { o.caFile = other.CertFile }), "not signed by a trusted CA"},
		{"certificate for another host", with(func(o *nodeOpts) { o.url = strings.Replace(url, "127.0.0.1", "localhost", 1) }), "not for the host in the redis URL"},
		{"no client certificate", with(func(o *nodeOpts) { o.certFile, o.keyFile = "", "" }), "wants a client certificate"},
		{"a client certificate of another CA", with(func(o *nodeOpts) { o.certFile, o.keyFile = otherCert, otherKey }), "wants a client certificate"},
		{"a plain port", with(func(o *nodeOpts) {
			o.url = strings.Replace(url, ":"+strconv.Itoa(r.TLSPort)+"/", ":"+strconv.Itoa(r.PlainPort)+"/", 1)
		}), "is the port a TLS port?"},
		// Verified, then refused by Redis: the wrong password goes over TLS only.
		{"the wrong password", with(func(o *nodeOpts) { o.url = strings.Replace(url, secret, "wrong-"+secret, 1) }), "WRONGPASS"},
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
			// Each refresh dials anew. Under TLS 1.3 the server rejects a
			// client certificate after the client's handshake is done, so
			// a try may see the connection reset before the server's alert:
			// wait for a try that reads the alert.
			waitFor(t, 3*time.Second, "the error to say "+tc.want, func() bool { return strings.Contains(n.status().Error, tc.want) })
			if st := n.status(); st.State != cluster.Joining {
				t.Errorf("status %+v, want joining", st)
			}
			st := n.status()
			if d, _ := n.lim.Demand(svcName); d.Share != 0 {
				t.Errorf("share %v, want 0: a daemon that has not joined grants nothing shared", d.Share)
			}
			// The status is set before the line is logged: wait for it.
			waitFor(t, 3*time.Second, "the log to say why ("+tc.want+")", func() bool {
				log := n.logs.String()
				return strings.Contains(log, "cannot join yet") && strings.Contains(log, tc.want)
			})
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
