package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
)

func TestParseCluster(t *testing.T) {
	in := `[cluster]
redis = "rediss://:pw@redis.example:6380/2"
password_env = "QB_PW"
name = "acme-eng"
refresh = "500ms"
lease = "2s"
[services.openai]
preset = "openai"
shared = true
[services.local]
limits = ["1 requests/1s"]
`
	cfg, err := Parse("c.toml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := cluster.Config{Redis: "rediss://:pw@redis.example:6380/2", PasswordEnv: "QB_PW", Name: "acme-eng", Refresh: 500 * time.Millisecond, Lease: 2 * time.Second}
	if cfg.Cluster == nil || *cfg.Cluster != want {
		t.Fatalf("cluster %+v, want %+v", cfg.Cluster, want)
	}
	if got := cfg.SharedServices(); len(got) != 1 || got[0] != "openai" {
		t.Errorf("shared %v, want [openai]", got)
	}
	none, err := Parse("c.toml", []byte("[services.a]\nlimits = [\"1 requests/1s\"]\n"))
	if err != nil || none.Cluster != nil || none.SharedServices() != nil {
		t.Errorf("without [cluster]: %+v %v", none, err)
	}
}

func TestParseClusterErrors(t *testing.T) {
	const pw = "hunter2-secret"
	tests := []struct {
		name string
		in   string
		key  string
		msg  string
	}{
		{"shared without cluster", "[services.a]\nshared = true\n", "services.a.shared", "needs a [cluster] table"},
		{"no redis", "[cluster]\nname = \"x\"\n", "cluster", "needs redis ="},
		{"bad name", "[cluster]\nredis = \"redis://h:6379/0\"\nname = \"a:b\"\n", "cluster.name", "letters, digits"},
		{"no name", "[cluster]\nredis = \"redis://h:6379/0\"\n", "cluster.name", "letters, digits"},
		{"bad scheme", "[cluster]\nredis = \"http://:" + pw + "@h/\"\nname = \"x\"\n", "cluster", "not redis, rediss or unix"},
		{"bad url", "[cluster]\nredis = \"redis://:" + pw + "@h:port/0\"\nname = \"x\"\n", "cluster", "redis"},
		{"bad refresh", "[cluster]\nredis = \"redis://h:6379/0\"\nname = \"x\"\nrefresh = \"often\"\n", "cluster.refresh", "positive duration"},
		{"lease below two refreshes", "[cluster]\nredis = \"redis://h:6379/0\"\nname = \"x\"\nrefresh = \"1s\"\nlease = \"1s\"\n", "cluster", "at least twice"},
		{"unknown key", "[cluster]\nredis = \"redis://h:6379/0\"\nname = \"x\"\npassword = \"p\"\n", "cluster.password", "allowed here: redis, password_env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.toml", []byte(tt.in))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("got key %q msg %q, want key %q and %q", ce.Key, ce.Msg, tt.key, tt.msg)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
