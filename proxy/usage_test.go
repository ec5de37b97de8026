package proxy

import (
	"maps"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/limiter"
)

func cost(in, out int64) limiter.Cost {
	return limiter.Cost{limiter.Requests: 1, limiter.Tokens: in + out, limiter.InputTokens: in, limiter.OutputTokens: out}
}

func TestUsageWatcher(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        limiter.Cost // nil: no usage
	}{
		{"openai chat json", "application/json",
			`{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}`,
			cost(12, 30)},
		{"openai responses json", "application/json; charset=utf-8",
			`{"id":"resp_1","output":[],"usage":{"input_tokens":7,"output_tokens":5,"total_tokens":12}}`,
			cost(7, 5)},
		{"anthropic messages json", "application/json",
			`{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":20,"cache_creation_input_tokens":100,"cache_read_input_tokens":5000,"output_tokens":9}}`,
			cost(120, 9)},
		{"gemini json", "application/json",
			`{"candidates":[],"usageMetadata":{"promptTokenCount":11,"candidatesTokenCount":4,"thoughtsTokenCount":2,"totalTokenCount":17}}`,
			cost(11, 6)},
		{"json without usage", "application/json", `{"id":"x","choices":[]}`, nil},
		{"not json", "text/plain", `usage: {"prompt_tokens": 1}`, nil},
		{"openai stream with include_usage", "text/event-stream",
			"data: {\"choices\":[{\"delta\":{\"content\":\"he\"}}],\"usage\":null}\n\n" +
				"data: {\"choices\":[{\"delta\":{\"content\":\"llo\"}}],\"usage\":null}\n\n" +
				"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":2,\"total_tokens\":10}}\n\n" +
				"data: [DONE]\n\n",
			cost(8, 2)},
		{"openai stream without usage", "text/event-stream",
			"data: {\"choices\":[{\"delta\":{\"content\":\"he\"}}]}\n\ndata: [DONE]\n\n", nil},
		{"anthropic stream", "text/event-stream; charset=utf-8",
			"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\r\n\r\n" +
				"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"usage\"}}\r\n\r\n" +
				"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n" +
				"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
			cost(25, 15)},
		{"openai responses stream", "text/event-stream",
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"usage\":{\"input_tokens\":40,\"output_tokens\":3}}}\n\n",
			cost(40, 3)},
		{"gemini stream", "text/event-stream",
			"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1}}\r\n\r\n" +
				"data: {\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":9}}\r\n\r\n",
			cost(5, 9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Feed the body split at every position, and byte by byte: the
			// result must not depend on how the network cut it.
			splits := [][]string{{tt.body}, strings.SplitAfter(tt.body, "")}
			for i := 1; i < len(tt.body); i++ {
				splits = append(splits, []string{tt.body[:i], tt.body[i:]})
			}
			for _, parts := range splits {
				w := newUsageWatcher(tt.contentType, "")
				for _, p := range parts {
					if w != nil {
						w.Write([]byte(p))
					}
				}
				got, ok := w.Usage()
				if ok != (tt.want != nil) || !maps.Equal(got, tt.want) {
					t.Fatalf("split %d parts (first %q): usage = %v, %v; want %v", len(parts), parts[0], got, ok, tt.want)
				}
			}
		})
	}
}

func TestUsageWatcherSkips(t *testing.T) {
	if w := newUsageWatcher("application/json", "gzip"); w != nil {
		t.Error("a compressed body got a watcher; it cannot read usage from gzip bytes")
	}
	// A line longer than the limit is dropped, the next one still read.
	w := newUsageWatcher("text/event-stream", "")
	w.Write([]byte("data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"x\":\"" + strings.Repeat("a", maxSSELine) + "\"}\n\n"))
	if _, ok := w.Usage(); ok {
		t.Error("usage read from an over-long line")
	}
	w.Write([]byte("data: {\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n"))
	if got, _ := w.Usage(); !maps.Equal(got, cost(2, 3)) {
		t.Errorf("usage after an over-long line = %v, want %v", got, cost(2, 3))
	}
}

func FuzzUsageWatcher(f *testing.F) {
	f.Add("text/event-stream", "data: {\"usage\":{\"prompt_tokens\":8}}\n\n")
	f.Add("application/json", `{"usage":{"input_tokens":1,"output_tokens":2}}`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		w := newUsageWatcher(ct, "")
		if w == nil {
			return
		}
		w.Write([]byte(body))
		if c, ok := w.Usage(); ok && (c[limiter.Tokens] != c[limiter.InputTokens]+c[limiter.OutputTokens] || c[limiter.Tokens] < 0) {
			t.Fatalf("inconsistent usage %v", c)
		}
	})
}
