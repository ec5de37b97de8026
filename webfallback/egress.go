package webfallback

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"
)

// egressProxy is the HTTP proxy through which a browser in a private
// network namespace reaches the network: CONNECT tunnels (https, wss) and
// plain proxied requests (http), dialled from the daemon's namespace. It
// serves a Unix socket in a 0700 directory, so only this user reaches it,
// and it carries 127.0.0.1 to the host's loopback, where a local sign-in
// page or a test site lives. It logs no URL: one can hold a token.
type egressProxy struct {
	srv    *http.Server
	dialer net.Dialer
	proxy  *httputil.ReverseProxy
}

func newEgressProxy(ln net.Listener, log *slog.Logger) *http.Server {
	e := &egressProxy{dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
	e.proxy = &httputil.ReverseProxy{
		// The request line is absolute (http://host/path): forward as is.
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host },
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           e.dialer.DialContext,
			MaxIdleConns:          64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	e.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go e.srv.Serve(ln)
	return e.srv
}

func (e *egressProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		e.tunnel(w, r)
		return
	}
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		http.Error(w, "this proxy takes CONNECT host:port or an absolute http:// request line", http.StatusBadRequest)
		return
	}
	e.proxy.ServeHTTP(w, r)
}

// tunnel answers CONNECT host:port with a raw connection to it.
func (e *egressProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	if _, _, err := net.SplitHostPort(r.Host); err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	up, err := e.dialer.DialContext(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, "cannot reach "+r.Host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	defer c.Close()
	defer up.Close()
	c.SetDeadline(time.Time{}) // the server's header timeout
	if _, err := rw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	if err := rw.Flush(); err != nil {
		return
	}
	// Bytes the client sent after the CONNECT line are already buffered.
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		if _, err := up.Write(b); err != nil {
			return
		}
	}
	splice(c, up)
}

// splice copies a to b and b to a until both directions ended, passing on
// each half-close.
func splice(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		io.Copy(b, a)
		closeWrite(b)
		close(done)
	}()
	io.Copy(a, b)
	closeWrite(a)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
