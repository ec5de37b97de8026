package webfallback

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxRelayHeader bounds the request line and headers a relay reads before
// it can look at the secret.
const maxRelayHeader = 16 << 10

// newSecret returns 32 random bytes in hex: the path prefix that a relay
// URL must carry. It is handed out only in the fallback/open answer, which
// only this user can read over the peer-checked socket.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// splitSecret splits "/SECRET/rest" into SECRET and "/rest" (rest may be "").
func splitSecret(path string) (secret, rest string) {
	p := strings.TrimPrefix(path, "/")
	secret, rest, found := strings.Cut(p, "/")
	if found {
		rest = "/" + rest
	}
	return secret, rest
}

// matchSecret reports whether got equals want, in time that does not depend
// on where they differ.
func matchSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// loopbackHost reports whether the Host header names this machine's loopback
// address, so that a web page of a DNS-rebinding site cannot talk to a relay
// even if it somehow learned a URL.
func loopbackHost(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// refuse answers a request without a valid secret: the same short 404 for a
// wrong, missing or expired secret, so that the answer tells nothing.
// The connection is closed after it: a refused client gets no keep-alive to
// hold a descriptor of the daemon with.
func refuse(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	http.Error(w, "not found", http.StatusNotFound)
}

// maxRelayConns bounds the connections a relay holds at once, so that
// another user opening thousands of them cannot take the daemon's file
// descriptors (the socket and the proxy need them); a connection that sends
// no request within the header timeout is dropped.
const maxRelayConns = 256

// relayIdleTimeout drops keep-alive connections that sit unused.
const relayIdleTimeout = time.Minute

// limitListener accepts at most n connections at a time.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// newRelayServer serves h on ln with the limits every relay has.
func newRelayServer(ln net.Listener, h http.Handler, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       relayIdleTimeout,
		MaxHeaderBytes:    maxRelayHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go srv.Serve(newLimitListener(ln, maxRelayConns))
	return srv
}
