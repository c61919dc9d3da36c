package fakeup

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
)

var (
	geminiTop = []string{"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent",
		"serviceTier", "store", "model", "labels"}
	geminiGeneration = []string{"modelSelectionConfig", "responseJsonSchema", "audioTimestamp", "candidateCount", "enableAffectiveDialog",
		"frequencyPenalty", "logprobs", "maxOutputTokens", "mediaResolution", "presencePenalty", "responseLogprobs", "responseMimeType",
		"responseModalities", "responseSchema", "routingConfig", "seed", "speechConfig", "stopSequences", "temperature", "thinkingConfig",
		"topK", "topP", "enableEnhancedCivicAnswers", "imageConfig"}
	geminiPart = []string{"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult",
		"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
	geminiPartData = []string{"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"}
	geminiTools    = []string{"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "retrieval",
		"fileSearch", "computerUse", "googleMaps"}
	// The fields of Gemini's Schema (an OpenAPI subset): JSON Schema's
	// additionalProperties, $schema, $ref… are refused in parameters
	// (parametersJsonSchema takes them).
	geminiSchema = []string{"anyOf", "default", "description", "enum", "example", "format", "items", "maxItems", "maxLength", "maxProperties",
		"maximum", "minItems", "minLength", "minProperties", "minimum", "nullable", "pattern", "properties", "propertyOrdering", "required",
		"title", "type"}
	geminiTypes = []string{"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}
	geminiName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$`)
)

// geminiCall is what the path says: the method and the API version.
type geminiCall struct {
	method  string
	version string
	sse     bool
}

func geminiInvalid(format string, a ...any) *refusal {
	return &refusal{status: 400, typ: "INVALID_ARGUMENT", msg: fmt.Sprintf(format, a...)}
}

// snake is the proto field name of a JSON (lowerCamel) name; Gemini takes
// either.
func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// camelize returns o with snake_case member names rewritten to the
// lowerCamel names of known (the proto JSON parser accepts both).
func camelize(o obj, known []string) obj {
	out := make(obj, len(o))
	for k, v := range o {
		for _, n := range known {
			if k == snake(n) {
				k = n
				break
			}
		}
		out[k] = v
	}
	return out
}

func geminiUnknown(o obj, at string, known []string) *refusal {
	if k := unknownKey(o, known...); k != "" {
		if at == "" {
			return geminiInvalid("Invalid JSON payload received. Unknown name %q: Cannot find field.", k)
		}
		return geminiInvalid("Invalid JSON payload received. Unknown name %q at '%s': Cannot find field.", k, at)
	}
	return nil
}

func (u *Upstream) geminiRequest(r *http.Request, body []byte) (geminiCall, *convo, *refusal) {
	var gc geminiCall
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v1beta/models/"):
		gc.version, p = "v1beta", p[len("/v1beta/models/"):]
	case strings.HasPrefix(p, "/v1/models/"):
		gc.version, p = "v1", p[len("/v1/models/"):]
	default:
		return gc, nil, &refusal{status: 404, typ: "NOT_FOUND", msg: "The requested URL " + r.URL.Path + " was not found on this server."}
	}
	i := strings.LastIndexByte(p, ':')
	if i < 0 || r.Method != "POST" {
		return gc, nil, &refusal{status: 404, typ: "NOT_FOUND", msg: "The requested URL " + r.URL.Path + " was not found on this server."}
	}
	model, method := p[:i], p[i+1:]
	gc.method = method
	gc.sse = r.URL.Query().Get("alt") == "sse"
	if method != "generateContent" && method != "streamGenerateContent" && method != "countTokens" {
		return gc, nil, &refusal{status: 404, typ: "NOT_FOUND", msg: "The requested URL " + r.URL.Path + " was not found on this server."}
	}
	key := r.Header.Get("x-goog-api-key")
	if key == "" {
		key = r.URL.Query().Get("key")
	}
	if key == "" {
		return gc, nil, &refusal{status: 403, typ: "PERMISSION_DENIED", msg: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."}
	}
	if key != u.Key {
		return gc, nil, geminiInvalid("API key not valid. Please pass a valid API key.")
	}
	if model != u.Model {
		return gc, nil, &refusal{status: 404, typ: "NOT_FOUND", msg: fmt.Sprintf("models/%s is not found for API version %s, or is not supported for %s. Call ListModels to see the list of available models and their supported methods.", model, gc.version, method)}
	}
	m, ok := decode(body)
	if !ok {
		return gc, nil, geminiInvalid("Invalid JSON payload received. Unexpected token.")
	}
	if method == "countTokens" {
		m = camelize(m, []string{"contents", "generateContentRequest"})
		if e := geminiUnknown(m, "", []string{"contents", "generateContentRequest"}); e != nil {
			return gc, nil, e
		}
		if g, has := m["generateContentRequest"]; has {
			inner, _ := object(g)
			c, e := geminiGenerate(inner, "generate_content_request.")
			if e != nil {
				return gc, nil, e
			}
			c.count = true
			return gc, c, nil
		}
		c, e := geminiGenerate(obj{"contents": m["contents"]}, "")
		if e != nil {
			return gc, nil, e
		}
		c.count = true
		return gc, c, nil
	}
	c, e := geminiGenerate(m, "")
	if e != nil {
		return gc, nil, e
	}
	c.stream = method == "streamGenerateContent"
	return gc, c, nil
}

// geminiGenerate checks a GenerateContentRequest body.
func geminiGenerate(m obj, prefix string) (*convo, *refusal) {
	m = camelize(m, geminiTop)
	if e := geminiUnknown(m, strings.TrimSuffix(prefix, "."), geminiTop); e != nil {
		return nil, e
	}
	c := &convo{}
	if g, has := m["generationConfig"]; has {
		gco, ok := object(g)
		if !ok {
			return nil, geminiInvalid("Invalid JSON payload received. Expected an object at 'generation_config'.")
		}
		gco = camelize(gco, geminiGeneration)
		if e := geminiUnknown(gco, "generation_config", geminiGeneration); e != nil {
			return nil, e
		}
		if v, has := gco["maxOutputTokens"]; has {
			if n, ok := integer(v); !ok || n < 1 {
				return nil, geminiInvalid("* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive.\n")
			}
		}
	}
	if si, has := m["systemInstruction"]; has {
		sio, ok := object(si)
		if !ok {
			return nil, geminiInvalid("Invalid JSON payload received. Expected an object at 'system_instruction'.")
		}
		if _, e := geminiParts(camelize(sio, []string{"role", "parts"}), "system_instruction", nil); e != nil {
			return nil, e
		}
	}
	if t, has := m["tools"]; has {
		list, ok := arr(t)
		if !ok {
			return nil, geminiInvalid("Invalid JSON payload received. Expected an array at 'tools'.")
		}
		for i, v := range list {
			to, _ := object(v)
			to = camelize(to, geminiTools)
			at := fmt.Sprintf("tools[%d]", i)
			if e := geminiUnknown(to, at, geminiTools); e != nil {
				return nil, e
			}
			decls, _ := arr(to["functionDeclarations"])
			for j, d := range decls {
				do, _ := object(d)
				known := []string{"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
				do = camelize(do, known)
				dat := fmt.Sprintf("%s.function_declarations[%d]", at, j)
				if e := geminiUnknown(do, dat, known); e != nil {
					return nil, e
				}
				name, _ := str(do["name"])
				if !geminiName.MatchString(name) {
					return nil, geminiInvalid("* GenerateContentRequest.%s.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes (-), with a maximum length of 64.\n", dat)
				}
				if do["parameters"] != nil && do["parametersJsonSchema"] != nil {
					return nil, geminiInvalid("* GenerateContentRequest.%s: parameters and parameters_json_schema cannot both be set.\n", dat)
				}
				if ps, has := do["parameters"]; has {
					if e := geminiCheckSchema(ps, dat+".parameters"); e != nil {
						return nil, e
					}
				}
				c.tools = append(c.tools, name)
			}
		}
	}
	if tc, has := m["toolConfig"]; has {
		tco, _ := object(tc)
		tco = camelize(tco, []string{"functionCallingConfig", "retrievalConfig", "includeServerSideToolInvocations"})
		fcc, _ := object(tco["functionCallingConfig"])
		fcc = camelize(fcc, []string{"mode", "allowedFunctionNames", "streamFunctionCallArguments"})
		mode, _ := str(fcc["mode"])
		switch mode {
		case "", "MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED":
		default:
			return nil, geminiInvalid("Invalid value at 'tool_config.function_calling_config.mode' (type.googleapis.com/google.ai.generativelanguage.%s.FunctionCallingConfig.Mode), %q", "v1beta", mode)
		}
		if names, has := fcc["allowedFunctionNames"]; has && names != nil {
			if mode != "ANY" && mode != "VALIDATED" {
				return nil, geminiInvalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names may only be set when mode is ANY or VALIDATED.\n")
			}
			if len(c.tools) == 0 {
				return nil, geminiInvalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names is set but no function declarations are provided.\n")
			}
		}
	}
	cs, has := m["contents"]
	list, _ := arr(cs)
	if !has || len(list) == 0 {
		return nil, geminiInvalid("* GenerateContentRequest.%scontents: contents is not specified\n", prefix)
	}
	prevCalls := -1 // function calls of the previous turn; -1: it was no call turn
	prevUser := false
	for i, v := range list {
		co, ok := object(v)
		if !ok {
			return nil, geminiInvalid("Invalid JSON payload received. Expected an object at 'contents[%d]'.", i)
		}
		co = camelize(co, []string{"role", "parts"})
		at := fmt.Sprintf("contents[%d]", i)
		if e := geminiUnknown(co, at, []string{"role", "parts"}); e != nil {
			return nil, e
		}
		role, _ := str(co["role"])
		if role != "" && role != "user" && role != "model" {
			return nil, geminiInvalid("Please use a valid role: user, model.")
		}
		var images []string
		k, e := geminiParts(co, at, &images)
		if e != nil {
			return nil, e
		}
		switch {
		case k.calls > 0:
			if !prevUser {
				return nil, geminiInvalid("Please ensure that function call turn comes immediately after a user turn or after a function response turn.")
			}
			prevCalls, prevUser = k.calls, false
			continue
		case k.responses > 0:
			if prevCalls < 0 {
				return nil, geminiInvalid("Please ensure that function response turn comes immediately after a function call turn.")
			}
			if k.responses != prevCalls {
				return nil, geminiInvalid("Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.")
			}
			c.toolResult, c.images = k.result, nil
		case role != "model":
			c.toolResult, c.images = nil, images
		}
		prevCalls, prevUser = -1, role != "model"
	}
	return c, nil
}

// partKinds counts what a content's parts hold.
type partKinds struct {
	calls, responses int
	result           *string
}

func geminiParts(co obj, at string, images *[]string) (partKinds, *refusal) {
	var k partKinds
	parts, _ := arr(co["parts"])
	if len(parts) == 0 {
		return k, geminiInvalid("* GenerateContentRequest.%s.parts: contents.parts must not be empty.\n", at)
	}
	for j, p := range parts {
		po, ok := object(p)
		pat := fmt.Sprintf("%s.parts[%d]", at, j)
		if !ok {
			return k, geminiInvalid("Invalid JSON payload received. Expected an object at '%s'.", pat)
		}
		po = camelize(po, geminiPart)
		if e := geminiUnknown(po, pat, geminiPart); e != nil {
			return k, e
		}
		n := 0
		for _, d := range geminiPartData {
			if _, has := po[d]; has {
				n++
			}
		}
		if n != 1 {
			return k, geminiInvalid("* GenerateContentRequest.%s.data: required oneof field 'data' must have one initialized field\n", pat)
		}
		switch {
		case po["text"] != nil:
			if _, ok := str(po["text"]); !ok {
				return k, geminiInvalid("Invalid value at '%s.text' (TYPE_STRING)", pat)
			}
		case po["inlineData"] != nil:
			id, _ := object(po["inlineData"])
			id = camelize(id, []string{"mimeType", "data", "displayName"})
			mt, _ := str(id["mimeType"])
			data, _ := str(id["data"])
			if mt == "" {
				return k, geminiInvalid("* GenerateContentRequest.%s.inline_data.mime_type: mime_type must be specified.\n", pat)
			}
			if strings.HasPrefix(mt, "image/") {
				d, ok := describeImage(mt, data)
				if !ok {
					return k, geminiInvalid("Invalid value at '%s.inline_data.data' (TYPE_BYTES), Base64 decoding failed or the image is not %s", pat, mt)
				}
				if images != nil {
					*images = append(*images, d)
				}
			}
		case po["fileData"] != nil:
			fd, _ := object(po["fileData"])
			fd = camelize(fd, []string{"fileUri", "mimeType", "displayName"})
			uri, _ := str(fd["fileUri"])
			if uri == "" {
				return k, geminiInvalid("* GenerateContentRequest.%s.file_data.file_uri: file_uri must be specified.\n", pat)
			}
			if images != nil {
				*images = append(*images, "the image at "+uri)
			}
		case po["functionCall"] != nil:
			fc, _ := object(po["functionCall"])
			if s, _ := str(fc["name"]); s == "" {
				return k, geminiInvalid("* GenerateContentRequest.%s.function_call.name: Name cannot be empty.\n", pat)
			}
			if a, has := fc["args"]; has {
				if _, ok := object(a); !ok {
					return k, geminiInvalid("Invalid value at '%s.function_call.args' (type.googleapis.com/google.protobuf.Struct)", pat)
				}
			}
			k.calls++
		case po["functionResponse"] != nil:
			fr, _ := object(po["functionResponse"])
			if s, _ := str(fr["name"]); s == "" {
				return k, geminiInvalid("* GenerateContentRequest.%s.function_response.name: Name cannot be empty.\n", pat)
			}
			resp, ok := object(fr["response"])
			if !ok {
				return k, geminiInvalid("Invalid value at '%s.function_response.response' (type.googleapis.com/google.protobuf.Struct)", pat)
			}
			t := structText(resp)
			k.result = &t
			k.responses++
		}
	}
	return k, nil
}

// structText is a function response as text: its one string member, or
// its JSON.
func structText(o obj) string {
	if len(o) == 1 {
		for _, v := range o {
			if s, ok := str(v); ok {
				return s
			}
		}
	}
	b, _ := json.Marshal(o)
	return string(b)
}

// geminiCheckSchema holds parameters to Gemini's Schema.
func geminiCheckSchema(s any, at string) *refusal {
	so, ok := object(s)
	if !ok {
		return geminiInvalid("Invalid JSON payload received. Expected an object at '%s'.", at)
	}
	if e := geminiUnknown(so, at, geminiSchema); e != nil {
		return e
	}
	if t, has := so["type"]; has {
		ts, _ := str(t)
		known := false
		for _, g := range geminiTypes {
			known = known || strings.EqualFold(g, ts)
		}
		if !known {
			return geminiInvalid("Invalid value at '%s.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), %q", at, ts)
		}
	}
	if props, has := so["properties"]; has {
		po, _ := object(props)
		for name, p := range po {
			if e := geminiCheckSchema(p, at+".properties["+name+"].value"); e != nil {
				return e
			}
		}
	}
	if items, has := so["items"]; has {
		if e := geminiCheckSchema(items, at+".items"); e != nil {
			return e
		}
	}
	if any, has := so["anyOf"]; has {
		list, _ := arr(any)
		for i, a := range list {
			if e := geminiCheckSchema(a, fmt.Sprintf("%s.any_of[%d]", at, i)); e != nil {
				return e
			}
		}
	}
	return nil
}

func geminiUsage(final bool) obj {
	us := UsageOf(Gemini)
	prompt := us.Input + us.CacheRead
	u := obj{"promptTokenCount": prompt, "totalTokenCount": prompt,
		"promptTokensDetails": []any{obj{"modality": "TEXT", "tokenCount": prompt}}}
	if final {
		u["cachedContentTokenCount"] = us.CacheRead
		u["cacheTokensDetails"] = []any{obj{"modality": "TEXT", "tokenCount": us.CacheRead}}
		u["candidatesTokenCount"] = us.Output - geminiThoughts
		u["thoughtsTokenCount"] = geminiThoughts
		u["totalTokenCount"] = prompt + us.Output
	}
	return u
}

// geminiThoughts of the 50 output tokens are thinking (billed as output).
const geminiThoughts = 7

func (u *Upstream) geminiAnswer(w http.ResponseWriter, c *convo, a answer, gc geminiCall) {
	id := fmt.Sprintf("fakeresp%d", u.nextID())
	chunk := func(parts []any, final bool) obj {
		cand := obj{"content": obj{"parts": parts, "role": "model"}, "index": 0}
		if final {
			cand["finishReason"] = "STOP"
		}
		return obj{"candidates": []any{cand}, "usageMetadata": geminiUsage(final), "modelVersion": u.Model, "responseId": id}
	}
	call := obj{"functionCall": obj{"name": ToolName, "args": obj{"city": "Paris"}}, "thoughtSignature": "ZmFrZS1zaWduYXR1cmU="}
	if !c.stream {
		part := obj{"text": a.text}
		if a.call {
			part = call
		}
		writeJSON(w, chunk([]any{part}, true))
		return
	}
	var chunks []obj
	if a.call {
		chunks = append(chunks, chunk([]any{call}, true)) // Gemini sends a call whole, in one chunk
	} else {
		ps := pieces(a.text, 3)
		for i, p := range ps {
			chunks = append(chunks, chunk([]any{obj{"text": p}}, i == len(ps)-1))
		}
	}
	if !gc.sse { // without alt=sse Gemini streams one JSON array
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		for i, ch := range chunks {
			b, _ := json.Marshal(ch)
			sep := ",\r\n"
			if i == 0 {
				sep = "["
			}
			w.Write(append([]byte(sep), b...))
		}
		w.Write([]byte("]"))
		return
	}
	s := startSSE(w)
	for _, ch := range chunks {
		s.event("", ch, "\r\n")
	}
}
