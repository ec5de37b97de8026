package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config is the [cluster] table of the daemon's config.
type Config struct {
	// Redis is the server's URL, redis://[user:password@]host:port/db,
	// rediss:// for TLS, or unix:///path/to.sock. The password in it, or in
	// the environment variable PasswordEnv, is never logged or shown.
	Redis string
	// PasswordEnv names an environment variable holding the password; it
	// wins over a password in the URL.
	PasswordEnv string
	// Name namespaces every key: daemons with the same name share.
	Name string
	// Refresh is how often a daemon states its demand and gets its share.
	Refresh time.Duration
	// Lease is how long a share holds without a refresh: a daemon that
	// stops refreshing is counted as holding its share that long, plus the
	// longest window of the service.
	Lease time.Duration
}

// Defaults for the zero fields of Config.
const (
	DefaultRefresh = time.Second
	DefaultLeaseN  = 3 // Lease = DefaultLeaseN × Refresh
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidClusterName checks a cluster name: 1 to 64 letters, digits, '.',
// '_' or '-', starting with a letter or digit, so that no key built from it
// can leave its namespace (no ':', '{', '}', '*', spaces or control
// characters).
func ValidClusterName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// withDefaults fills zero durations.
func (c Config) withDefaults() Config {
	if c.Refresh <= 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLeaseN * c.Refresh
	}
	return c
}

// timeout is how long one call to Redis may take before the daemon counts
// Redis as away: half a lease, and at least a refresh, so that one slow
// answer on a busy machine is not an outage and the daemon still refreshes
// well within its lease.
func (c Config) timeout() time.Duration { return max(c.Refresh, c.Lease/2) }

// Validate checks the config without connecting and without reading the
// environment (PasswordEnv is read when the daemon starts). Its errors
// never contain the password.
func (c Config) Validate() error {
	if err := ValidClusterName(c.Name); err != nil {
		return err
	}
	if c.Refresh < 0 || c.Lease < 0 {
		return errors.New("cluster refresh and lease must not be negative")
	}
	if c.Refresh > 0 && c.Refresh < 10*time.Millisecond {
		return fmt.Errorf("cluster refresh %v is below the 10ms minimum", c.Refresh)
	}
	d := c.withDefaults()
	if d.Lease < 2*d.Refresh {
		return fmt.Errorf("cluster lease %v must be at least twice the refresh %v, so that one slow refresh does not drop a daemon", d.Lease, d.Refresh)
	}
	_, err := c.options(false)
	return err
}

// options builds the client options from the URL and, when withEnv, the
// environment.
func (c Config) options(withEnv bool) (*redis.Options, error) {
	if c.Redis == "" {
		return nil, errors.New(`cluster redis is empty; set redis = "redis://host:6379/0" (or rediss:// for TLS, unix:///path for a socket)`)
	}
	u, err := url.Parse(c.Redis)
	if err != nil {
		// url's error quotes the URL, password and all: say less.
		return nil, errors.New(`cluster redis is not a URL; use "redis://[user:password@]host:port/db", "rediss://..." or "unix:///path"`)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("cluster redis URL scheme %q is not redis, rediss or unix", u.Scheme)
	}
	opts, err := redis.ParseURL(c.Redis)
	if err != nil {
		return nil, fmt.Errorf("cluster redis URL %s: %w", Redacted(c.Redis), redactErr(err, u))
	}
	if c.PasswordEnv != "" && withEnv {
		pw, ok := os.LookupEnv(c.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("cluster password_env names %s, which is not set in the daemon's environment", c.PasswordEnv)
		}
		opts.Password = pw
	}
	return opts, nil
}

// Redacted is the URL with any password replaced by "xxxxx", for logs
// and status.
func Redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// redactErr drops the password from a parse error's text.
func redactErr(err error, u *url.URL) error {
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
