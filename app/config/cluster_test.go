package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quotabar/quotabar/cluster"
	"github.com/quotabar/quotabar/internal/testenv"
)

func TestParseCluster(t *testing.T) {
	in := `[cluster]
redis = "rediss://:pw@redis.example:6380/2"
password_env = "QB_PW"
name = "acme-eng"
refresh = "500ms"
lease = "2s"
offline = "stop"
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
	want := cluster.Config{Redis: "rediss://:pw@redis.example:6380/2", PasswordEnv: "QB_PW", Name: "acme-eng", Refresh: 500 * time.Millisecond, Lease: 2 * time.Second, Offline: "stop"}
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
		{"bad offline", "[cluster]\nredis = \"redis://h:6379/0\"\nname = \"x\"\noffline = \"wait\"\n", "cluster", `not "keep"`},
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

// ca_file names the CA a rediss:// server's certificate must chain to: a
// relative path is the config file's neighbour, and a file that is missing,
// unreadable or not PEM certificates is an error at its line.
func TestParseClusterCAFile(t *testing.T) {
	const pw = "hunter2-secret"
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, "config test CA")
	pemData, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("ca.pem", string(pemData))
	conf := func(redis, caFile string) string {
		return "[cluster]\nredis = \"" + redis + "\"\nname = \"x\"\nca_file = \"" + caFile + "\"\n"
	}
	tlsURL := "rediss://:" + pw + "@redis.example:6380/0"
	cfgPath := filepath.Join(dir, "config.toml")

	t.Run("good", func(t *testing.T) {
		for _, caFile := range []string{ca.CertFile, "ca.pem"} {
			cfg, err := Parse(cfgPath, []byte(conf(tlsURL, caFile)))
			if err != nil {
				t.Fatalf("%s: %v", caFile, err)
			}
			if want := filepath.Join(dir, "ca.pem"); caFile == "ca.pem" && cfg.Cluster.CAFile != want {
				t.Errorf("relative ca_file became %q, want %q (beside the config file)", cfg.Cluster.CAFile, want)
			}
			if caFile != "ca.pem" && cfg.Cluster.CAFile != caFile {
				t.Errorf("ca_file %q, want %q", cfg.Cluster.CAFile, caFile)
			}
		}
	})

	unreadable := write("unreadable.pem", string(pemData))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	block := func(typ, body string) string {
		return "-----BEGIN " + typ + "-----\n" + body + "\n-----END " + typ + "-----\n"
	}
	tests := []struct {
		name, redis, caFile, msg string
	}{
		{"missing", tlsURL, filepath.Join(dir, "nope.pem"), "does not exist"},
		{"a directory", tlsURL, dir, "not a regular file"},
		{"unreadable", tlsURL, unreadable, "permission denied"},
		{"not PEM", tlsURL, write("text.pem", "just some text\n"), "holds no PEM certificate"},
		{"a key", tlsURL, write("key.pem", block("PRIVATE KEY", "c2VjcmV0LWtleS1ieXRlcw==")), `type "PRIVATE KEY"`},
		{"a bad certificate", tlsURL, write("bad.pem", string(pemData)+block("CERTIFICATE", "bm90IGEgY2VydA==")), "certificate 2 does not parse"},
		{"without TLS", "redis://:" + pw + "@redis.example:6379/0", ca.CertFile, "must start with rediss://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "unreadable" && os.Geteuid() == 0 {
				t.Skip("root reads a file of mode 000")
			}
			_, err := Parse(cfgPath, []byte(conf(tt.redis, tt.caFile)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *Error", err)
			}
			if ce.Key != "cluster.ca_file" || ce.Line != 4 || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("got %v (key %q line %d), want cluster.ca_file at line 4 with %q", err, ce.Key, ce.Line, tt.msg)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "c2VjcmV0") {
				t.Errorf("the error shows a secret: %v", err)
			}
			t.Log(err)
		})
	}
}

// cert_file and key_file are a client certificate for a server that asks
// for one: both or neither, rediss:// only, a key only its owner may read,
// and a key that matches; errors never show the key.
func TestParseClusterClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testenv.NewTestCA(t, "config test CA")
	cert, key := ca.ClientCert("quotabar")
	otherCert, _ := ca.ClientCert("another")
	cp := func(from, name string, mode os.FileMode) string {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cp(cert, "client.pem", 0o644)
	cp(key, "client.key", 0o600)
	openKey := cp(key, "open.key", 0o644)
	badKey := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(badKey, []byte("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsURL := "rediss://redis.example:6380/0"
	conf := func(redis, certFile, keyFile string) string {
		s := "[cluster]\nredis = \"" + redis + "\"\nname = \"x\"\n"
		if certFile != "" {
			s += "cert_file = \"" + certFile + "\"\n"
		}
		if keyFile != "" {
			s += "key_file = \"" + keyFile + "\"\n"
		}
		return s
	}
	cfgPath := filepath.Join(dir, "config.toml")

	cfg, err := Parse(cfgPath, []byte(conf(tlsURL, "client.pem", "client.key")))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster; c.CertFile != filepath.Join(dir, "client.pem") || c.KeyFile != filepath.Join(dir, "client.key") {
		t.Errorf("cert_file %q key_file %q, want both beside the config file", c.CertFile, c.KeyFile)
	}

	tests := []struct {
		name, redis, cert, key, wantKey string
		line                            int
		msg                             string
	}{
		{"cert without key", tlsURL, cert, "", "cluster.cert_file", 4, "needs key_file"},
		{"key without cert", tlsURL, "", key, "cluster.key_file", 4, "needs cert_file"},
		{"without TLS", "redis://redis.example:6379/0", cert, key, "cluster.cert_file", 4, "must start with rediss://"},
		{"missing key", tlsURL, cert, filepath.Join(dir, "nope.key"), "cluster.cert_file", 4, "does not exist"},
		{"key readable by others", tlsURL, cert, openKey, "cluster.cert_file", 4, "chmod 600"},
		{"key of another certificate", tlsURL, otherCert, key, "cluster.cert_file", 4, "does not match"},
		{"not a key", tlsURL, cert, badKey, "cluster.cert_file", 4, "private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(cfgPath, []byte(conf(tt.redis, tt.cert, tt.key)))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *Error", err)
			}
			if ce.Key != tt.wantKey || ce.Line != tt.line || !strings.Contains(ce.Msg, tt.msg) {
				t.Errorf("got %v (key %q line %d), want %s at line %d with %q", err, ce.Key, ce.Line, tt.wantKey, tt.line, tt.msg)
			}
			if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error shows the key: %v", err)
			}
			t.Log(err)
		})
	}
}
