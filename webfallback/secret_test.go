package webfallback

import (
	"net"
	"net/http/httptest"
	"testing"
)

func TestSplitAndMatchSecret(t *testing.T) {
	s := newSecret()
	if len(s) != 64 || newSecret() == s {
		t.Fatalf("newSecret = %q: want 64 hex digits, new each time", s)
	}
	for _, tc := range []struct{ path, secret, rest string }{
		{"/" + s + "/json/version", s, "/json/version"},
		{"/" + s, s, ""},
		{"/", "", ""},
		{"/x/devtools/browser/1", "x", "/devtools/browser/1"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			secret, rest := splitSecret(tc.path)
			if secret != tc.secret || rest != tc.rest {
				t.Fatalf("splitSecret(%q) = %q, %q; want %q, %q", tc.path, secret, rest, tc.secret, tc.rest)
			}
		})
	}
	if !matchSecret(s, s) || matchSecret(s[:63], s) || matchSecret("", s) || matchSecret(s+"0", s) {
		t.Fatal("matchSecret accepts only the same string")
	}
	for host, ok := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "evil.example:1": false, "10.0.0.1:1": false} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		if loopbackHost(r) != ok {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, !ok, ok)
		}
	}
}

// TestLimitListener: a relay holds at most its limit of connections; one
// more is accepted only once one of them closes.
func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(ln, 2).(*limitListener)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	if len(l.sem) != cap(l.sem) {
		t.Fatalf("%d of %d slots taken after two accepts", len(l.sem), cap(l.sem))
	}
	first.Close()
	first.Close() // a second close must not free a second slot
	third := <-accepted
	if len(l.sem) != 2 {
		t.Fatalf("%d slots taken with two open connections, want 2", len(l.sem))
	}
	second.Close()
	third.Close()
}
