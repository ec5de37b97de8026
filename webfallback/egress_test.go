package webfallback

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEgressProxy drives the browser's proxy on its Unix socket the way
// WebKit does: plain http with an absolute request line, https through
// CONNECT, and requests it must refuse with a message.
func TestEgressProxy(t *testing.T) {
	sock := filepath.Join(shortDir(t), "egress.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := newEgressProxy(ln, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { srv.Close() })

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.Path+" host="+r.Host+" proxy-conn="+r.Header.Get("Proxy-Connection"))
	})
	plain := httptest.NewServer(handler)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(handler)
	t.Cleanup(secure.Close)

	dialProxy := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	proxyURL, _ := url.Parse("http://proxy.invalid:3128")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		DialContext:     dialProxy,
		TLSClientConfig: &tls.Config{RootCAs: secure.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
	}}
	// Proxy-Connection is a header for the proxy: it must not reach the
	// site (the https request is end to end and does not carry it).
	for _, tc := range []struct{ name, url, proxyConn, want string }{
		{"http on 127.0.0.1", plain.URL + "/page", "keep-alive", "GET /page host=" + strings.TrimPrefix(plain.URL, "http://") + " proxy-conn="},
		{"https through CONNECT", secure.URL + "/tls", "", "GET /tls host=" + strings.TrimPrefix(secure.URL, "https://") + " proxy-conn="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if tc.proxyConn != "" {
				req.Header.Set("Proxy-Connection", tc.proxyConn)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("GET %s through the proxy: %v", tc.url, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != tc.want {
				t.Fatalf("GET %s = %s %q, want 200 %q", tc.url, resp.Status, b, tc.want)
			}
		})
	}

	// Raw requests that are not proxy requests get a clear refusal.
	closed := "127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct{ name, request, status, says string }{
		{"origin-form request", "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n", "400", "absolute http://"},
		{"CONNECT without a port", "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", "400", "host:port"},
		{"CONNECT to a closed port", "CONNECT " + closed + " HTTP/1.1\r\nHost: " + closed + "\r\n\r\n", "502", "cannot reach " + closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(resp.Status, tc.status) || !strings.Contains(string(b), tc.says) {
				t.Fatalf("answer %s %q, want %s saying %q", resp.Status, b, tc.status, tc.says)
			}
		})
	}
}
