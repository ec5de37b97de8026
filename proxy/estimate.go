package proxy

import (
	"bytes"
	"encoding/json"
	"math"
	"unicode/utf8"

	"github.com/quotabar/quotabar/limiter"
)

// Estimate returns the cost to reserve for one upstream call before it is
// made under the default rule, ReserveMaxTokens: one request and, when body
// is a JSON request of the OpenAI (chat completions, responses), Anthropic
// (messages) or Gemini shape, tokens of about a quarter of the prompt's
// characters plus the most output tokens the request allows. The estimate is
// corrected by the usage reported after the call, so it only needs to be the
// right size, not exact.
func Estimate(body []byte) limiter.Cost { return ReserveMaxTokens.Estimate(body) }

// EstimateBody reads a request body: in is about a quarter of the prompt's
// characters, out the most output tokens the request allows (times n for
// OpenAI's n choices); ok is false when the body is not a JSON object.
func EstimateBody(body []byte) (in, out int64, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return 0, 0, false
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, 0, false
	}
	in = (promptChars(req) + 3) / 4
	out = maxOutput(req)
	if n, ok := number(req["n"]); ok && n > 1 {
		out *= n // OpenAI: n choices, each up to the output limit
	}
	return in, out, true
}

// maxOutput is the request's output-token cap under any of the names the
// providers use; 0 when none is given.
func maxOutput(req map[string]any) int64 {
	for _, k := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
		if n, ok := number(req[k]); ok && n > 0 {
			return n
		}
	}
	if gc, ok := req["generationConfig"].(map[string]any); ok { // Gemini
		if n, ok := number(gc["maxOutputTokens"]); ok && n > 0 {
			return n
		}
	}
	return 0
}

// skipKeys hold strings that are not prompt text (identifiers, enums,
// settings) or that the provider does not count as text (base64 images and
// files, which are priced by size in pixels, not characters).
var skipKeys = map[string]bool{
	"model": true, "role": true, "type": true, "id": true,
	"tool_call_id": true, "tool_use_id": true, "call_id": true,
	"media_type": true, "mime_type": true, "mimeType": true,
	"data": true, "file_id": true, "file_data": true, "image_url": true,
	"stop": true, "stop_sequences": true, "user": true, "metadata": true,
	"service_tier": true, "reasoning_effort": true, "cache_control": true,
	"detail": true, "previous_response_id": true, "stream_options": true,
	"tool_choice": true, "safetySettings": true,
}

// promptChars counts the characters of every string in the request that the
// model reads: messages, system prompt, instructions, tool definitions.
func promptChars(v any) int64 {
	switch v := v.(type) {
	case string:
		return int64(utf8.RuneCountInString(v))
	case []any:
		var n int64
		for _, e := range v {
			n += promptChars(e)
		}
		return n
	case map[string]any:
		var n int64
		for k, e := range v {
			if skipKeys[k] {
				continue
			}
			n += promptChars(e)
		}
		return n
	}
	return 0
}

func number(v any) (int64, bool) {
	f, ok := v.(float64)
	if !ok || f < 0 || f > math.MaxInt32 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}
