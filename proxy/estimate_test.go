package proxy

import (
	"maps"
	"strings"
	"testing"

	"github.com/quotabar/quotabar/limiter"
)

func TestEstimate(t *testing.T) {
	long := strings.Repeat("é", 400) // characters, not bytes: 400 runes → 100 tokens
	tests := []struct {
		name string
		body string
		want limiter.Cost
	}{
		{"empty body", ``, limiter.Cost{limiter.Requests: 1}},
		{"not json", `hello`, limiter.Cost{limiter.Requests: 1}},
		{"broken json", `{"messages":`, limiter.Cost{limiter.Requests: 1}},
		{"openai chat, max_tokens", `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"` + long + `"}]}`,
			cost(100, 50)},
		{"openai chat, max_completion_tokens and n", `{"model":"o3","n":2,"max_completion_tokens":30,"messages":[{"role":"system","content":"abcd"},{"role":"user","content":[{"type":"text","text":"efgh"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAAAAAAAAAAAAAAAAAAAAAA"}}]}]}`,
			cost(2, 60)},
		{"openai responses", `{"model":"gpt-5","instructions":"abcdefgh","input":"ijkl","max_output_tokens":10}`,
			cost(3, 10)},
		{"anthropic messages", `{"model":"claude","max_tokens":1024,"system":[{"type":"text","text":"abcd","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"}},{"type":"text","text":"efgh"}]}],"tools":[{"name":"get","description":"abcd","input_schema":{"type":"object"}}]}`,
			cost(4, 1024)},
		{"gemini", `{"contents":[{"role":"user","parts":[{"text":"abcdefgh"}]}],"generationConfig":{"maxOutputTokens":64}}`,
			cost(2, 64)},
		{"no output cap", `{"model":"m","messages":[{"role":"user","content":"abcdefgh"}]}`,
			cost(2, 0)},
		{"nonsense cap ignored", `{"max_tokens":-5,"prompt":"abcd"}`, cost(1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Estimate([]byte(tt.body))
			want := maps.Clone(tt.want)
			if want[limiter.Tokens] == 0 {
				delete(want, limiter.Tokens)
				delete(want, limiter.InputTokens)
				delete(want, limiter.OutputTokens)
			}
			if !maps.Equal(got, want) {
				t.Errorf("Estimate = %v, want %v", got, want)
			}
		})
	}
}
