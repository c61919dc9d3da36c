package anthropic

import (
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// stopReason reads the API's stop_reason. pause_turn (a long server-tool
// turn paused) ends the answer as far as a client of another format can
// tell; model_context_window_exceeded is a length stop.
func stopReason(b []byte) translate.StopReason {
	switch string(b) {
	case "end_turn", "pause_turn":
		return translate.StopEnd
	case "max_tokens", "model_context_window_exceeded":
		return translate.StopMaxTokens
	case "stop_sequence":
		return translate.StopSequence
	case "tool_use":
		return translate.StopToolUse
	case "refusal":
		return translate.StopRefusal
	}
	return translate.StopUnset
}

// stopWord is the API's word for a stop reason; an unknown one (an answer
// that never said) is the natural end, or tool_use when the answer called a
// tool.
func stopWord(s translate.StopReason, calledTool bool) string {
	switch s {
	case translate.StopMaxTokens:
		return "max_tokens"
	case translate.StopToolUse:
		return "tool_use"
	case translate.StopSequence:
		return "stop_sequence"
	case translate.StopRefusal:
		return "refusal"
	case translate.StopEnd:
		return "end_turn"
	}
	if calledTool {
		return "tool_use"
	}
	return "end_turn"
}

// usageFields tracks which usage counts an answer or event gave, so that a
// message_delta overwrites only those (a null or absent count keeps the
// earlier one).
type usageFields struct {
	u   translate.Usage
	any bool
}

// read overwrites the counts v holds.
func (f *usageFields) read(v *fastjson.Value) {
	if v == nil || v.Type() != fastjson.TypeObject {
		return
	}
	set := func(dst *int64, v *fastjson.Value, key string) {
		if n := v.Get(key); n != nil && n.Type() == fastjson.TypeNumber {
			if x, err := n.Int64(); err == nil {
				*dst = x
				f.any = true
			}
		}
	}
	set(&f.u.Input, v, "input_tokens")
	set(&f.u.CacheWrite, v, "cache_creation_input_tokens")
	set(&f.u.CacheRead, v, "cache_read_input_tokens")
	set(&f.u.Output, v, "output_tokens")
	if d := v.Get("output_tokens_details"); d != nil {
		set(&f.u.Reasoning, d, "thinking_tokens")
	}
}

// appendUsage writes a usage object.
func appendUsage(dst []byte, u *translate.Usage) []byte {
	dst = append(dst, `{"input_tokens":`...)
	dst = translate.AppendInt(dst, u.Input)
	dst = append(dst, `,"cache_creation_input_tokens":`...)
	dst = translate.AppendInt(dst, u.CacheWrite)
	dst = append(dst, `,"cache_read_input_tokens":`...)
	dst = translate.AppendInt(dst, u.CacheRead)
	dst = append(dst, `,"output_tokens":`...)
	dst = translate.AppendInt(dst, u.Output)
	if u.Reasoning > 0 {
		dst = append(dst, `,"output_tokens_details":{"thinking_tokens":`...)
		dst = translate.AppendInt(dst, u.Reasoning)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// DecodeResponse reads an anthropic-kind upstream's whole answer.
func (codec) DecodeResponse(body []byte) (*translate.Response, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, &translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream's answer is not a JSON object"}
	}
	if string(v.GetStringBytes("type")) == "error" {
		return nil, decodeError(502, v)
	}
	a := newArena(len(body))
	r := &translate.Response{
		ID:           a.str(v.GetStringBytes("id")),
		Model:        a.str(v.GetStringBytes("model")),
		Stop:         stopReason(v.GetStringBytes("stop_reason")),
		StopSequence: a.str(v.GetStringBytes("stop_sequence")),
	}
	blocks := v.GetArray("content")
	r.Content = make([]translate.Part, 0, len(blocks))
	for _, b := range blocks {
		var p translate.Part
		switch string(b.GetStringBytes("type")) {
		case "text":
			p = translate.Part{Type: translate.PartText, Text: a.str(b.GetStringBytes("text"))}
		case "thinking":
			p = translate.Part{Type: translate.PartThinking, Text: a.str(b.GetStringBytes("thinking")),
				Signature: a.str(b.GetStringBytes("signature")), Origin: Name}
		case "redacted_thinking":
			p = translate.Part{Type: translate.PartRedactedThinking, Signature: a.str(b.GetStringBytes("data")), Origin: Name}
		case "tool_use":
			p = translate.Part{Type: translate.PartToolCall, ID: a.str(b.GetStringBytes("id")),
				Name: a.str(b.GetStringBytes("name")), Args: "{}"}
			if in := b.Get("input"); in != nil && in.Type() == fastjson.TypeObject {
				p.Args = a.raw(in)
			}
		default:
			// Server-tool blocks answer tools this codec never sends.
			continue
		}
		r.Content = append(r.Content, p)
	}
	var u usageFields
	u.read(v.Get("usage"))
	r.Usage, r.HasUsage = u.u, u.any
	return r, nil
}

// appendMessageID writes the answer's id: the upstream's, or the
// gateway's; Claude clients know message ids by their "msg_" prefix.
func appendMessageID(dst []byte, id, fallback string) []byte {
	if id == "" {
		id = fallback
	}
	if strings.HasPrefix(id, "msg_") {
		return translate.AppendString(dst, id)
	}
	dst = append(dst, `"msg_`...)
	n := len(dst)
	dst = translate.AppendString(dst, id)
	copy(dst[n:], dst[n+1:])
	return dst[:len(dst)-1]
}

// EncodeResponse writes a whole answer for a Claude client.
func (codec) EncodeResponse(dst []byte, r *translate.Response, o translate.EncoderOptions) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendMessageID(dst, r.ID, o.ID)
	dst = append(dst, `,"type":"message","role":"assistant","model":`...)
	dst = translate.AppendString(dst, modelName(o, r.Model))
	dst = append(dst, `,"content":[`...)
	n, calledTool := 0, false
	for i := range r.Content {
		p := &r.Content[i]
		if !shown(p) {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		switch p.Type {
		case translate.PartText:
			dst = appendText(dst, p.Text)
		case translate.PartThinking:
			dst = append(dst, `{"type":"thinking","thinking":`...)
			dst = translate.AppendString(dst, p.Text)
			dst = append(dst, `,"signature":`...)
			dst = translate.AppendString(dst, signature(p))
			dst = append(dst, '}')
		case translate.PartRedactedThinking:
			dst = append(dst, `{"type":"redacted_thinking","data":`...)
			dst = translate.AppendString(dst, p.Signature)
			dst = append(dst, '}')
		case translate.PartToolCall:
			calledTool = true
			dst = append(dst, `{"type":"tool_use","id":`...)
			dst = appendToolUseID(dst, p.ID, o.ID, i)
			dst = append(dst, `,"name":`...)
			dst = translate.AppendString(dst, p.Name)
			dst = append(dst, `,"input":`...)
			dst = appendInput(dst, p.Args)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, `],"stop_reason":"`...)
	dst = append(dst, stopWord(r.Stop, calledTool)...)
	dst = append(dst, `","stop_sequence":`...)
	dst = appendStopSequence(dst, r.Stop, r.StopSequence)
	dst = append(dst, `,"usage":`...)
	dst = appendUsage(dst, &r.Usage)
	return append(dst, '}')
}

// shown says whether an answer's part reaches a Claude client: redacted
// thinking only from Anthropic (no one else can read it back), empty text
// never (the API sends none).
func shown(p *translate.Part) bool {
	switch p.Type {
	case translate.PartText:
		return p.Text != ""
	case translate.PartThinking, translate.PartToolCall:
		return true
	case translate.PartRedactedThinking:
		return p.Origin == Name
	}
	return false
}

// signature is a thinking part's signature as a Claude client may send it
// back: another format's would fail Anthropic's check, so it is empty.
func signature(p *translate.Part) string {
	if p.Origin == Name {
		return p.Signature
	}
	return ""
}

func modelName(o translate.EncoderOptions, upstream string) string {
	if o.Model != "" {
		return o.Model
	}
	return upstream
}

func appendStopSequence(dst []byte, s translate.StopReason, seq string) []byte {
	if s != translate.StopSequence || seq == "" {
		return append(dst, "null"...)
	}
	return translate.AppendString(dst, seq)
}

// appendToolUseID writes a tool call's id, making one from the answer's id
// and the block's index when the upstream gave none.
func appendToolUseID(dst []byte, id, answer string, index int) []byte {
	if id != "" {
		return translate.AppendString(dst, id)
	}
	dst = append(dst, `"toolu_`...)
	for i := 0; i < len(answer); i++ {
		if c := answer[i]; c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			dst = append(dst, c)
		}
	}
	dst = append(dst, '_')
	dst = translate.AppendInt(dst, int64(index))
	return append(dst, '"')
}

// appendInput writes a tool call's input: its arguments when they are a
// JSON object, {} when they are not (a call cut off by max_tokens), as the
// SDK's accumulator does.
func appendInput(dst []byte, args string) []byte {
	if !isObject(args) {
		return append(dst, "{}"...)
	}
	return append(dst, args...)
}
