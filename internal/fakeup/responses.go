package fakeup

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

var responsesItems = []string{"message", "function_call", "function_call_output", "reasoning", "file_search_call", "computer_call",
	"computer_call_output", "web_search_call", "image_generation_call", "code_interpreter_call", "local_shell_call",
	"local_shell_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "mcp_call", "item_reference",
	"custom_tool_call", "custom_tool_call_output"}

func (u *Upstream) responsesRequest(r *http.Request, body []byte) (*convo, *refusal) {
	if r.Method != "POST" || r.URL.Path != "/v1/responses" {
		return nil, &refusal{status: 404, typ: "invalid_request_error", msg: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)}
	}
	if e := u.openaiAuth(r); e != nil {
		return nil, e
	}
	m, ok := decode(body)
	if !ok {
		return nil, openaiInvalid("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)", "", "")
	}
	if k := unknownKey(m, responsesTop...); k != "" {
		return nil, openaiInvalid(fmt.Sprintf("Unknown parameter: '%s'.", k), k, "unknown_parameter")
	}
	model, has := m["model"]
	if !has {
		return nil, openaiInvalid("Missing required parameter: 'model'.", "model", "missing_required_parameter")
	}
	if s, _ := str(model); s != u.Model {
		return nil, openaiInvalid(fmt.Sprintf("The requested model '%v' does not exist.", model), "model", "model_not_found")
	}
	if id, has := m["previous_response_id"]; has && id != nil {
		return nil, openaiInvalid(fmt.Sprintf("Previous response with id '%v' not found.", id), "previous_response_id", "previous_response_not_found")
	}
	if v, has := m["max_output_tokens"]; has && v != nil {
		if n, ok := integer(v); !ok || n < 16 {
			return nil, openaiInvalid(fmt.Sprintf("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got %v instead.", v), "max_output_tokens", "integer_below_min_value")
		}
	}
	c := &convo{}
	if s, has := m["stream"]; has && s != nil {
		b, ok := s.(bool)
		if !ok {
			return nil, openaiInvalid("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
		}
		c.stream = b
	}
	if ins, has := m["instructions"]; has && ins != nil {
		if _, ok := str(ins); !ok {
			return nil, openaiInvalid("Invalid type for 'instructions': expected a string.", "instructions", "invalid_type")
		}
	}
	if t, has := m["tools"]; has {
		names, e := openaiTools(t, false)
		if e != nil {
			return nil, e
		}
		c.tools = names
	}
	if e := openaiToolChoice(m, c.tools, false); e != nil {
		return nil, e
	}
	in, has := m["input"]
	if !has {
		return nil, openaiInvalid("Missing required parameter: 'input'.", "input", "missing_required_parameter")
	}
	if _, ok := str(in); ok {
		return c, nil
	}
	items, ok := arr(in)
	if !ok {
		return nil, openaiInvalid("Invalid type for 'input': expected one of a string or array of input items.", "input", "invalid_type")
	}
	calls := map[string]bool{} // call ids of function_call items, true once answered
	var order []string
	for i, v := range items {
		it, ok := object(v)
		field := fmt.Sprintf("input[%d]", i)
		if !ok {
			return nil, openaiInvalid(fmt.Sprintf("Invalid type for '%s': expected an object.", field), field, "invalid_type")
		}
		typ, _ := str(it["type"])
		if typ == "" && it["role"] != nil {
			typ = "message"
		}
		known := false
		for _, k := range responsesItems {
			known = known || k == typ
		}
		if !known {
			return nil, openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: '%s'.", typ, strings.Join(responsesItems, "', '")), field+".type", "invalid_value")
		}
		switch typ {
		case "message":
			if k := unknownKey(it, "type", "role", "content", "id", "status"); k != "" {
				return nil, openaiInvalid(fmt.Sprintf("Unknown parameter: '%s.%s'.", field, k), field+"."+k, "unknown_parameter")
			}
			role, _ := str(it["role"])
			var parts []string
			switch role {
			case "user", "system", "developer":
				parts = []string{"input_text", "input_image", "input_file", "input_audio"}
			case "assistant":
				parts = []string{"output_text", "refusal"}
			default:
				return nil, openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: 'user', 'assistant', 'system', and 'developer'.", role), field+".role", "invalid_value")
			}
			var images []string
			if e := responsesContent(it["content"], field, parts, &images); e != nil {
				return nil, e
			}
			if role == "user" {
				c.images, c.toolResult = images, nil
			}
		case "function_call":
			if k := unknownKey(it, "type", "id", "call_id", "name", "arguments", "status"); k != "" {
				return nil, openaiInvalid(fmt.Sprintf("Unknown parameter: '%s.%s'.", field, k), field+"."+k, "unknown_parameter")
			}
			if id, has := it["id"]; has {
				if s, _ := str(id); !strings.HasPrefix(s, "fc") {
					return nil, openaiInvalid(fmt.Sprintf("Invalid '%s.id': '%v'. Expected an ID that begins with 'fc'.", field, id), field+".id", "invalid_value")
				}
			}
			for _, k := range []string{"call_id", "name", "arguments"} {
				if s, _ := str(it[k]); s == "" {
					return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.%s'.", field, k), field+"."+k, "missing_required_parameter")
				}
			}
			if args, _ := str(it["arguments"]); !json.Valid([]byte(args)) {
				return nil, openaiInvalid(fmt.Sprintf("Invalid '%s.arguments': not valid JSON.", field), field+".arguments", "invalid_value")
			}
			id, _ := str(it["call_id"])
			calls[id] = false
			order = append(order, id)
		case "function_call_output":
			if k := unknownKey(it, "type", "id", "call_id", "output", "status"); k != "" {
				return nil, openaiInvalid(fmt.Sprintf("Unknown parameter: '%s.%s'.", field, k), field+"."+k, "unknown_parameter")
			}
			id, _ := str(it["call_id"])
			if id == "" {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.call_id'.", field), field+".call_id", "missing_required_parameter")
			}
			if _, ok := calls[id]; !ok {
				return nil, openaiInvalid(fmt.Sprintf("No tool call found for function call output with call_id %s.", id), "input", "")
			}
			out, has := it["output"]
			if !has {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.output'.", field), field+".output", "missing_required_parameter")
			}
			if _, ok := str(out); !ok {
				if e := responsesContent(out, field+".output", []string{"input_text", "input_image", "input_file"}, nil); e != nil {
					return nil, e
				}
			}
			calls[id] = true
			t := textOf(out)
			c.toolResult = &t
		case "reasoning":
			if id, _ := str(it["id"]); !strings.HasPrefix(id, "rs") {
				return nil, openaiInvalid(fmt.Sprintf("Invalid '%s.id': '%s'. Expected an ID that begins with 'rs'.", field, id), field+".id", "invalid_value")
			}
			if _, ok := arr(it["summary"]); !ok {
				return nil, openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.summary'.", field), field+".summary", "missing_required_parameter")
			}
		}
	}
	for _, id := range order {
		if !calls[id] {
			return nil, openaiInvalid(fmt.Sprintf("No tool output found for function call %s.", id), "input", "")
		}
	}
	return c, nil
}

// responsesContent checks a message's (or a function output's) content: a
// string or an array of parts of the given types.
func responsesContent(content any, field string, types []string, images *[]string) *refusal {
	if _, ok := str(content); ok {
		return nil
	}
	parts, ok := arr(content)
	if !ok {
		return openaiInvalid(fmt.Sprintf("Invalid type for '%s.content': expected one of a string or array of objects.", field), field+".content", "invalid_type")
	}
	for j, p := range parts {
		pf := fmt.Sprintf("%s.content[%d]", field, j)
		po, ok := object(p)
		if !ok {
			return openaiInvalid(fmt.Sprintf("Invalid type for '%s': expected an object.", pf), pf, "invalid_type")
		}
		typ, _ := str(po["type"])
		allowed := false
		for _, t := range types {
			allowed = allowed || t == typ
		}
		if !allowed {
			return openaiInvalid(fmt.Sprintf("Invalid value: '%s'. Supported values are: '%s'.", typ, strings.Join(types, "', '")), pf+".type", "invalid_value")
		}
		switch typ {
		case "input_text", "output_text":
			if _, ok := str(po["text"]); !ok {
				return openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.text'.", pf), pf+".text", "missing_required_parameter")
			}
		case "input_image":
			url, _ := str(po["image_url"])
			if url == "" && po["file_id"] == nil {
				return openaiInvalid(fmt.Sprintf("Missing required parameter: '%s.image_url'.", pf), pf+".image_url", "missing_required_parameter")
			}
			if url != "" {
				d, e := imageURL(url, pf+".image_url")
				if e != nil {
					return e
				}
				if images != nil {
					*images = append(*images, d)
				}
			}
		}
	}
	return nil
}

func responsesUsage() obj {
	us := UsageOf(Responses)
	return obj{"input_tokens": us.Input + us.CacheRead, "input_tokens_details": obj{"cached_tokens": us.CacheRead},
		"output_tokens": us.Output, "output_tokens_details": obj{"reasoning_tokens": 0}, "total_tokens": us.Input + us.CacheRead + us.Output}
}

func (u *Upstream) responsesAnswer(w http.ResponseWriter, c *convo, a answer) {
	n := u.nextID()
	id, itemID, callID := fmt.Sprintf("resp_fake%d", n), fmt.Sprintf("msg_fake%d", n), fmt.Sprintf("call_fake%d", n)
	fcID := fmt.Sprintf("fc_fake%d", n)
	created := time.Now().Unix()
	resp := func(status string, output []any, usage any) obj {
		return obj{"id": id, "object": "response", "created_at": created, "status": status, "background": false, "error": nil,
			"incomplete_details": nil, "instructions": nil, "max_output_tokens": nil, "model": u.Model, "output": output,
			"parallel_tool_calls": true, "previous_response_id": nil, "reasoning": obj{"effort": nil, "summary": nil}, "store": false,
			"temperature": 1.0, "text": obj{"format": obj{"type": "text"}}, "tool_choice": "auto", "tools": []any{}, "top_p": 1.0,
			"truncation": "disabled", "usage": usage, "user": nil, "metadata": obj{}}
	}
	textItem := func(status, text string, content bool) obj {
		it := obj{"id": itemID, "type": "message", "status": status, "role": "assistant", "content": []any{}}
		if content {
			it["content"] = []any{obj{"type": "output_text", "annotations": []any{}, "logprobs": []any{}, "text": text}}
		}
		return it
	}
	callItem := func(status, args string) obj {
		return obj{"id": fcID, "type": "function_call", "status": status, "arguments": args, "call_id": callID, "name": ToolName}
	}
	final := textItem("completed", a.text, true)
	if a.call {
		final = callItem("completed", ToolArgs)
	}
	if !c.stream {
		writeJSON(w, resp("completed", []any{final}, responsesUsage()))
		return
	}
	s := startSSE(w)
	seq := 0
	ev := func(name string, v obj) {
		v["type"], v["sequence_number"] = name, seq
		seq++
		s.event(name, v, "\n")
	}
	ev("response.created", obj{"response": resp("in_progress", []any{}, nil)})
	ev("response.in_progress", obj{"response": resp("in_progress", []any{}, nil)})
	if a.call {
		ev("response.output_item.added", obj{"output_index": 0, "item": callItem("in_progress", "")})
		for _, p := range pieces(ToolArgs, 3) {
			ev("response.function_call_arguments.delta", obj{"item_id": fcID, "output_index": 0, "delta": p})
		}
		ev("response.function_call_arguments.done", obj{"item_id": fcID, "output_index": 0, "name": ToolName, "arguments": ToolArgs})
	} else {
		ev("response.output_item.added", obj{"output_index": 0, "item": textItem("in_progress", "", false)})
		ev("response.content_part.added", obj{"item_id": itemID, "output_index": 0, "content_index": 0,
			"part": obj{"type": "output_text", "annotations": []any{}, "logprobs": []any{}, "text": ""}})
		for _, p := range pieces(a.text, 3) {
			ev("response.output_text.delta", obj{"item_id": itemID, "output_index": 0, "content_index": 0, "delta": p, "logprobs": []any{}})
		}
		ev("response.output_text.done", obj{"item_id": itemID, "output_index": 0, "content_index": 0, "text": a.text, "logprobs": []any{}})
		ev("response.content_part.done", obj{"item_id": itemID, "output_index": 0, "content_index": 0,
			"part": obj{"type": "output_text", "annotations": []any{}, "logprobs": []any{}, "text": a.text}})
	}
	ev("response.output_item.done", obj{"output_index": 0, "item": final})
	ev("response.completed", obj{"response": resp("completed", []any{final}, responsesUsage())})
}
