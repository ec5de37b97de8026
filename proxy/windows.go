package proxy

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/quotabar/quotabar/limiter"
)

// This file carries subscription windows (Claude's and Codex's plan
// limits) from what passes through to the limiter: the x-codex-* family
// of headers, Codex's codex.rate_limits stream events, and the body of a
// refusal, which says for Codex and Gemini which window refused and until
// when.

// maxErrorBody is how much of a refusal's body is read for the limiter.
const maxErrorBody = 64 << 10

// windowHeader reports whether a lower-case response header name speaks of
// subscription windows without the words "ratelimit" or "rate-limit"
// (Claude's anthropic-ratelimit-unified-* have them): Codex's
// x-codex-primary-used-percent and x-<family>-{primary,secondary}-* and
// x-<family>-limit-name.
func windowHeader(lk string) bool {
	if !strings.HasPrefix(lk, "x-") {
		return false
	}
	return strings.HasPrefix(lk, "x-codex-") ||
		strings.Contains(lk, "-primary-") || strings.Contains(lk, "-secondary-") ||
		strings.HasSuffix(lk, "-limit-name")
}

// streamWindows keeps the last codex.rate_limits event of a stream, as the
// headers it stands for. Not safe for concurrent use.
type streamWindows struct {
	h map[string]string
}

// line looks at one SSE data payload (or WebSocket message); only those
// that name the event are decoded.
func (s *streamWindows) line(data []byte) {
	if !bytes.Contains(data, []byte(limiter.CodexEventType)) {
		return
	}
	if h, ok := limiter.CodexEventHeaders(bytes.TrimSpace(data)); ok {
		s.h = h
	}
}

// withStreamWindows adds the stream's window headers to the answer's, the
// stream's being the later word.
func withStreamWindows(h map[string]string, s *streamWindows) map[string]string {
	if s == nil || len(s.h) == 0 {
		return h
	}
	if h == nil {
		h = map[string]string{}
	}
	maps.Copy(h, s.h)
	return h
}

// peekErrorBody reads the start of a refusal's body for the limiter and
// puts it back in front of the rest, so the caller still gets it whole.
func peekErrorBody(res *http.Response) []byte {
	if res.StatusCode < 400 || res.Body == nil || res.Body == http.NoBody {
		return nil
	}
	if ce := res.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	res.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), res.Body), res.Body}
	if err != nil {
		return nil
	}
	return b
}

// observeWindows applies a codex.rate_limits message of a WebSocket as it
// passes: a socket carries many calls, and the windows are news now.
func (p *Proxy) observeWindows(agent, service string, msg []byte) {
	h, ok := limiter.CodexEventHeaders(msg)
	if !ok {
		return
	}
	if _, err := p.lim.Observe(limiter.Report{Agent: agent, Service: service, Header: h}); err != nil {
		p.log.Debug("proxy: observe windows", "service", service, "agent", agent, "error", err)
	}
}
