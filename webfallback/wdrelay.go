package webfallback

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxWebDriverBody bounds one request or answer through the relay (a
// screenshot is a few MiB of base64).
const maxWebDriverBody = 64 << 20

// wdRelay puts the one WebDriver session of a driver behind a secret path
// prefix on 127.0.0.1: http://127.0.0.1:PORT/SECRET/session/ID/… reaches the
// driver's /session/INTERNAL/…. The session id that agents see is not the
// driver's: the driver's own id never leaves the Manager, so its port,
// where it is reachable at all (safaridriver, or WebKitWebDriver when Linux
// refused a private network namespace), drives nothing for someone without
// it (and the driver refuses a second session).
type wdRelay struct {
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	port     string
	secret   string
	publicID string
	internal string
	service  string
	proxy    *httputil.ReverseProxy

	mu       sync.Mutex
	last     time.Time
	inflight int
}

// newWDRelay serves the session internalID of the driver at driverURL,
// reached through transport.
func newWDRelay(log *slog.Logger, service, driverURL, internalID string, transport http.RoundTripper) (*wdRelay, error) {
	target, err := url.Parse(driverURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &wdRelay{
		log: log, ln: ln, port: portOfAddr(ln.Addr()), secret: newSecret(),
		publicID: newUUID(), internal: internalID, service: service, last: time.Now(),
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Origin")
		},
		Transport:      transport,
		ModifyResponse: r.rewriteAnswer,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			// The error names the driver's URL, which holds its own id.
			msg := strings.ReplaceAll(err.Error(), r.internal, r.publicID)
			wdAnswerError(w, http.StatusBadGateway, "unknown error", "the WebDriver server did not answer: "+msg)
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	r.srv = newRelayServer(ln, r, log)
	return r, nil
}

// url is the webdriver_url of the session.
func (r *wdRelay) url() string { return "http://127.0.0.1:" + r.port + "/" + r.secret }

func (r *wdRelay) close() { r.srv.Close() }

// idleFor reports whether no request reached the session for d.
func (r *wdRelay) idleFor(now time.Time, d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight == 0 && now.Sub(r.last) >= d
}

// touch restarts the idle clock: Open calls it when it hands the session
// out, so that the time it took to start does not count.
func (r *wdRelay) touch() {
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
}

func (r *wdRelay) begin() {
	r.mu.Lock()
	r.inflight++
	r.last = time.Now()
	r.mu.Unlock()
}

func (r *wdRelay) end() {
	r.mu.Lock()
	r.inflight--
	r.last = time.Now()
	r.mu.Unlock()
}

func (r *wdRelay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The secret comes first: nothing else of the request is looked at
	// before it matched.
	secret, rest := splitSecret(req.URL.Path)
	if !matchSecret(secret, r.secret) || !loopbackHost(req) {
		refuse(w)
		return
	}
	r.begin()
	defer r.end()
	prefix := "/session/" + r.publicID
	switch {
	case rest == "/status":
		req.URL.Path, req.URL.RawPath = "/status", ""
	case req.Method == http.MethodPost && (rest == "/session" || rest == "/session/"):
		wdAnswerError(w, http.StatusInternalServerError, "session not created",
			fmt.Sprintf("quotabar opened the one WebDriver session of %s already: use session %s from the fallback/open answer", r.service, r.publicID))
		return
	case rest == prefix || strings.HasPrefix(rest, prefix+"/"):
		tail := strings.TrimPrefix(rest, prefix)
		if req.Method == http.MethodDelete && (tail == "" || tail == "/") {
			wdAnswerError(w, http.StatusBadRequest, "unsupported operation",
				fmt.Sprintf("close the session with POST /v1/services/%s/fallback/close {\"session_id\": %q} on the quotabar socket, so that its cookies are kept", r.service, r.publicID))
			return
		}
		req.URL.Path, req.URL.RawPath = "/session/"+r.internal+tail, ""
	default:
		wdAnswerError(w, http.StatusNotFound, "invalid session id",
			fmt.Sprintf("this relay serves /status and /session/%s/… only", r.publicID))
		return
	}
	req.Body = http.MaxBytesReader(w, req.Body, maxWebDriverBody)
	r.proxy.ServeHTTP(w, req)
}

// rewriteAnswer puts the public session id where the driver wrote its own.
func (r *wdRelay) rewriteAnswer(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWebDriverBody+1))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if len(body) > maxWebDriverBody {
		return fmt.Errorf("the WebDriver answer is larger than %d bytes", maxWebDriverBody)
	}
	body = bytes.ReplaceAll(body, []byte(r.internal), []byte(r.publicID))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// wdAnswerError writes a W3C WebDriver error answer.
func wdAnswerError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"value": map[string]string{"error": code, "message": msg, "stacktrace": ""}})
}

// newUUID returns a random version 4 UUID, the form WebDriver clients
// expect of a session id.
func newUUID() string {
	s := newSecret()[:32]
	b := []byte(s)
	b[12] = '4'
	b[16] = "89ab"[int(b[16])%4]
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}
