package fakeup

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

var (
	chatTop = []string{"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop",
		"presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "tools", "tool_choice", "parallel_tool_calls",
		"response_format", "seed", "service_tier", "store", "metadata", "reasoning_effort", "modalities", "audio", "prediction",
		"web_search_options", "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "verbosity", "functions", "function_call"}
	responsesTop = []string{"model", "input", "instructions", "stream", "stream_options", "max_output_tokens", "temperature", "top_p", "tools",
		"tool_choice", "parallel_tool_calls", "previous_response_id", "reasoning", "text", "store", "metadata", "user", "include", "truncation",
		"service_tier", "background", "prompt", "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "max_tool_calls",
		"top_logprobs", "conversation", "context_management"}
	// OpenAI's function names: letters, digits, underscores and dashes, at
	// most 64.
	openaiName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
)

func openaiInvalid(msg, param, code string) *refusal {
	return &refusal{status: 400, typ: "invalid_request_error", msg: msg, param: param, code: code}
}

// openaiAuth checks Authorization: Bearer <key>.
func (u *Upstream) openaiAuth(r *http.Request) *refusal {
	if r.Header.Get("Authorization") == "Bearer "+u.Key {
		return nil
	}
	if r.Header.Get("Authorization") == "" {
		return &refusal{status: 401, typ: "invalid_request_error", msg: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
	}
	return &refusal{status: 401, typ: "invalid_request_error", code: "invalid_api_key", msg: "Incorrect API key provided."}
}

// openaiTools checks tools and returns the function names. Chat nests a
// function under "function"; Responses puts its name at the top.
func openaiTools(tools any, chat bool) ([]string, *refusal) {
	list, ok := arr(tools)
	if !ok {
		return nil, openaiInvalid("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
	}
	var names []string
	for i, t := range list {
		field := fmt.Sprintf("tools[%d]", i)
		to, ok := object(t)
		if !ok {
			return nil, openaiInvalid(fmt.Sprintf("Invalid type for '%s': expected an object.", field), field, "invalid_type")
		}
		typ, _ := str(to["type"])
		if typ == "" {
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.type'.", field), field+".type", "missing_required_parameter")
		}
		if typ != "function" {
			continue // custom and hosted tools (web_search, file_search…) name no function
		}
		fn := to
		if chat {
			field += ".function"
			if fn, ok = object(to["function"]); !ok {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s'.", field), field, "missing_required_parameter")
			}
		}
		name, _ := str(fn["name"])
		if name == "" {
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.name'.", field), field+".name", "missing_required_parameter")
		}
		if !openaiName.MatchString(name) {
			return nil, openaiInvalid(fmt.Sprintf("Invalid '%s.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", field), field+".name", "invalid_value")
		}
		if !objectSchema(fn["parameters"]) {
			return nil, openaiInvalid(fmt.Sprintf("Invalid schema for function '%s': schema must be a JSON Schema of 'type: \"object\"'.", name), field+".parameters", "invalid_function_parameters")
		}
		names = append(names, name)
	}
	return names, nil
}

// toolChoice checks tool_choice against the declared tools (both APIs).
func openaiToolChoice(m obj, names []string, chat bool) *refusal {
	tc, has := m["tool_choice"]
	if !has {
		return nil
	}
	if _, hasTools := m["tools"]; !hasTools {
		return openaiInvalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "")
	}
	if s, ok := str(tc); ok {
		if s != "none" && s != "auto" && s != "required" {
			return openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'none', 'auto', and 'required'.", s), "tool_choice", "invalid_value")
		}
		return nil
	}
	o, ok := object(tc)
	if !ok {
		return openaiInvalid("Invalid type for 'tool_choice': expected one of a string or an object.", "tool_choice", "invalid_type")
	}
	name, _ := str(o["name"])
	if chat {
		fn, _ := object(o["function"])
		name, _ = str(fn["name"])
	}
	typ, _ := str(o["type"])
	if typ != "function" {
		return nil // allowed_tools and hosted tool choices
	}
	for _, n := range names {
		if n == name {
			return nil
		}
	}
	return openaiInvalid(fmt.Sprintf("Invalid value for 'tool_choice': function '%s' is not among the 'tools'.", name), "tool_choice", "invalid_value")
}

// ---- Chat Completions ------------------------------------------------------

func (u *Upstream) chatRequest(r *http.Request, body []byte) (*convo, *refusal) {
	if r.Method != "POST" || r.URL.Path != "/v1/chat/completions" {
		return nil, &refusal{status: 404, typ: "invalid_request_error", msg: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)}
	}
	if e := u.openaiAuth(r); e != nil {
		return nil, e
	}
	m, ok := decode(body)
	if !ok {
		return nil, openaiInvalid("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "", "")
	}
	if k := unknownKey(m, chatTop...); k != "" {
		return nil, openaiInvalid("Unrecognized request argument supplied: "+k, "", "")
	}
	model, _ := str(m["model"])
	if model == "" {
		return nil, openaiInvalid("you must provide a model parameter", "", "")
	}
	if model != u.Model {
		return nil, &refusal{status: 404, typ: "invalid_request_error", code: "model_not_found", msg: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model)}
	}
	c := &convo{}
	if s, has := m["stream"]; has {
		b, ok := s.(bool)
		if !ok {
			return nil, openaiInvalid("Invalid type for 'stream': expected a boolean, but got a string instead.", "stream", "invalid_type")
		}
		c.stream = b
	}
	if so, has := m["stream_options"]; has && so != nil {
		if !c.stream {
			return nil, openaiInvalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "")
		}
		o, _ := object(so)
		c.includeUsage, _ = o["include_usage"].(bool)
	}
	if v, has := m["max_tokens"]; has {
		if n, ok := integer(v); !ok || n < 1 {
			return nil, openaiInvalid(fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %v instead.", v), "max_tokens", "integer_below_min_value")
		}
	}
	if t, has := m["tools"]; has {
		names, e := openaiTools(t, true)
		if e != nil {
			return nil, e
		}
		c.tools = names
	}
	if _, has := m["parallel_tool_calls"]; has && m["tools"] == nil {
		return nil, openaiInvalid("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls", "")
	}
	if e := openaiToolChoice(m, c.tools, true); e != nil {
		return nil, e
	}
	msgs, has := m["messages"]
	if !has {
		return nil, openaiInvalid("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
	}
	list, ok := arr(msgs)
	if !ok {
		return nil, openaiInvalid("Invalid type for 'messages': expected an array of objects.", "messages", "invalid_type")
	}
	if len(list) == 0 {
		return nil, openaiInvalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages", "empty_array")
	}
	// pending holds the tool_call ids of the last assistant message still
	// waiting for their tool messages, and where that message was.
	var pending []string
	pendingAt := -1
	for i, v := range list {
		msg, ok := object(v)
		if !ok {
			return nil, openaiInvalid(fmt.Sprintf("Invalid type for 'messages[%d]': expected an object.", i), fmt.Sprintf("messages[%d]", i), "invalid_type")
		}
		role, _ := str(msg["role"])
		if role != "tool" && len(pending) > 0 {
			return nil, openaiInvalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: "+strings.Join(pending, ", "), fmt.Sprintf("messages.[%d].role", pendingAt), "")
		}
		var allowed []string
		switch role {
		case "system", "developer":
			allowed = []string{"role", "content", "name"}
		case "user":
			allowed = []string{"role", "content", "name"}
		case "assistant":
			allowed = []string{"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}
		case "tool":
			allowed = []string{"role", "content", "tool_call_id"}
		case "function":
			allowed = []string{"role", "content", "name"}
		case "":
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: 'messages[%d].role'.", i), fmt.Sprintf("messages[%d].role", i), "missing_required_parameter")
		default:
			return nil, openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", role), fmt.Sprintf("messages[%d].role", i), "invalid_value")
		}
		if k := unknownKey(msg, allowed...); k != "" {
			return nil, openaiInvalid(fmt.Sprintf("Additional properties are not allowed ('%s' was unexpected) - 'messages.%d'", k, i), "", "")
		}
		content, hasContent := msg["content"]
		switch role {
		case "assistant":
			calls, hasCalls := msg["tool_calls"]
			if (!hasContent || content == nil) && !hasCalls && msg["function_call"] == nil {
				return nil, openaiInvalid("Invalid value for 'content': expected a string, got null.", fmt.Sprintf("messages.[%d].content", i), "")
			}
			if content != nil {
				if e := chatContent(content, i, []string{"text", "refusal"}, nil); e != nil {
					return nil, e
				}
			}
			if hasCalls {
				ids, e := chatToolCalls(calls, i)
				if e != nil {
					return nil, e
				}
				pending, pendingAt = ids, i
			}
		case "tool":
			id, _ := str(msg["tool_call_id"])
			if id == "" {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: 'messages[%d].tool_call_id'.", i), fmt.Sprintf("messages[%d].tool_call_id", i), "missing_required_parameter")
			}
			if pendingAt < 0 {
				return nil, openaiInvalid("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", fmt.Sprintf("messages.[%d].role", i), "")
			}
			found := -1
			for j, p := range pending {
				if p == id {
					found = j
				}
			}
			if found < 0 {
				return nil, openaiInvalid(fmt.Sprintf("Invalid parameter: 'tool_call_id' of '%s' not found in 'tool_calls' of previous message.", id), fmt.Sprintf("messages.[%d].tool_call_id", i), "")
			}
			pending = append(pending[:found], pending[found+1:]...)
			if !hasContent {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: 'messages[%d].content'.", i), fmt.Sprintf("messages[%d].content", i), "missing_required_parameter")
			}
			if e := chatContent(content, i, []string{"text"}, nil); e != nil {
				return nil, e
			}
			t := textOf(content)
			c.toolResult = &t
		default:
			if !hasContent {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: 'messages[%d].content'.", i), fmt.Sprintf("messages[%d].content", i), "missing_required_parameter")
			}
			types := []string{"text"}
			var images *[]string
			if role == "user" {
				types = []string{"text", "image_url", "input_audio", "file"}
				c.images, c.toolResult = nil, nil
				images = &c.images
			}
			if e := chatContent(content, i, types, images); e != nil {
				return nil, e
			}
		}
		if role != "tool" && role != "assistant" {
			pendingAt = -1
		}
		if role == "assistant" && msg["tool_calls"] == nil {
			pendingAt = -1
		}
	}
	if len(pending) > 0 {
		return nil, openaiInvalid("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: "+strings.Join(pending, ", "), fmt.Sprintf("messages.[%d].role", pendingAt), "")
	}
	return c, nil
}

// chatContent checks a message's content: a string or an array of parts of
// the given types. images, when not nil, collects image descriptions.
func chatContent(content any, i int, types []string, images *[]string) *refusal {
	if _, ok := str(content); ok {
		return nil
	}
	parts, ok := arr(content)
	if !ok {
		return openaiInvalid(fmt.Sprintf("Invalid type for 'messages[%d].content': expected one of a string or array of objects, but got an object instead.", i), fmt.Sprintf("messages[%d].content", i), "invalid_type")
	}
	for j, p := range parts {
		po, ok := object(p)
		field := fmt.Sprintf("messages[%d].content[%d]", i, j)
		if !ok {
			return openaiInvalid(fmt.Sprintf("Invalid type for '%s': expected an object.", field), field, "invalid_type")
		}
		typ, _ := str(po["type"])
		allowed := false
		for _, t := range types {
			allowed = allowed || t == typ
		}
		if !allowed {
			return openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: '%s'.", typ, strings.Join(types, "', '")), field+".type", "invalid_value")
		}
		switch typ {
		case "text":
			if _, ok := str(po["text"]); !ok {
				return openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.text'.", field), field+".text", "missing_required_parameter")
			}
		case "image_url":
			iu, _ := object(po["image_url"])
			url, _ := str(iu["url"])
			if url == "" {
				return openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.image_url.url'.", field), field+".image_url.url", "missing_required_parameter")
			}
			d, e := imageURL(url, field+".image_url.url")
			if e != nil {
				return e
			}
			if images != nil {
				*images = append(*images, d)
			}
		}
	}
	return nil
}

// imageURL checks an OpenAI image URL (http(s) or a base64 data URL) and
// describes it.
func imageURL(url, field string) (string, *refusal) {
	if httpURL(url) {
		return "the image at " + url, nil
	}
	mt, data, ok := dataURL(url)
	if !ok {
		return "", openaiInvalid(fmt.Sprintf("Invalid '%s'. Expected a base64-encoded data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value without the 'data:' prefix.", field), field, "invalid_value")
	}
	d, ok := describeImage(mt, data)
	if !ok {
		return "", openaiInvalid("You uploaded an unsupported image. Please make sure your image is below 20 MB in size and is of one the following formats: ['png', 'jpeg', 'gif', 'webp'].", field, "invalid_image_format")
	}
	return d, nil
}

// chatToolCalls checks an assistant's tool_calls and returns their ids.
func chatToolCalls(v any, i int) ([]string, *refusal) {
	list, ok := arr(v)
	if !ok || len(list) == 0 {
		return nil, openaiInvalid(fmt.Sprintf("Invalid 'messages[%d].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead.", i), fmt.Sprintf("messages[%d].tool_calls", i), "empty_array")
	}
	var ids []string
	for j, t := range list {
		field := fmt.Sprintf("messages[%d].tool_calls[%d]", i, j)
		to, _ := object(t)
		id, _ := str(to["id"])
		if id == "" {
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.id'.", field), field+".id", "missing_required_parameter")
		}
		if typ, _ := str(to["type"]); typ != "function" {
			return nil, openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'function'.", typ), field+".type", "invalid_value")
		}
		fn, _ := object(to["function"])
		name, _ := str(fn["name"])
		if name == "" {
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.function.name'.", field), field+".function.name", "missing_required_parameter")
		}
		args, ok := str(fn["arguments"])
		if !ok {
			return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.function.arguments'.", field), field+".function.arguments", "missing_required_parameter")
		}
		if !json.Valid([]byte(args)) {
			return nil, openaiInvalid(fmt.Sprintf("Invalid '%s.function.arguments': not valid JSON.", field), field+".function.arguments", "invalid_value")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (u *Upstream) chatUsage() obj {
	us := UsageOf(Chat)
	return obj{"prompt_tokens": us.Input + us.CacheRead, "completion_tokens": us.Output, "total_tokens": us.Input + us.CacheRead + us.Output,
		"prompt_tokens_details":     obj{"cached_tokens": us.CacheRead, "audio_tokens": 0},
		"completion_tokens_details": obj{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
}

func (u *Upstream) chatAnswer(w http.ResponseWriter, c *convo, a answer) {
	n := u.nextID()
	id, callID, created := fmt.Sprintf("chatcmpl-fake%d", n), fmt.Sprintf("call_fake%d", n), time.Now().Unix()
	finish := "stop"
	if a.call {
		finish = "tool_calls"
	}
	if !c.stream {
		msg := obj{"role": "assistant", "content": a.text, "refusal": nil, "annotations": []any{}}
		if a.call {
			msg["content"] = nil
			msg["tool_calls"] = []any{obj{"id": callID, "type": "function", "function": obj{"name": ToolName, "arguments": ToolArgs}}}
		}
		writeJSON(w, obj{"id": id, "object": "chat.completion", "created": created, "model": u.Model,
			"choices":            []any{obj{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
			"usage":              u.chatUsage(),
			"service_tier":       "default",
			"system_fingerprint": "fp_fake"})
		return
	}
	s := startSSE(w)
	chunk := func(delta obj, finish any) {
		ch := obj{"id": id, "object": "chat.completion.chunk", "created": created, "model": u.Model, "service_tier": "default", "system_fingerprint": "fp_fake",
			"choices": []any{obj{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
		if c.includeUsage {
			ch["usage"] = nil
		}
		s.event("", ch, "\n")
	}
	if a.call {
		chunk(obj{"role": "assistant", "content": nil, "refusal": nil,
			"tool_calls": []any{obj{"index": 0, "id": callID, "type": "function", "function": obj{"name": ToolName, "arguments": ""}}}}, nil)
		for _, p := range pieces(ToolArgs, 3) {
			chunk(obj{"tool_calls": []any{obj{"index": 0, "function": obj{"arguments": p}}}}, nil)
		}
	} else {
		chunk(obj{"role": "assistant", "content": "", "refusal": nil}, nil)
		for _, p := range pieces(a.text, 3) {
			chunk(obj{"content": p}, nil)
		}
	}
	chunk(obj{}, finish)
	if c.includeUsage {
		s.event("", obj{"id": id, "object": "chat.completion.chunk", "created": created, "model": u.Model, "service_tier": "default",
			"system_fingerprint": "fp_fake", "choices": []any{}, "usage": u.chatUsage()}, "\n")
	}
	s.raw("", []byte("[DONE]"), "\n")
}
