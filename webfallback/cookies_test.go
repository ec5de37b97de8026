package webfallback

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestMergeCookies(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	exp := func(d time.Duration) *float64 { f := float64(now.Add(d).Unix()); return &f }
	c := func(name, domain, value string, expiry *float64) wdCookie {
		return wdCookie{Name: name, Domain: domain, Path: "/", Value: value, Expiry: expiry}
	}
	for _, tc := range []struct {
		name     string
		saved    []wdCookie
		restored []wdCookie
		session  []wdCookie
		want     []wdCookie
	}{
		{
			name:    "session value wins",
			saved:   []wdCookie{c("sid", "a.example", "old", exp(time.Hour))},
			session: []wdCookie{c("sid", "a.example", "new", exp(time.Hour))},
			want:    []wdCookie{c("sid", "a.example", "new", exp(time.Hour))},
		},
		{
			name:     "restored and now gone: the site deleted it",
			saved:    []wdCookie{c("sid", "a.example", "old", exp(time.Hour))},
			restored: []wdCookie{c("sid", "a.example", "old", exp(time.Hour))},
			want:     []wdCookie{},
		},
		{
			name:    "another domain the session could not take is kept",
			saved:   []wdCookie{c("auth", "login.example", "x", nil)},
			session: []wdCookie{c("sid", "a.example", "y", nil)},
			want:    []wdCookie{c("sid", "a.example", "y", nil), c("auth", "login.example", "x", nil)},
		},
		{
			name:    "expired cookies are dropped",
			saved:   []wdCookie{c("old", "login.example", "x", exp(-time.Second))},
			session: []wdCookie{c("gone", "a.example", "y", exp(-time.Hour))},
			want:    []wdCookie{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restored := map[cookieKey]bool{}
			for _, r := range tc.restored {
				restored[r.key()] = true
			}
			got := mergeCookies(tc.saved, restored, tc.session, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("merge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCookieFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cookies.json")
	if cs, err := loadCookies(path); err != nil || cs != nil {
		t.Fatalf("missing file = %v, %v; want no cookies and no error", cs, err)
	}
	want := []wdCookie{{Name: "sid", Value: "v", Domain: "a.example", Path: "/", HTTPOnly: true}}
	if err := saveCookies(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cookie file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	got, err := loadCookies(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("load = %+v, %v; want %+v", got, err, want)
	}
	if err := os.WriteFile(path, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCookies(path); err == nil {
		t.Fatal("a broken cookie file loaded without error")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}
