package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedisWith TLS serves only TLS on 127.0.0.1, with a certificate that
// verifies against the test CA for 127.0.0.1 and against nothing else, and
// comes back on the same port after Kill and Start.
func TestRedisTLS(t *testing.T) {
	ca := NewTestCA(t, "testenv CA")
	other := NewTestCA(t, "other CA")
	r := StartRedisWith(t, RedisOptions{Password: "pw", TLS: ca.ServerTLS(false)})
	if want := "rediss://:pw@127.0.0.1:" + strconv.Itoa(r.TLSPort) + "/0"; r.URL(true) != want {
		t.Errorf("URL %q, want %q", r.URL(true), want)
	}
	addr := "127.0.0.1:" + strconv.Itoa(r.TLSPort)
	pool := func(c *TestCA) *x509.CertPool {
		p := x509.NewCertPool()
		data, err := os.ReadFile(c.CertFile)
		if err != nil || !p.AppendCertsFromPEM(data) {
			t.Fatalf("reading %s: %v", c.CertFile, err)
		}
		return p
	}
	ping := func(roots *x509.CertPool, name string) error {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte("AUTH pw\r\nPING\r\n")); err != nil {
			return err
		}
		br := bufio.NewReader(c)
		for range 2 {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		return errors.New("no PONG")
	}
	if err := ping(pool(ca), "127.0.0.1"); err != nil {
		t.Fatalf("PING over TLS with the CA: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if err := ping(pool(other), "127.0.0.1"); !errors.As(err, &unknown) {
		t.Errorf("with another CA: %v, want an unknown authority", err)
	}
	var host x509.HostnameError
	if err := ping(pool(ca), "localhost"); !errors.As(err, &host) {
		t.Errorf("as localhost: %v, want a host name error (the certificate is for 127.0.0.1 only)", err)
	}
	r.Kill()
	r.Start()
	if err := ping(pool(ca), "127.0.0.1"); err != nil {
		t.Errorf("PING over TLS after a restart: %v", err)
	}
	if plain := StartRedis(t, ""); plain.TLSPort != 0 || !strings.HasPrefix(plain.URL(false), "unix://") {
		t.Errorf("StartRedis without TLS: port %d, URL %q", plain.TLSPort, plain.URL(false))
	}
}
