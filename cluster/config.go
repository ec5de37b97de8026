package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
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
	// CAFile is a PEM file of the CA certificates that a rediss:// server's
	// certificate must chain to, in place of the system's roots (for a
	// private CA). Empty: the system's roots. The server's name or IP is
	// checked against its certificate either way; the URL's skip_verify is
	// refused.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (PEM) for a
	// rediss:// server that asks for one (redis-server's default,
	// tls-auth-clients yes); both or neither. The key file must be
	// readable by this user only.
	CertFile, KeyFile string
	// Name namespaces every key: daemons with the same name share.
	Name string
	// Refresh is how often a daemon states its demand and gets its share.
	Refresh time.Duration
	// Lease is how long a share holds without a refresh: a daemon that
	// stops refreshing is counted as holding its share that long, plus the
	// longest window of the service.
	Lease time.Duration
	// Offline says what a daemon does while Redis does not answer:
	// OfflineKeep (the default, "") keeps its last share, which is safe
	// while Redis is away for every daemon; OfflineStop keeps it only
	// for a lease after its last answered refresh and then grants nothing
	// for shared services, which is safe even when only this daemon is cut
	// off (the others reuse its share after its lease and a window).
	Offline string
}

// Offline modes.
const (
	OfflineKeep = "keep"
	OfflineStop = "stop"
)

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

// Validate checks the config without connecting, without reading the
// environment and without reading CAFile (PasswordEnv is read and CAFile
// loaded when the daemon starts, in New; app/config checks the file with
// LoadCAFile). Its errors never contain the password.
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
	if c.Offline != "" && c.Offline != OfflineKeep && c.Offline != OfflineStop {
		return fmt.Errorf("cluster offline %q is not %q (keep the last share) or %q (grant nothing once the lease has passed)", c.Offline, OfflineKeep, OfflineStop)
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
	if u.Query().Has("skip_verify") {
		return nil, errors.New("cluster redis URL: skip_verify is not allowed: it would trust any server with the password; set ca_file to the CA that signed the server's certificate")
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
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("cluster cert_file and key_file go together: set both (a client certificate and its key) or neither")
	}
	if c.CertFile != "" {
		if opts.TLSConfig == nil {
			return nil, fmt.Errorf("cluster cert_file is set but the redis URL's scheme is %s; a client certificate is for TLS: use rediss://", u.Scheme)
		}
		if withEnv {
			cert, err := LoadClientCert(c.CertFile, c.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster cert_file/key_file: %w", err)
			}
			opts.TLSConfig.Certificates = []tls.Certificate{cert}
		}
	}
	if c.CAFile != "" {
		if opts.TLSConfig == nil {
			return nil, fmt.Errorf("cluster ca_file is set but the redis URL's scheme is %s; a CA is for TLS: use rediss://", u.Scheme)
		}
		if withEnv {
			pool, err := LoadCAFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("cluster ca_file: %w", err)
			}
			opts.TLSConfig.RootCAs = pool
		}
	}
	return opts, nil
}

// maxCAFile caps a CA file: a bundle of every public root is about 250 kB.
const maxCAFile = 4 << 20

// LoadCAFile reads a PEM file of CA certificates for CAFile. Its errors
// name the file and say what is wrong with it: missing, unreadable, not
// PEM, or a certificate that does not parse.
func LoadCAFile(path string) (*x509.CertPool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist; want a PEM file of the CA certificate that signed the redis server's", path)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file; want a PEM file of CA certificates", path)
	}
	if fi.Size() > maxCAFile {
		return nil, fmt.Errorf("%s is %d bytes, over the %d-byte cap for a CA bundle", path, fi.Size(), maxCAFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *fs.PathError: "open PATH: permission denied"
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			// A key by mistake: say so, and never echo its contents.
			return nil, fmt.Errorf("%s holds a PEM block of type %q; want only CERTIFICATE blocks (the CA's certificate, never a key)", path, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d does not parse: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)", path)
	}
	return pool, nil
}

// LoadClientCert reads a client certificate and its key for CertFile and
// KeyFile. The key file must be a regular file that only its owner may
// read or write (as ssh wants of a key); its contents are never in an
// error.
func LoadClientCert(certFile, keyFile string) (tls.Certificate, error) {
	for _, f := range []string{certFile, keyFile} {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, fmt.Errorf("%s does not exist", f)
		}
		if err != nil {
			return tls.Certificate{}, err
		}
		if !fi.Mode().IsRegular() {
			return tls.Certificate{}, fmt.Errorf("%s is not a regular file", f)
		}
		if fi.Size() > maxCAFile {
			return tls.Certificate{}, fmt.Errorf("%s is %d bytes, over the %d-byte cap", f, fi.Size(), maxCAFile)
		}
		if f == keyFile && fi.Mode().Perm()&0o077 != 0 {
			return tls.Certificate{}, fmt.Errorf("key file %s may be read by other users (mode %04o); chmod 600 it", f, fi.Mode().Perm())
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// crypto/tls's errors name what is wrong, never the key's bytes.
		return tls.Certificate{}, fmt.Errorf("%s with %s: %w", certFile, keyFile, err)
	}
	return cert, nil
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
