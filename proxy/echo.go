package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// Echo is the built-in offline provider. It answers every format the
// gateway serves, streamed or not, deterministically: the reply is "echo: "
// followed by the last user text (at most 64 words, or max_tokens), one
// output token per word, and the input tokens are the request body's bytes
// divided by four, rounded up. Latency delays the first byte;
// TokensPerSecond paces the words of a stream.
type Echo struct {
	Latency         time.Duration
	TokensPerSecond int
}

const echoMaxWords = 64

// Speaks reports the formats echo answers itself: all but Gemini's,
// which reach it translated.
func (e *Echo) Speaks(f Format) bool { return f != FormatGemini && f != FormatGeminiCount }

// Do answers the call in-process.
func (e *Echo) Do(call *Call) (*Response, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(call.Body)
	if err != nil {
		return errorResponse(400, call.Format, "invalid JSON body"), nil
	}
	model := string(v.GetStringBytes("model"))
	input := estimateTokens(int64(len(call.Body)))
	switch call.Format {
	case FormatEmbeddings:
		return e.answer(jsonBody(map[string]any{
			"object": "list", "model": model,
			"data":  []any{map[string]any{"object": "embedding", "index": 0, "embedding": echoVector(call.Body)}},
			"usage": map[string]any{"prompt_tokens": input, "total_tokens": input},
		})), nil
	case FormatImages:
		n := max(1, v.GetInt("n"))
		data := make([]any, n)
		for i := range data {
			data[i] = map[string]any{"b64_json": "iVBORw0KGgo="}
		}
		return e.answer(jsonBody(map[string]any{"created": 0, "data": data})), nil
	case FormatCountTokens:
		return e.answer(jsonBody(map[string]any{"input_tokens": input})), nil
	}
	words := strings.Fields("echo: " + lastUserText(v, call.Format))
	limit := echoMaxWords
	for _, k := range []string{"max_tokens", "max_output_tokens", "max_completion_tokens"} {
		if n := v.GetInt(k); n > 0 && n < limit {
			limit = n
		}
	}
	if len(words) > limit {
		words = words[:limit]
	}
	out := int64(len(words))
	if !call.Stream {
		return e.answer(jsonBody(echoMessage(call.Format, model, strings.Join(words, " "), input, out))), nil
	}
	pr, pw := io.Pipe()
	go e.stream(pw, call.Format, model, words, input)
	return &Response{Status: 200, ContentType: "text/event-stream", Body: pr}, nil
}

func (e *Echo) answer(body []byte) *Response {
	if e.Latency > 0 {
		time.Sleep(e.Latency)
	}
	return &Response{Status: 200, ContentType: "application/json", Body: io.NopCloser(bytes.NewReader(body))}
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// errorResponse is an upstream-style error answer in the call's format.
func errorResponse(status int, f Format, msg string) *Response {
	var body []byte
	if f.Anthropic() {
		body = jsonBody(map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error", "message": msg}})
	} else {
		body = jsonBody(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": nil, "param": nil}})
	}
	return &Response{Status: status, ContentType: "application/json", Body: io.NopCloser(bytes.NewReader(body))}
}

func echoVector(b []byte) []float64 {
	h := fnv.New64a()
	h.Write(b)
	s := h.Sum64()
	out := make([]float64, 8)
	for i := range out {
		out[i] = float64(int64(s>>(8*i))&0xff-128) / 128
	}
	return out
}

// lastUserText finds the text of the last user turn in any format.
func lastUserText(v *fastjson.Value, f Format) string {
	var turns []*fastjson.Value
	switch f {
	case FormatResponses:
		in := v.Get("input")
		if in != nil && in.Type() == fastjson.TypeString {
			return string(in.GetStringBytes())
		}
		turns = v.GetArray("input")
	default:
		turns = v.GetArray("messages")
	}
	for i := len(turns) - 1; i >= 0; i-- {
		t := turns[i]
		if string(t.GetStringBytes("role")) != "user" {
			continue
		}
		c := t.Get("content")
		if c == nil {
			continue
		}
		if c.Type() == fastjson.TypeString {
			return string(c.GetStringBytes())
		}
		var parts []string
		for _, part := range c.GetArray() {
			if s := part.GetStringBytes("text"); s != nil {
				parts = append(parts, string(s))
			}
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func echoMessage(f Format, model, text string, input, output int64) map[string]any {
	switch f {
	case FormatResponses:
		return map[string]any{
			"id": "resp_echo", "object": "response", "created_at": 0, "status": "completed", "model": model,
			"output": []any{map[string]any{"type": "message", "id": "msg_echo", "status": "completed", "role": "assistant",
				"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}},
			"usage": map[string]any{"input_tokens": input, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": output, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": input + output},
		}
	case FormatMessages:
		return map[string]any{
			"id": "msg_echo", "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": text}},
			"stop_reason": "end_turn", "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		}
	}
	return map[string]any{
		"id": "chatcmpl-echo", "object": "chat.completion", "created": 0, "model": model,
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text}, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output},
	}
}

// stream writes the answer as the format's SSE events, pacing the words.
func (e *Echo) stream(w *io.PipeWriter, f Format, model string, words []string, input int64) {
	if e.Latency > 0 {
		time.Sleep(e.Latency)
	}
	var pace time.Duration
	if e.TokensPerSecond > 0 {
		pace = time.Second / time.Duration(e.TokensPerSecond)
	}
	send := func(event string, v any) bool {
		var buf bytes.Buffer
		if event != "" {
			fmt.Fprintf(&buf, "event: %s\n", event)
		}
		buf.WriteString("data: ")
		if s, ok := v.(string); ok {
			buf.WriteString(s)
		} else {
			buf.Write(jsonBody(v))
		}
		buf.WriteString("\n\n")
		_, err := w.Write(buf.Bytes())
		return err == nil
	}
	defer w.Close()
	out := int64(len(words))
	switch f {
	case FormatChat:
		chunk := func(delta map[string]any, finish any) map[string]any {
			return map[string]any{"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0, "model": model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
		}
		if !send("", chunk(map[string]any{"role": "assistant", "content": ""}, nil)) {
			return
		}
		for i, word := range words {
			if i > 0 {
				word = " " + word
			}
			if pace > 0 {
				time.Sleep(pace)
			}
			if !send("", chunk(map[string]any{"content": word}, nil)) {
				return
			}
		}
		if !send("", chunk(map[string]any{}, "stop")) {
			return
		}
		if !send("", map[string]any{"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": []any{},
			"usage": map[string]any{"prompt_tokens": input, "completion_tokens": out, "total_tokens": input + out}}) {
			return
		}
		send("", "[DONE]")
	case FormatMessages:
		if !send("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_echo", "type": "message", "role": "assistant",
			"model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}) {
			return
		}
		if !send("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}) {
			return
		}
		for i, word := range words {
			if i > 0 {
				word = " " + word
			}
			if pace > 0 {
				time.Sleep(pace)
			}
			if !send("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": word}}) {
				return
			}
		}
		if !send("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) {
			return
		}
		if !send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": out}}) {
			return
		}
		send("message_stop", map[string]any{"type": "message_stop"})
	case FormatResponses:
		seq := 0
		ev := func(name string, v map[string]any) bool {
			v["type"], v["sequence_number"] = name, seq
			seq++
			return send(name, v)
		}
		base := map[string]any{"id": "resp_echo", "object": "response", "created_at": 0, "status": "in_progress", "model": model, "output": []any{}}
		if !ev("response.created", map[string]any{"response": base}) || !ev("response.in_progress", map[string]any{"response": base}) {
			return
		}
		item := map[string]any{"type": "message", "id": "msg_echo", "status": "in_progress", "role": "assistant", "content": []any{}}
		if !ev("response.output_item.added", map[string]any{"output_index": 0, "item": item}) ||
			!ev("response.content_part.added", map[string]any{"output_index": 0, "item_id": "msg_echo", "content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}}) {
			return
		}
		for i, word := range words {
			if i > 0 {
				word = " " + word
			}
			if pace > 0 {
				time.Sleep(pace)
			}
			if !ev("response.output_text.delta", map[string]any{"output_index": 0, "item_id": "msg_echo", "content_index": 0, "delta": word}) {
				return
			}
		}
		text := strings.Join(words, " ")
		part := map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
		if !ev("response.output_text.done", map[string]any{"output_index": 0, "item_id": "msg_echo", "content_index": 0, "text": text}) ||
			!ev("response.content_part.done", map[string]any{"output_index": 0, "item_id": "msg_echo", "content_index": 0, "part": part}) {
			return
		}
		done := map[string]any{"type": "message", "id": "msg_echo", "status": "completed", "role": "assistant", "content": []any{part}}
		if !ev("response.output_item.done", map[string]any{"output_index": 0, "item": done}) {
			return
		}
		final := echoMessage(FormatResponses, model, text, input, out)
		ev("response.completed", map[string]any{"response": final})
	}
}
