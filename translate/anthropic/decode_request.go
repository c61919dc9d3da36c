package anthropic

import (
	"fmt"
	"strconv"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// notCarried is the 400 for a field of a client's request that cannot
// travel to an upstream of another format.
func notCarried(field string) *translate.Error {
	return &translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Param: field,
		Message: field + " is not supported when an Anthropic Messages request is served by a model in another format"}
}

// required is the real API's words for a missing field.
func required(f path) *translate.Error {
	field := f.String()
	return translate.Invalid(field, "%s: Field required", field)
}

func wrongType(f path, want string) *translate.Error {
	field := f.String()
	return translate.Invalid(field, "%s: Input should be %s", field, want)
}

// invalid is a 400 about the field f, its message starting with the
// field's name.
func invalid(f path, msg string) *translate.Error {
	field := f.String()
	return translate.Invalid(field, "%s: %s", field, msg)
}

// path is a field's name in the API's dotted form ("messages.0.content.1"),
// built on the stack: only an error turns it into a string, so a request
// that decodes allocates nothing for the names of its fields.
type path struct {
	n   int
	buf [120]byte
}

func root(k string) path {
	var p path
	return p.add(k)
}

// dot is the member k of p.
func (p path) dot(k string) path {
	p = p.add(".")
	return p.add(k)
}

// index is the item i of p.
func (p path) index(i int) path {
	p = p.add(".")
	if p.n+20 <= len(p.buf) {
		p.n = len(strconv.AppendInt(p.buf[:p.n], int64(i), 10))
	}
	return p
}

func (p path) add(s string) path {
	p.n += copy(p.buf[p.n:], s)
	return p
}

func (p *path) String() string { return string(p.buf[:p.n]) }

// reqDecoder carries what decoding one request needs besides the parse.
type reqDecoder struct {
	a arena
	// toolNames maps a tool_use id to its tool's name, so that a
	// tool_result (which names only the id) carries the name too: Gemini
	// answers a call by name.
	toolNames map[string]string
}

// DecodeRequest reads a client's /v1/messages body.
func (codec) DecodeRequest(body []byte) (*translate.Request, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, translate.Invalid("", "the request body is not valid JSON: %v", err)
	}
	o, err := v.Object()
	if err != nil {
		return nil, translate.Invalid("", "the request body must be a JSON object")
	}
	d := reqDecoder{a: newArena(len(body))}
	r := &translate.Request{}
	var thinking, outputConfig, messages *fastjson.Value
	hasModel, hasMaxTokens := false, false
	var fail *translate.Error
	o.Visit(func(k []byte, v *fastjson.Value) {
		if fail != nil || v.Type() == fastjson.TypeNull {
			return
		}
		key := func() path { return root(string(k)) }
		switch string(k) {
		case "model":
			r.Model, fail = d.str(v, key())
			hasModel = true
		case "messages":
			messages = v
		case "max_tokens":
			hasMaxTokens = true
			r.MaxTokens, fail = intField(v, key())
			if fail == nil && r.MaxTokens < 0 {
				fail = invalid(key(), "Input should be greater than or equal to 0")
			} else if fail == nil && r.MaxTokens == 0 {
				fail = translate.Invalid("max_tokens", "max_tokens 0 (prompt cache pre-warming) is not supported when the model is served in another format")
			}
		case "system":
			r.System, fail = d.system(v, key())
		case "temperature":
			r.Temperature, fail = floatField(v, key())
		case "top_p":
			r.TopP, fail = floatField(v, key())
		case "top_k":
			var n int64
			if n, fail = intField(v, key()); fail == nil {
				r.TopK = &n
			}
		case "stop_sequences":
			r.Stop, fail = d.strings(v, key())
		case "stream":
			r.Stream, fail = boolField(v, key())
		case "thinking":
			thinking = v
		case "output_config":
			outputConfig = v
		case "tools":
			r.Tools, fail = d.tools(v)
		case "tool_choice":
			fail = d.toolChoice(r, v)
		case "metadata":
			fail = d.metadata(r, v)
		case "context_management", "cache_control", "service_tier", "inference_geo", "speed", "diagnostics":
			// Hints with no effect on what the model writes: see DESIGN.md.
		default:
			fail = notCarried(string(k))
		}
	})
	if fail != nil {
		return nil, fail
	}
	switch {
	case !hasModel:
		return nil, required(root("model"))
	case messages == nil:
		return nil, required(root("messages"))
	case !hasMaxTokens:
		return nil, required(root("max_tokens"))
	}
	if r.Messages, fail = d.messages(messages); fail != nil {
		return nil, fail
	}
	if fail = d.reasoning(r, thinking, outputConfig); fail != nil {
		return nil, fail
	}
	return r, nil
}

func (d *reqDecoder) str(v *fastjson.Value, f path) (string, *translate.Error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", wrongType(f, "a valid string")
	}
	return d.a.str(b), nil
}

func intField(v *fastjson.Value, f path) (int64, *translate.Error) {
	n, err := v.Int64()
	if err != nil {
		return 0, wrongType(f, "a valid integer")
	}
	return n, nil
}

func floatField(v *fastjson.Value, f path) (*float64, *translate.Error) {
	x, err := v.Float64()
	if err != nil {
		return nil, wrongType(f, "a valid number")
	}
	return &x, nil
}

func boolField(v *fastjson.Value, f path) (bool, *translate.Error) {
	b, err := v.Bool()
	if err != nil {
		return false, wrongType(f, "a valid boolean")
	}
	return b, nil
}

func (d *reqDecoder) strings(v *fastjson.Value, f path) ([]string, *translate.Error) {
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(f, "a valid list")
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		var fail *translate.Error
		if out[i], fail = d.str(e, f.index(i)); fail != nil {
			return nil, fail
		}
	}
	return out, nil
}

// system reads the system prompt: a string or a list of text blocks.
func (d *reqDecoder) system(v *fastjson.Value, f path) ([]translate.Part, *translate.Error) {
	if v.Type() == fastjson.TypeString {
		s, _ := v.StringBytes()
		if len(s) == 0 {
			return nil, nil
		}
		return []translate.Part{{Type: translate.PartText, Text: d.a.str(s)}}, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(f, "a valid string or a list of text blocks")
	}
	parts := make([]translate.Part, 0, len(arr))
	for i, b := range arr {
		f := f.index(i)
		if t := b.GetStringBytes("type"); string(t) != "text" {
			return nil, invalid(f.dot("type"), "Input should be 'text'")
		}
		text, fail := d.reqStr(b, "text", f)
		if fail != nil {
			return nil, fail
		}
		parts = append(parts, translate.Part{Type: translate.PartText, Text: text})
	}
	return parts, nil
}

// messages reads the conversation.
func (d *reqDecoder) messages(v *fastjson.Value) ([]translate.Message, *translate.Error) {
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(root("messages"), "a valid list")
	}
	out := make([]translate.Message, len(arr))
	for i, m := range arr {
		f := root("messages").index(i)
		if m.Type() != fastjson.TypeObject {
			return nil, wrongType(f, "a valid dictionary")
		}
		role := m.Get("role")
		if role == nil {
			return nil, required(f.dot("role"))
		}
		switch string(role.GetStringBytes()) {
		case "user":
			out[i].Role = translate.RoleUser
		case "assistant":
			out[i].Role = translate.RoleAssistant
		case "system":
			// A mid-conversation system message (a Claude Code beta).
			out[i].Role = translate.RoleSystem
		default:
			return nil, invalid(f.dot("role"), "Input should be 'user', 'assistant' or 'system'")
		}
		c := m.Get("content")
		if c == nil {
			return nil, required(f.dot("content"))
		}
		var fail *translate.Error
		if out[i].Parts, fail = d.content(c, f.dot("content"), out[i].Role); fail != nil {
			return nil, fail
		}
	}
	return out, nil
}

// content reads a message's content: a string or a list of blocks.
func (d *reqDecoder) content(v *fastjson.Value, f path, role translate.Role) ([]translate.Part, *translate.Error) {
	if v.Type() == fastjson.TypeString {
		s, _ := v.StringBytes()
		return []translate.Part{{Type: translate.PartText, Text: d.a.str(s)}}, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(f, "a valid string or a list of content blocks")
	}
	parts := make([]translate.Part, len(arr))
	for i, b := range arr {
		f := f.index(i)
		if b.Type() != fastjson.TypeObject {
			return nil, wrongType(f, "a valid dictionary")
		}
		typ := b.GetStringBytes("type")
		if role == translate.RoleSystem && string(typ) != "text" {
			return nil, invalid(f.dot("type"), "a system message holds text blocks only")
		}
		var fail *translate.Error
		if parts[i], fail = d.block(b, typ, f); fail != nil {
			return nil, fail
		}
	}
	return parts, nil
}

// block reads one content block of a message.
func (d *reqDecoder) block(b *fastjson.Value, typ []byte, f path) (translate.Part, *translate.Error) {
	var p translate.Part
	var fail *translate.Error
	switch string(typ) {
	case "text":
		p.Type = translate.PartText
		p.Text, fail = d.reqStr(b, "text", f)
	case "image":
		return d.image(b, f)
	case "tool_use":
		p.Type = translate.PartToolCall
		if p.ID, fail = d.reqStr(b, "id", f); fail != nil {
			return p, fail
		}
		if p.Name, fail = d.reqStr(b, "name", f); fail != nil {
			return p, fail
		}
		in := b.Get("input")
		if in == nil {
			return p, required(f.dot("input"))
		}
		if in.Type() != fastjson.TypeObject {
			return p, wrongType(f.dot("input"), "a valid dictionary")
		}
		p.Args = d.a.raw(in)
		if d.toolNames == nil {
			d.toolNames = make(map[string]string, 4)
		}
		d.toolNames[p.ID] = p.Name
	case "tool_result":
		p.Type = translate.PartToolResult
		if p.ID, fail = d.reqStr(b, "tool_use_id", f); fail != nil {
			return p, fail
		}
		p.Name = d.toolNames[p.ID]
		if e := b.Get("is_error"); e != nil && e.Type() != fastjson.TypeNull {
			if p.IsError, fail = boolField(e, f.dot("is_error")); fail != nil {
				return p, fail
			}
		}
		if c := b.Get("content"); c != nil && c.Type() != fastjson.TypeNull {
			p.Content, fail = d.resultContent(c, f.dot("content"))
		}
	case "thinking":
		p.Type, p.Origin = translate.PartThinking, Name
		if p.Text, fail = d.reqStr(b, "thinking", f); fail != nil {
			return p, fail
		}
		if s := b.Get("signature"); s != nil && s.Type() != fastjson.TypeNull {
			p.Signature, fail = d.str(s, f.dot("signature"))
		}
	case "redacted_thinking":
		p.Type, p.Origin = translate.PartRedactedThinking, Name
		p.Signature, fail = d.reqStr(b, "data", f)
	case "":
		fail = required(f.dot("type"))
	default:
		fail = notCarried(fmt.Sprintf("%s (a %s block)", f.String(), typ))
	}
	return p, fail
}

func (d *reqDecoder) reqStr(b *fastjson.Value, key string, f path) (string, *translate.Error) {
	v := b.Get(key)
	if v == nil {
		return "", required(f.dot(key))
	}
	return d.str(v, f.dot(key))
}

// image reads an image block's source: base64 data or a URL.
func (d *reqDecoder) image(b *fastjson.Value, f path) (translate.Part, *translate.Error) {
	p := translate.Part{Type: translate.PartImage}
	src := b.Get("source")
	if src == nil {
		return p, required(f.dot("source"))
	}
	var fail *translate.Error
	switch t := src.GetStringBytes("type"); string(t) {
	case "base64":
		if p.MediaType, fail = d.reqStr(src, "media_type", f.dot("source")); fail != nil {
			return p, fail
		}
		p.Data, fail = d.reqStr(src, "data", f.dot("source"))
	case "url":
		p.URL, fail = d.reqStr(src, "url", f.dot("source"))
	default:
		fail = notCarried(fmt.Sprintf("%s.source (type %q)", f.String(), t))
	}
	return p, fail
}

// resultContent reads a tool_result's content: a string or text and image
// blocks.
func (d *reqDecoder) resultContent(v *fastjson.Value, f path) ([]translate.Part, *translate.Error) {
	if v.Type() == fastjson.TypeString {
		s, _ := v.StringBytes()
		if len(s) == 0 {
			return nil, nil
		}
		return []translate.Part{{Type: translate.PartText, Text: d.a.str(s)}}, nil
	}
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(f, "a valid string or a list of content blocks")
	}
	parts := make([]translate.Part, len(arr))
	for i, b := range arr {
		f := f.index(i)
		var fail *translate.Error
		switch t := b.GetStringBytes("type"); string(t) {
		case "text":
			parts[i].Type = translate.PartText
			parts[i].Text, fail = d.reqStr(b, "text", f)
		case "image":
			parts[i], fail = d.image(b, f)
		default:
			fail = notCarried(fmt.Sprintf("%s (a %s block)", f.String(), t))
		}
		if fail != nil {
			return nil, fail
		}
	}
	return parts, nil
}

// tools reads the tool definitions: custom tools only.
func (d *reqDecoder) tools(v *fastjson.Value) ([]translate.Tool, *translate.Error) {
	arr, err := v.Array()
	if err != nil {
		return nil, wrongType(root("tools"), "a valid list")
	}
	out := make([]translate.Tool, len(arr))
	for i, t := range arr {
		f := root("tools").index(i)
		if t.Type() != fastjson.TypeObject {
			return nil, wrongType(f, "a valid dictionary")
		}
		if typ := t.GetStringBytes("type"); len(typ) > 0 && string(typ) != "custom" {
			// Server and versioned tools (web_search_*, bash_*,
			// text_editor_*, computer_*, code_execution_*, …) run on
			// Anthropic's side or need its trained tool.
			return nil, notCarried(fmt.Sprintf("%s (the %s tool)", f.String(), typ))
		}
		var fail *translate.Error
		if out[i].Name, fail = d.reqStr(t, "name", f); fail != nil {
			return nil, fail
		}
		if desc := t.Get("description"); desc != nil && desc.Type() != fastjson.TypeNull {
			if out[i].Description, fail = d.str(desc, f.dot("description")); fail != nil {
				return nil, fail
			}
		}
		s := t.Get("input_schema")
		if s == nil {
			return nil, required(f.dot("input_schema"))
		}
		if s.Type() != fastjson.TypeObject {
			return nil, wrongType(f.dot("input_schema"), "a valid dictionary")
		}
		out[i].Schema = d.a.raw(s)
	}
	return out, nil
}

func (d *reqDecoder) toolChoice(r *translate.Request, v *fastjson.Value) *translate.Error {
	if v.Type() != fastjson.TypeObject {
		return wrongType(root("tool_choice"), "a valid dictionary")
	}
	switch t := v.GetStringBytes("type"); string(t) {
	case "auto":
		r.ToolChoice.Mode = translate.ToolAuto
	case "any":
		r.ToolChoice.Mode = translate.ToolRequired
	case "none":
		r.ToolChoice.Mode = translate.ToolNone
	case "tool":
		r.ToolChoice.Mode = translate.ToolNamed
		var fail *translate.Error
		if r.ToolChoice.Name, fail = d.reqStr(v, "name", root("tool_choice")); fail != nil {
			return fail
		}
	default:
		return translate.Invalid("tool_choice.type", "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
	}
	if dp := v.Get("disable_parallel_tool_use"); dp != nil && dp.Type() != fastjson.TypeNull {
		off, fail := boolField(dp, root("tool_choice.disable_parallel_tool_use"))
		if fail != nil {
			return fail
		}
		parallel := !off
		r.ParallelToolCalls = &parallel
	}
	return nil
}

func (d *reqDecoder) metadata(r *translate.Request, v *fastjson.Value) *translate.Error {
	if v.Type() != fastjson.TypeObject {
		return wrongType(root("metadata"), "a valid dictionary")
	}
	if u := v.Get("user_id"); u != nil && u.Type() != fastjson.TypeNull {
		var fail *translate.Error
		r.User, fail = d.str(u, root("metadata.user_id"))
		return fail
	}
	return nil
}

// reasoning reads thinking and output_config: effort and the output format.
func (d *reqDecoder) reasoning(r *translate.Request, thinking, oc *fastjson.Value) *translate.Error {
	effort := ""
	if oc != nil {
		if oc.Type() != fastjson.TypeObject {
			return wrongType(root("output_config"), "a valid dictionary")
		}
		var fail *translate.Error
		oc.GetObject().Visit(func(k []byte, v *fastjson.Value) {
			if fail != nil || v.Type() == fastjson.TypeNull {
				return
			}
			switch string(k) {
			case "effort":
				switch e := v.GetStringBytes(); string(e) {
				case "low", "medium", "high":
					effort = d.a.str(e)
				case "xhigh", "max":
					// The neutral words stop at OpenAI's "high".
					effort = "high"
				default:
					fail = translate.Invalid("output_config.effort", "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
				}
			case "format":
				fail = d.outputFormat(r, v)
			default:
				fail = notCarried("output_config." + string(k))
			}
		})
		if fail != nil {
			return fail
		}
	}
	if thinking == nil {
		if effort != "" {
			r.Reasoning = &translate.Reasoning{Effort: effort}
		}
		return nil
	}
	if thinking.Type() != fastjson.TypeObject {
		return wrongType(root("thinking"), "a valid dictionary")
	}
	switch t := thinking.GetStringBytes("type"); string(t) {
	case "enabled":
		b := thinking.Get("budget_tokens")
		if b == nil {
			return required(root("thinking.enabled.budget_tokens"))
		}
		n, fail := intField(b, root("thinking.enabled.budget_tokens"))
		if fail != nil {
			return fail
		}
		if n < 1024 {
			return translate.Invalid("thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
		}
		r.Reasoning = &translate.Reasoning{BudgetTokens: n, Effort: effort}
	case "adaptive":
		// The model decides how much to think; the effort (Claude Code
		// sends output_config.effort beside it) is the neutral measure.
		if effort == "" {
			effort = "medium"
		}
		r.Reasoning = &translate.Reasoning{Effort: effort}
	case "disabled":
		r.Reasoning = &translate.Reasoning{Disabled: true}
	default:
		return notCarried(fmt.Sprintf("thinking.type %q", t))
	}
	return nil
}

// outputFormat reads output_config.format, the structured-output schema.
func (d *reqDecoder) outputFormat(r *translate.Request, v *fastjson.Value) *translate.Error {
	if t := v.GetStringBytes("type"); string(t) != "json_schema" {
		return translate.Invalid("output_config.format.type", "output_config.format.type: Input should be 'json_schema'")
	}
	s := v.Get("schema")
	if s == nil || s.Type() != fastjson.TypeObject {
		return required(root("output_config.format.schema"))
	}
	r.ResponseFormat = &translate.ResponseFormat{Type: "json_schema", Schema: d.a.raw(s), Strict: true}
	return nil
}
