package chat

import (
	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// badAnswer is the error for an upstream answer this codec cannot read.
func badAnswer(why string) *translate.Error {
	return &translate.Error{Status: 502, Kind: translate.ErrServer, Message: "the upstream's answer " + why}
}

// DecodeResponse reads an upstream's whole answer: its first choice (n > 1
// is refused on the way in).
func (codec) DecodeResponse(body []byte) (*translate.Response, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return nil, badAnswer("is not a JSON object")
	}
	if e := v.Get("error"); e != nil && e.Type() != fastjson.TypeNull {
		return nil, errorOf(0, v)
	}
	r := &translate.Response{ID: string(v.GetStringBytes("id")), Model: string(v.GetStringBytes("model"))}
	if u := v.Get("usage"); u != nil && u.Type() == fastjson.TypeObject {
		r.Usage, r.HasUsage = usageOf(u), true
	}
	choices := v.GetArray("choices")
	if len(choices) == 0 {
		return nil, badAnswer("has no choices")
	}
	c := choices[0]
	m := c.Get("message")
	if m == nil || m.Type() != fastjson.TypeObject {
		return nil, badAnswer("has no message")
	}
	if t := reasoningOf(m); len(t) > 0 {
		r.Content = append(r.Content, translate.Part{Type: translate.PartThinking, Text: string(t), Origin: Name})
	}
	switch content := m.Get("content"); {
	case content == nil:
	case content.Type() == fastjson.TypeString:
		if s := content.GetStringBytes(); len(s) > 0 {
			r.Content = append(r.Content, translate.Part{Type: translate.PartText, Text: string(s)})
		}
	case content.Type() == fastjson.TypeArray:
		// Some vendors answer with parts; their text is the answer.
		for _, part := range content.GetArray() {
			if string(part.GetStringBytes("type")) == "text" {
				r.Content = append(r.Content, translate.Part{Type: translate.PartText, Text: string(part.GetStringBytes("text"))})
			}
		}
	}
	refused := false
	if s := m.GetStringBytes("refusal"); len(s) > 0 {
		refused = true
		r.Content = append(r.Content, translate.Part{Type: translate.PartText, Text: string(s)})
	}
	for _, tc := range m.GetArray("tool_calls") {
		r.Content = append(r.Content, translate.Part{Type: translate.PartToolCall,
			ID: string(tc.GetStringBytes("id")), Name: string(tc.GetStringBytes("function", "name")),
			Args: string(tc.GetStringBytes("function", "arguments"))})
	}
	r.Stop = stopOf(string(c.GetStringBytes("finish_reason")))
	if refused && r.Stop == translate.StopEnd {
		r.Stop = translate.StopRefusal
	}
	return r, nil
}

// reasoningOf is a message's or delta's reasoning text: reasoning_content
// (DeepSeek, Qwen, Kimi, GLM, xAI) or reasoning (OpenRouter, vLLM).
func reasoningOf(m *fastjson.Value) []byte {
	if t := m.GetStringBytes("reasoning_content"); len(t) > 0 {
		return t
	}
	return m.GetStringBytes("reasoning")
}

// EncodeResponse writes a whole answer for a client. Thinking goes in the
// message's reasoning_content, where DeepSeek-style clients read it (the
// OpenAI SDKs keep it as an extra field); signatures have no place.
func (codec) EncodeResponse(dst []byte, r *translate.Response, o translate.EncoderOptions) []byte {
	id := r.ID
	if id == "" {
		id = o.ID
	}
	b := append(dst, `{"id":`...)
	b = translate.AppendString(b, id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = translate.AppendInt(b, o.Created)
	b = append(b, `,"model":`...)
	b = translate.AppendString(b, o.Model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	calls, texts, thinking := 0, 0, 0
	for i := range r.Content {
		switch r.Content[i].Type {
		case translate.PartToolCall:
			calls++
		case translate.PartText:
			texts++
		case translate.PartThinking:
			if r.Content[i].Text != "" {
				thinking++
			}
		}
	}
	switch {
	case texts > 0:
		b = translate.AppendString(b, joinText(r.Content, translate.PartText, ""))
	case calls > 0:
		b = append(b, "null"...)
	default:
		b = append(b, `""`...)
	}
	if thinking > 0 {
		b = append(b, `,"reasoning_content":`...)
		b = translate.AppendString(b, joinText(r.Content, translate.PartThinking, ""))
	}
	if calls > 0 {
		b = append(b, `,"tool_calls":[`...)
		k := 0
		for i := range r.Content {
			p := &r.Content[i]
			if p.Type != translate.PartToolCall {
				continue
			}
			if k > 0 {
				b = append(b, ',')
			}
			k++
			b = appendToolCall(b, p.ID, p.Name, p.Args)
		}
		b = append(b, ']')
	}
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"`...)
	b = append(b, finishReason(r.Stop, calls > 0)...)
	b = append(b, `"}]`...)
	if r.HasUsage {
		b = append(b, `,"usage":`...)
		b = appendUsage(b, &r.Usage)
	}
	return append(b, '}')
}

// appendToolCall writes a whole tool call; arguments default to "{}".
func appendToolCall(b []byte, id, name, args string) []byte {
	b = append(b, `{"id":`...)
	b = translate.AppendString(b, id)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = translate.AppendString(b, name)
	b = append(b, `,"arguments":`...)
	if args == "" {
		args = "{}"
	}
	b = translate.AppendString(b, args)
	return append(b, "}}"...)
}
