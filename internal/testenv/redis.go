package testenv

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server started by a test on a Unix socket in the test's
// temp dir, without persistence (a restart loses the data, as in the fault
// tests), and killed at cleanup. With TLS it also listens on a TLS port of
// 127.0.0.1 (and on no plain TCP port); the Unix socket stays plain, as
// redis-server has it, and serves the readiness check.
type Redis struct {
	t        testing.TB
	bin      string
	dir      string
	Socket   string // path of the Unix socket
	Password string // requirepass, "" for none
	// TLSPort is the TLS port on 127.0.0.1, 0 without TLS.
	TLSPort int
	// PlainPort is a plain TCP port on 127.0.0.1, 0 without PlainTCP.
	PlainPort int
	tls       *RedisTLS
	cmd       *exec.Cmd
}

// RedisOptions are StartRedisWith's settings; the zero value is
// StartRedis(t, "").
type RedisOptions struct {
	Password string // requirepass, "" for none
	// TLS, when set, makes the server listen with TLS on a free port of
	// 127.0.0.1 with this certificate; URL then gives a rediss:// URL.
	TLS *RedisTLS
	// PlainTCP makes the server listen on a free plain TCP port of
	// 127.0.0.1 too (PlainPort), as a server a rediss:// URL reaches by
	// mistake.
	PlainTCP bool
}

// RedisTLS is the server's certificate and key, as PEM files.
type RedisTLS struct {
	CertFile, KeyFile string
	// CAFile is the CA the server checks client certificates against
	// (redis-server wants one even when it asks for none).
	CAFile string
	// AuthClients makes the server ask every client for a certificate
	// signed by CAFile (tls-auth-clients yes, redis-server's default);
	// without it clients need none.
	AuthClients bool
}

// StartRedis starts a redis-server, with requirepass when password is not
// empty. Without redis-server the test skips, or fails when tools are
// required.
func StartRedis(t testing.TB, password string) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Password: password})
}

// StartRedisWith starts a redis-server with o's settings, as StartRedis.
func StartRedisWith(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	bin := LookPath(t, "redis-server")
	dir, err := os.MkdirTemp("", "qbredis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &Redis{t: t, bin: bin, dir: dir, Socket: filepath.Join(dir, "redis.sock"), Password: o.Password, tls: o.TLS}
	if o.TLS != nil {
		r.TLSPort = freePort(t)
	}
	if o.PlainTCP {
		r.PlainPort = freePort(t)
	}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// freePort is a TCP port of 127.0.0.1 that was free a moment ago (the
// kernel gave it and it was closed again; another process could take it
// before redis-server does, which would fail the start loudly).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the redis URL of the server, with the password in it when withPW:
// rediss://127.0.0.1:port/0 with TLS, else unix:// with the socket's path.
func (r *Redis) URL(withPW bool) string {
	if r.tls != nil {
		u := "rediss://127.0.0.1:" + strconv.Itoa(r.TLSPort) + "/0"
		if withPW && r.Password != "" {
			u = "rediss://:" + r.Password + "@127.0.0.1:" + strconv.Itoa(r.TLSPort) + "/0"
		}
		return u
	}
	if withPW && r.Password != "" {
		return "unix://:" + r.Password + "@" + r.Socket
	}
	return "unix://" + r.Socket
}

// Start starts the server (again, after Kill: with no data) and waits until
// it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	os.Remove(r.Socket)
	args := []string{"--port", "0", "--unixsocket", r.Socket, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--loglevel", "warning", "--logfile", filepath.Join(r.dir, "redis.log")}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password)
	}
	if r.tls != nil || r.PlainPort != 0 {
		// redis-server's default binds every interface.
		args = append(args, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.PlainPort))
	}
	if r.tls != nil {
		auth := "no"
		if r.tls.AuthClients {
			auth = "yes"
		}
		args = append(args, "--tls-port", strconv.Itoa(r.TLSPort),
			"--tls-cert-file", r.tls.CertFile, "--tls-key-file", r.tls.KeyFile,
			"--tls-ca-cert-file", r.tls.CAFile, "--tls-auth-clients", auth)
	}
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := r.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server did not answer PING within 10s: %v\nits log:\n%s", err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *Redis) ping() error {
	c, err := net.DialTimeout("unix", r.Socket, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if r.Password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", r.Password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+PONG") {
			return nil
		}
		if strings.HasPrefix(line, "-") {
			return fmt.Errorf("redis: %s", strings.TrimSpace(line))
		}
	}
}

// Stop sends SIGSTOP: the server keeps its sockets but answers nothing.
func (r *Redis) Stop() { r.signal(syscall.SIGSTOP) }

// Continue sends SIGCONT after Stop.
func (r *Redis) Continue() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(s syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Fatal("redis-server is not running")
	}
	if err := r.cmd.Process.Signal(s); err != nil {
		r.t.Fatalf("signal %v to redis-server: %v", s, err)
	}
}

// Kill kills the server with SIGKILL (its data is lost) and waits for it.
func (r *Redis) Kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// TestCA is a throwaway certificate authority made by a test, in PEM files
// of a temp dir.
type TestCA struct {
	t    testing.TB
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// CertFile is the CA certificate, the file a client trusts.
	CertFile string
}

// NewTestCA makes a CA valid for an hour, named name, with its certificate
// in CertFile.
func NewTestCA(t testing.TB, name string) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &TestCA{t: t, dir: t.TempDir(), cert: cert, key: key}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// ServerTLS issues a server certificate for 127.0.0.1 (and the name
// "localhost" only when withLocalhost) and returns the files for
// StartRedisWith.
func (ca *TestCA) ServerTLS(withLocalhost bool) *RedisTLS {
	ca.t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if withLocalhost {
		tmpl.DNSNames = []string{"localhost"}
	}
	cert, key := ca.issue(tmpl, "server")
	return &RedisTLS{CertFile: cert, KeyFile: key, CAFile: ca.CertFile}
}

// ClientCert issues a client certificate named name and returns its
// certificate and key files (the key of mode 0600).
func (ca *TestCA) ClientCert(name string) (certFile, keyFile string) {
	ca.t.Helper()
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, "client")
}

// issue signs tmpl (valid for an hour) with a new P-256 key and writes the
// certificate and key to a new directory.
func (ca *TestCA) issue(tmpl *x509.Certificate, kind string) (certFile, keyFile string) {
	t := ca.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial(t)
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(ca.dir, kind)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, kind+".pem"), filepath.Join(dir, kind+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
