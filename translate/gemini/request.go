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
	d := reqDecoder{r: &translate.Request{}}
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch key := string(k); key {
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
			d.err = translate.Unsupported(key, Format)
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

type reqDecoder struct {
	r   *translate.Request
	err error
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

func (d *reqDecoder) contents(v *fastjson.Value) {
	arr, err := v.Array()
	if err != nil {
		d.fail(translate.Invalid("contents", "contents must be an array"))
		return
	}
	d.r.Messages = make([]translate.Message, 0, len(arr))
	for i, c := range arr {
		o, err := c.Object()
		if err != nil {
			d.fail(translate.Invalid(fmt.Sprintf("contents[%d]", i), "contents[%d] must be an object", i))
			return
		}
		m := translate.Message{Role: translate.RoleUser}
		switch role := str(o.Get("role")); role {
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
		pa, _ := parts.Array()
		m.Parts = make([]translate.Part, 0, len(pa))
		for j, pv := range pa {
			m.Parts = d.part(m.Parts, m.Role, pv, i, j)
			if d.err != nil {
				return
			}
		}
		o.Visit(func(k []byte, _ *fastjson.Value) {
			if s := string(k); s != "role" && s != "parts" {
				d.fail(translate.Unsupported(fmt.Sprintf("contents[%d].%s", i, s), Format))
			}
		})
		if len(m.Parts) > 0 {
			d.r.Messages = append(d.r.Messages, m)
		}
	}
}

// part appends the neutral parts of contents[i].parts[j] to ps.
func (d *reqDecoder) part(ps []translate.Part, role translate.Role, pv *fastjson.Value, i, j int) []translate.Part {
	o, err := pv.Object()
	if err != nil {
		d.fail(translate.Invalid(fmt.Sprintf("contents[%d].parts[%d]", i, j), "contents[%d].parts[%d] must be an object", i, j))
		return ps
	}
	var (
		text, sig string
		hasText   bool
		thought   bool
		kind      *fastjson.Value
		kindName  string
	)
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		switch key := string(k); key {
		case "text":
			b, err := v.StringBytes()
			if err != nil {
				d.fail(translate.Invalid(fmt.Sprintf("contents[%d].parts[%d].text", i, j), "contents[%d].parts[%d].text must be a string", i, j))
				return
			}
			text, hasText = string(b), true
		case "thought":
			thought = v.Type() == fastjson.TypeTrue
		case "thoughtSignature", "thought_signature":
			sig = str(v)
		case "inlineData", "inline_data", "fileData", "file_data", "functionCall", "function_call", "functionResponse", "function_response":
			if kind != nil {
				d.fail(translate.Invalid(fmt.Sprintf("contents[%d].parts[%d]", i, j), "contents[%d].parts[%d] must hold one kind of data, not %s and %s", i, j, kindName, key))
				return
			}
			kind, kindName = v, key
		case "partMetadata", "part_metadata":
		default:
			d.fail(translate.Unsupported(fmt.Sprintf("contents[%d].parts[%d].%s", i, j, key), Format))
		}
	})
	if d.err != nil {
		return ps
	}
	if hasText && kind != nil {
		d.fail(translate.Invalid(fmt.Sprintf("contents[%d].parts[%d]", i, j), "contents[%d].parts[%d] must hold one kind of data, not text and %s", i, j, kindName))
		return ps
	}
	path := func(f string) string { return fmt.Sprintf("contents[%d].parts[%d].%s", i, j, f) }
	model := role == translate.RoleAssistant
	if thought {
		if !model {
			d.fail(translate.Invalid(path("thought"), "%s: thought parts belong to model contents", path("thought")))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartThinking, Text: text, Signature: sig, Origin: Format})
	}
	// A signature on a text or call part travels on an empty thinking
	// part just before it (signatures in user contents are not Gemini's
	// and are dropped).
	if model && sig != "" {
		ps = append(ps, translate.Part{Type: translate.PartThinking, Signature: sig, Origin: Format})
	}
	if kind == nil {
		if text != "" {
			ps = append(ps, translate.Part{Type: translate.PartText, Text: text})
		}
		return ps
	}
	ko, err := kind.Object()
	if err != nil {
		d.fail(translate.Invalid(path(kindName), "%s must be an object", path(kindName)))
		return ps
	}
	switch kindName {
	case "inlineData", "inline_data":
		mt, b64 := str(get(ko, "mimeType", "mime_type")), str(ko.Get("data"))
		if !strings.HasPrefix(mt, "image/") {
			d.fail(translate.Unsupported(path(kindName)+" ("+mt+")", Format))
			return ps
		}
		if b64 == "" {
			d.fail(translate.Invalid(path(kindName+".data"), "%s.data is required", path(kindName)))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartImage, MediaType: mt, Data: b64})
	case "fileData", "file_data":
		mt, uri := str(get(ko, "mimeType", "mime_type")), str(get(ko, "fileUri", "file_uri"))
		if !strings.HasPrefix(mt, "image/") || !(strings.HasPrefix(uri, "https://") || strings.HasPrefix(uri, "http://")) ||
			strings.HasPrefix(uri, "https://generativelanguage.googleapis.com/") {
			// Only a public image URL can be fetched by another
			// provider: not a Files API or gs:// URI, not video.
			d.fail(translate.Unsupported(path(kindName)+" ("+mt+" "+uri+")", Format))
			return ps
		}
		return append(ps, translate.Part{Type: translate.PartImage, MediaType: mt, URL: uri})
	case "functionCall", "function_call":
		if !model {
			d.fail(translate.Invalid(path(kindName), "%s: function calls belong to model contents", path(kindName)))
			return ps
		}
		return d.functionCall(ps, ko, path(kindName))
	default:
		if model {
			d.fail(translate.Invalid(path(kindName), "%s: function responses belong to user contents", path(kindName)))
			return ps
		}
		return d.functionResponse(ps, ko, path(kindName))
	}
}

func (d *reqDecoder) functionCall(ps []translate.Part, o *fastjson.Object, path string) []translate.Part {
	name := str(o.Get("name"))
	if name == "" {
		d.fail(translate.Invalid(path+".name", "%s.name is required", path))
		return ps
	}
	args := "{}"
	if a := o.Get("args"); a != nil && a.Type() != fastjson.TypeNull {
		if a.Type() != fastjson.TypeObject {
			d.fail(translate.Invalid(path+".args", "%s.args must be an object", path))
			return ps
		}
		args = string(a.MarshalTo(nil))
	}
	o.Visit(func(k []byte, _ *fastjson.Value) {
		if s := string(k); s != "id" && s != "name" && s != "args" {
			d.fail(translate.Unsupported(path+"."+s, Format))
		}
	})
	id := str(o.Get("id"))
	if id == "" {
		id = synthID("", len(d.calls)+1)
	}
	d.calls = append(d.calls, call{id: id, name: name})
	return append(ps, translate.Part{Type: translate.PartToolCall, ID: id, Name: name, Args: args})
}

func (d *reqDecoder) functionResponse(ps []translate.Part, o *fastjson.Object, path string) []translate.Part {
	name := str(o.Get("name"))
	if name == "" {
		d.fail(translate.Invalid(path+".name", "%s.name is required", path))
		return ps
	}
	p := translate.Part{Type: translate.PartToolResult, Name: name, ID: str(o.Get("id"))}
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
			d.fail(translate.Invalid(path, "%s (%s) answers no earlier function call of that name", path, name))
			return ps
		}
	}
	text := "{}"
	if r := o.Get("response"); r != nil && r.Type() != fastjson.TypeNull {
		ro, err := r.Object()
		if err != nil {
			d.fail(translate.Invalid(path+".response", "%s.response must be an object", path))
			return ps
		}
		p.IsError = ro.Get("error") != nil
		text = string(r.MarshalTo(nil))
	}
	p.Content = append(p.Content, translate.Part{Type: translate.PartText, Text: text})
	if parts := o.Get("parts"); parts != nil {
		pa, err := parts.Array()
		if err != nil {
			d.fail(translate.Invalid(path+".parts", "%s.parts must be an array", path))
			return ps
		}
		for k, pv := range pa {
			inline := pv.Get("inlineData")
			if inline == nil {
				inline = pv.Get("inline_data")
			}
			mt := str(inline.Get("mimeType"))
			if mt == "" {
				mt = str(inline.Get("mime_type"))
			}
			if inline == nil || !strings.HasPrefix(mt, "image/") || str(inline.Get("data")) == "" {
				d.fail(translate.Unsupported(fmt.Sprintf("%s.parts[%d]", path, k), Format))
				return ps
			}
			p.Content = append(p.Content, translate.Part{Type: translate.PartImage, MediaType: mt, Data: str(inline.Get("data"))})
		}
	}
	o.Visit(func(k []byte, _ *fastjson.Value) {
		switch s := string(k); s {
		case "id", "name", "response", "parts":
		default:
			d.fail(translate.Unsupported(path+"."+s, Format))
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
	for j, pv := range pa {
		po, err := pv.Object()
		ok := err == nil
		if ok {
			po.Visit(func(k []byte, _ *fastjson.Value) {
				if s := string(k); s != "text" && s != "partMetadata" && s != "part_metadata" {
					ok = false
				}
			})
		}
		tv := pv.Get("text")
		if !ok || tv == nil || tv.Type() != fastjson.TypeString {
			d.fail(translate.Unsupported(fmt.Sprintf("systemInstruction.parts[%d] (not text)", j), Format))
			return
		}
		if t := str(tv); t != "" {
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
			switch key := string(k); key {
			case "functionDeclarations", "function_declarations":
				d.declarations(v, fmt.Sprintf("tools[%d].%s", i, key))
			default:
				// googleSearch, codeExecution, urlContext, fileSearch…:
				// tools the model's provider runs, with no neutral form.
				d.fail(translate.Unsupported(fmt.Sprintf("tools[%d].%s", i, key), Format))
			}
		})
	}
}

func (d *reqDecoder) declarations(v *fastjson.Value, path string) {
	arr, err := v.Array()
	if err != nil {
		d.fail(translate.Invalid(path, "%s must be an array", path))
		return
	}
	for i, fv := range arr {
		o, err := fv.Object()
		if err != nil {
			d.fail(translate.Invalid(fmt.Sprintf("%s[%d]", path, i), "%s[%d] must be an object", path, i))
			return
		}
		t := translate.Tool{Name: str(o.Get("name")), Description: str(o.Get("description"))}
		if t.Name == "" {
			d.fail(translate.Invalid(fmt.Sprintf("%s[%d].name", path, i), "%s[%d].name is required", path, i))
			return
		}
		var params, raw *fastjson.Value
		o.Visit(func(k []byte, v *fastjson.Value) {
			switch key := string(k); key {
			case "name", "description", "response", "responseJsonSchema", "response_json_schema", "behavior":
			case "parameters":
				params = v
			case "parametersJsonSchema", "parameters_json_schema":
				raw = v
			default:
				d.fail(translate.Unsupported(fmt.Sprintf("%s[%d].%s", path, i, key), Format))
			}
		})
		switch {
		case params != nil && raw != nil:
			d.fail(translate.Invalid(fmt.Sprintf("%s[%d].parameters", path, i), "%s[%d]: set parameters or parametersJsonSchema, not both", path, i))
		case params != nil && params.Type() != fastjson.TypeNull:
			if params.Type() != fastjson.TypeObject {
				d.fail(translate.Invalid(fmt.Sprintf("%s[%d].parameters", path, i), "%s[%d].parameters must be an object", path, i))
				return
			}
			t.Schema = string(appendSchema(nil, params))
		case raw != nil && raw.Type() != fastjson.TypeNull:
			t.Schema = string(raw.MarshalTo(nil))
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
		switch key := string(k); key {
		case "functionCallingConfig", "function_calling_config":
			d.callingConfig(v)
		case "retrievalConfig", "retrieval_config", "includeServerSideToolInvocations", "include_server_side_tool_invocations":
			// Settings of the provider-run tools, which are refused.
		default:
			d.fail(translate.Unsupported("toolConfig."+key, Format))
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
		switch key := string(k); key {
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
			d.fail(translate.Unsupported(path+"."+key, Format))
		}
	})
	tc := &d.r.ToolChoice
	switch mode := strings.ToUpper(str(o.Get("mode"))); mode {
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
			tc.Mode, tc.Name = translate.ToolNamed, str(names[0])
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
	r := d.r
	var schema string
	o.Visit(func(k []byte, v *fastjson.Value) {
		if d.err != nil {
			return
		}
		key := string(k)
		path := "generationConfig." + key
		switch key {
		case "maxOutputTokens", "max_output_tokens":
			r.MaxTokens = d.integer(v, path)
		case "temperature":
			r.Temperature = d.float(v, path)
		case "topP", "top_p":
			r.TopP = d.float(v, path)
		case "topK", "top_k":
			if v.Type() != fastjson.TypeNull {
				n := d.integer(v, path)
				r.TopK = &n
			}
		case "stopSequences", "stop_sequences":
			a, err := v.Array()
			if err != nil {
				d.fail(translate.Invalid(path, "%s must be an array of strings", path))
				return
			}
			for _, s := range a {
				if s.Type() != fastjson.TypeString {
					d.fail(translate.Invalid(path, "%s must be an array of strings", path))
					return
				}
				r.Stop = append(r.Stop, str(s))
			}
		case "candidateCount", "candidate_count":
			if n := d.integer(v, path); n > 1 {
				d.fail(translate.Unsupported(path+" above 1", Format))
			}
		case "presencePenalty", "presence_penalty", "frequencyPenalty", "frequency_penalty":
			if f := d.float(v, path); f != nil && *f != 0 {
				d.fail(translate.Unsupported(path, Format))
			}
		case "responseLogprobs", "response_logprobs":
			if v.Type() == fastjson.TypeTrue {
				d.fail(translate.Unsupported(path, Format))
			}
		case "responseMimeType", "response_mime_type":
			switch mt := str(v); mt {
			case "", "text/plain":
			case "application/json":
				d.jsonMime = true
			default:
				d.fail(translate.Unsupported(path+" "+mt, Format))
			}
		case "responseSchema", "response_schema":
			if v.Type() != fastjson.TypeObject {
				d.fail(translate.Invalid(path, "%s must be an object", path))
				return
			}
			schema = string(appendSchema(nil, v))
		case "responseJsonSchema", "response_json_schema":
			schema = string(v.MarshalTo(nil))
		case "responseModalities", "response_modalities":
			a, _ := v.Array()
			for _, m := range a {
				if !strings.EqualFold(str(m), "TEXT") {
					d.fail(translate.Unsupported(path+" "+m.String(), Format))
					return
				}
			}
		case "thinkingConfig", "thinking_config":
			d.thinking(v)
		default:
			// seed, logprobs, speechConfig, imageConfig, mediaResolution…
			d.fail(translate.Unsupported(path, Format))
		}
	})
	if d.err != nil {
		return
	}
	switch {
	case schema != "":
		r.ResponseFormat = &translate.ResponseFormat{Type: "json_schema", Name: "response", Schema: schema}
	case d.jsonMime:
		r.ResponseFormat = &translate.ResponseFormat{Type: "json_object"}
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
		switch key := string(k); key {
		case "thinkingBudget", "thinking_budget":
			budget = v
		case "thinkingLevel", "thinking_level":
			level = v
		case "includeThoughts", "include_thoughts":
			// The thought parts this codec writes are marked thought:
			// true, which a client not asking for them skips.
		default:
			d.fail(translate.Unsupported(path+"."+key, Format))
		}
	})
	if d.err != nil {
		return
	}
	if budget != nil && level != nil {
		d.fail(translate.Invalid(path, "%s: set thinkingBudget or thinkingLevel, not both", path))
		return
	}
	switch {
	case budget != nil:
		n := d.integer(budget, path+".thinkingBudget")
		switch {
		case n == 0:
			d.r.Reasoning = &translate.Reasoning{Disabled: true}
		case n < 0:
			// -1 is dynamic thinking: the model decides.
			d.r.Reasoning = &translate.Reasoning{Effort: "medium"}
		default:
			d.r.Reasoning = &translate.Reasoning{BudgetTokens: n}
		}
	case level != nil:
		switch l := strings.ToLower(str(level)); l {
		case "minimal", "low", "medium", "high":
			d.r.Reasoning = &translate.Reasoning{Effort: l}
		case "", "thinking_level_unspecified":
		default:
			d.fail(translate.Unsupported(path+".thinkingLevel "+strings.ToUpper(l), Format))
		}
	}
}

// integer reads a whole number (written as 3, 3.0 or "3", as protobuf's
// JSON allows).
func (d *reqDecoder) integer(v *fastjson.Value, path string) int64 {
	switch v.Type() {
	case fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil && f == float64(int64(f)) {
			return int64(f)
		}
	case fastjson.TypeString:
		if n, err := strconv.ParseInt(str(v), 10, 64); err == nil {
			return n
		}
	case fastjson.TypeNull:
		return 0
	}
	d.fail(translate.Invalid(path, "%s must be an integer", path))
	return 0
}

func (d *reqDecoder) float(v *fastjson.Value, path string) *float64 {
	if v.Type() == fastjson.TypeNull {
		return nil
	}
	f, err := v.Float64()
	if err != nil {
		d.fail(translate.Invalid(path, "%s must be a number", path))
		return nil
	}
	return &f
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
		key := schemaKey(string(k))
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
			t := strings.ToLower(str(v))
			if v.Type() != fastjson.TypeString {
				dst = v.MarshalTo(dst)
				return
			}
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
			if n, err := strconv.ParseInt(str(v), 10, 64); err == nil && v.Type() == fastjson.TypeString {
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

// schemaKey is a Schema field's camelCase name.
func schemaKey(k string) string {
	switch k {
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
	return k
}

// EncodeRequest writes a generateContent body for a gemini upstream. The
// model and the stream flag travel in the URL, which the gateway builds
// from upstream, so the body is the same whether the call streams or not.
func (codec) EncodeRequest(dst []byte, r *translate.Request, _ string) ([]byte, error) {
	dst = append(dst, `{"contents":[`...)
	n := 0
	var err error
	for mi := range r.Messages {
		m := &r.Messages[mi]
		if m.Role == translate.RoleSystem {
			continue
		}
		start := len(dst)
		if n > 0 {
			dst = append(dst, ',')
		}
		if m.Role == translate.RoleAssistant {
			dst = append(dst, `{"role":"model","parts":[`...)
		} else {
			dst = append(dst, `{"role":"user","parts":[`...)
		}
		var np int
		dst, np, err = appendParts(dst, r.Messages[:mi], m.Parts, false)
		if err != nil {
			return dst, err
		}
		if np == 0 {
			// A content without parts is refused; thinking of another
			// origin leaves some turns with nothing to say.
			dst = dst[:start]
			continue
		}
		dst = append(dst, "]}"...)
		n++
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
func appendParts(dst []byte, earlier []translate.Message, ps []translate.Part, answer bool) ([]byte, int, error) {
	n := 0
	pending := ""
	calls := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
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
				return dst, n, err
			}
			dst = dst[:len(dst)-1]
			sig()
			dst = append(dst, '}')
		case translate.PartToolCall:
			calls++
			if calls == 1 && pending == "" && !answer {
				pending = dummySignature
			}
			args := p.Args
			if !validObject(args) {
				if args != "" && !answer {
					return dst, n, translate.Invalid("tool_calls", "the arguments of tool call %q (%s) are not a JSON object", p.ID, p.Name)
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
				return dst, n, translate.Invalid("tool_result", "tool result %q answers no earlier tool call", p.ID)
			}
			flush()
			sep()
			if dst, err = appendFunctionResponse(dst, p, name); err != nil {
				return dst, n, err
			}
		}
	}
	flush()
	return dst, n, nil
}

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
