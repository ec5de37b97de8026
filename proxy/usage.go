package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"mime"
	"strconv"

	"github.com/quotabar/quotabar/limiter"
)

// Limits on what the usage watcher keeps of a response: a JSON body is
// parsed at its end, so it is kept whole up to maxJSONBody; an event stream
// is parsed line by line, so only the current line is kept. Past these
// sizes the response still passes through, only its usage is not read.
const (
	maxJSONBody = 8 << 20
	maxSSELine  = 1 << 20
)

// usageWatcher reads the real usage of a call from its response body as the
// body passes through to the client, without holding the body back: a
// stream is neither buffered nor delayed.
//
// It understands the JSON bodies and the server-sent event streams of
// OpenAI (chat completions "usage", with stream_options.include_usage in
// streams; responses "usage" and response.completed), Anthropic (messages
// "usage", message_start and message_delta events) and Gemini
// ("usageMetadata"). Not safe for concurrent use.
type usageWatcher struct {
	sse  bool
	buf  []byte // the JSON body so far, or the current SSE line
	skip bool   // JSON: body too large; SSE: current line too long
	in   int64
	out  int64
	seen bool
	win  streamWindows // codex.rate_limits events (windows.go)
}

// windows returns the subscription windows the stream reported; nil for a
// nil watcher.
func (u *usageWatcher) windows() *streamWindows {
	if u == nil {
		return nil
	}
	return &u.win
}

// newUsageWatcher returns a watcher for a response of the given
// Content-Type and Content-Encoding, or nil when the body cannot carry usage
// it understands.
func newUsageWatcher(contentType, contentEncoding string) *usageWatcher {
	if contentEncoding != "" && contentEncoding != "identity" {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case mt == "text/event-stream":
		return &usageWatcher{sse: true}
	case mt == "application/json" || len(mt) > 5 && mt[len(mt)-5:] == "+json":
		return &usageWatcher{}
	}
	return nil
}

// Write feeds the next bytes of the body; it never fails.
func (u *usageWatcher) Write(p []byte) (int, error) {
	n := len(p)
	if !u.sse {
		if !u.skip {
			if len(u.buf)+len(p) > maxJSONBody {
				u.skip, u.buf = true, nil
			} else {
				u.buf = append(u.buf, p...)
			}
		}
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			u.addLine(p)
			break
		}
		u.addLine(p[:i])
		if !u.skip {
			u.event(u.buf)
		}
		u.buf, u.skip = u.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

func (u *usageWatcher) addLine(p []byte) {
	if u.skip {
		return
	}
	if len(u.buf)+len(p) > maxSSELine {
		u.skip, u.buf = true, u.buf[:0]
		return
	}
	u.buf = append(u.buf, p...)
}

// event looks at one line of an event stream; only data lines that mention
// usage are decoded, so that the text deltas of a long stream cost a byte
// search each, not a JSON parse.
func (u *usageWatcher) event(line []byte) {
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	u.win.line(data)
	if !bytes.Contains(data, []byte(`"usage`)) {
		return
	}
	u.object(bytes.TrimSpace(data))
}

// Usage returns what the call cost, once the whole body has been written;
// ok is false when the body said nothing about usage.
func (u *usageWatcher) Usage() (cost limiter.Cost, ok bool) {
	if u == nil {
		return nil, false
	}
	if !u.sse && !u.skip && len(u.buf) > 0 {
		u.object(u.buf)
		u.buf = nil
	}
	if !u.seen {
		return nil, false
	}
	return limiter.Cost{
		limiter.Requests:     1,
		limiter.Tokens:       satAdd(u.in, u.out),
		limiter.InputTokens:  u.in,
		limiter.OutputTokens: u.out,
	}, true
}

// usageFields is every usage shape we read; pointers tell "absent" from 0,
// because an Anthropic message_delta carries only the output count and must
// not erase the input count of message_start.
type usageFields struct {
	// OpenAI chat completions.
	PromptTokens     *count `json:"prompt_tokens"`
	CompletionTokens *count `json:"completion_tokens"`
	// OpenAI responses and Anthropic messages.
	InputTokens  *count `json:"input_tokens"`
	OutputTokens *count `json:"output_tokens"`
	// Anthropic prompt caching: writes count against the input limit,
	// reads do not.
	CacheCreationInputTokens *count `json:"cache_creation_input_tokens"`
	// Gemini usageMetadata.
	PromptTokenCount     *count `json:"promptTokenCount"`
	CandidatesTokenCount *count `json:"candidatesTokenCount"`
	ThoughtsTokenCount   *count `json:"thoughtsTokenCount"`
}

type usageCarrier struct {
	Usage         *usageFields `json:"usage"`
	UsageMetadata *usageFields `json:"usageMetadata"`
	// Anthropic message_start wraps the message; OpenAI response.* events
	// wrap the response.
	Message  *usageCarrier `json:"message"`
	Response *usageCarrier `json:"response"`
}

func (u *usageWatcher) object(b []byte) {
	var c usageCarrier
	if json.Unmarshal(b, &c) != nil {
		return
	}
	u.carrier(&c, 0)
}

func (u *usageWatcher) carrier(c *usageCarrier, depth int) {
	if c == nil || depth > 1 {
		return
	}
	u.fields(c.Usage)
	u.fields(c.UsageMetadata)
	u.carrier(c.Message, depth+1)
	u.carrier(c.Response, depth+1)
}

func (u *usageWatcher) fields(f *usageFields) {
	if f == nil {
		return
	}
	if in, ok := sum(f.PromptTokens, f.InputTokens, f.PromptTokenCount); ok {
		if c := f.CacheCreationInputTokens; c != nil && *c > 0 {
			in = satAdd(in, int64(*c))
		}
		u.in, u.seen = in, true
	}
	if out, ok := sum(f.CompletionTokens, f.OutputTokens, f.CandidatesTokenCount, f.ThoughtsTokenCount); ok {
		u.out, u.seen = out, true
	}
}

// sum adds the counts present; ok is false when none is.
func sum(vs ...*count) (total int64, ok bool) {
	for _, v := range vs {
		if v != nil && *v >= 0 {
			total = satAdd(total, int64(*v))
			ok = true
		}
	}
	return total, ok
}

// maxCount bounds every usage count read from a provider: about a
// trillion tokens, more than any call could use, and far enough from the
// int64 limit that the limiter's sums of them cannot overflow. Provider
// bodies are untrusted input.
const maxCount = 1 << 40

// count is a usage number as a provider wrote it, clamped to 0..maxCount:
// a number too large for int64 (or written with an exponent) is taken as
// maxCount rather than failing the whole usage object; a negative one is
// absent.
type count int64

func (c *count) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		if string(b) == "null" {
			*c = -1
			return nil
		}
		return nil // not a number: ignored, like an absent field
	}
	switch {
	case f < 0 || math.IsNaN(f):
		*c = -1
	case f >= maxCount:
		*c = maxCount
	default:
		*c = count(f)
	}
	return nil
}

// satAdd adds two counts, stopping at maxCount.
func satAdd(a, b int64) int64 {
	if a > maxCount-b {
		return maxCount
	}
	return a + b
}

// watchedBody passes a response body through and feeds what it reads to a
// usage watcher.
type watchedBody struct {
	io.ReadCloser
	w   *usageWatcher
	eof bool // the whole body was read: the usage seen is final
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.Write(p[:n])
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}
