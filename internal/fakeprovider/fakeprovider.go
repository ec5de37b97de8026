// Package fakeprovider is a model provider on 127.0.0.1 for tests that run
// the real clients (the OpenAI and Anthropic SDKs, Claude Code, Codex)
// against quotabar: it speaks Anthropic's /v1/messages (JSON and server-sent
// events), OpenAI's /v1/chat/completions (JSON and events) and /v1/responses
// (JSON, events, and the Responses WebSocket Codex opens first), answers
// every call with the same text and usage, and can enforce a sliding-window
// request quota per API family, answering 429 past it as the providers do.
package fakeprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Provider is the fake provider, an http.Handler. Set its fields before it
// serves.
type Provider struct {
	// Answer is the text of every model answer.
	Answer string
	// InputTokens and OutputTokens are the usage of every model call.
	InputTokens, OutputTokens int64
	// Quota is the most model calls per Window in each family (Anthropic,
	// OpenAI); 0 means no quota.
	Quota  int
	Window time.Duration
	// Headers, when set, gives extra headers for the answer to each POST
	// (path without a trailing slash): subscription windows, say.
	Headers func(path string) map[string]string

	mu       sync.Mutex
	arrivals map[string][]time.Time
	stats    Stats
}

// Stats is what the provider saw.
type Stats struct {
	Requests  int            // every HTTP request, WebSocket upgrades included
	Model     int            // model calls answered (HTTP and WebSocket)
	Refused   int            // model calls answered 429 for the quota
	Upgrades  int            // WebSocket upgrades accepted
	WSCreates int            // response.create messages on WebSockets
	Paths     map[string]int // "METHOD path" → count
	// Authorization is the last Authorization header a POST carried.
	Authorization string
}

// Stats returns a copy of what the provider saw so far.
func (p *Provider) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Paths = make(map[string]int, len(p.stats.Paths))
	for k, v := range p.stats.Paths {
		s.Paths[k] = v
	}
	return s
}

func (p *Provider) answer() string {
	if p.Answer == "" {
		return "quotabar fake answer"
	}
	return p.Answer
}

// admit counts a model call of family against the quota; false means it
// must be answered 429.
func (p *Provider) admit(family string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Model++
	if p.Quota <= 0 {
		return true
	}
	if p.arrivals == nil {
		p.arrivals = map[string][]time.Time{}
	}
	now := time.Now()
	kept := p.arrivals[family][:0]
	for _, a := range p.arrivals[family] {
		if now.Sub(a) < p.Window {
			kept = append(kept, a)
		}
	}
	if len(kept) >= p.Quota {
		p.arrivals[family] = kept
		p.stats.Refused++
		return false
	}
	p.arrivals[family] = append(kept, now)
	return true
}

// ServeHTTP answers one request.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	p.mu.Lock()
	p.stats.Requests++
	if p.stats.Paths == nil {
		p.stats.Paths = map[string]int{}
	}
	p.stats.Paths[r.Method+" "+path]++
	if r.Method == http.MethodPost {
		p.stats.Authorization = r.Header.Get("Authorization")
	}
	p.mu.Unlock()
	if p.Headers != nil && r.Method == http.MethodPost {
		for k, v := range p.Headers(path) {
			w.Header().Set(k, v)
		}
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	var req struct {
		Stream bool   `json:"stream"`
		Model  string `json:"model"`
	}
	json.Unmarshal(body, &req)
	switch {
	case r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/models"):
		writeJSON(w, `{"object":"list","data":[{"id":"fake-model","object":"model","created":0,"owned_by":"fake"}],"models":[]}`)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages/count_tokens"):
		writeJSON(w, `{"input_tokens":10}`)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages"):
		if !p.admit("anthropic") {
			refuse(w, `{"type":"error","error":{"type":"rate_limit_error","message":"fake quota spent"}}`)
			return
		}
		p.messages(w, req.Model, req.Stream)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/chat/completions"):
		if !p.admit("openai") {
			refuse(w, `{"error":{"type":"requests","code":"rate_limit_exceeded","message":"fake quota spent"}}`)
			return
		}
		p.chat(w, req.Model, req.Stream)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/responses") && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		p.responsesSocket(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/responses"):
		if !p.admit("openai") {
			refuse(w, `{"error":{"type":"requests","code":"rate_limit_exceeded","message":"fake quota spent"}}`)
			return
		}
		p.responses(w, req.Stream)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"not_found_error","message":"fake provider: no %s %s"}}`, r.Method, path)
	}
}

func writeJSON(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, s)
}

func refuse(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusTooManyRequests)
	io.WriteString(w, body)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func sse(w http.ResponseWriter, event, data string) {
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func (p *Provider) messages(w http.ResponseWriter, model string, stream bool) {
	if model == "" {
		model = "fake-model"
	}
	usage := map[string]any{"input_tokens": p.InputTokens, "output_tokens": p.OutputTokens}
	if !stream {
		writeJSON(w, js(map[string]any{
			"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": p.answer()}},
			"stop_reason": "end_turn", "stop_sequence": nil, "usage": usage,
		}))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	sse(w, "message_start", js(map[string]any{"type": "message_start", "message": map[string]any{
		"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": p.InputTokens, "output_tokens": 1},
	}}))
	sse(w, "content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	sse(w, "content_block_delta", js(map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": p.answer()}}))
	sse(w, "content_block_stop", `{"type":"content_block_stop","index":0}`)
	sse(w, "message_delta", js(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": p.OutputTokens}}))
	sse(w, "message_stop", `{"type":"message_stop"}`)
}

func (p *Provider) chat(w http.ResponseWriter, model string, stream bool) {
	if model == "" {
		model = "fake-model"
	}
	usage := map[string]any{"prompt_tokens": p.InputTokens, "completion_tokens": p.OutputTokens, "total_tokens": p.InputTokens + p.OutputTokens}
	if !stream {
		writeJSON(w, js(map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": p.answer()}}},
			"usage": usage,
		}))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	chunk := func(delta map[string]any, finish any, u any) string {
		return js(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}, "usage": u})
	}
	sse(w, "", chunk(map[string]any{"role": "assistant", "content": p.answer()}, nil, nil))
	sse(w, "", chunk(map[string]any{}, "stop", nil))
	sse(w, "", js(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": []any{}, "usage": usage}))
	sse(w, "", "[DONE]")
}

// responseEvents are the events of one Responses API call, last the
// response.completed with its usage.
func (p *Provider) responseEvents(n int) []string {
	id := fmt.Sprintf("resp_fake_%d", n)
	msg := fmt.Sprintf("msg_fake_%d", n)
	done := map[string]any{"type": "message", "id": msg, "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": p.answer(), "annotations": []any{}}}}
	resp := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": 0, "status": status, "model": "fake-model", "output": output, "usage": usage}
	}
	usage := map[string]any{"input_tokens": p.InputTokens, "input_tokens_details": map[string]any{"cached_tokens": 0},
		"output_tokens": p.OutputTokens, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
		"total_tokens": p.InputTokens + p.OutputTokens}
	return []string{
		js(map[string]any{"type": "response.created", "sequence_number": 0, "response": resp("in_progress", []any{}, nil)}),
		js(map[string]any{"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
			"item": map[string]any{"type": "message", "id": msg, "role": "assistant", "status": "in_progress", "content": []any{}}}),
		js(map[string]any{"type": "response.output_text.delta", "sequence_number": 2, "item_id": msg, "output_index": 0, "content_index": 0, "delta": p.answer()}),
		js(map[string]any{"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": done}),
		js(map[string]any{"type": "response.completed", "sequence_number": 4, "response": resp("completed", []any{done}, usage)}),
	}
}

func (p *Provider) responses(w http.ResponseWriter, stream bool) {
	evs := p.responseEvents(0)
	if !stream {
		var last struct {
			Response json.RawMessage `json:"response"`
		}
		json.Unmarshal([]byte(evs[len(evs)-1]), &last)
		writeJSON(w, string(last.Response))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, ev := range evs {
		var t struct {
			Type string `json:"type"`
		}
		json.Unmarshal([]byte(ev), &t)
		sse(w, t.Type, ev)
	}
}

// responsesSocket is the Responses WebSocket: each response.create is a
// model call answered with its events, or with a wrapped 429 error event
// past the quota.
func (p *Provider) responsesSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	p.mu.Lock()
	p.stats.Upgrades++
	p.mu.Unlock()
	ctx := context.Background()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			Type string `json:"type"`
		}
		json.Unmarshal(msg, &m)
		if m.Type != "response.create" {
			continue
		}
		p.mu.Lock()
		p.stats.WSCreates++
		n := p.stats.WSCreates
		p.mu.Unlock()
		if !p.admit("openai") {
			c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","status":429,"error":{"type":"rate_limit_error","code":"rate_limit_exceeded","message":"fake quota spent"},"headers":{"retry-after":"1"}}`))
			continue
		}
		for _, ev := range p.responseEvents(n) {
			if c.Write(ctx, websocket.MessageText, []byte(ev)) != nil {
				return
			}
		}
	}
}
