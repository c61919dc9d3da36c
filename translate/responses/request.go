package responses

import (
	"fmt"
	"math"
	"strconv"
	"strings"

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
// shell, apply_patch) and custom (free-form) tools run inside OpenAI or
// need its grammar, and no other upstream can run them. (Namespaces are
// flattened into function tools: see namespace.)
func unsupportedTool(field, typ string) *translate.Error {
	why := strconv.Quote(typ) + " tools run only on OpenAI; send function tools"
	if typ == "web_search" {
		why += ` (Codex: web_search = "disabled" in config.toml for this model)`
	}
	return refuse(field, why)
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
	d := &reqDecoder{r: &translate.Request{}}
	o.Visit(d.member)
	if d.err != nil {
		return nil, d.err
	}
	if d.r.Model == "" {
		return nil, translate.Invalid("model", "model is required")
	}
	if !isNull(d.instructions) {
		s, ok := str(d.instructions)
		if !ok {
			return nil, translate.Invalid("instructions", "instructions must be a string")
		}
		d.r.System = append(d.r.System, translate.Part{Type: translate.PartText, Text: s})
	}
	if isNull(d.in) {
		return nil, translate.Invalid("input", "input is required: this gateway keeps no conversation state")
	}
	if err := d.input(d.in); err != nil {
		return nil, err
	}
	return d.r, nil
}

// path names a place in the request for an error message, written out
// only when an error is reported: "input[3]" or "input[3].content[1]".
type path struct {
	top string
	i   int
	// sub and j name a part inside the item, when sub is set.
	sub string
	j   int
}

func (p path) String() string {
	s := p.top + "[" + strconv.Itoa(p.i) + "]"
	if p.sub != "" {
		s += "." + p.sub + "[" + strconv.Itoa(p.j) + "]"
	}
	return s
}

// in is the path of the j-th element of the item's member sub.
func (p path) in(sub string, j int) path {
	p.sub, p.j = sub, j
	return p
}

// reqDecoder reads one request; err is the first error found.
type reqDecoder struct {
	r   *translate.Request
	err error
	// in and instructions are read after the other members: instructions
	// come first in the system prompt, and input's items need to know
	// nothing else.
	in, instructions *fastjson.Value
}

// member reads one top-level member, keeping input and instructions for
// later.
func (d *reqDecoder) member(k []byte, v *fastjson.Value) {
	if d.err != nil {
		return
	}
	switch string(k) {
	case "input":
		d.in = v
	case "instructions":
		d.instructions = v
	default:
		if name, ok := members[string(k)]; ok {
			d.field(name, v)
			return
		}
		d.err = translate.Invalid(string(k), "unknown parameter %s", strconv.Quote(string(k)))
	}
}

// members are the top-level members besides input and instructions, by
// name, so that reading one costs no copy of its name.
var members = func() map[string]string {
	m := make(map[string]string)
	for _, k := range [...]string{"model", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
		"temperature", "top_p", "stream", "user", "safety_identifier", "reasoning", "text", "background",
		"truncation", "previous_response_id", "conversation", "prompt", "top_logprobs", "include", "store",
		"metadata", "prompt_cache_key", "prompt_cache_retention", "service_tier", "client_metadata",
		"stream_options", "max_tool_calls"} {
		m[k] = k
	}
	return m
}()

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
		if peek(v) == "auto" {
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
		if e.Type() != fastjson.TypeString {
			return translate.Invalid("include", "include must be an array of strings")
		}
		s := peek(e)
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
		at := path{top: "tools", i: i}
		if t.Type() != fastjson.TypeObject {
			return translate.Invalid(at.String(), "%s must be an object", at)
		}
		typ := peek(t.Get("type"))
		if typ == "" {
			return translate.Invalid(at.String()+".type", "%s.type is required", at)
		}
		if typ == "namespace" {
			if err := d.namespace(at, t); err != nil {
				return err
			}
			continue
		}
		if typ != "function" {
			return unsupportedTool(at.String()+".type", string(typ))
		}
		tool, err := functionTool(at.String(), t, "")
		if err != nil {
			return err
		}
		d.r.Tools = append(d.r.Tools, tool)
	}
	return nil
}

// namespace flattens a namespace tool (Codex's multi_agent_v1): each of
// its functions becomes a tool named namespace + NamespaceSep + name, so
// an upstream of any format can call it; the answer's call goes back
// under its namespace (translate.SplitNamespace).
func (d *reqDecoder) namespace(at path, t *fastjson.Value) error {
	ns, ok := str(t.Get("name"))
	if !ok || ns == "" {
		return translate.Invalid(at.String()+".name", "%s.name is required", at)
	}
	inner := t.GetArray("tools")
	for j, it := range inner {
		field := fmt.Sprintf("%s.tools[%d]", at, j)
		if it.Type() != fastjson.TypeObject {
			return translate.Invalid(field, "%s must be an object", field)
		}
		if typ := peek(it.Get("type")); typ != "function" {
			return unsupportedTool(field+".type", string(typ))
		}
		tool, err := functionTool(field, it, ns+translate.NamespaceSep)
		if err != nil {
			return err
		}
		d.r.Tools = append(d.r.Tools, tool)
	}
	d.r.Namespaces = append(d.r.Namespaces, ns)
	return nil
}

// functionTool reads a function tool at field, its name prefixed.
func functionTool(field string, t *fastjson.Value, prefix string) (translate.Tool, error) {
	name, ok := str(t.Get("name"))
	if !ok || name == "" {
		return translate.Tool{}, translate.Invalid(field+".name", "%s.name is required", field)
	}
	tool := translate.Tool{Name: prefix + name}
	if dv := t.Get("description"); dv != nil && !isNull(dv) {
		if tool.Description, ok = str(dv); !ok {
			return translate.Tool{}, translate.Invalid(field+".description", "%s.description must be a string", field)
		}
	}
	if pv := t.Get("parameters"); pv != nil && !isNull(pv) {
		if pv.Type() != fastjson.TypeObject {
			return translate.Tool{}, translate.Invalid(field+".parameters", "%s.parameters must be a JSON Schema object", field)
		}
		tool.Schema = marshal(pv)
	}
	return tool, nil
}

func (d *reqDecoder) toolChoice(v *fastjson.Value) error {
	tc := &d.r.ToolChoice
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeString:
		switch peek(v) {
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
		typ := peek(v.Get("type"))
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
		return unsupportedTool("tool_choice.type", string(typ))
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
		switch s := peek(e); s {
		case "none":
			rs.Disabled = true
		case "minimal", "low", "medium", "high", "xhigh":
			rs.Effort = strings.Clone(s)
		default:
			return translate.Invalid("reasoning.effort", "reasoning.effort must be none, minimal, low, medium, high or xhigh")
		}
	}
	for _, k := range [...]string{"summary", "generate_summary"} {
		if e := v.Get(k); e != nil && !isNull(e) && rs.Summary == "" {
			switch s := peek(e); s {
			case "auto", "concise", "detailed":
				rs.Summary = strings.Clone(s)
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
		switch peek(vb) {
		case "low", "medium", "high":
		default:
			return translate.Invalid("text.verbosity", "text.verbosity must be low, medium or high")
		}
	}
	f := v.Get("format")
	if f == nil || isNull(f) {
		return nil
	}
	switch peek(f.Get("type")) {
	case "text":
		return nil
	case "json_object":
		d.r.ResponseFormat = &translate.ResponseFormat{Type: "json_object"}
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
		d.r.ResponseFormat = &translate.ResponseFormat{Type: "json_schema", Name: name,
			Schema: marshal(s), Strict: f.GetBool("strict")}
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
		if err := d.item(path{top: "input", i: i}, it); err != nil {
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

func (d *reqDecoder) item(at path, it *fastjson.Value) error {
	if it.Type() != fastjson.TypeObject {
		return translate.Invalid(at.String(), "%s must be an object", at)
	}
	typ := "message"
	if tv := it.Get("type"); tv != nil {
		if tv.Type() != fastjson.TypeString {
			return translate.Invalid(at.String()+".type", "%s.type must be a string", at)
		}
		typ = peek(tv)
	}
	switch typ {
	case "message":
		return d.message(at, it)
	case "function_call":
		return d.functionCall(at, it)
	case "function_call_output":
		return d.functionOutput(at, it)
	case "reasoning":
		return d.reasoningItem(at, it)
	case "item_reference":
		return refuse(at.String()+".type", "this gateway keeps no stored items; send the item itself")
	}
	return refuse(at.String()+".type", strconv.Quote(typ)+" items belong to OpenAI's built-in tools")
}

func (d *reqDecoder) message(at path, it *fastjson.Value) error {
	var role translate.Role
	switch peek(it.Get("role")) {
	case "user":
		role = translate.RoleUser
	case "assistant":
		role = translate.RoleAssistant
	case "system", "developer":
		role = translate.RoleSystem
	default:
		return translate.Invalid(at.String()+".role", "%s.role must be user, assistant, system or developer", at)
	}
	c := it.Get("content")
	if c == nil {
		return translate.Invalid(at.String()+".content", "%s.content is required", at)
	}
	var parts []translate.Part
	if c.Type() == fastjson.TypeString {
		s, _ := str(c)
		parts = []translate.Part{{Type: translate.PartText, Text: s}}
	} else {
		a, err := c.Array()
		if err != nil {
			return translate.Invalid(at.String()+".content", "%s.content must be a string or an array", at)
		}
		parts = make([]translate.Part, 0, len(a))
		for j, cv := range a {
			p, err := contentPart(at.in("content", j), cv, role)
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
func contentPart(at path, cv *fastjson.Value, role translate.Role) (translate.Part, error) {
	if cv.Type() != fastjson.TypeObject {
		return translate.Part{}, translate.Invalid(at.String(), "%s must be an object", at)
	}
	typ := peek(cv.Get("type"))
	switch typ {
	case "input_text", "output_text":
		s, ok := str(cv.Get("text"))
		if !ok {
			return translate.Part{}, translate.Invalid(at.String()+".text", "%s.text must be a string", at)
		}
		return translate.Part{Type: translate.PartText, Text: s}, nil
	case "refusal":
		// A refusal in the history is what the assistant said.
		s, ok := str(cv.Get("refusal"))
		if !ok {
			return translate.Part{}, translate.Invalid(at.String()+".refusal", "%s.refusal must be a string", at)
		}
		return translate.Part{Type: translate.PartText, Text: s}, nil
	case "input_image":
		if role != translate.RoleUser {
			return translate.Part{}, translate.Invalid(at.String()+".type", "only a user message may hold an image")
		}
		return image(at, cv)
	case "input_file":
		return translate.Part{}, refuse(at.String()+".type", "files are read by OpenAI; send their text or images")
	case "input_audio":
		return translate.Part{}, refuse(at.String()+".type", "audio input is OpenAI's")
	}
	return translate.Part{}, translate.Invalid(at.String()+".type", "%s.type %s is not a content part type", at, strconv.Quote(typ))
}

// image reads an input_image: a data: URL becomes base64 data, any other
// URL stays a URL; a file_id names a file stored at OpenAI.
func image(at path, cv *fastjson.Value) (translate.Part, error) {
	if fv := cv.Get("file_id"); fv != nil && !isNull(fv) {
		return translate.Part{}, refuse(at.String()+".file_id", "the file is stored at OpenAI; send the image as a data: or http(s) URL")
	}
	u, ok := str(cv.Get("image_url"))
	if !ok || u == "" {
		return translate.Part{}, translate.Invalid(at.String()+".image_url", "%s.image_url is required", at)
	}
	return imagePart(at, u)
}

// imagePart splits a data: URL ("data:image/png;base64,…") into media type
// and data; another URL is kept whole.
func imagePart(at path, u string) (translate.Part, error) {
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
	return translate.Part{}, translate.Invalid(at.String()+".image_url", "%s.image_url must be a base64 data: URL (data:<media type>;base64,<data>) or an http(s) URL", at)
}

func (d *reqDecoder) functionCall(at path, it *fastjson.Value) error {
	prefix := ""
	if nv := it.Get("namespace"); nv != nil && !isNull(nv) {
		ns, ok := str(nv)
		if !ok || ns == "" {
			return translate.Invalid(at.String()+".namespace", "%s.namespace must be a non-empty string", at)
		}
		prefix = ns + translate.NamespaceSep
	}
	id, ok := str(it.Get("call_id"))
	if !ok || id == "" {
		return translate.Invalid(at.String()+".call_id", "%s.call_id is required", at)
	}
	name, ok := str(it.Get("name"))
	if !ok || name == "" {
		return translate.Invalid(at.String()+".name", "%s.name is required", at)
	}
	args, ok := str(it.Get("arguments"))
	if !ok {
		return translate.Invalid(at.String()+".arguments", "%s.arguments must be a string", at)
	}
	if args == "" {
		args = "{}"
	}
	m := d.last(translate.RoleAssistant, false)
	m.Parts = append(m.Parts, translate.Part{Type: translate.PartToolCall, ID: id, Name: prefix + name, Args: args})
	return nil
}

// callName is the name of the function call with call_id id, so a tool
// result can name its tool (Gemini needs it); the latest call wins.
func (d *reqDecoder) callName(id string) string {
	for i := len(d.r.Messages) - 1; i >= 0; i-- {
		m := &d.r.Messages[i]
		if m.Role != translate.RoleAssistant {
			continue
		}
		for j := len(m.Parts) - 1; j >= 0; j-- {
			if p := &m.Parts[j]; p.Type == translate.PartToolCall && p.ID == id {
				return p.Name
			}
		}
	}
	return ""
}

func (d *reqDecoder) functionOutput(at path, it *fastjson.Value) error {
	id, ok := str(it.Get("call_id"))
	if !ok || id == "" {
		return translate.Invalid(at.String()+".call_id", "%s.call_id is required", at)
	}
	p := translate.Part{Type: translate.PartToolResult, ID: id, Name: d.callName(id)}
	out := it.Get("output")
	if out == nil {
		return translate.Invalid(at.String()+".output", "%s.output is required", at)
	}
	if out.Type() == fastjson.TypeString {
		s, _ := str(out)
		p.Content = []translate.Part{{Type: translate.PartText, Text: s}}
	} else {
		a, err := out.Array()
		if err != nil {
			return translate.Invalid(at.String()+".output", "%s.output must be a string or an array", at)
		}
		p.Content = make([]translate.Part, 0, len(a))
		for j, cv := range a {
			c, err := contentPart(at.in("output", j), cv, translate.RoleUser)
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
func (d *reqDecoder) reasoningItem(at path, it *fastjson.Value) error {
	p := translate.Part{Type: translate.PartThinking, Origin: Format}
	text := func(k, want, key string) error {
		v := it.Get(k)
		if v == nil || isNull(v) {
			return nil
		}
		a, err := v.Array()
		if err != nil {
			return translate.Invalid(at.String()+"."+k, "%s.%s must be an array", at, k)
		}
		for j, e := range a {
			s, ok := str(e.Get(key))
			if peek(e.Get("type")) != want || !ok {
				return translate.Invalid(at.String()+"."+k+"["+strconv.Itoa(j)+"]", "%s.%s[%d] must be a %s with text", at, k, j, want)
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
			return translate.Invalid(at.String()+".encrypted_content", "%s.encrypted_content must be a string", at)
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
