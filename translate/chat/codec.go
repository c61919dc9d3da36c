// Package chat is the OpenAI Chat Completions wire format's translate.Codec:
// a client's /v1/chat/completions request, answer, stream and errors to and
// from the neutral types, and the same for an OpenAI-compatible upstream
// (OpenAI itself, DeepSeek, Qwen, Kimi, GLM, xAI, OpenRouter). See DESIGN.md.
package chat

import (
	"math"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// Name is the format's name: the Origin of the thinking parts it makes.
const Name = "chat"

// formatName names the format in errors about a neutral field it cannot
// carry to an upstream.
const formatName = "OpenAI Chat Completions"

// Codec is the Chat Completions codec.
var Codec translate.Codec = codec{}

type codec struct{}

var parsers fastjson.ParserPool

// b2s views b as a string without copying: the string lives as long as the
// parser buffer b points into, which the Event contract allows for Data
// and Block strings.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// maxCount bounds a token count read from an upstream (1<<60), so sums and
// differences of counts cannot overflow.
const maxCount = 1 << 60

// count reads a token count at keys as the gateway's meter does (W5): an
// integer, or one written as a float (11.0, 1e3; a fraction is dropped),
// within [0, maxCount]; anything but a number is 0.
func count(v *fastjson.Value, keys ...string) int64 {
	x := v.Get(keys...)
	if x == nil || x.Type() != fastjson.TypeNumber {
		return 0
	}
	if n, err := x.Int64(); err == nil {
		return min(max(n, 0), maxCount)
	}
	f, _ := x.Float64()
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	return int64(min(f, maxCount))
}

// usageOf reads a Chat Completions usage object (W5): prompt_tokens
// includes cache reads and writes; DeepSeek reports hits and misses
// instead, and without the miss count the uncached input is prompt_tokens
// less the hits. Output includes reasoning.
func usageOf(v *fastjson.Value) translate.Usage {
	u := translate.Usage{Output: count(v, "completion_tokens"), Reasoning: count(v, "completion_tokens_details", "reasoning_tokens")}
	if v.Exists("prompt_cache_hit_tokens") || v.Exists("prompt_cache_miss_tokens") {
		u.CacheRead = count(v, "prompt_cache_hit_tokens")
		if v.Exists("prompt_cache_miss_tokens") {
			u.Input = count(v, "prompt_cache_miss_tokens")
		} else {
			u.Input = max(0, count(v, "prompt_tokens")-u.CacheRead)
		}
		return u
	}
	u.CacheRead = count(v, "prompt_tokens_details", "cached_tokens")
	u.CacheWrite = count(v, "prompt_tokens_details", "cache_write_tokens")
	u.Input = max(0, count(v, "prompt_tokens")-u.CacheRead-u.CacheWrite)
	return u
}

// appendUsage writes a usage object: prompt_tokens counts cache reads and
// writes again, as the API does.
func appendUsage(b []byte, u *translate.Usage) []byte {
	prompt := u.Input + u.CacheRead + u.CacheWrite
	b = append(b, `{"prompt_tokens":`...)
	b = translate.AppendInt(b, prompt)
	b = append(b, `,"completion_tokens":`...)
	b = translate.AppendInt(b, u.Output)
	b = append(b, `,"total_tokens":`...)
	b = translate.AppendInt(b, prompt+u.Output)
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
	b = translate.AppendInt(b, u.CacheRead)
	if u.CacheWrite > 0 {
		b = append(b, `,"cache_write_tokens":`...)
		b = translate.AppendInt(b, u.CacheWrite)
	}
	b = append(b, `},"completion_tokens_details":{"reasoning_tokens":`...)
	b = translate.AppendInt(b, u.Reasoning)
	return append(b, "}}"...)
}

// stopOf maps a finish_reason. "stop" covers both a natural end and a
// matched stop sequence: the API does not say which.
func stopOf(reason string) translate.StopReason {
	switch reason {
	case "":
		return translate.StopUnset
	case "length":
		return translate.StopMaxTokens
	case "tool_calls", "function_call":
		return translate.StopToolUse
	case "content_filter":
		return translate.StopRefusal
	}
	return translate.StopEnd
}

// finishReason is the finish_reason for a stop. An answer that called
// tools finishes with tool_calls even when its upstream said a plain stop
// (Gemini says STOP after a functionCall): clients run the tools only then.
func finishReason(s translate.StopReason, calledTools bool) string {
	switch s {
	case translate.StopMaxTokens:
		return "length"
	case translate.StopToolUse:
		return "tool_calls"
	case translate.StopRefusal:
		return "content_filter"
	}
	if calledTools {
		return "tool_calls"
	}
	return "stop"
}

// joinText joins the text of parts of type t with sep.
func joinText(parts []translate.Part, t translate.PartType, sep string) string {
	n, first := 0, -1
	for i := range parts {
		if parts[i].Type == t {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return parts[first].Text
	}
	var sb strings.Builder
	k := 0
	for i := range parts {
		if parts[i].Type != t {
			continue
		}
		if k > 0 {
			sb.WriteString(sep)
		}
		sb.WriteString(parts[i].Text)
		k++
	}
	return sb.String()
}
