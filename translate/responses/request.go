package responses

import (
	"math"
	"strconv"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// refuse is the 400 for a Responses field the gateway cannot carry to a
// model served in another format; why tells the client what to do.
func refuse(field, why string) *translate.Error {
	return &translate.Error{Status: 400, Kind: translate.ErrInvalidRequest, Param: field,
		Message: field + " is not supported when the model is served in another format: " + why}
}

// unsupportedTool is the one place deciding what becomes of a tool that is
// not a function: OpenAI's built-in tools (web_search, file_search,
// code_interpreter, computer_use, image_generation, mcp, local_shell,
// shell, apply_patch), custom (free-form) tools and namespaces run inside
// OpenAI or need its grammar, and no other upstream can run them.
func unsupportedTool(field, typ string) *translate.Error {
	return refuse(field, strconv.Quote(typ)+" tools run only on OpenAI; send function tools")
}

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
	d := reqDecoder{r: &translate.Request{}}
	var input, instructions *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch string(k) {
		case "input":
			input = v
		case "instructions":
			instructions = v
		default:
			d.field(string(k), v)
		}
	})
	if d.err != nil {
		return nil, d.err
	}
	if d.r.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	if instructions != nil && instructions.Type() != fastjson.TypeNull {
		s, ok := str(instructions)
		if !ok {
			return nil, translate.Invalid("instructions", "instructions must be a string")
		}
		d.r.System = append(d.r.System, translate.Part{Type: translate.PartText, Text: s})
	}
	if input == nil || input.Type() == fastjson.TypeNull {
		return nil, translate.Invalid("input", "input is required: this gateway keeps no conversation state")
	}
	if err := d.input(input); err != nil {
		return nil, err
	}
	return d.r, nil
}

// reqDecoder reads one request; err is the first error found.
type reqDecoder struct {
	r   *translate.Request
	err error
	// calls maps a function call's call_id to its name, so a tool result
	// can name its tool (Gemini needs it).
	calls map[string]string
}

// str reads a string member; ok is false when v is absent or another type.
func str(v *fastjson.Value) (s string, ok bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return "", false
	}
	b, _ := v.StringBytes()
	return string(b), true
}

// isNull says whether v is absent or null.
func isNull(v *fastjson.Value) bool { return v == nil || v.Type() == fastjson.TypeNull }

// field reads one top-level member other than input and instructions.
func (d *reqDecoder) field(k string, v *fastjson.Value) {
	r := d.r
	switch k {
	case "model":
		s, ok := str(v)
		if !ok {
			d.err = translate.Invalid("model", "model must be a string")
		}
		r.Model = s
	case "tools":
		d.err = d.tools(v)
	case "tool_choice":
		d.err = d.toolChoice(v)
	case "parallel_tool_calls":
		if !isNull(v) {
			b, err := v.Bool()
			if err != nil {
				d.err = translate.Invalid(k, "%s must be a boolean", k)
			}
			r.ParallelToolCalls = &b
		}
	case "max_output_tokens":
		if !isNull(v) {
			n, err := v.Int64()
			if err != nil || n < 1 {
				d.err = translate.Invalid(k, "%s must be a positive integer", k)
			}
			r.MaxTokens = n
		}
	case "temperature":
		r.Temperature, d.err = number(v, k, 2)
	case "top_p":
		r.TopP, d.err = number(v, k, 1)
	case "stream":
		if !isNull(v) {
			b, err := v.Bool()
			if err != nil {
				d.err = translate.Invalid(k, "stream must be a boolean")
			}
			r.Stream = b
		}
	case "user", "safety_identifier":
		if isNull(v) {
			return
		}
		s, ok := str(v)
		if !ok {
			d.err = translate.Invalid(k, "%s must be a string", k)
		}
		if k == "safety_identifier" || r.User == "" {
			r.User = s
		}
	case "reasoning":
		d.err = d.reasoning(v)
	case "text":
		d.err = d.text(v)
	case "background":
		if v.Type() == fastjson.TypeTrue {
			d.err = refuse(k, "a background response is stored upstream; call without background")
		}
	case "truncation":
		if s, _ := str(v); s == "auto" {
			d.err = refuse(k, `truncation "auto" needs OpenAI's context handling; shorten the input instead`)
		}
	case "previous_response_id", "conversation", "prompt":
		if s, ok := str(v); !isNull(v) && (!ok || s != "") {
			d.err = refuse(k, "this gateway keeps no stored responses, conversations or prompts; send the whole conversation in input")
		}
	case "top_logprobs":
		if n, _ := v.Int64(); n > 0 {
			d.err = refuse(k, "log probabilities are OpenAI's")
		}
	case "include":
		d.err = include(v)
	case "store", "metadata", "prompt_cache_key", "prompt_cache_retention", "service_tier",
		"client_metadata", "stream_options", "max_tool_calls":
		// Hints with no effect on the answer's content: see DESIGN.md.
	default:
		d.err = translate.Invalid(k, "unknown parameter %s", strconv.Quote(k))
	}
}

// number reads an optional sampling parameter within [0, max].
func number(v *fastjson.Value, k string, max float64) (*float64, error) {
	if isNull(v) {
		return nil, nil
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > max {
		return nil, translate.Invalid(k, "%s must be a number from 0 to %g", k, max)
	}
	return &f, nil
}

// include accepts what can be honoured: encrypted reasoning is always
// returned, and the other values concern built-in tools, which are refused
// where they are declared; only logprobs would change the answer.
func include(v *fastjson.Value) error {
	if isNull(v) {
		return nil
	}
	a, err := v.Array()
	if err != nil {
		return translate.Invalid("include", "include must be an array of strings")
	}
	for _, e := range a {
		s, ok := str(e)
		if !ok {
			return translate.Invalid("include", "include must be an array of strings")
		}
		if s == "message.output_text.logprobs" {
			return refuse("include", "log probabilities are OpenAI's")
		}
	}
	return nil
}

func (d *reqDecoder) tools(v *fastjson.Value) error {
	if isNull(v) {
		return nil
	}
	a, err := v.Array()
	if err != nil {
		return translate.Invalid("tools", "tools must be an array")
	}
	d.r.Tools = make([]translate.Tool, 0, len(a))
	for i, t := range a {
		field := "tools[" + strconv.Itoa(i) + "]"
		if t.Type() != fastjson.TypeObject {
			return translate.Invalid(field, "%s must be an object", field)
		}
		typ, ok := str(t.Get("type"))
		if !ok {
			return translate.Invalid(field+".type", "%s.type is required", field)
		}
		if typ != "function" {
			return unsupportedTool(field+".type", typ)
		}
		name, ok := str(t.Get("name"))
		if !ok || name == "" {
			return translate.Invalid(field+".name", "%s.name is required", field)
		}
		tool := translate.Tool{Name: name}
		if dv := t.Get("description"); dv != nil && !isNull(dv) {
			if tool.Description, ok = str(dv); !ok {
				return translate.Invalid(field+".description", "%s.description must be a string", field)
			}
		}
		if pv := t.Get("parameters"); pv != nil && !isNull(pv) {
			if pv.Type() != fastjson.TypeObject {
				return translate.Invalid(field+".parameters", "%s.parameters must be a JSON Schema object", field)
			}
			tool.Schema = string(pv.MarshalTo(nil))
		}
		d.r.Tools = append(d.r.Tools, tool)
	}
	return nil
}

func (d *reqDecoder) toolChoice(v *fastjson.Value) error {
	tc := &d.r.ToolChoice
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeString:
		switch s, _ := str(v); s {
		case "auto":
			tc.Mode = translate.ToolAuto
		case "none":
			tc.Mode = translate.ToolNone
		case "required":
			tc.Mode = translate.ToolRequired
		default:
			return translate.Invalid("tool_choice", `tool_choice must be "auto", "none", "required" or an object`)
		}
		return nil
	case fastjson.TypeObject:
		typ, _ := str(v.Get("type"))
		switch typ {
		case "function":
			name, ok := str(v.Get("name"))
			if !ok || name == "" {
				return translate.Invalid("tool_choice.name", "tool_choice.name is required")
			}
			tc.Mode, tc.Name = translate.ToolNamed, name
			return nil
		case "":
			return translate.Invalid("tool_choice.type", "tool_choice.type is required")
		case "allowed_tools":
			return refuse("tool_choice.type", "name one function or use auto/required")
		}
		return unsupportedTool("tool_choice.type", typ)
	}
	return translate.Invalid("tool_choice", "tool_choice must be a string or an object")
}

func (d *reqDecoder) reasoning(v *fastjson.Value) error {
	if isNull(v) {
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		return translate.Invalid("reasoning", "reasoning must be an object")
	}
	rs := &translate.Reasoning{}
	if e := v.Get("effort"); e != nil && !isNull(e) {
		s, _ := str(e)
		switch s {
		case "none":
			rs.Disabled = true
		case "minimal", "low", "medium", "high", "xhigh":
			rs.Effort = s
		default:
			return translate.Invalid("reasoning.effort", "reasoning.effort must be none, minimal, low, medium, high or xhigh")
		}
	}
	for _, k := range [...]string{"summary", "generate_summary"} {
		if e := v.Get(k); e != nil && !isNull(e) && rs.Summary == "" {
			s, _ := str(e)
			switch s {
			case "auto", "concise", "detailed":
				rs.Summary = s
			default:
				return translate.Invalid("reasoning."+k, "reasoning.%s must be auto, concise or detailed", k)
			}
		}
	}
	d.r.Reasoning = rs
	return nil
}

func (d *reqDecoder) text(v *fastjson.Value) error {
	if isNull(v) {
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		return translate.Invalid("text", "text must be an object")
	}
	if vb := v.Get("verbosity"); vb != nil && !isNull(vb) {
		switch s, _ := str(vb); s {
		case "low", "medium", "high":
		default:
			return translate.Invalid("text.verbosity", "text.verbosity must be low, medium or high")
		}
	}
	f := v.Get("format")
	if f == nil || isNull(f) {
		return nil
	}
	typ, _ := str(f.Get("type"))
	switch typ {
	case "text":
		return nil
	case "json_object":
		d.r.ResponseFormat = &translate.ResponseFormat{Type: typ}
		return nil
	case "json_schema":
		name, ok := str(f.Get("name"))
		if !ok || name == "" {
			return translate.Invalid("text.format.name", "text.format.name is required")
		}
		s := f.Get("schema")
		if s == nil || s.Type() != fastjson.TypeObject {
			return translate.Invalid("text.format.schema", "text.format.schema must be a JSON Schema object")
		}
		d.r.ResponseFormat = &translate.ResponseFormat{Type: typ, Name: name,
			Schema: string(s.MarshalTo(nil)), Strict: f.GetBool("strict")}
		return nil
	}
	return translate.Invalid("text.format.type", "text.format.type must be text, json_object or json_schema")
}

// input reads the conversation: a string is one user message; an array is
// items in order, folded into neutral messages (see DESIGN.md).
func (d *reqDecoder) input(v *fastjson.Value) error {
	if v.Type() == fastjson.TypeString {
		s, _ := str(v)
		d.r.Messages = []translate.Message{{Role: translate.RoleUser,
			Parts: []translate.Part{{Type: translate.PartText, Text: s}}}}
		return nil
	}
	items, err := v.Array()
	if err != nil {
		return translate.Invalid("input", "input must be a string or an array")
	}
	d.r.Messages = make([]translate.Message, 0, len(items))
	for i, it := range items {
		if err := d.item("input["+strconv.Itoa(i)+"]", it); err != nil {
			return err
		}
	}
	return nil
}

// last is the message the next part joins when it has role and its kind
// matches; otherwise a new message.
func (d *reqDecoder) last(role translate.Role, toolResults bool) *translate.Message {
	ms := d.r.Messages
	if n := len(ms); n > 0 && ms[n-1].Role == role {
		m := &ms[n-1]
		// Tool results gather with tool results only, so a user's own
		// message stays its own turn.
		if role != translate.RoleUser || len(m.Parts) == 0 || toolResults == (m.Parts[0].Type == translate.PartToolResult) {
			return m
		}
	}
	d.r.Messages = append(ms, translate.Message{Role: role})
	return &d.r.Messages[len(d.r.Messages)-1]
}

func (d *reqDecoder) item(field string, it *fastjson.Value) error {
	if it.Type() != fastjson.TypeObject {
		return translate.Invalid(field, "%s must be an object", field)
	}
	typ := "message"
	if tv := it.Get("type"); tv != nil {
		var ok bool
		if typ, ok = str(tv); !ok {
			return translate.Invalid(field+".type", "%s.type must be a string", field)
		}
	}
	switch typ {
	case "message":
		return d.message(field, it)
	case "function_call":
		return d.functionCall(field, it)
	case "function_call_output":
		return d.functionOutput(field, it)
	case "reasoning":
		return d.reasoningItem(field, it)
	case "item_reference":
		return refuse(field+".type", "this gateway keeps no stored items; send the item itself")
	}
	return refuse(field+".type", strconv.Quote(typ)+" items belong to OpenAI's built-in tools")
}

func (d *reqDecoder) message(field string, it *fastjson.Value) error {
	roleName, _ := str(it.Get("role"))
	var role translate.Role
	switch roleName {
	case "user":
		role = translate.RoleUser
	case "assistant":
		role = translate.RoleAssistant
	case "system", "developer":
		role = translate.RoleSystem
	default:
		return translate.Invalid(field+".role", "%s.role must be user, assistant, system or developer", field)
	}
	c := it.Get("content")
	if c == nil {
		return translate.Invalid(field+".content", "%s.content is required", field)
	}
	var parts []translate.Part
	if c.Type() == fastjson.TypeString {
		s, _ := str(c)
		parts = []translate.Part{{Type: translate.PartText, Text: s}}
	} else {
		a, err := c.Array()
		if err != nil {
			return translate.Invalid(field+".content", "%s.content must be a string or an array", field)
		}
		parts = make([]translate.Part, 0, len(a))
		for j, cv := range a {
			p, err := contentPart(field+".content["+strconv.Itoa(j)+"]", cv, role)
			if err != nil {
				return err
			}
			parts = append(parts, p)
		}
	}
	if role == translate.RoleSystem {
		// Leading system and developer messages are the system prompt.
		if len(d.r.Messages) == 0 {
			d.r.System = append(d.r.System, parts...)
			return nil
		}
		d.r.Messages = append(d.r.Messages, translate.Message{Role: role, Parts: parts})
		return nil
	}
	m := d.last(role, false)
	m.Parts = append(m.Parts, parts...)
	return nil
}

// contentPart reads one part of a message's content.
func contentPart(field string, cv *fastjson.Value, role translate.Role) (translate.Part, error) {
	if cv.Type() != fastjson.TypeObject {
		return translate.Part{}, translate.Invalid(field, "%s must be an object", field)
	}
	typ, _ := str(cv.Get("type"))
	switch typ {
	case "input_text", "output_text":
		s, ok := str(cv.Get("text"))
		if !ok {
			return translate.Part{}, translate.Invalid(field+".text", "%s.text must be a string", field)
		}
		return translate.Part{Type: translate.PartText, Text: s}, nil
	case "refusal":
		// A refusal in the history is what the assistant said.
		s, ok := str(cv.Get("refusal"))
		if !ok {
			return translate.Part{}, translate.Invalid(field+".refusal", "%s.refusal must be a string", field)
		}
		return translate.Part{Type: translate.PartText, Text: s}, nil
	case "input_image":
		if role != translate.RoleUser {
			return translate.Part{}, translate.Invalid(field+".type", "only a user message may hold an image")
		}
		return image(field, cv)
	case "input_file":
		return translate.Part{}, refuse(field+".type", "files are read by OpenAI; send their text or images")
	case "input_audio":
		return translate.Part{}, refuse(field+".type", "audio input is OpenAI's")
	}
	return translate.Part{}, translate.Invalid(field+".type", "%s.type %s is not a content part type", field, strconv.Quote(typ))
}

// image reads an input_image: a data: URL becomes base64 data, any other
// URL stays a URL; a file_id names a file stored at OpenAI.
func image(field string, cv *fastjson.Value) (translate.Part, error) {
	if fv := cv.Get("file_id"); fv != nil && !isNull(fv) {
		return translate.Part{}, refuse(field+".file_id", "the file is stored at OpenAI; send the image as a data: or http(s) URL")
	}
	u, ok := str(cv.Get("image_url"))
	if !ok || u == "" {
		return translate.Part{}, translate.Invalid(field+".image_url", "%s.image_url is required", field)
	}
	return imagePart(field+".image_url", u)
}

// imagePart splits a data: URL ("data:image/png;base64,…") into media type
// and data; another URL is kept whole.
func imagePart(field, u string) (translate.Part, error) {
	const scheme = "data:"
	if len(u) < len(scheme) || u[:len(scheme)] != scheme {
		return translate.Part{Type: translate.PartImage, URL: u}, nil
	}
	rest := u[len(scheme):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == ',' {
			meta := rest[:i]
			const b64 = ";base64"
			if len(meta) <= len(b64) || meta[len(meta)-len(b64):] != b64 {
				break
			}
			return translate.Part{Type: translate.PartImage, MediaType: meta[:len(meta)-len(b64)], Data: rest[i+1:]}, nil
		}
	}
	return translate.Part{}, translate.Invalid(field, "%s must be a base64 data: URL (data:<media type>;base64,<data>) or an http(s) URL", field)
}

func (d *reqDecoder) functionCall(field string, it *fastjson.Value) error {
	if ns := it.Get("namespace"); ns != nil && !isNull(ns) {
		return unsupportedTool(field+".namespace", "namespace")
	}
	id, ok := str(it.Get("call_id"))
	if !ok || id == "" {
		return translate.Invalid(field+".call_id", "%s.call_id is required", field)
	}
	name, ok := str(it.Get("name"))
	if !ok || name == "" {
		return translate.Invalid(field+".name", "%s.name is required", field)
	}
	args, ok := str(it.Get("arguments"))
	if !ok {
		return translate.Invalid(field+".arguments", "%s.arguments must be a string", field)
	}
	if args == "" {
		args = "{}"
	}
	if d.calls == nil {
		d.calls = make(map[string]string)
	}
	d.calls[id] = name
	m := d.last(translate.RoleAssistant, false)
	m.Parts = append(m.Parts, translate.Part{Type: translate.PartToolCall, ID: id, Name: name, Args: args})
	return nil
}

func (d *reqDecoder) functionOutput(field string, it *fastjson.Value) error {
	id, ok := str(it.Get("call_id"))
	if !ok || id == "" {
		return translate.Invalid(field+".call_id", "%s.call_id is required", field)
	}
	p := translate.Part{Type: translate.PartToolResult, ID: id, Name: d.calls[id]}
	out := it.Get("output")
	if out == nil {
		return translate.Invalid(field+".output", "%s.output is required", field)
	}
	if out.Type() == fastjson.TypeString {
		s, _ := str(out)
		p.Content = []translate.Part{{Type: translate.PartText, Text: s}}
	} else {
		a, err := out.Array()
		if err != nil {
			return translate.Invalid(field+".output", "%s.output must be a string or an array", field)
		}
		p.Content = make([]translate.Part, 0, len(a))
		for j, cv := range a {
			c, err := contentPart(field+".output["+strconv.Itoa(j)+"]", cv, translate.RoleUser)
			if err != nil {
				return err
			}
			p.Content = append(p.Content, c)
		}
	}
	m := d.last(translate.RoleUser, true)
	m.Parts = append(m.Parts, p)
	return nil
}

// reasoningItem reads a reasoning item the client got from an answer:
// its summaries (or, from models that show it, its reasoning text) and
// its encrypted_content, which only a Responses upstream can read.
func (d *reqDecoder) reasoningItem(field string, it *fastjson.Value) error {
	p := translate.Part{Type: translate.PartThinking, Origin: Format}
	text := func(k, want, key string) error {
		v := it.Get(k)
		if v == nil || isNull(v) {
			return nil
		}
		a, err := v.Array()
		if err != nil {
			return translate.Invalid(field+"."+k, "%s.%s must be an array", field, k)
		}
		for j, e := range a {
			typ, _ := str(e.Get("type"))
			s, ok := str(e.Get(key))
			if typ != want || !ok {
				return translate.Invalid(field+"."+k+"["+strconv.Itoa(j)+"]", "%s.%s[%d] must be a %s with text", field, k, j, want)
			}
			if p.Text != "" {
				p.Text += "\n\n"
			}
			p.Text += s
		}
		return nil
	}
	if err := text("summary", "summary_text", "text"); err != nil {
		return err
	}
	if p.Text == "" {
		if err := text("content", "reasoning_text", "text"); err != nil {
			return err
		}
	}
	if ev := it.Get("encrypted_content"); ev != nil && !isNull(ev) {
		enc, ok := str(ev)
		if !ok {
			return translate.Invalid(field+".encrypted_content", "%s.encrypted_content must be a string", field)
		}
		p.Type, p.Origin, p.Signature = uncarry(enc)
		if p.Type == translate.PartRedactedThinking {
			p.Text = ""
		}
	}
	m := d.last(translate.RoleAssistant, false)
	m.Parts = append(m.Parts, p)
	return nil
}
