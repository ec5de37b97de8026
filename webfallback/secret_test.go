package webfallback

import (
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
