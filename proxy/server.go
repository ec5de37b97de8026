package proxy

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/net/netutil"
)

// Connection limits of the proxy's listener: a local user without the
// token can open connections, and send bytes, but cannot make the daemon
// hold many of them or hold them long, so that the daemon keeps the file
// descriptors and the memory its own socket and callers need.
const (
	// HeaderTimeout is how long a connection may take to send a request's
	// headers; the token is checked as soon as they are read.
	HeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection that sends nothing.
	IdleTimeout = 90 * time.Second
	// MaxHeaderBytes bounds a request's line and headers; larger ones are
	// answered 431 with a JSON body.
	MaxHeaderBytes = 64 << 10
	// maxConnsCap is the most connections served at once however many
	// descriptors the process may open; further ones wait in the kernel's
	// accept queue, costing the daemon no descriptor.
	maxConnsCap = 1024
)

// NewServer returns the HTTP server for a proxy: bounded header read,
// idle time and header size, and errors in the log at debug level.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// MaxConns is the connection limit for a process allowed nofile open
// descriptors: half of them (the other half stays for the daemon's socket,
// state files and upstream connections), at most maxConnsCap, at least 16.
func MaxConns(nofile uint64) int {
	return int(max(16, min(maxConnsCap, nofile/2)))
}

// Listen is ln limited to MaxConns connections at once for this process's
// descriptor limit, with Go's plain-text "431 Request Header Fields Too
// Large" (for a request line or headers over MaxHeaderBytes) rewritten as
// the JSON error every other answer of the proxy is.
func Listen(ln net.Listener) net.Listener {
	n := maxConnsCap
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		n = MaxConns(rl.Cur)
	}
	return limitJSON431(ln, n)
}

// limitJSON431 is ln serving at most n connections at once (Accept waits
// while n are open), each answering Go's plain-text 431 as JSON.
func limitJSON431(ln net.Listener, n int) net.Listener {
	return json431Listener{netutil.LimitListener(ln, n)}
}

type json431Listener struct{ net.Listener }

func (l json431Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return json431Conn{c}, nil
}

// json431Conn rewrites net/http's plain-text 431 as it is written.
type json431Conn struct{ net.Conn }

// plain431 is what net/http writes, in one Write on the bare connection,
// for a request whose line or headers are too large.
var plain431 = []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")

func (c json431Conn) Write(p []byte) (int, error) {
	if bytes.Equal(p, plain431) {
		body := errorBody(http.StatusRequestHeaderFieldsTooLarge, "too_large",
			"quotabar proxy: the request line and headers are over 64 KiB; the URL from `quotabar run` and an SDK's headers are far smaller")
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ")
		b.WriteString(strconv.Itoa(len(body)))
		b.WriteString("\r\n\r\n")
		b.Write(body)
		if _, err := c.Conn.Write(b.Bytes()); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}
