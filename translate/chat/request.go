package chat

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// unsupported is the 400 for a field of a client's request that the
// neutral types cannot carry to the other format its model is served in.
func unsupported(field string) error {
	return &translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Param: field,
		Message: field + " is not supported for this model: its provider speaks another wire format"}
}

func invalidType(field, want string) error {
	return translate.Invalid(field, "%s must be %s", field, want)
}

// path names a field of a request, written out only for an error: fmt on
// every message and part took a fifth of DecodeRequest's time.
type path struct {
	base string // "messages", "tools"
	i    int    // -1: no index
	mid  string // ".content", ".tool_calls", ".function"
	j    int    // -1: no second index
}

func (p path) at(j int) path { p.j = j; return p }

func (p path) String() string {
	b := append([]byte(nil), p.base...)
	if p.i >= 0 {
		b = append(strconv.AppendInt(append(b, '['), int64(p.i), 10), ']')
	}
	b = append(b, p.mid...)
	if p.j >= 0 {
		b = append(strconv.AppendInt(append(b, '['), int64(p.j), 10), ']')
	}
	return string(b)
}

// strAt reads a string value at p and leaf.
func (d *reqDecoder) strAt(v *fastjson.Value, p path, leaf string) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", invalidType(p.String()+leaf, "a string")
	}
	return d.str(b), nil
}

// topFields are the top-level members DecodeRequest reads; a repeated one
// is refused rather than read twice (fastjson keeps both, and the gateway
// refuses repeated members it reads on the pass-through path too).
var topFields = [...]string{"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
	"max_completion_tokens", "temperature", "top_p", "top_k", "stop", "stream", "stream_options",
	"reasoning_effort", "thinking", "response_format", "user", "safety_identifier", "n", "logprobs",
	"top_logprobs", "logit_bias", "audio", "modalities", "prediction", "seed", "frequency_penalty",
	"presence_penalty", "verbosity", "web_search_options", "moderation", "functions", "function_call",
	"metadata", "store", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier"}

// DecodeRequest reads a client's Chat Completions body.
func (codec) DecodeRequest(body []byte) (*translate.Request, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, translate.Invalid("", "the body is not valid JSON: %v", err)
	}
	o, err := v.Object()
	if err != nil {
		return nil, translate.Invalid("", "the body must be a JSON object")
	}
	d := reqDecoder{r: &translate.Request{}, arena: make([]byte, 0, len(body))}
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err == nil {
			d.err = d.field(b2s(k), v)
		}
	})
	if d.err != nil {
		return nil, d.err
	}
	if d.seen&(1<<0) == 0 {
		return nil, translate.Invalid("model", "model is required")
	}
	if d.msgs == nil {
		return nil, translate.Invalid("messages", "messages is required")
	}
	if err := d.messages(d.msgs); err != nil {
		return nil, err
	}
	if d.maxCompletion > 0 {
		d.r.MaxTokens = d.maxCompletion
	}
	return d.r, nil
}

type reqDecoder struct {
	r *translate.Request
	// arena holds the request's strings, copied out of the parser in one
	// allocation: their total is at most the body's length (a schema
	// written again may grow a little; append then moves on to a new
	// array, and the strings already made keep the old one alive).
	arena         []byte
	err           error
	seen          uint64
	msgs          []*fastjson.Value
	maxCompletion int64
	// toolNames maps a call id to its tool's name, for the results that
	// follow (Gemini's functionResponse needs the name).
	toolNames map[string]string
}

// str copies b into the arena.
func (d *reqDecoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return unsafe.String(&d.arena[start], len(b))
}

func (d *reqDecoder) field(k string, v *fastjson.Value) error {
	for i, f := range topFields {
		if f == k {
			if d.seen&(1<<i) != 0 {
				return translate.Invalid(k, "%s appears twice in the body", k)
			}
			d.seen |= 1 << i
			break
		}
	}
	r := d.r
	null := v.Type() == fastjson.TypeNull
	switch k {
	case "model":
		s, err := d.strOf(v, k)
		if err != nil || s == "" {
			return invalidType(k, "a non-empty string")
		}
		r.Model = s
	case "messages":
		a, err := v.Array()
		if err != nil {
			return invalidType(k, "an array")
		}
		if len(a) == 0 {
			return translate.Invalid(k, "messages must not be empty")
		}
		d.msgs = a
	case "tools":
		if null {
			return nil
		}
		return d.tools(v)
	case "tool_choice":
		return d.toolChoice(v)
	case "parallel_tool_calls":
		if null {
			return nil
		}
		b, err := v.Bool()
		if err != nil {
			return invalidType(k, "a boolean")
		}
		r.ParallelToolCalls = &b
	case "max_tokens", "max_completion_tokens":
		if null {
			return nil
		}
		n, err := integer(v, k)
		if err != nil {
			return err
		}
		if n < 1 {
			return translate.Invalid(k, "%s must be at least 1", k)
		}
		if k == "max_tokens" {
			r.MaxTokens = n
		} else {
			d.maxCompletion = n
		}
	case "temperature", "top_p":
		if null {
			return nil
		}
		f, err := number(v, k)
		if err != nil {
			return err
		}
		if k == "temperature" {
			r.Temperature = &f
		} else {
			r.TopP = &f
		}
	case "top_k":
		if null {
			return nil
		}
		n, err := integer(v, k)
		if err != nil {
			return err
		}
		r.TopK = &n
	case "stop":
		return d.stop(v)
	case "stream":
		if null {
			return nil
		}
		b, err := v.Bool()
		if err != nil {
			return invalidType(k, "a boolean")
		}
		r.Stream = b
	case "stream_options":
		return d.streamOptions(v)
	case "reasoning_effort":
		if null {
			return nil
		}
		s, err := d.strOf(v, k)
		if err != nil {
			return err
		}
		switch s {
		case "none":
			r.Reasoning = &translate.Reasoning{Disabled: true}
		case "minimal", "low", "medium", "high", "xhigh", "max":
			r.Reasoning = &translate.Reasoning{Effort: s}
		default:
			return translate.Invalid(k, "reasoning_effort must be one of none, minimal, low, medium, high, xhigh, max")
		}
	case "thinking":
		return d.thinking(v)
	case "response_format":
		return d.responseFormat(v)
	case "user", "safety_identifier":
		if null {
			return nil
		}
		s, err := d.strOf(v, k)
		if err != nil {
			return err
		}
		if k == "safety_identifier" || r.User == "" {
			r.User = s
		}
	case "n":
		if null {
			return nil
		}
		n, err := integer(v, k)
		if err != nil {
			return err
		}
		if n > 1 {
			return unsupported("n")
		}
		if n < 1 {
			return translate.Invalid(k, "n must be at least 1")
		}
	case "logprobs":
		if v.Type() == fastjson.TypeTrue {
			return unsupported(k)
		}
		if !null && v.Type() != fastjson.TypeFalse {
			return invalidType(k, "a boolean")
		}
	case "top_logprobs":
		if null {
			return nil
		}
		n, err := integer(v, k)
		if err != nil {
			return err
		}
		if n != 0 {
			return unsupported(k)
		}
	case "logit_bias":
		if null {
			return nil
		}
		ob, err := v.Object()
		if err != nil {
			return invalidType(k, "an object")
		}
		if ob.Len() > 0 {
			return unsupported(k)
		}
	case "modalities":
		if null {
			return nil
		}
		a, err := v.Array()
		if err != nil {
			return invalidType(k, "an array")
		}
		for _, m := range a {
			if string(m.GetStringBytes()) != "text" {
				return unsupported(k)
			}
		}
	case "frequency_penalty", "presence_penalty":
		if null {
			return nil
		}
		f, err := number(v, k)
		if err != nil {
			return err
		}
		if f != 0 {
			return unsupported(k)
		}
	case "functions":
		if null {
			return nil
		}
		if a, err := v.Array(); err != nil || len(a) > 0 {
			return unsupported(k)
		}
	case "audio", "verbosity", "web_search_options", "moderation", "function_call":
		if !null {
			return unsupported(k)
		}
	case "seed":
		if !null {
			if _, err := integer(v, k); err != nil {
				return err
			}
		}
	case "prediction", "metadata", "store", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier":
		// Hints with no effect on the answer's content: DESIGN.md lists why.
	default:
		return unsupported(k)
	}
	return nil
}

// schemaText is a JSON Schema's text, checked: fastjson accepts numbers
// and escapes that JSON does not (1e, 01, \x), which an upstream would
// refuse as a body that does not parse.
func (d *reqDecoder) schemaText(v *fastjson.Value, p path, leaf string) (string, error) {
	start := len(d.arena)
	d.arena = v.MarshalTo(d.arena)
	b := d.arena[start:]
	if !json.Valid(b) {
		field := p.String() + leaf
		return "", translate.Invalid(field, "%s is not valid JSON", field)
	}
	return unsafe.String(&b[0], len(b)), nil
}

// str reads a string value.
func (d *reqDecoder) strOf(v *fastjson.Value, field string) (string, error) {
	b, err := v.StringBytes()
	if err != nil {
		return "", invalidType(field, "a string")
	}
	return d.str(b), nil
}

// number reads a finite number.
func number(v *fastjson.Value, field string) (float64, error) {
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, invalidType(field, "a number")
	}
	return f, nil
}

// integer reads an integer, also one written as 1024.0.
func integer(v *fastjson.Value, field string) (int64, error) {
	if n, err := v.Int64(); err == nil {
		return n, nil
	}
	f, err := v.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, invalidType(field, "an integer")
	}
	return int64(f), nil
}

func (d *reqDecoder) stop(v *fastjson.Value) error {
	switch v.Type() {
	case fastjson.TypeNull:
	case fastjson.TypeString:
		d.r.Stop = []string{d.str(v.GetStringBytes())}
	case fastjson.TypeArray:
		a, _ := v.Array()
		d.r.Stop = make([]string, 0, len(a))
		for _, s := range a {
			b, err := s.StringBytes()
			if err != nil {
				return invalidType("stop", "a string or an array of strings")
			}
			d.r.Stop = append(d.r.Stop, d.str(b))
		}
	default:
		return invalidType("stop", "a string or an array of strings")
	}
	return nil
}

func (d *reqDecoder) streamOptions(v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	o, err := v.Object()
	if err != nil {
		return invalidType("stream_options", "an object")
	}
	o.Visit(func(k []byte, x *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(k) {
		case "include_usage":
			d.r.IncludeUsage = x.Type() == fastjson.TypeTrue
			if x.Type() != fastjson.TypeTrue && x.Type() != fastjson.TypeFalse && x.Type() != fastjson.TypeNull {
				err = invalidType("stream_options.include_usage", "a boolean")
			}
		case "include_obfuscation":
			// Padding against a side channel: no content.
		default:
			err = unsupported("stream_options." + string(k))
		}
	})
	return err
}

// thinking reads the {"type":"enabled","budget_tokens":n} object that
// DeepSeek, GLM and Kimi accept beside the OpenAI fields.
func (d *reqDecoder) thinking(v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		return invalidType("thinking", "an object")
	}
	r := &translate.Reasoning{}
	switch string(v.GetStringBytes("type")) {
	case "enabled":
		if b := v.Get("budget_tokens"); b != nil && b.Type() != fastjson.TypeNull {
			n, err := integer(b, "thinking.budget_tokens")
			if err != nil {
				return err
			}
			r.BudgetTokens = n
		}
	case "disabled":
		r.Disabled = true
	default:
		return translate.Invalid("thinking.type", "thinking.type must be enabled or disabled")
	}
	if d.r.Reasoning != nil && d.r.Reasoning.Effort != "" && !r.Disabled {
		r.Effort = d.r.Reasoning.Effort
	}
	d.r.Reasoning = r
	return nil
}

func (d *reqDecoder) responseFormat(v *fastjson.Value) error {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		return invalidType("response_format", "an object")
	}
	switch t := string(v.GetStringBytes("type")); t {
	case "text":
	case "json_object":
		d.r.ResponseFormat = &translate.ResponseFormat{Type: t}
	case "json_schema":
		js := v.Get("json_schema")
		if js == nil || js.Type() != fastjson.TypeObject {
			return translate.Invalid("response_format.json_schema", "response_format.json_schema is required")
		}
		rf := &translate.ResponseFormat{Type: t}
		var err error
		js.GetObject().Visit(func(k []byte, x *fastjson.Value) {
			if err != nil {
				return
			}
			switch string(k) {
			case "name":
				rf.Name, err = d.strOf(x, "response_format.json_schema.name")
			case "schema":
				if x.Type() != fastjson.TypeObject {
					err = invalidType("response_format.json_schema.schema", "an object")
					return
				}
				rf.Schema, err = d.schemaText(x, path{"response_format.json_schema", -1, "", -1}, ".schema")
			case "strict":
				rf.Strict = x.Type() == fastjson.TypeTrue
			case "description":
				// Text the model reads: no neutral place for it.
				if x.Type() != fastjson.TypeNull {
					err = unsupported("response_format.json_schema.description")
				}
			default:
				err = unsupported("response_format.json_schema." + string(k))
			}
		})
		if err != nil {
			return err
		}
		if rf.Name == "" {
			return translate.Invalid("response_format.json_schema.name", "response_format.json_schema.name is required")
		}
		d.r.ResponseFormat = rf
	default:
		return translate.Invalid("response_format.type", "response_format.type must be text, json_object or json_schema")
	}
	return nil
}

func (d *reqDecoder) tools(v *fastjson.Value) error {
	a, err := v.Array()
	if err != nil {
		return invalidType("tools", "an array")
	}
	d.r.Tools = make([]translate.Tool, 0, len(a))
	for i, t := range a {
		if t.Type() != fastjson.TypeObject {
			return invalidType(fmt.Sprintf("tools[%d]", i), "an object")
		}
		if typ := t.GetStringBytes("type"); string(typ) != "function" {
			return unsupported(fmt.Sprintf("tools[%d].type %q", i, typ))
		}
		f := t.Get("function")
		if f == nil || f.Type() != fastjson.TypeObject {
			return translate.Invalid(fmt.Sprintf("tools[%d].function", i), "tools[%d].function is required", i)
		}
		var tool translate.Tool
		fp := path{"tools", i, ".function", -1}
		f.GetObject().Visit(func(k []byte, x *fastjson.Value) {
			if err != nil {
				return
			}
			switch string(k) {
			case "name":
				tool.Name, err = d.strAt(x, fp, ".name")
			case "description":
				if x.Type() != fastjson.TypeNull {
					tool.Description, err = d.strAt(x, fp, ".description")
				}
			case "parameters":
				switch x.Type() {
				case fastjson.TypeNull:
				case fastjson.TypeObject:
					tool.Schema, err = d.schemaText(x, fp, ".parameters")
				default:
					err = invalidType(fmt.Sprintf("tools[%d].function.parameters", i), "an object")
				}
			case "strict":
				// Constrained decoding of the arguments: the schema
				// itself still travels (DESIGN.md).
			default:
				err = unsupported(fmt.Sprintf("tools[%d].function.%s", i, k))
			}
		})
		if err != nil {
			return err
		}
		if tool.Name == "" {
			return translate.Invalid(fmt.Sprintf("tools[%d].function.name", i), "tools[%d].function.name is required", i)
		}
		d.r.Tools = append(d.r.Tools, tool)
	}
	return nil
}

func (d *reqDecoder) toolChoice(v *fastjson.Value) error {
	tc := &d.r.ToolChoice
	switch v.Type() {
	case fastjson.TypeNull:
	case fastjson.TypeString:
		switch string(v.GetStringBytes()) {
		case "auto":
			tc.Mode = translate.ToolAuto
		case "none":
			tc.Mode = translate.ToolNone
		case "required":
			tc.Mode = translate.ToolRequired
		default:
			return translate.Invalid("tool_choice", "tool_choice must be none, auto, required or an object")
		}
	case fastjson.TypeObject:
		if typ := string(v.GetStringBytes("type")); typ != "function" {
			return unsupported("tool_choice.type " + fmt.Sprintf("%q", typ))
		}
		name := v.GetStringBytes("function", "name")
		if len(name) == 0 {
			return translate.Invalid("tool_choice.function.name", "tool_choice.function.name is required")
		}
		tc.Mode, tc.Name = translate.ToolNamed, d.str(name)
	default:
		return invalidType("tool_choice", "a string or an object")
	}
	return nil
}

// messages reads the conversation. Leading system and developer messages
// are the system prompt; later ones stay in place as RoleSystem. Tool
// messages become tool results in a user message, consecutive ones in the
// same message.
func (d *reqDecoder) messages(msgs []*fastjson.Value) error {
	r := d.r
	r.Messages = make([]translate.Message, 0, len(msgs))
	leading := true
	prevTool := false
	for i, m := range msgs {
		o, err := m.Object()
		if err != nil {
			return invalidType(fmt.Sprintf("messages[%d]", i), "an object")
		}
		role := string(m.GetStringBytes("role"))
		var bad string
		o.Visit(func(k []byte, x *fastjson.Value) {
			if bad == "" && x.Type() != fastjson.TypeNull && !messageField(role, b2s(k)) {
				bad = string(k)
			}
		})
		if bad != "" {
			return unsupported(fmt.Sprintf("messages[%d].%s", i, bad))
		}
		isTool := role == "tool"
		switch role {
		case "system", "developer":
			parts, err := d.textContent(m.Get("content"), path{"messages", i, ".content", -1})
			if err != nil {
				return err
			}
			if leading {
				r.System = append(r.System, parts...)
			} else {
				r.Messages = append(r.Messages, translate.Message{Role: translate.RoleSystem, Parts: parts})
			}
		case "user":
			leading = false
			parts, err := d.userContent(m.Get("content"), i)
			if err != nil {
				return err
			}
			r.Messages = append(r.Messages, translate.Message{Role: translate.RoleUser, Parts: parts})
		case "assistant":
			leading = false
			msg, err := d.assistant(m, i)
			if err != nil {
				return err
			}
			r.Messages = append(r.Messages, msg)
		case "tool":
			leading = false
			part, err := d.toolResult(m, i)
			if err != nil {
				return err
			}
			if prevTool {
				last := &r.Messages[len(r.Messages)-1]
				last.Parts = append(last.Parts, part)
			} else {
				r.Messages = append(r.Messages, translate.Message{Role: translate.RoleUser, Parts: []translate.Part{part}})
			}
		case "function":
			return unsupported(fmt.Sprintf("messages[%d].role function", i))
		default:
			return translate.Invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d].role must be system, developer, user, assistant or tool", i)
		}
		prevTool = isTool
	}
	return nil
}

// messageField reports whether a message of role may carry member k (a
// null member counts as absent). "name" is refused except on a tool
// message: the model reads it, and the neutral types have no place for
// it. cache_control is a caching hint some OpenAI-compatible routers
// accept.
func messageField(role, k string) bool {
	switch k {
	case "role", "content", "cache_control":
		return true
	}
	switch role {
	case "assistant":
		return k == "tool_calls" || k == "refusal" || k == "reasoning_content" || k == "reasoning"
	case "tool":
		return k == "tool_call_id" || k == "name"
	}
	return false
}

// textContent reads content that may only hold text: a string or an array
// of text parts.
func (d *reqDecoder) textContent(v *fastjson.Value, field path) ([]translate.Part, error) {
	if v == nil {
		f := field.String()
		return nil, translate.Invalid(f, "%s is required", f)
	}
	switch v.Type() {
	case fastjson.TypeString:
		return []translate.Part{{Type: translate.PartText, Text: d.str(v.GetStringBytes())}}, nil
	case fastjson.TypeArray:
		a, _ := v.Array()
		parts := make([]translate.Part, 0, len(a))
		for j, p := range a {
			if string(p.GetStringBytes("type")) != "text" {
				f := field.at(j).String()
				return nil, translate.Invalid(f, "%s must be a text part", f)
			}
			t, err := d.textPart(p, field.at(j))
			if err != nil {
				return nil, err
			}
			parts = append(parts, t)
		}
		return parts, nil
	}
	return nil, invalidType(field.String(), "a string or an array of text parts")
}

// textPart reads a {"type":"text","text":…} part.
func (d *reqDecoder) textPart(p *fastjson.Value, field path) (translate.Part, error) {
	t := p.Get("text")
	if t == nil || t.Type() != fastjson.TypeString {
		f := field.String()
		return translate.Part{}, translate.Invalid(f+".text", "%s.text must be a string", f)
	}
	if err := partFields(p, field, "text"); err != nil {
		return translate.Part{}, err
	}
	return translate.Part{Type: translate.PartText, Text: d.str(t.GetStringBytes())}, nil
}

// partFields refuses a member of a content part other than type, its
// payload member and the caching hints.
func partFields(p *fastjson.Value, field path, payload string) error {
	var bad string
	p.GetObject().Visit(func(k []byte, _ *fastjson.Value) {
		switch s := b2s(k); s {
		case "type", payload, "cache_control", "prompt_cache_breakpoint":
		default:
			if bad == "" {
				bad = string(k)
			}
		}
	})
	if bad != "" {
		return unsupported(field.String() + "." + bad)
	}
	return nil
}

func (d *reqDecoder) userContent(v *fastjson.Value, i int) ([]translate.Part, error) {
	field := path{"messages", i, ".content", -1}
	if v == nil || v.Type() != fastjson.TypeArray {
		return d.textContent(v, field)
	}
	a, _ := v.Array()
	parts := make([]translate.Part, 0, len(a))
	for j, p := range a {
		if p.Type() != fastjson.TypeObject {
			return nil, invalidType(field.at(j).String(), "an object")
		}
		switch typ := string(p.GetStringBytes("type")); typ {
		case "text":
			t, err := d.textPart(p, field.at(j))
			if err != nil {
				return nil, err
			}
			parts = append(parts, t)
		case "image_url":
			img, err := d.imagePart(p, field.at(j))
			if err != nil {
				return nil, err
			}
			parts = append(parts, img)
		case "input_audio", "file":
			return nil, unsupported(field.at(j).String() + " (" + typ + ")")
		default:
			f := field.at(j).String()
			return nil, translate.Invalid(f+".type", "%s.type must be text, image_url, input_audio or file", f)
		}
	}
	return parts, nil
}

// imagePart reads an image_url part: a data: URL becomes MediaType and
// base64 Data, any other URL stays a URL. detail (the resolution the
// upstream samples the image at) is a hint with no neutral place.
func (d *reqDecoder) imagePart(p *fastjson.Value, field path) (translate.Part, error) {
	iu := p.Get("image_url")
	var url []byte
	switch {
	case iu == nil:
	case iu.Type() == fastjson.TypeString:
		url = iu.GetStringBytes()
	case iu.Type() == fastjson.TypeObject:
		url = iu.GetStringBytes("url")
		var bad string
		iu.GetObject().Visit(func(k []byte, _ *fastjson.Value) {
			if s := b2s(k); s != "url" && s != "detail" && bad == "" {
				bad = string(k)
			}
		})
		if bad != "" {
			return translate.Part{}, unsupported(field.String() + ".image_url." + bad)
		}
	}
	if len(url) == 0 {
		f := field.String()
		return translate.Part{}, translate.Invalid(f+".image_url.url", "%s.image_url.url is required", f)
	}
	if err := partFields(p, field, "image_url"); err != nil {
		return translate.Part{}, err
	}
	s := d.str(url)
	if !strings.HasPrefix(s, "data:") {
		return translate.Part{Type: translate.PartImage, URL: s}, nil
	}
	meta, data, ok := strings.Cut(s[len("data:"):], ",")
	mt, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !isBase64 || mt == "" {
		f := field.String()
		return translate.Part{}, translate.Invalid(f+".image_url.url", "%s.image_url.url must be an http(s) URL or a data:<media type>;base64, URL", f)
	}
	return translate.Part{Type: translate.PartImage, MediaType: mt, Data: data}, nil
}

// assistant reads an assistant message: its reasoning first, then its
// text, then its tool calls, the order the model produced them in.
func (d *reqDecoder) assistant(m *fastjson.Value, i int) (translate.Message, error) {
	msg := translate.Message{Role: translate.RoleAssistant}
	mp := path{"messages", i, "", -1}
	for _, k := range [...]string{".reasoning_content", ".reasoning"} {
		if x := m.Get(k[1:]); x != nil && x.Type() != fastjson.TypeNull {
			s, err := d.strAt(x, mp, k)
			if err != nil {
				return msg, err
			}
			if s != "" {
				msg.Parts = append(msg.Parts, translate.Part{Type: translate.PartThinking, Text: s, Origin: Name})
				break
			}
		}
	}
	field := path{"messages", i, ".content", -1}
	if c := m.Get("content"); c != nil && c.Type() != fastjson.TypeNull {
		switch c.Type() {
		case fastjson.TypeString:
			if s := c.GetStringBytes(); len(s) > 0 {
				msg.Parts = append(msg.Parts, translate.Part{Type: translate.PartText, Text: d.str(s)})
			}
		case fastjson.TypeArray:
			a, _ := c.Array()
			for j, p := range a {
				switch string(p.GetStringBytes("type")) {
				case "text":
					t, err := d.textPart(p, field.at(j))
					if err != nil {
						return msg, err
					}
					msg.Parts = append(msg.Parts, t)
				case "refusal":
					msg.Parts = append(msg.Parts, translate.Part{Type: translate.PartText, Text: d.str(p.GetStringBytes("refusal"))})
				default:
					f := field.at(j).String()
					return msg, translate.Invalid(f+".type", "%s.type must be text or refusal", f)
				}
			}
		default:
			return msg, invalidType(field.String(), "a string, an array of parts or null")
		}
	}
	if x := m.Get("refusal"); x != nil && x.Type() != fastjson.TypeNull {
		s, err := d.strAt(x, mp, ".refusal")
		if err != nil {
			return msg, err
		}
		msg.Parts = append(msg.Parts, translate.Part{Type: translate.PartText, Text: s})
	}
	tcs := m.Get("tool_calls")
	if tcs == nil || tcs.Type() == fastjson.TypeNull {
		return msg, nil
	}
	a, err := tcs.Array()
	if err != nil {
		return msg, invalidType(fmt.Sprintf("messages[%d].tool_calls", i), "an array")
	}
	for j, tc := range a {
		tp := path{"messages", i, ".tool_calls", j}
		if tc.Type() != fastjson.TypeObject {
			return msg, invalidType(tp.String(), "an object")
		}
		if typ := tc.Get("type"); typ != nil && string(typ.GetStringBytes()) != "function" {
			return msg, unsupported(tp.String() + ".type")
		}
		id := tc.GetStringBytes("id")
		name := tc.GetStringBytes("function", "name")
		if len(id) == 0 || len(name) == 0 {
			f := tp.String()
			return msg, translate.Invalid(f, "%s needs an id and a function name", f)
		}
		args := tc.Get("function", "arguments")
		if args != nil && args.Type() != fastjson.TypeString {
			return msg, invalidType(tp.String()+".function.arguments", "a string")
		}
		part := translate.Part{Type: translate.PartToolCall, ID: d.str(id), Name: d.str(name)}
		if args != nil {
			part.Args = d.str(args.GetStringBytes())
		}
		if d.toolNames == nil {
			d.toolNames = make(map[string]string)
		}
		d.toolNames[part.ID] = part.Name
		msg.Parts = append(msg.Parts, part)
	}
	return msg, nil
}

// toolResult reads a tool message. Its call must come earlier, as the API
// requires; its name is the call's.
func (d *reqDecoder) toolResult(m *fastjson.Value, i int) (translate.Part, error) {
	id := d.str(m.GetStringBytes("tool_call_id"))
	if id == "" {
		return translate.Part{}, translate.Invalid(fmt.Sprintf("messages[%d].tool_call_id", i), "messages[%d].tool_call_id is required", i)
	}
	name, ok := d.toolNames[id]
	if !ok {
		return translate.Part{}, translate.Invalid(fmt.Sprintf("messages[%d].tool_call_id", i),
			"messages[%d] with role tool must answer a tool call of an earlier assistant message; no call has id %q", i, id)
	}
	content, err := d.textContent(m.Get("content"), path{"messages", i, ".content", -1})
	if err != nil {
		return translate.Part{}, err
	}
	return translate.Part{Type: translate.PartToolResult, ID: id, Name: name, Content: content}, nil
}
