package gemini

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"zenmux/translate"
)

// DecodeRequest reads a Gemini client's generateContent body. The model
// and the stream flag are in the URL, so Request.Model and Request.Stream
// are left for the gateway to fill.
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
	box := &reqBox{}
	d := reqDecoder{r: &box.r, box: box, arena: arena{b: make([]byte, 0, len(body))}}
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch string(k) {
		case "contents":
			d.contents(v)
		case "systemInstruction", "system_instruction":
			d.system(v)
		case "tools":
			d.tools(v)
		case "toolConfig", "tool_config":
			d.toolConfig(v)
		case "generationConfig", "generation_config":
			d.generationConfig(v)
		case "safetySettings", "safety_settings", "labels", "model", "serviceTier", "service_tier", "store":
			// Hints with no neutral equivalent: see DESIGN.md.
		default:
			d.fail(translate.Unsupported(string(k), Format))
		}
	})
	if d.err != nil {
		return nil, d.err
	}
	if o.Get("contents") == nil {
		return nil, translate.Invalid("contents", "contents is required")
	}
	if rf := d.r.ResponseFormat; rf != nil && rf.Type == "json_schema" && !d.jsonMime {
		return nil, translate.Invalid("generationConfig.responseSchema", "generationConfig.responseSchema requires responseMimeType application/json")
	}
	return d.r, nil
}

// reqBox holds a decoded request and the values its pointers point at:
// one allocation for all of them.
type reqBox struct {
	r           translate.Request
	temperature float64
	topP        float64
	topK        int64
	reasoning   translate.Reasoning
	format      translate.ResponseFormat
}

type reqDecoder struct {
	r   *translate.Request
	box *reqBox
	err error
	arena
	// slab holds the messages' parts, sized before they are read.
	slab []translate.Part
	// calls are the function calls seen so far, for pairing results
	// that carry no id with the earliest unanswered call of their name.
	calls    []call
	jsonMime bool
}

type call struct {
	id, name string
	answered bool
}

func (d *reqDecoder) fail(e *translate.Error) {
	if d.err == nil {
		d.err = e
	}
}

// peek is v's string value, valid while the parser's bytes are: for
// comparisons only.
func peek(v *fastjson.Value) string {
	if v == nil || v.Type() != fastjson.TypeString {
		return ""
	}
	return view(v.GetStringBytes())
}

// loc is where a part is, for error messages.
type loc struct {
	i, j int
	kind string
}

func (l loc) at(field string) string {
	if field == "" {
		return fmt.Sprintf("contents[%d].parts[%d]", l.i, l.j)
	}
	return fmt.Sprintf("contents[%d].parts[%d].%s", l.i, l.j, field)
}

func (d *reqDecoder) contents(v *fastjson.Value) {
	arr, err := v.Array()
	if err != nil {
		d.fail(translate.Invalid("contents", "contents must be an array"))
		return
	}
	n := 0
	for _, c := range arr {
		for _, p := range c.GetArray("parts") {
			n++
			if p.Get("thoughtSignature") != nil || p.Get("thought_signature") != nil {
				n++
			}
		}
	}
	d.slab = make([]translate.Part, 0, n)
	d.r.Messages = make([]translate.Message, 0, len(arr))
	for i, c := range arr {
		o, err := c.Object()
		if err != nil {
			d.fail(translate.Invalid(fmt.Sprintf("contents[%d]", i), "contents[%d] must be an object", i))
			return
		}
		m := translate.Message{Role: translate.RoleUser}
		switch role := peek(o.Get("role")); role {
		case "", "user", "function":
		case "model":
			m.Role = translate.RoleAssistant
		default:
			d.fail(translate.Invalid(fmt.Sprintf("contents[%d].role", i), "contents[%d].role must be \"user\" or \"model\", not %q", i, role))
			return
		}
		parts := o.Get("parts")
		if parts == nil || parts.Type() != fastjson.TypeArray {
			d.fail(translate.Invalid(fmt.Sprintf("contents[%d].parts", i), "contents[%d].parts must be an array", i))
			return
		}
		o.Visit(func(k []byte, _ *fastjson.Value) {
			switch string(k) {
			case "role", "parts":
			default:
				d.fail(translate.Unsupported(fmt.Sprintf("contents[%d].%s", i, k), Format))
			}
		})
		start := len(d.slab)
		pa, _ := parts.Array()
		for j, pv := range pa {
			d.slab = d.part(d.slab, m.Role, pv, i, j)
			if d.err != nil {
				return
			}
		}
		if end := len(d.slab); end > start {
			m.Parts = d.slab[start:end:end]
			d.r.Messages = append(d.r.Messages, m)
		}
	}
}

// part appends the neutral parts of contents[i].parts[j] to ps.
func (d *reqDecoder) part(ps []translate.Part, role translate.Role, pv *fastjson.Value, i, j int) []translate.Part {
	l := loc{i: i, j: j}
	o, err := pv.Object()
	if err != nil {
		d.fail(translate.Invalid(l.at(""), "%s must be an object", l.at("")))
		return ps
	}
	var (
		text, sig *fastjson.Value
		thought   bool
		kind      *fastjson.Value
	)
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch string(k) {
		case "text":
			if v.Type() != fastjson.TypeString {
				d.fail(translate.Invalid(l.at("text"), "%s must be a string", l.at("text")))
				return
			}
			text = v
		case "thought":
			thought = v.Type() == fastjson.TypeTrue
		case "thoughtSignature", "thought_signature":
			sig = v
		case "inlineData", "inline_data", "fileData", "file_data", "functionCall", "function_call", "functionResponse", "function_response":
			if kind != nil {
				d.fail(translate.Invalid(l.at(""), "%s must hold one kind of data, not %s and %s", l.at(""), l.kind, k))
				return
			}
			kind, l.kind = v, dataKind(k)
		case "partMetadata", "part_metadata":
		default:
			d.fail(translate.Unsupported(l.at(string(k)), Format))
		}
	})
	if d.err != nil {
		return ps
	}
	if text != nil && kind != nil {
		d.fail(translate.Invalid(l.at(""), "%s must hold one kind of data, not text and %s", l.at(""), l.kind))
		return ps
	}
	model := role == translate.RoleAssistant
	if thought {
		if !model {
			d.fail(translate.Invalid(l.at("thought"), "%s: thought parts belong to model contents", l.at("thought")))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartThinking, Text: d.str(text), Signature: d.str(sig), Origin: Format})
	}
	// A signature on a text or call part travels on an empty thinking
	// part just before it (signatures in user contents are not Gemini's
	// and are dropped).
	if s := d.str(sig); model && s != "" {
		ps = append(ps, translate.Part{Type: translate.PartThinking, Signature: s, Origin: Format})
	}
	if kind == nil {
		if t := d.str(text); t != "" {
			ps = append(ps, translate.Part{Type: translate.PartText, Text: t})
		}
		return ps
	}
	ko, err := kind.Object()
	if err != nil {
		d.fail(translate.Invalid(l.at(l.kind), "%s must be an object", l.at(l.kind)))
		return ps
	}
	switch l.kind {
	case "inlineData":
		mt, data := get(ko, "mimeType", "mime_type"), ko.Get("data")
		if !strings.HasPrefix(peek(mt), "image/") {
			d.fail(translate.Unsupported(l.at(l.kind)+" ("+peek(mt)+")", Format))
			return ps
		}
		if peek(data) == "" {
			d.fail(translate.Invalid(l.at(l.kind+".data"), "%s.data is required", l.at(l.kind)))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartImage, MediaType: d.str(mt), Data: d.str(data)})
	case "fileData":
		mt, uri := get(ko, "mimeType", "mime_type"), get(ko, "fileUri", "file_uri")
		if m, u := peek(mt), peek(uri); !strings.HasPrefix(m, "image/") || !(strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) ||
			strings.HasPrefix(u, "https://generativelanguage.googleapis.com/") {
			// Only a public image URL can be fetched by another
			// provider: not a Files API or gs:// URI, not video.
			d.fail(translate.Unsupported(l.at(l.kind)+" ("+m+" "+u+")", Format))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartImage, MediaType: d.str(mt), URL: d.str(uri)})
	case "functionCall":
		if !model {
			d.fail(translate.Invalid(l.at(l.kind), "%s: function calls belong to model contents", l.at(l.kind)))
			return ps
		}
		return d.functionCall(ps, ko, l)
	default:
		if model {
			d.fail(translate.Invalid(l.at(l.kind), "%s: function responses belong to user contents", l.at(l.kind)))
			return ps
		}
		return d.functionResponse(ps, ko, l)
	}
}

// dataKind is a part's data field's camelCase name.
func dataKind(k []byte) string {
	switch string(k) {
	case "inlineData", "inline_data":
		return "inlineData"
	case "fileData", "file_data":
		return "fileData"
	case "functionCall", "function_call":
		return "functionCall"
	}
	return "functionResponse"
}

func (d *reqDecoder) functionCall(ps []translate.Part, o *fastjson.Object, l loc) []translate.Part {
	name := d.str(o.Get("name"))
	if name == "" {
		d.fail(translate.Invalid(l.at(l.kind+".name"), "%s.name is required", l.at(l.kind)))
		return ps
	}
	args := "{}"
	if a := o.Get("args"); a != nil && a.Type() != fastjson.TypeNull {
		if a.Type() != fastjson.TypeObject {
			d.fail(translate.Invalid(l.at(l.kind+".args"), "%s.args must be an object", l.at(l.kind)))
			return ps
		}
		args = d.raw(a)
	}
	o.Visit(func(k []byte, _ *fastjson.Value) {
		switch string(k) {
		case "id", "name", "args":
		default:
			d.fail(translate.Unsupported(l.at(l.kind+"."+string(k)), Format))
		}
	})
	id := d.str(o.Get("id"))
	if id == "" {
		id = synthID("", len(d.calls)+1)
	}
	d.calls = append(d.calls, call{id: id, name: name})
	return append(ps, translate.Part{Type: translate.PartToolCall, ID: id, Name: name, Args: args})
}

func (d *reqDecoder) functionResponse(ps []translate.Part, o *fastjson.Object, l loc) []translate.Part {
	name := d.str(o.Get("name"))
	if name == "" {
		d.fail(translate.Invalid(l.at(l.kind+".name"), "%s.name is required", l.at(l.kind)))
		return ps
	}
	p := translate.Part{Type: translate.PartToolResult, Name: name, ID: d.str(o.Get("id"))}
	if p.ID != "" {
		for k := range d.calls {
			if d.calls[k].id == p.ID {
				d.calls[k].answered = true
				break
			}
		}
	} else {
		for k := range d.calls {
			if c := &d.calls[k]; !c.answered && c.name == name {
				c.answered, p.ID = true, c.id
				break
			}
		}
		if p.ID == "" {
			d.fail(translate.Invalid(l.at(l.kind), "%s (%s) answers no earlier function call of that name", l.at(l.kind), name))
			return ps
		}
	}
	text := "{}"
	if r := o.Get("response"); r != nil && r.Type() != fastjson.TypeNull {
		ro, err := r.Object()
		if err != nil {
			d.fail(translate.Invalid(l.at(l.kind+".response"), "%s.response must be an object", l.at(l.kind)))
			return ps
		}
		p.IsError = ro.Get("error") != nil
		text = d.raw(r)
	}
	parts := o.Get("parts")
	pa := parts.GetArray()
	if parts != nil && pa == nil && parts.Type() != fastjson.TypeArray {
		d.fail(translate.Invalid(l.at(l.kind+".parts"), "%s.parts must be an array", l.at(l.kind)))
		return ps
	}
	p.Content = make([]translate.Part, 1, 1+len(pa))
	p.Content[0] = translate.Part{Type: translate.PartText, Text: text}
	for k, pv := range pa {
		inline := pv.Get("inlineData")
		if inline == nil {
			inline = pv.Get("inline_data")
		}
		mt := inline.Get("mimeType")
		if mt == nil {
			mt = inline.Get("mime_type")
		}
		if !strings.HasPrefix(peek(mt), "image/") || peek(inline.Get("data")) == "" {
			d.fail(translate.Unsupported(fmt.Sprintf("%s.parts[%d]", l.at(l.kind), k), Format))
			return ps
		}
		p.Content = append(p.Content, translate.Part{Type: translate.PartImage, MediaType: d.str(mt), Data: d.str(inline.Get("data"))})
	}
	o.Visit(func(k []byte, _ *fastjson.Value) {
		switch string(k) {
		case "id", "name", "response", "parts":
		default:
			d.fail(translate.Unsupported(l.at(l.kind+"."+string(k)), Format))
		}
	})
	return append(ps, p)
}

func (d *reqDecoder) system(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		d.fail(translate.Invalid("systemInstruction", "systemInstruction must be an object"))
		return
	}
	pv := o.Get("parts")
	if pv == nil || pv.Type() != fastjson.TypeArray {
		d.fail(translate.Invalid("systemInstruction.parts", "systemInstruction.parts must be an array"))
		return
	}
	pa, _ := pv.Array()
	d.r.System = make([]translate.Part, 0, len(pa))
	for j, pv := range pa {
		po, err := pv.Object()
		ok := err == nil
		if ok {
			po.Visit(func(k []byte, _ *fastjson.Value) {
				switch string(k) {
				case "text", "partMetadata", "part_metadata":
				default:
					ok = false
				}
			})
		}
		tv := pv.Get("text")
		if !ok || tv == nil || tv.Type() != fastjson.TypeString {
			d.fail(translate.Unsupported(fmt.Sprintf("systemInstruction.parts[%d] (not text)", j), Format))
			return
		}
		if t := d.str(tv); t != "" {
			d.r.System = append(d.r.System, translate.Part{Type: translate.PartText, Text: t})
		}
	}
}

func (d *reqDecoder) tools(v *fastjson.Value) {
	arr, err := v.Array()
	if err != nil {
		d.fail(translate.Invalid("tools", "tools must be an array"))
		return
	}
	n := 0
	for _, tv := range arr {
		n += len(tv.GetArray("functionDeclarations")) + len(tv.GetArray("function_declarations"))
	}
	d.r.Tools = make([]translate.Tool, 0, n)
	for i, tv := range arr {
		o, err := tv.Object()
		if err != nil {
			d.fail(translate.Invalid(fmt.Sprintf("tools[%d]", i), "tools[%d] must be an object", i))
			return
		}
		o.Visit(func(k []byte, v *fastjson.Value) {
			if d.err != nil {
				return
			}
			switch string(k) {
			case "functionDeclarations", "function_declarations":
				d.declarations(v, i, k)
			default:
				// googleSearch, codeExecution, urlContext, fileSearch…:
				// tools the model's provider runs, with no neutral form.
				d.fail(translate.Unsupported(fmt.Sprintf("tools[%d].%s", i, k), Format))
			}
		})
	}
}

func (d *reqDecoder) declarations(v *fastjson.Value, ti int, key []byte) {
	path := func(i int, f string) string {
		if i < 0 {
			return fmt.Sprintf("tools[%d].%s", ti, key)
		}
		return fmt.Sprintf("tools[%d].%s[%d]%s", ti, key, i, f)
	}
	arr, err := v.Array()
	if err != nil {
		d.fail(translate.Invalid(path(-1, ""), "%s must be an array", path(-1, "")))
		return
	}
	for i, fv := range arr {
		o, err := fv.Object()
		if err != nil {
			d.fail(translate.Invalid(path(i, ""), "%s must be an object", path(i, "")))
			return
		}
		t := translate.Tool{Name: d.str(o.Get("name")), Description: d.str(o.Get("description"))}
		if t.Name == "" {
			d.fail(translate.Invalid(path(i, ".name"), "%s is required", path(i, ".name")))
			return
		}
		var params, raw *fastjson.Value
		o.Visit(func(k []byte, v *fastjson.Value) {
			switch string(k) {
			case "name", "description", "response", "responseJsonSchema", "response_json_schema", "behavior":
			case "parameters":
				params = v
			case "parametersJsonSchema", "parameters_json_schema":
				raw = v
			default:
				d.fail(translate.Unsupported(path(i, "."+string(k)), Format))
			}
		})
		switch {
		case params != nil && raw != nil:
			d.fail(translate.Invalid(path(i, ".parameters"), "%s: set parameters or parametersJsonSchema, not both", path(i, "")))
		case params != nil && params.Type() != fastjson.TypeNull:
			if params.Type() != fastjson.TypeObject {
				d.fail(translate.Invalid(path(i, ".parameters"), "%s must be an object", path(i, ".parameters")))
				return
			}
			start := len(d.b)
			d.b = appendSchema(d.b, params)
			t.Schema = view(d.b[start:])
		case raw != nil && raw.Type() != fastjson.TypeNull:
			t.Schema = d.raw(raw)
		}
		d.r.Tools = append(d.r.Tools, t)
	}
}

func (d *reqDecoder) toolConfig(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		d.fail(translate.Invalid("toolConfig", "toolConfig must be an object"))
		return
	}
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "functionCallingConfig", "function_calling_config":
			d.callingConfig(v)
		case "retrievalConfig", "retrieval_config", "includeServerSideToolInvocations", "include_server_side_tool_invocations":
			// Settings of the provider-run tools, which are refused.
		default:
			d.fail(translate.Unsupported("toolConfig."+string(k), Format))
		}
	})
}

func (d *reqDecoder) callingConfig(v *fastjson.Value) {
	const path = "toolConfig.functionCallingConfig"
	o, err := v.Object()
	if err != nil {
		d.fail(translate.Invalid(path, "%s must be an object", path))
		return
	}
	var names []*fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "mode":
		case "allowedFunctionNames", "allowed_function_names":
			a, err := v.Array()
			if err != nil {
				d.fail(translate.Invalid(path+".allowedFunctionNames", "%s.allowedFunctionNames must be an array", path))
			}
			names = a
		case "streamFunctionCallArguments", "stream_function_call_arguments":
			if v.Type() == fastjson.TypeTrue {
				d.fail(translate.Unsupported(path+".streamFunctionCallArguments", Format))
			}
		default:
			d.fail(translate.Unsupported(path+"."+string(k), Format))
		}
	})
	tc := &d.r.ToolChoice
	switch mode := peek(o.Get("mode")); strings.ToUpper(mode) {
	case "", "MODE_UNSPECIFIED":
	case "AUTO", "VALIDATED":
		tc.Mode = translate.ToolAuto
	case "NONE":
		tc.Mode = translate.ToolNone
	case "ANY":
		tc.Mode = translate.ToolRequired
		switch len(names) {
		case 0:
		case 1:
			tc.Mode, tc.Name = translate.ToolNamed, d.str(names[0])
		default:
			d.fail(translate.Unsupported(path+".allowedFunctionNames (more than one)", Format))
		}
		return
	default:
		d.fail(translate.Invalid(path+".mode", "%s.mode %q is not AUTO, ANY, NONE or VALIDATED", path, mode))
		return
	}
	if len(names) > 0 {
		d.fail(translate.Unsupported(path+".allowedFunctionNames (without mode ANY)", Format))
	}
}

func (d *reqDecoder) generationConfig(v *fastjson.Value) {
	o, err := v.Object()
	if err != nil {
		d.fail(translate.Invalid("generationConfig", "generationConfig must be an object"))
		return
	}
	r, box := d.r, d.box
	var schema string
	path := func(k []byte) string { return "generationConfig." + string(k) }
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch string(k) {
		case "maxOutputTokens", "max_output_tokens":
			r.MaxTokens = d.integer(v, k)
		case "temperature":
			if d.float(v, k, &box.temperature) {
				r.Temperature = &box.temperature
			}
		case "topP", "top_p":
			if d.float(v, k, &box.topP) {
				r.TopP = &box.topP
			}
		case "topK", "top_k":
			if v.Type() != fastjson.TypeNull {
				box.topK = d.integer(v, k)
				r.TopK = &box.topK
			}
		case "stopSequences", "stop_sequences":
			a, err := v.Array()
			if err != nil {
				d.fail(translate.Invalid(path(k), "%s must be an array of strings", path(k)))
				return
			}
			r.Stop = make([]string, 0, len(a))
			for _, s := range a {
				if s.Type() != fastjson.TypeString {
					d.fail(translate.Invalid(path(k), "%s must be an array of strings", path(k)))
					return
				}
				r.Stop = append(r.Stop, d.str(s))
			}
		case "candidateCount", "candidate_count":
			if n := d.integer(v, k); n > 1 {
				d.fail(translate.Unsupported(path(k)+" above 1", Format))
			}
		case "presencePenalty", "presence_penalty", "frequencyPenalty", "frequency_penalty":
			var f float64
			if d.float(v, k, &f) && f != 0 {
				d.fail(translate.Unsupported(path(k), Format))
			}
		case "responseLogprobs", "response_logprobs":
			if v.Type() == fastjson.TypeTrue {
				d.fail(translate.Unsupported(path(k), Format))
			}
		case "responseMimeType", "response_mime_type":
			switch mt := peek(v); mt {
			case "", "text/plain":
			case "application/json":
				d.jsonMime = true
			default:
				d.fail(translate.Unsupported(path(k)+" "+mt, Format))
			}
		case "responseSchema", "response_schema":
			if v.Type() != fastjson.TypeObject {
				d.fail(translate.Invalid(path(k), "%s must be an object", path(k)))
				return
			}
			start := len(d.b)
			d.b = appendSchema(d.b, v)
			schema = view(d.b[start:])
		case "responseJsonSchema", "response_json_schema":
			schema = d.raw(v)
		case "responseModalities", "response_modalities":
			for _, m := range v.GetArray() {
				if !strings.EqualFold(peek(m), "TEXT") {
					d.fail(translate.Unsupported(path(k)+" "+m.String(), Format))
					return
				}
			}
		case "thinkingConfig", "thinking_config":
			d.thinking(v)
		default:
			// seed, logprobs, speechConfig, imageConfig, mediaResolution…
			d.fail(translate.Unsupported(path(k), Format))
		}
	})
	if d.err != nil {
		return
	}
	switch {
	case schema != "":
		box.format = translate.ResponseFormat{Type: "json_schema", Name: "response", Schema: schema}
		r.ResponseFormat = &box.format
	case d.jsonMime:
		box.format = translate.ResponseFormat{Type: "json_object"}
		r.ResponseFormat = &box.format
	}
}

func (d *reqDecoder) thinking(v *fastjson.Value) {
	const path = "generationConfig.thinkingConfig"
	o, err := v.Object()
	if err != nil {
		d.fail(translate.Invalid(path, "%s must be an object", path))
		return
	}
	var budget, level *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "thinkingBudget", "thinking_budget":
			budget = v
		case "thinkingLevel", "thinking_level":
			level = v
		case "includeThoughts", "include_thoughts":
			// The thought parts this codec writes are marked thought:
			// true, which a client not asking for them skips.
		default:
			d.fail(translate.Unsupported(path+"."+string(k), Format))
		}
	})
	if d.err != nil {
		return
	}
	if budget != nil && level != nil {
		d.fail(translate.Invalid(path, "%s: set thinkingBudget or thinkingLevel, not both", path))
		return
	}
	rs := &d.box.reasoning
	switch {
	case budget != nil:
		n := d.integer(budget, []byte("thinkingConfig.thinkingBudget"))
		switch {
		case n == 0:
			rs.Disabled = true
		case n < 0:
			// -1 is dynamic thinking: the model decides.
			rs.Effort = "medium"
		default:
			rs.BudgetTokens = n
		}
		d.r.Reasoning = rs
	case level != nil:
		switch l := strings.ToLower(peek(level)); l {
		case "minimal", "low", "medium", "high":
			rs.Effort = effortWord(l)
			d.r.Reasoning = rs
		case "", "thinking_level_unspecified":
		default:
			d.fail(translate.Unsupported(path+".thinkingLevel "+strings.ToUpper(l), Format))
		}
	}
}

// effortWord is the constant spelling of an effort (l is a transient
// string).
func effortWord(l string) string {
	switch l {
	case "minimal":
		return "minimal"
	case "low":
		return "low"
	case "medium":
		return "medium"
	}
	return "high"
}

// integer reads a whole number (written as 3, 3.0 or "3", as protobuf's
// JSON allows) at generationConfig.<k>.
func (d *reqDecoder) integer(v *fastjson.Value, k []byte) int64 {
	switch v.Type() {
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil && f == float64(int64(f)) {
			return int64(f)
		}
	case fastjson.TypeString:
		if n, err := strconv.ParseInt(peek(v), 10, 64); err == nil {
			return n
		}
	case fastjson.TypeNull:
		return 0
	}
	d.fail(translate.Invalid("generationConfig."+string(k), "generationConfig.%s must be an integer", k))
	return 0
}

// float reads a number into f, reporting whether one was set (null is
// none).
func (d *reqDecoder) float(v *fastjson.Value, k []byte, f *float64) bool {
	if v.Type() == fastjson.TypeNull {
		return false
	}
	x, err := v.Float64()
	if err != nil {
		d.fail(translate.Invalid("generationConfig."+string(k), "generationConfig.%s must be a number", k))
		return false
	}
	*f = x
	return true
}

// appendSchema writes Gemini's OpenAPI-subset Schema v as JSON Schema:
// UPPERCASE types lowercased, nullable as a "null" type, example as
// examples, integers written as strings (protobuf's int64) as numbers;
// propertyOrdering, a Gemini-only ordering hint, is left out.
func appendSchema(dst []byte, v *fastjson.Value) []byte {
	o, err := v.Object()
	if err != nil {
		return v.MarshalTo(dst)
	}
	nullable := false
	if n := o.Get("nullable"); n != nil && n.Type() == fastjson.TypeTrue {
		nullable = true
	}
	dst = append(dst, '{')
	first := true
	o.Visit(func(k []byte, v *fastjson.Value) {
		key := schemaKey(k)
		switch key {
		case "nullable", "propertyOrdering":
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if key == "example" {
			dst = append(dst, `"examples":[`...)
			dst = v.MarshalTo(dst)
			dst = append(dst, ']')
			return
		}
		dst = translate.AppendString(dst, key)
		dst = append(dst, ':')
		switch key {
		case "type":
			if v.Type() != fastjson.TypeString {
				dst = v.MarshalTo(dst)
				return
			}
			t := strings.ToLower(peek(v))
			if nullable && t != "null" {
				dst = append(dst, '[')
				dst = translate.AppendString(dst, t)
				dst = append(dst, `,"null"]`...)
				return
			}
			dst = translate.AppendString(dst, t)
		case "properties", "$defs", "definitions":
			po, err := v.Object()
			if err != nil {
				dst = v.MarshalTo(dst)
				return
			}
			dst = append(dst, '{')
			n := 0
			po.Visit(func(pk []byte, pv *fastjson.Value) {
				if n > 0 {
					dst = append(dst, ',')
				}
				n++
				dst = translate.AppendBytes(dst, pk)
				dst = append(dst, ':')
				dst = appendSchema(dst, pv)
			})
			dst = append(dst, '}')
		case "items", "additionalProperties", "not":
			dst = appendSchema(dst, v)
		case "anyOf", "oneOf", "allOf", "prefixItems":
			a, err := v.Array()
			if err != nil {
				dst = v.MarshalTo(dst)
				return
			}
			dst = append(dst, '[')
			for i, s := range a {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendSchema(dst, s)
			}
			dst = append(dst, ']')
		case "minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties":
			if n, err := strconv.ParseInt(peek(v), 10, 64); err == nil && v.Type() == fastjson.TypeString {
				dst = strconv.AppendInt(dst, n, 10)
				return
			}
			dst = v.MarshalTo(dst)
		default:
			dst = v.MarshalTo(dst)
		}
	})
	return append(dst, '}')
}

// schemaKey is a Schema field's camelCase name; view(k) is safe to return
// as it is only used while k lives.
func schemaKey(k []byte) string {
	switch string(k) {
	case "any_of":
		return "anyOf"
	case "property_ordering":
		return "propertyOrdering"
	case "min_items":
		return "minItems"
	case "max_items":
		return "maxItems"
	case "min_length":
		return "minLength"
	case "max_length":
		return "maxLength"
	case "min_properties":
		return "minProperties"
	case "max_properties":
		return "maxProperties"
	}
	return view(k)
}

// EncodeRequest writes a generateContent body for a gemini upstream. The
// model and the stream flag travel in the URL, which the gateway builds
// from upstream, so the body is the same whether the call streams or not.
func (codec) EncodeRequest(dst []byte, r *translate.Request, _ string) ([]byte, error) {
	dst = append(dst, `{"contents":[`...)
	// Adjacent messages of one role make one content: Gemini wants all
	// the responses to a turn's calls in the content after it. A content
	// left without parts (only thinking of another origin) is dropped,
	// which may join its neighbours.
	var (
		err         error
		role        string // the open content's, "" when none is
		t           turn
		start       int // where the open content begins, comma included
		n           int // contents closed
		prevRole    string
		prevT       turn
		prevEnd     int // where the last closed content's "]}" begins
		openContent = func(g string) {
			start = len(dst)
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"role":"`...)
			dst = append(dst, g...)
			dst = append(dst, `","parts":[`...)
			role, t = g, turn{}
		}
	)
	for mi := range r.Messages {
		m := &r.Messages[mi]
		if m.Role == translate.RoleSystem {
			continue
		}
		g := "user"
		if m.Role == translate.RoleAssistant {
			g = "model"
		}
		switch {
		case g == role:
		case role != "" && t.parts == 0:
			dst, role = dst[:start], ""
			if n > 0 && prevRole == g {
				dst, n, role, t = dst[:prevEnd], n-1, g, prevT
			} else {
				openContent(g)
			}
		default:
			if role != "" {
				prevEnd, prevRole, prevT = len(dst), role, t
				dst = append(dst, "]}"...)
				n++
			}
			openContent(g)
		}
		if dst, err = appendParts(dst, r.Messages[:mi], m.Parts, false, &t); err != nil {
			return dst, err
		}
	}
	if role != "" {
		if t.parts > 0 {
			dst = append(dst, "]}"...)
		} else {
			dst = dst[:start]
		}
	}
	dst = append(dst, ']')
	if dst, err = appendSystem(dst, r); err != nil {
		return dst, err
	}
	if len(r.Tools) > 0 {
		dst = append(dst, `,"tools":[{"functionDeclarations":[`...)
		for i := range r.Tools {
			t := &r.Tools[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"name":`...)
			dst = translate.AppendString(dst, t.Name)
			if t.Description != "" {
				dst = append(dst, `,"description":`...)
				dst = translate.AppendString(dst, t.Description)
			}
			if t.Schema != "" {
				if !validObject(t.Schema) {
					return dst, translate.Invalid("tools", "the parameters of tool %q are not a JSON object", t.Name)
				}
				dst = append(dst, `,"parametersJsonSchema":`...)
				dst = append(dst, t.Schema...)
			}
			dst = append(dst, '}')
		}
		dst = append(dst, "]}]"...)
		if mode := toolMode(r.ToolChoice.Mode); mode != "" {
			dst = append(dst, `,"toolConfig":{"functionCallingConfig":{"mode":"`...)
			dst = append(dst, mode...)
			dst = append(dst, '"')
			if r.ToolChoice.Mode == translate.ToolNamed {
				dst = append(dst, `,"allowedFunctionNames":[`...)
				dst = translate.AppendString(dst, r.ToolChoice.Name)
				dst = append(dst, ']')
			}
			dst = append(dst, "}}"...)
		}
	}
	if dst, err = appendGenerationConfig(dst, r); err != nil {
		return dst, err
	}
	return append(dst, '}'), nil
}

func toolMode(m translate.ToolMode) string {
	switch m {
	case translate.ToolAuto:
		return "AUTO"
	case translate.ToolNone:
		return "NONE"
	case translate.ToolRequired, translate.ToolNamed:
		return "ANY"
	}
	return ""
}

// appendSystem writes systemInstruction: the system prompt and, after
// it, the later system messages (Gemini has no system turn).
func appendSystem(dst []byte, r *translate.Request) ([]byte, error) {
	n := 0
	add := func(ps []translate.Part) error {
		for i := range ps {
			p := &ps[i]
			if p.Type != translate.PartText {
				return translate.Unsupported("a system message's non-text content", Format)
			}
			if p.Text == "" {
				continue
			}
			if n == 0 {
				dst = append(dst, `,"systemInstruction":{"parts":[`...)
			} else {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, `{"text":`...)
			dst = translate.AppendString(dst, p.Text)
			dst = append(dst, '}')
		}
		return nil
	}
	if err := add(r.System); err != nil {
		return dst, err
	}
	for i := range r.Messages {
		if r.Messages[i].Role == translate.RoleSystem {
			if err := add(r.Messages[i].Parts); err != nil {
				return dst, err
			}
		}
	}
	if n > 0 {
		dst = append(dst, "]}"...)
	}
	return dst, nil
}

// appendParts writes a content's parts; earlier are the messages before
// it, where a tool result's call is looked up. A Gemini thinking part
// without text carries the signature of the part after it. In a request
// (answer false) thinking of other formats is dropped (Gemini reads no
// unsigned thoughts), the first function call of a model turn without a
// signature gets the dummy one, and arguments that are not a JSON object
// are refused. In an answer, which cannot fail, other formats' thinking
// is thought text and bad arguments are written as {}.
func appendParts(dst []byte, earlier []translate.Message, ps []translate.Part, answer bool, t *turn) ([]byte, error) {
	pending := ""
	sep := func() {
		if t.parts > 0 {
			dst = append(dst, ',')
		}
		t.parts++
	}
	sig := func() {
		if pending != "" {
			dst = append(dst, `,"thoughtSignature":`...)
			dst = translate.AppendString(dst, pending)
			pending = ""
		}
	}
	flush := func() {
		if pending != "" {
			sep()
			dst = append(dst, `{"text":""`...)
			sig()
			dst = append(dst, '}')
		}
	}
	var err error
	for i := range ps {
		p := &ps[i]
		switch p.Type {
		case translate.PartThinking:
			if p.Origin != Format {
				if !answer || p.Text == "" {
					continue
				}
				// An answer shows another format's thinking as thought
				// text; its signature means nothing here.
				p = &translate.Part{Type: translate.PartThinking, Text: p.Text}
			}
			if p.Text == "" {
				if p.Signature != "" {
					flush()
					pending = p.Signature
				}
				continue
			}
			if p.Signature != "" {
				flush()
				pending = p.Signature
			}
			sep()
			dst = append(dst, `{"text":`...)
			dst = translate.AppendString(dst, p.Text)
			dst = append(dst, `,"thought":true`...)
			sig()
			dst = append(dst, '}')
		case translate.PartText:
			if p.Text == "" {
				continue
			}
			sep()
			dst = append(dst, `{"text":`...)
			dst = translate.AppendString(dst, p.Text)
			sig()
			dst = append(dst, '}')
		case translate.PartImage:
			if answer {
				continue
			}
			sep()
			if dst, err = appendImage(dst, p, "contents.parts"); err != nil {
				return dst, err
			}
			dst = dst[:len(dst)-1]
			sig()
			dst = append(dst, '}')
		case translate.PartToolCall:
			t.calls++
			if t.calls == 1 && pending == "" && !answer {
				pending = dummySignature
			}
			args := p.Args
			if !validObject(args) {
				if args != "" && !answer {
					return dst, translate.Invalid("tool_calls", "the arguments of tool call %q (%s) are not a JSON object", p.ID, p.Name)
				}
				args = "{}"
			}
			sep()
			dst = append(dst, `{"functionCall":{`...)
			if id := realID(p.ID); id != "" {
				dst = append(dst, `"id":`...)
				dst = translate.AppendString(dst, id)
				dst = append(dst, ',')
			}
			dst = append(dst, `"name":`...)
			dst = translate.AppendString(dst, p.Name)
			dst = append(dst, `,"args":`...)
			dst = append(dst, args...)
			dst = append(dst, '}')
			sig()
			dst = append(dst, '}')
		case translate.PartToolResult:
			name := p.Name
			if name == "" {
				name = callName(earlier, p.ID)
			}
			if name == "" {
				return dst, translate.Invalid("tool_result", "tool result %q answers no earlier tool call", p.ID)
			}
			flush()
			sep()
			if dst, err = appendFunctionResponse(dst, p, name); err != nil {
				return dst, err
			}
		}
	}
	flush()
	return dst, nil
}

// turn counts what a content holds so far.
type turn struct{ parts, calls int }

// callName is the name of the tool call id in msgs, the latest first.
func callName(msgs []translate.Message, id string) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		ps := msgs[i].Parts
		for j := range ps {
			if ps[j].Type == translate.PartToolCall && ps[j].ID == id {
				return ps[j].Name
			}
		}
	}
	return ""
}

// appendFunctionResponse writes a tool result. A result that is a JSON
// object is the response itself (an error one under "error" unless it
// has that key); other text, or other JSON, is {"result": …} or
// {"error": …}. Images go in the response's parts.
func appendFunctionResponse(dst []byte, p *translate.Part, name string) ([]byte, error) {
	dst = append(dst, `{"functionResponse":{`...)
	if id := realID(p.ID); id != "" {
		dst = append(dst, `"id":`...)
		dst = translate.AppendString(dst, id)
		dst = append(dst, ',')
	}
	dst = append(dst, `"name":`...)
	dst = translate.AppendString(dst, name)
	text := ""
	images := 0
	for i := range p.Content {
		c := &p.Content[i]
		switch c.Type {
		case translate.PartText:
			if text != "" && c.Text != "" {
				text += "\n"
			}
			text += c.Text
		case translate.PartImage:
			images++
		}
	}
	key := `,"response":{"result":`
	if p.IsError {
		key = `,"response":{"error":`
	}
	switch {
	case validObject(text) && (!p.IsError || fastjson.Exists([]byte(text), "error")):
		dst = append(dst, `,"response":`...)
		dst = append(dst, text...)
	case validJSON(text):
		dst = append(dst, key...)
		dst = append(dst, text...)
		dst = append(dst, '}')
	default:
		dst = append(dst, key...)
		dst = translate.AppendString(dst, text)
		dst = append(dst, '}')
	}
	if images > 0 {
		dst = append(dst, `,"parts":[`...)
		k := 0
		for i := range p.Content {
			if p.Content[i].Type != translate.PartImage {
				continue
			}
			if k > 0 {
				dst = append(dst, ',')
			}
			k++
			var err error
			if dst, err = appendImage(dst, &p.Content[i], "tool_result image"); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...), nil
}

// appendImage writes an image part: inlineData for base64 data (or a
// data: URL), fileData for an http(s) URL, which Gemini fetches itself.
func appendImage(dst []byte, p *translate.Part, field string) ([]byte, error) {
	mt, data := p.MediaType, p.Data
	if data == "" && strings.HasPrefix(p.URL, "data:") {
		meta, b64, ok := strings.Cut(p.URL[len("data:"):], ",")
		if !ok || !strings.HasSuffix(meta, ";base64") {
			return dst, translate.Invalid(field, "an image data: URL must be base64")
		}
		mt, data = strings.TrimSuffix(meta, ";base64"), b64
	}
	if data != "" {
		if mt == "" {
			mt = sniff(data)
		}
		if mt == "" {
			return dst, translate.Invalid(field, "the media type of an image is unknown")
		}
		dst = append(dst, `{"inlineData":{"mimeType":`...)
		dst = translate.AppendString(dst, mt)
		dst = append(dst, `,"data":`...)
		dst = translate.AppendString(dst, data)
		return append(dst, "}}"...), nil
	}
	if !strings.HasPrefix(p.URL, "https://") && !strings.HasPrefix(p.URL, "http://") {
		return dst, translate.Unsupported(field+" URL "+p.URL, Format)
	}
	if mt == "" {
		mt = imageType(p.URL)
	}
	dst = append(dst, `{"fileData":{"mimeType":`...)
	dst = translate.AppendString(dst, mt)
	dst = append(dst, `,"fileUri":`...)
	dst = translate.AppendString(dst, p.URL)
	return append(dst, "}}"...), nil
}

// sniff is the media type of base64 image data, from its first bytes.
func sniff(b64 string) string {
	switch {
	case strings.HasPrefix(b64, "iVBORw0KGgo"):
		return "image/png"
	case strings.HasPrefix(b64, "/9j/"):
		return "image/jpeg"
	case strings.HasPrefix(b64, "R0lGOD"):
		return "image/gif"
	case strings.HasPrefix(b64, "UklGR"):
		return "image/webp"
	}
	return ""
}

// imageType guesses an image URL's media type from its extension; Gemini
// requires one, and JPEG is the commonest on the web.
func imageType(url string) string {
	u := strings.ToLower(url)
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	switch {
	case strings.HasSuffix(u, ".png"):
		return "image/png"
	case strings.HasSuffix(u, ".webp"):
		return "image/webp"
	case strings.HasSuffix(u, ".gif"):
		return "image/gif"
	case strings.HasSuffix(u, ".heic"):
		return "image/heic"
	case strings.HasSuffix(u, ".heif"):
		return "image/heif"
	}
	return "image/jpeg"
}

// Effort to thinkingBudget: each fits every Gemini 2.5 and 3 model's range
// (Flash-Lite's floor is 512, Flash's ceiling 24576).
const (
	budgetMin     = 512
	budgetLow     = 1024
	budgetMedium  = 8192
	budgetHigh    = 24576
	budgetCeiling = 24576
)

func thinkingBudget(r *translate.Reasoning) (int64, error) {
	switch {
	case r.Disabled:
		return 0, nil
	case r.BudgetTokens > 0:
		return min(max(r.BudgetTokens, budgetMin), budgetCeiling), nil
	}
	switch r.Effort {
	case "none":
		return 0, nil
	case "minimal":
		return budgetMin, nil
	case "low":
		return budgetLow, nil
	case "", "medium":
		return budgetMedium, nil
	case "high", "xhigh":
		return budgetHigh, nil
	}
	return 0, translate.Unsupported("reasoning effort "+r.Effort, Format)
}

func appendGenerationConfig(dst []byte, r *translate.Request) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `,"generationConfig":{`...)
	open := len(dst)
	field := func(name string) {
		if len(dst) > open {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
	}
	if r.MaxTokens > 0 {
		field("maxOutputTokens")
		dst = translate.AppendInt(dst, r.MaxTokens)
	}
	if r.Temperature != nil {
		field("temperature")
		dst = translate.AppendFloat(dst, *r.Temperature)
	}
	if r.TopP != nil {
		field("topP")
		dst = translate.AppendFloat(dst, *r.TopP)
	}
	if r.TopK != nil {
		field("topK")
		dst = translate.AppendInt(dst, *r.TopK)
	}
	if len(r.Stop) > 0 {
		field("stopSequences")
		dst = append(dst, '[')
		for i, s := range r.Stop {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = translate.AppendString(dst, s)
		}
		dst = append(dst, ']')
	}
	if rf := r.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_object":
			field("responseMimeType")
			dst = append(dst, `"application/json"`...)
		case "json_schema":
			if !validObject(rf.Schema) {
				return dst, translate.Invalid("response_format", "the response format's schema is not a JSON object")
			}
			field("responseMimeType")
			dst = append(dst, `"application/json"`...)
			field("responseJsonSchema")
			dst = append(dst, rf.Schema...)
		case "", "text":
		default:
			return dst, translate.Unsupported("response format "+rf.Type, Format)
		}
	}
	if rs := r.Reasoning; rs != nil {
		b, err := thinkingBudget(rs)
		if err != nil {
			return dst, err
		}
		field("thinkingConfig")
		dst = append(dst, `{"thinkingBudget":`...)
		dst = translate.AppendInt(dst, b)
		if b > 0 {
			dst = append(dst, `,"includeThoughts":true`...)
		}
		dst = append(dst, '}')
	}
	if len(dst) == open {
		return dst[:start], nil
	}
	return append(dst, '}'), nil
}
