package proxy

import (
	"bytes"
	"encoding/binary"
	"math"
	"sync"

	"github.com/valyala/fastjson"

	"zenmux/ledger"
)

// Usage is what a request consumed, normalised across wire formats (W5):
// Input excludes cache reads and writes, each priced on its own.
type Usage struct {
	Input, Output, CacheRead, CacheWrite, Images int64
}

func clampTokens(n int64) int64 {
	return max(0, min(n, ledger.MaxTokensPerKind))
}

func (u Usage) clamped() Usage {
	return Usage{clampTokens(u.Input), clampTokens(u.Output), clampTokens(u.CacheRead), clampTokens(u.CacheWrite),
		max(0, min(u.Images, ledger.MaxImagesPerRequest))}
}

// count reads a token count at keys: an integer, or one written as a
// float (11.0, 1e3; a fraction is dropped), within [0, maxCount] so that
// sums and differences of counts cannot overflow (the charge clamps them
// further); anything but a number is 0. fastjson's GetInt64 read 11.0 and
// 1e3 as 0: usage given away.
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

// maxCount bounds a count read from an upstream (1<<60 tokens).
const maxCount = 1 << 60

// chatUsage reads an OpenAI Chat Completions usage object. prompt_tokens
// includes cached (and cache-write) tokens; DeepSeek reports hit/miss, and
// without the miss count the uncached input is prompt_tokens less the hits.
func chatUsage(v *fastjson.Value) Usage {
	if v.Exists("prompt_cache_hit_tokens") || v.Exists("prompt_cache_miss_tokens") {
		hit := count(v, "prompt_cache_hit_tokens")
		in := count(v, "prompt_cache_miss_tokens")
		if !v.Exists("prompt_cache_miss_tokens") {
			in = max(0, count(v, "prompt_tokens")-hit)
		}
		return Usage{Input: in, CacheRead: hit, Output: count(v, "completion_tokens")}
	}
	cached := count(v, "prompt_tokens_details", "cached_tokens")
	written := count(v, "prompt_tokens_details", "cache_write_tokens")
	return Usage{Input: max(0, count(v, "prompt_tokens")-cached-written), CacheRead: cached, CacheWrite: written, Output: count(v, "completion_tokens")}
}

// responsesUsage reads an OpenAI Responses usage object.
func responsesUsage(v *fastjson.Value) Usage {
	cached := count(v, "input_tokens_details", "cached_tokens")
	written := count(v, "input_tokens_details", "cache_write_tokens")
	return Usage{Input: max(0, count(v, "input_tokens")-cached-written), CacheRead: cached, CacheWrite: written, Output: count(v, "output_tokens")}
}

// geminiUsage reads Gemini's usageMetadata (W5): promptTokenCount
// includes the cached tokens and toolUsePromptTokenCount is input too;
// thoughts are output, outside candidatesTokenCount.
func geminiUsage(v *fastjson.Value) Usage {
	cached := count(v, "cachedContentTokenCount")
	return Usage{
		Input:     max(0, count(v, "promptTokenCount")-cached) + count(v, "toolUsePromptTokenCount"),
		CacheRead: cached,
		Output:    count(v, "candidatesTokenCount") + count(v, "thoughtsTokenCount"),
	}
}

// geminiChunk meters one Gemini answer or stream chunk: its usage (the
// latest replaces the earlier: every chunk may carry the totals so far),
// the text and call arguments it delivered, and whether it finished.
func (m *meter) geminiChunk(v *fastjson.Value) {
	if v.Exists("error") {
		m.failed = true
		return
	}
	if u := v.Get("usageMetadata"); u != nil && u.Type() == fastjson.TypeObject {
		m.usage, m.haveUsage = geminiUsage(u), true
	}
	for _, c := range v.GetArray("candidates") {
		for _, p := range c.GetArray("content", "parts") {
			m.textBytes += int64(len(p.GetStringBytes("text")))
			if a := p.Get("functionCall", "args"); a != nil {
				m.textBytes += int64(len(a.MarshalTo(nil)))
			}
		}
		if r := c.GetStringBytes("finishReason"); len(r) > 0 {
			m.terminal = true
			if m.status = "ok"; string(r) == "MAX_TOKENS" {
				m.status = "incomplete"
			}
		}
	}
}

// anthropicFields overwrites, field by field, the counts present in an
// Anthropic usage object: message_delta totals are cumulative, so they
// replace and never add (W3.4). A field that is null (the API types
// message_delta's input counts as nullable) is no count and keeps the
// earlier one, as the Anthropic SDK's Accumulate does.
func anthropicFields(u *Usage, v *fastjson.Value) {
	for _, f := range [...]struct {
		key string
		n   *int64
	}{{"input_tokens", &u.Input}, {"cache_creation_input_tokens", &u.CacheWrite}, {"cache_read_input_tokens", &u.CacheRead}, {"output_tokens", &u.Output}} {
		if x := v.Get(f.key); x != nil && x.Type() == fastjson.TypeNumber {
			*f.n = count(x)
		}
	}
}

// meter follows one answer and decides what to charge (Q7).
type meter struct {
	format Format
	p      *fastjson.Parser

	usage     Usage
	haveUsage bool  // the provider reported usage
	textBytes int64 // text delivered, for an estimate when usage is missing
	status    string
	terminal  bool // the stream's final event arrived
	failed    bool // an error event arrived

	// pending holds, length-prefixed, the events that count only text
	// delivered (and, in chat, an error): read when the charge needs them
	// (laterText), which a stream that ends with its usage never does.
	pending []byte
}

// maxPending bounds the events a meter holds unread: past it they are
// read at once, so a long stream's memory stays bounded.
const maxPending = 64 << 10

// laterText keeps a text-only event to be read if the charge needs it.
func (m *meter) laterText(data []byte) {
	if len(m.pending)+4+len(data) > maxPending {
		m.readPending()
		if 4+len(data) > maxPending {
			m.textEvent(data)
			return
		}
	}
	m.pending = binary.LittleEndian.AppendUint32(m.pending, uint32(len(data)))
	m.pending = append(m.pending, data...)
}

// readPending reads the held events, in order.
func (m *meter) readPending() {
	for p := m.pending; len(p) >= 4; {
		n := binary.LittleEndian.Uint32(p)
		m.textEvent(p[4 : 4+n])
		p = p[4+n:]
	}
	m.pending = m.pending[:0]
}

// textEvent meters a text-only event: the text (or tool input) it
// delivered, and in chat whether it was an error.
func (m *meter) textEvent(data []byte) {
	v, err := m.p.ParseBytes(data)
	if err != nil {
		return
	}
	switch m.format {
	case FormatChat:
		if v.Exists("error") {
			m.failed = true
			return
		}
		m.chatText(v)
	case FormatResponses:
		m.textBytes += int64(len(v.GetStringBytes("delta")))
	case FormatMessages:
		d := v.Get("delta")
		m.textBytes += int64(len(d.GetStringBytes("text")) + len(d.GetStringBytes("partial_json")) + len(d.GetStringBytes("thinking")))
	}
}

// chatText counts the text, reasoning and tool arguments of a chat chunk.
func (m *meter) chatText(v *fastjson.Value) {
	for _, ch := range v.GetArray("choices") {
		m.textBytes += int64(len(ch.GetStringBytes("delta", "content")) + len(ch.GetStringBytes("delta", "reasoning_content")))
		for _, tc := range ch.GetArray("delta", "tool_calls") {
			m.textBytes += int64(len(tc.GetStringBytes("function", "arguments")))
		}
	}
}

var (
	parsers fastjson.ParserPool
	meters  = sync.Pool{New: func() any { return new(meter) }}
)

// newMeter returns a pooled meter with a pooled parser; release returns
// both.
func newMeter(f Format) *meter {
	m := meters.Get().(*meter)
	*m = meter{format: f, p: parsers.Get(), pending: m.pending[:0]}
	return m
}

func (m *meter) release() {
	parsers.Put(m.p)
	m.p = nil
	if cap(m.pending) > 2*maxPending {
		m.pending = nil
	}
	meters.Put(m)
}

// nonStream reads a complete (non-streamed) answer's usage. The whole body
// reaches the client, so it counts as delivered even when it does not
// parse: an answer that is not JSON (an SSE stream from an upstream that
// read the stream flag differently, say) is charged an estimate, never
// handed out for free (Q7).
func (m *meter) nonStream(body []byte) {
	m.textBytes = int64(len(body))
	v, err := m.p.ParseBytes(body)
	if err != nil {
		return
	}
	m.terminal = true
	m.status = "ok"
	switch m.format {
	case FormatChat:
		if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
			m.usage, m.haveUsage = chatUsage(u), true
		}
	case FormatResponses:
		if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
			m.usage, m.haveUsage = responsesUsage(u), true
		}
		if st := string(v.GetStringBytes("status")); st == "incomplete" || st == "failed" {
			m.status = st
		}
	case FormatEmbeddings:
		if u := v.Get("usage"); u != nil {
			m.usage, m.haveUsage = Usage{Input: count(u, "prompt_tokens")}, true
		}
	case FormatImages:
		m.usage.Images = int64(len(v.GetArray("data")))
		m.haveUsage = true
		if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
			m.usage.Input, m.usage.Output = count(u, "input_tokens"), count(u, "output_tokens")
		}
	case FormatMessages:
		if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
			anthropicFields(&m.usage, u)
			m.haveUsage = true
		}
	case FormatGemini:
		m.geminiChunk(v)
		m.terminal = true // a whole answer is complete even without a finishReason
	}
}

// Event actions for a streamed answer.
type eventAction uint8

const (
	relay    eventAction = iota // pass to the client now
	drop                        // not for the client (usage chunk it did not ask for)
	terminal                    // the final event: held until the charge commits
)

var (
	doneData      = []byte("[DONE]")
	usageKey      = []byte(`"usage"`)
	textDeltaKey  = []byte(`"delta"`)
	choicesEmpty  = []byte(`"choices":[]`)
	evMessageStop = "message_stop"
)

// onEvent meters one SSE event (name may be empty; data is the joined data
// lines) and says what to do with it.
func (m *meter) onEvent(name string, data []byte, clientWantsUsage bool) eventAction {
	switch m.format {
	case FormatChat:
		if bytes.Equal(data, doneData) {
			m.terminal = true
			if m.status == "" {
				m.status = "ok"
			}
			return terminal
		}
		if !bytes.Contains(data, usageKey) {
			if bytes.Contains(data, textDeltaKey) {
				m.laterText(data)
			}
			return relay
		}
		v, err := m.p.ParseBytes(data)
		if err != nil {
			return relay
		}
		if v.Exists("error") {
			m.failed = true
			return relay
		}
		m.chatText(v)
		if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
			m.usage, m.haveUsage = chatUsage(u), true
			if ch := v.Get("choices"); !clientWantsUsage && (ch == nil || ch.Type() == fastjson.TypeNull || len(ch.GetArray()) == 0) {
				return drop
			}
		}
		return relay
	case FormatResponses:
		switch name {
		case "response.completed", "response.incomplete", "response.failed":
			if v, err := m.p.ParseBytes(data); err == nil {
				if u := v.Get("response", "usage"); u != nil && u.Type() == fastjson.TypeObject {
					m.usage, m.haveUsage = responsesUsage(u), true
				}
			}
			m.terminal = true
			m.status = map[string]string{"response.completed": "ok", "response.incomplete": "incomplete", "response.failed": "failed"}[name]
			return terminal
		case "error":
			m.failed = true
		default:
			if len(name) >= 6 && name[len(name)-6:] == ".delta" {
				m.laterText(data)
			}
		}
		return relay
	case FormatMessages:
		switch name {
		case "message_start":
			if v, err := m.p.ParseBytes(data); err == nil {
				if u := v.Get("message", "usage"); u != nil {
					anthropicFields(&m.usage, u)
					m.haveUsage = true
				}
			}
		case "message_delta":
			if v, err := m.p.ParseBytes(data); err == nil {
				if u := v.Get("usage"); u != nil {
					anthropicFields(&m.usage, u)
					m.haveUsage = true
				}
			}
		case "content_block_delta":
			m.laterText(data)
		case evMessageStop:
			m.terminal = true
			m.status = "ok"
			return terminal
		case "error":
			m.failed = true
		}
		return relay
	case FormatGemini:
		if v, err := m.p.ParseBytes(data); err == nil {
			m.geminiChunk(v)
		}
		if m.terminal {
			return terminal
		}
		return relay
	}
	return relay
}

// estimateTokens is the Q7 estimate: about four bytes a token.
func estimateTokens(n int64) int64 { return (n + 3) / 4 }

// charge decides the charge for the answer as it ended. requestBytes sizes
// the input estimate; outcome names how the answer ended when it did not
// end normally. It returns false when nothing is charged: an upstream that
// failed before any output (Q7).
func (m *meter) charge(requestBytes int64, outcome string) (Usage, string, bool, bool) {
	if !m.terminal || !m.haveUsage { // the text delivered counts
		m.readPending()
	}
	status := m.status
	if !m.terminal {
		status = outcome
	}
	if m.failed && !m.terminal {
		status = "upstream_error"
	}
	// Output means text (or tool input) delivered. Anthropic's
	// message_start reports output_tokens 1 before anything is produced,
	// so a usage count alone does not make an answer.
	produced := m.textBytes > 0
	if !produced && !m.terminal && status != "client_closed" {
		return Usage{}, status, false, false // the upstream failed before any output
	}
	u, estimated := m.usage, false
	if !m.terminal || !m.haveUsage {
		if !m.haveUsage || u.Input+u.CacheRead+u.CacheWrite == 0 {
			u.Input, estimated = estimateTokens(requestBytes), true
		}
		if est := estimateTokens(m.textBytes); est > u.Output {
			u.Output, estimated = est, true
		}
	}
	return u.clamped(), status, estimated, true
}
